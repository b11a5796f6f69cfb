"""Settings that several methods share, declared here rather than borrowed from one method's folder (torch-free):
the flag groups of the methods that run CPG's stages on ownership layers, and their base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from unforget.utils.cli import UsageError
from unforget.utils.settings import StageSettings, flag
from unforget.utils.speed import SpeedFlags


@dataclass(frozen=True)
class PretrainedFlag(StageSettings):
    """pretrained backbone (CPG family, Piggyback)"""

    pretrained: str | None = flag(None, "torchvision ImageNet state dict (e.g. resnet50-0676ba61.pth) that becomes "
                                  "task 1 'imagenet' of a fresh network; later tasks learn on top of it")

    def validate(self) -> None:
        super().validate()
        if self.pretrained is not None and (self.mode != "finetune" or self.load_folder is not None):
            raise UsageError("--pretrained starts a fresh network: give it to --mode finetune without --load_folder")


@dataclass(frozen=True)
class ValidationFlag(StageSettings):
    """validation split (CPG family, Piggyback)"""

    val_fraction: float | None = flag(
        None, "share of each task's training images held out (seeded: the same images in every stage and run) to "
        "make the method's choices on (CPG: growth, pruning ratio, retrain epoch, accuracy goals), so that the test "
        "images only measure. "
        "Default: the benchmark's, 0.1 (a CIFAR-100 task holds out 250 of its 2,500 images and trains on the "
        "rest; split_digits 0.2, 48 of 240, so that a single error does not decide a 0.97 goal). 0 chooses on "
        "the test images, as the CPG paper and its code do", at_least=0.0, below=1.0)

    def resolved(self) -> Self:
        from unforget.utils.data.registry import get_benchmark

        fraction = get_benchmark(self.benchmark).val_fraction if self.val_fraction is None else self.val_fraction
        return super().resolved().replace(val_fraction=fraction)


@dataclass(frozen=True)
class OptInValidationFlag(StageSettings):
    """validation split, opt-in (SupSup, GG baselines, subspace, lottery, Expand-and-Cluster)"""

    val_fraction: float = flag(
        0.0, "share of each task's training images held out, as the CPG family holds them out (seeded: the same "
        "images in every stage and run), and measured as val_acc on TensorBoard; the stage trains on the rest. "
        "Default 0: every training image trains, as in the method's paper, and nothing is held out",
        at_least=0.0, below=1.0)


@dataclass(frozen=True)
class OwnershipSettings(ValidationFlag, PretrainedFlag, SpeedFlags, StageSettings):
    """piggymask and decay (CPG family, Piggyback)"""

    LAYER_MODE: ClassVar[str]
    """the layer mode of the networks the stages build and load"""

    lr_mask: float = flag(5e-4, "Adam learning rate of each new task's real-valued mask, the piggymask that picks "
                          "earlier tasks' weights (0 freezes it)", at_least=0.0)
    weight_decay: float = flag(4e-5, "decay on the weights the task owns (in Piggyback the first task owns every "
                               "backbone weight, later tasks none)", at_least=0.0)

    def width(self) -> float:
        """The width the stage's network is built at or grown to: 1.0 unless the method grows (CPG)."""
        return 1.0

"""Settings of Expand-and-Cluster (torch-free, so `main_normal.py --help` stays fast). Its flags
keep the `--ec_` (Expand-and-Cluster) prefix the drivers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OptInValidationFlag
from unforget.utils.settings import StageSettings, flag

SYNTHETIC = "gaussian_teacher"


@dataclass(frozen=True)
class ExtractSettings(OptInValidationFlag, StageSettings):
    """extract (Expand-and-Cluster)"""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "retrain")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "retrain": ("save_folder",)}
    NEEDS_ARCH: ClassVar[bool] = False

    ec_sizes: str = flag("20,8,2", "gaussian_teacher benchmark: layer sizes of the synthetic teacher, inputs "
                         "first, outputs last")
    ec_activation: str = flag("relu", "synthetic teacher's activation", choices=("relu", "tanh"))
    ec_samples: int = flag(2000, "gaussian_teacher: training inputs (plus a quarter for test)", at_least=10)
    ec_students: int = flag(10, "N, the number of students trained at once", at_least=2)
    ec_expansion: float = flag(4.0, "student width / teacher width, every hidden layer", at_least=1.0)
    ec_gamma: float = flag(0.5, "keep clusters of at least int(gamma*N) neurons", at_least=0.0)
    ec_beta: float = flag(6.0, "alignment filter: drop clusters whose median cosine distance exceeds "
                          "1-cos(pi/beta)")
    ec_finetune_lr: float = flag(1e-3, "Adam learning rate of the final fine-tune", at_least=0.0)
    ec_finetune_epochs: int = flag(3000, "most epochs of the final fine-tune", at_least=0)
    ec_patience: int = flag(100, "epochs without progress before the learning rate decays", at_least=1)
    ec_report: str | None = flag(None, "retrain: also write the recovery report here (JSON; its table beside it "
                                 "as .txt), a path drivers know")
    ec_min_lr: float = flag(1e-6, "training stops early once the learning rate falls below", at_least=0.0)
    ec_probe: str = flag("data", "trained teachers: probe with the task's training images or with Gaussian inputs "
                         "(--ec_samples of them)", choices=("data", "gaussian"))
    ec_mask_share: float = flag(0.0, "first-layer neurons are compared on the inputs that leave their most common "
                                "value on more than this share of the probes (0: drop the constant inputs only)",
                                at_least=0.0, below=1.0)
    ec_threshold: float = flag(1e-3, "a teacher neuron counts as recovered below this 1-|cos| (the report and the "
                               "fine-tune's recovery check)", at_least=0.0)

    @property
    def sizes(self) -> list[int]:
        return [int(size) for size in self.ec_sizes.split(",")]

    def validate(self) -> None:
        super().validate()
        if self.benchmark != SYNTHETIC and not self.load_folder:
            raise UsageError(f"--benchmark {self.benchmark} needs --load_folder, the teacher's checkpoint folder")
        try:
            sizes = self.sizes
        except ValueError:
            raise UsageError(f"--ec_sizes must be comma-separated integers, got {self.ec_sizes!r}") from None
        if len(sizes) < 3 or min(sizes) < 1:
            raise UsageError(f"--ec_sizes needs inputs, at least one hidden layer and outputs, all positive: {sizes}")
        if int(self.ec_gamma * self.ec_students) < 2:
            raise UsageError(f"int(--ec_gamma * --ec_students) must be at least 2, "
                             f"got {self.ec_gamma} * {self.ec_students}")
        if self.ec_beta <= 1.0:
            raise UsageError(f"--ec_beta must exceed 1, got {self.ec_beta}")
        if self.val_fraction and (self.benchmark == SYNTHETIC or self.ec_probe == "gaussian"):
            raise UsageError("--val_fraction holds out a trained teacher's training images, which only --ec_probe "
                             "data probes with: a gaussian_teacher or Gaussian probes have none")

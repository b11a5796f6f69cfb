"""Settings of Piggyback (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from utils.methods.cpg.settings import PretrainedFlag, ValidationFlag
from utils.settings import StageSettings, flag
from utils.speed import SpeedFlags


@dataclass(frozen=True)
class PiggybackSettings(ValidationFlag, PretrainedFlag, SpeedFlags, StageSettings):
    """piggyback"""

    LAYER_MODE: ClassVar[str] = "cpg"
    """CPG's ownership layers: the first task owns every weight (the backbone: trained on the first task,
    or the ImageNet task of --pretrained), later tasks own none and only pick, so their weights stay
    frozen and each task costs its pick bits."""
    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "inference": ("load_folder",)}

    lr_mask: float = flag(5e-4, "Adam learning rate of each task's real-valued mask", at_least=0.0)
    weight_decay: float = flag(4e-5, "decay on the backbone's weights while the first task trains them",
                               at_least=0.0)
    piggyback_summary: str | None = flag(None, "inference: evaluate every task of the checkpoint and write this "
                                         "summary JSON")

    @property
    def network_width_multiplier(self) -> float:
        return 1.0

"""Settings of Piggyback (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.methods.stage_settings import OwnershipSettings
from unforget.utils.settings import flag


@dataclass(frozen=True)
class PiggybackSettings(OwnershipSettings):
    """piggyback"""

    LAYER_MODE: ClassVar[str] = "cpg"
    """CPG's ownership layers: the first task owns every weight (the backbone: trained on the first task,
    or the ImageNet task of --pretrained), later tasks own none and only pick, so their weights stay
    frozen and each task costs its pick bits."""
    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "inference": ("load_folder",)}

    piggyback_summary: str | None = flag(None, "inference: evaluate every task of the checkpoint and write this "
                                         "summary JSON")

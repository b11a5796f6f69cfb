"""Settings of WSN (torch-free): capacity c and the reference's optimiser and schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import ValidationFlag
from unforget.utils.settings import StageSettings, flag


@dataclass(frozen=True)
class WSNSettings(ValidationFlag, StageSettings):
    """wsn"""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "inference": ("load_folder",)}

    lr: float = flag(1e-3, "Adam learning rate of the weights, the scores, the task's batch-norm and head (the "
                     "reference's 1e-3)", at_least=0.0)
    wsn_capacity: float = flag(0.5, "c: the share of each layer's weights a task's mask keeps (top-c of |scores|), "
                               "in (0, 1]", at_most=1.0)
    wsn_lr_patience: int = flag(6, "epochs without a lower validation loss before the learning rate is divided "
                                "by --wsn_lr_factor (the reference's 6)", at_least=1)
    wsn_lr_factor: float = flag(2.0, "what the learning rate is divided by after a plateau (the reference's 2)",
                                at_least=1.0)
    wsn_lr_min: float = flag(1e-6, "training of a task stops once the learning rate falls below this (the "
                             "reference's 1e-6)", at_least=0.0)
    wsn_summary: str | None = flag(None, "inference: evaluate every task of the checkpoint and write this summary "
                                   "JSON")

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.wsn_capacity <= 1.0:
            raise UsageError(f"--wsn_capacity must be in (0, 1], got {self.wsn_capacity}")

"""Settings of the GG baselines (torch-free: the entry point parses them before importing torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OptInValidationFlag
from unforget.utils.methods.supsup.settings import ARCHITECTURES  # declared: tests/core/test_layering.py ALLOWED
from unforget.utils.settings import StageSettings, flag

LAYERS = ("plain", "fixed_body", "fixed_body_randw", "batche", "batche_randw")


@dataclass(frozen=True)
class GGBaselineSettings(OptInValidationFlag, StageSettings):
    """gg_baseline"""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "inference": ("gg_task_folders",)}

    gg_layers: str = flag("fixed_body", "plain: every weight is the task's (upper bound; a loaded network goes on "
                          "as the new task); fixed_body(_randw): a body trained by the first task (or random "
                          "signed constants) with a head per task; batche(_randw): the same body modulated per "
                          "task by rank-one vectors", choices=LAYERS)
    gg_body_lr: float = flag(1e-3, "Adam learning rate of the body weights while they train (plain: every task; "
                             "fixed_body, batche: the first task); --lr is that of the heads and vectors",
                             at_least=0.0)
    gg_weight_decay: float = flag(1e-4, "L2 on everything a task trains", at_least=0.0)
    gg_schedule: str = flag("cosine", "learning rate per epoch", choices=("cosine", "constant"))
    gg_task_folders: str | None = flag(
        None, "inference: comma-separated checkpoint folders; each task is evaluated with the last one holding it")
    gg_results: str | None = flag(None, "inference: CSV of per-task accuracy after learning and at the end")
    gg_summary: str | None = flag(None, "inference: run summary JSON")

    def validate(self) -> None:
        super().validate()
        if self.mode == "finetune" and self.arch not in ARCHITECTURES:
            raise UsageError(f"--method gg_baseline needs one of the architectures {', '.join(ARCHITECTURES)}, "
                             f"not {self.arch}")

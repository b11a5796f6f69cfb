"""Settings of EWC and LwF (torch-free: the entry point parses them before importing torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OptInValidationFlag
from unforget.utils.settings import StageSettings, flag


@dataclass(frozen=True)
class RegularisedSettings(OptInValidationFlag, StageSettings):
    """ewc and lwf: one task per stage on a plain body with a head per task"""

    LAYER_MODE: ClassVar[str] = "plain"
    """plain shared weights; each task has its own head (and, in networks with batch-norm, its own copy of
    the batch-norm, which the plain mode keeps per task)"""
    STAGES: ClassVar[tuple[str, ...]] = ("finetune",)
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",)}

    reg_momentum: float = flag(0.9, "SGD (Nesterov) momentum; --lr drops x0.1 at 50% and again at 80% of the "
                               "epochs, as the finetune baseline's", at_least=0.0, below=1.0)
    reg_weight_decay: float = flag(4e-5, "L2 on the shared body's weights (the finetune baseline's)", at_least=0.0)

    def positive(self, name: str) -> None:
        """Refuse a setting that must be above 0 (the declared ranges are inclusive)."""
        value = getattr(self, name)
        if not value > 0:
            raise UsageError(f"--{name} must be above 0, got {value}")


@dataclass(frozen=True)
class EWCSettings(RegularisedSettings):
    """ewc"""

    ewc_lambda: float = flag(1e4, "weight of the penalty (lambda/2) sum_i F_i (theta_i - theta*_i)^2 over the "
                             "shared body; 0 is the finetune baseline with a head per task. The papers give no value "
                             "that carries over (it scales with the Fisher); 1e4 was tuned on split_digits "
                             "(docs/methods/ewc.md)", at_least=0.0)
    ewc_online: bool = flag(False, "online EWC (Schwarz et al. 2018): one running Fisher F <- gamma F + F_task "
                            "and one anchor, the latest task's weights, instead of a penalty per old task")
    ewc_gamma: float = flag(1.0, "online EWC's decay of the older tasks' Fisher, in (0, 1]", at_most=1.0)
    ewc_fisher_samples: int | None = flag(None, "training images the Fisher is estimated on, the first ones "
                                          "(default: all of the task's)", at_least=1)

    def validate(self) -> None:
        super().validate()
        self.positive("ewc_gamma")


@dataclass(frozen=True)
class LwFSettings(RegularisedSettings):
    """lwf"""

    lwf_lambda: float = flag(1.0, "lambda_o: weight of the old tasks' distillation loss against the new task's "
                             "cross-entropy (the paper's 1)", at_least=0.0)
    lwf_temperature: float = flag(2.0, "T of the distillation's softened outputs (the paper's 2); must be above 0")
    lwf_warmup_epochs: int = flag(
        5, "epochs that train the new head alone (body and old heads frozen) before the joint training of "
        "--epochs, the paper's warm-up step; 0 skips it", at_least=0)

    def validate(self) -> None:
        super().validate()
        self.positive("lwf_temperature")

"""Settings of the lottery-ticket method (torch-free, so `main_normal.py --help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OptInValidationFlag
from unforget.utils.settings import StageSettings, flag

SCOPES = ("global", "layerwise")
INITS = ("kaiming_normal", "arch")
CONTROLS = ("reinit", "random_mask")


@dataclass(frozen=True)
class LotterySettings(OptInValidationFlag, StageSettings):
    """lottery (iterative magnitude pruning with rewinding)

    finetune trains level 0 dense, prune makes level --level (prune level --level - 1, rewind, train),
    retrain trains a control of level --level. --save_folder is the run's root: every level is a
    `level_<k>/` folder inside it."""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "prune", "retrain")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "finetune": ("save_folder",), "prune": ("save_folder", "level"), "retrain": ("save_folder", "level", "control")}

    level: int | None = flag(None, "the pruning level to make (prune, retrain; finetune makes level 0)", at_least=1)
    prune_fraction: float = flag(0.2, "share of the remaining weights each level prunes", at_least=0.0, below=1.0)
    prune_scope: str = flag("global", "rank weights by magnitude over all layers together, or within each layer",
                            choices=SCOPES)
    rewind_step: int = flag(0, "iteration of level 0 whose weights every level rewinds to (0: the initialisation)",
                            at_least=0)
    control: str | None = flag(None, "retrain: the level's mask on a fresh initialisation (reinit), or a random mask "
                               "of the same per-layer sparsity on the rewound weights (random_mask)", choices=CONTROLS)
    init: str = flag("kaiming_normal", "initial weights: kaiming-normal (fan-in, ReLU) on every conv and linear weight "
                     "with zero biases, as OpenLTH; or the architecture's own", choices=INITS)
    momentum: float = flag(0.9, "SGD momentum", at_least=0.0, below=1.0)
    weight_decay: float = flag(0.0, "SGD weight decay", at_least=0.0)

    def validate(self) -> None:
        super().validate()
        if self.mode == "finetune" and self.level is not None:
            raise UsageError(f"--mode finetune makes level 0; level {self.level} is made by --mode prune")
        if self.mode != "retrain" and self.control is not None:
            raise UsageError("--control is for --mode retrain (a control of a level already pruned)")
        if self.prune_fraction <= 0.0:
            raise UsageError(f"--prune_fraction must be above 0, got {self.prune_fraction}")

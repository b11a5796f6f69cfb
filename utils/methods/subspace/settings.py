"""Settings of the subspace method (torch-free, so `main_normal.py --help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OptInValidationFlag
from unforget.utils.settings import StageSettings, flag

KINDS = ("line", "curve", "simplex")


@dataclass(frozen=True)
class SubspaceSettings(OptInValidationFlag, StageSettings):
    """subspace"""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "inference": ("load_folder",)}

    weight_decay: float = flag(4e-5, "SGD weight decay", at_least=0.0)
    network_width_multiplier: float = flag(1.0, "parameter multiplier of the network", at_least=1.0)
    subspace: str = flag("line", "shape of the subspace of networks to learn", choices=KINDS)
    subspace_vertices: int = flag(3, "vertices of a simplex (2-9)", at_least=2, below=10)
    subspace_layerwise: bool = flag(False, "draw a separate point per layer each step")
    subspace_beta: float = flag(1.0, "weight of the squared-cosine regulariser between a random vertex pair "
                                "(0 turns it off)", at_least=0.0)
    subspace_label_noise: float = flag(0.0, "fraction of training labels replaced at random", at_least=0.0,
                                       below=1.0)
    subspace_warmup_epochs: int = flag(0, "epochs of linear learning-rate warm-up before the cosine decay",
                                       at_least=0)

    @property
    def layer_mode(self) -> str:
        return f"simplex{self.subspace_vertices}" if self.subspace == "simplex" else self.subspace

    def validate(self) -> None:
        super().validate()
        if self.subspace_warmup_epochs >= self.epochs:
            raise UsageError(f"--subspace_warmup_epochs must be in [0, --epochs), got {self.subspace_warmup_epochs}")

"""Settings of the CPG family (torch-free). PackNet and the baselines are CPG's stages with
fewer parts: the class attributes say which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OwnershipSettings
from unforget.utils.settings import flag

TRAIN_ACCURACY_GATE = 0.95
"""The reference's training accuracy a finetune or prune stage must exceed (`--train_accuracy_gate`)."""


@dataclass(frozen=True)
class CPGSettings(OwnershipSettings):
    """cpg family (cpg, packnet, baseline)"""

    LAYER_MODE: ClassVar[str] = "cpg"
    USES_GOALS: ClassVar[bool] = True
    """whether finetune and pruning compare against an accuracy goal (PackNet always keeps its model)"""
    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "prune", "retrain", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "finetune": ("save_folder", "jsonfile"), "prune": ("save_folder", "load_folder", "jsonfile"),
        "retrain": ("save_folder", "load_folder"), "inference": ("load_folder",)}

    initial_sparsity: float = flag(0.0, at_least=0.0, below=1.0)
    target_sparsity: float = flag(0.1, at_least=0.0, below=1.0)
    pruning_frequency: int = flag(10, "steps between mask updates", at_least=1)
    pruning_interval: int = flag(4, "epochs over which the sparsity ramps up", at_least=0)
    network_width_multiplier: float = flag(1.0, "parameter multiplier of the network", at_least=1.0)
    max_allowed_network_width_multiplier: float | None = flag(
        None, "width cap (default: the network width, i.e. no growth)", at_least=1.0)
    baseline_acc_file: str | None = flag(None, "JSON task -> accuracy goal (default: the benchmark's goals)")
    jsonfile: str | None = flag(None, "record.txt: sparsity -> accuracy", aliases=("--record_file",))
    total_num_tasks: int | None = flag(None, "tasks the capacity must last for (default: all)", at_least=1)
    train_accuracy_gate: float = flag(
        TRAIN_ACCURACY_GATE, "training accuracy a stage's last epoch must exceed; short of it finetune counts the "
        "goal as missed (grow, or keep the model at the width cap), and a prune stage records and saves nothing and "
        "ends pruning (exit 6). The reference's 0.95; a task that never exceeds it (few images or epochs) keeps "
        "every weight it owns, leaving none to later tasks", at_least=0.0, at_most=1.0)

    def resolved(self) -> Self:
        from unforget.utils.data.registry import get_benchmark

        settings = super().resolved()
        cap, total = self.max_allowed_network_width_multiplier, self.total_num_tasks
        return settings.replace(
            max_allowed_network_width_multiplier=self.network_width_multiplier if cap is None else cap,
            total_num_tasks=len(get_benchmark(self.benchmark).task_names) if total is None else total)

    @property
    def width_cap(self) -> float:
        """--max_allowed_network_width_multiplier, which `resolved` fills in (the network width by default)."""
        return self.needed(self.max_allowed_network_width_multiplier, "max_allowed_network_width_multiplier")

    def validate(self) -> None:
        super().validate()
        if self.network_width_multiplier > self.width_cap:
            raise UsageError(f"--network_width_multiplier {self.network_width_multiplier} exceeds the cap "
                             f"{self.max_allowed_network_width_multiplier}")
        if self.initial_sparsity > self.target_sparsity:
            raise UsageError("sparsities must satisfy 0 <= initial <= target < 1")

    def width(self) -> float:
        return self.network_width_multiplier


@dataclass(frozen=True)
class PackNetSettings(CPGSettings):
    LAYER_MODE: ClassVar[str] = "packnet"
    USES_GOALS: ClassVar[bool] = False


@dataclass(frozen=True)
class BaselineSettings(CPGSettings):
    """One plain network per task: trained from scratch, or from an earlier task's model (the
    finetune baseline); its accuracy can be added to an accuracy-goal file."""

    LAYER_MODE: ClassVar[str] = "plain"
    USES_GOALS: ClassVar[bool] = False
    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",), "inference": ("load_folder",)}

    logfile: str | None = flag(None, "accuracy-goal JSON to add this task's accuracy to")

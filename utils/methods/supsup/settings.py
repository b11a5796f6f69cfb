"""Settings of SupSup (torch-free: the entry point parses them before importing torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from utils.cli import UsageError
from utils.settings import StageSettings, flag

ARCHITECTURES = ("lenet_300_100", "fc_1024_1024", "gem_resnet18")


@dataclass(frozen=True)
class SupSupSettings(StageSettings):
    """supsup"""

    STAGES: ClassVar[tuple[str, ...]] = ("finetune", "inference")
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {"finetune": ("save_folder",)}

    supsup_masks: str = flag("topk", "topk: keep a density of largest |scores|; threshold: keep scores >= 0 "
                             "(the GNu reference)", choices=("topk", "threshold"))
    supsup_density: float = flag(0.5, "share of weights a top-k mask keeps", at_least=0.0)
    supsup_er: float = flag(0.0, "ER budget factor s (1..32): density min(0.5, s (c_out+c_in)/(c_out c_in k k)); "
                            "0 uses --supsup_density", at_least=0.0)
    supsup_output_size: int | None = flag(
        None, "units of the last layer: the task's classes plus superfluous neurons (default: the classes)",
        at_least=1)
    supsup_real_neurons: int = flag(10, "outputs the G objective leaves out (the classes)", at_least=1)
    supsup_optimizer: str = flag("adam", "optimizer of the scores", choices=("adam", "rmsprop"))
    supsup_weight_decay: float = flag(1e-4, "L2 on the scores", at_least=0.0)
    supsup_schedule: str = flag("cosine", "learning rate per epoch", choices=("cosine", "constant"))
    supsup_adaptor: str = flag("gt", "inference: gt uses each task's own mask; oneshot/binary infer the task by "
                               "superposing the masks", choices=("gt", "oneshot", "binary"))
    supsup_objective: str = flag("g", "task inference objective: g (superfluous neurons' logsumexp) or h "
                                 "(output entropy)", choices=("g", "h"))
    supsup_infer_batch: int = flag(1, "test images per task inference (1: each image alone)", at_least=1)
    supsup_eval: str = flag("all", "inference evaluates every task or the newest", choices=("all", "last"))
    supsup_tasks: int | None = flag(None, "inference: the network as it was after its first K tasks (masks and "
                                    "batch-norm of later tasks left out), so an evaluation of task K is the same "
                                    "whenever it runs", at_least=1)
    supsup_task_folders: str | None = flag(
        None, "comma-separated single-task checkpoint folders (GG) merged into one network for inference")
    supsup_results: str | None = flag(None, "CSV the inference rows are added to (a rerun replaces its own rows)")
    supsup_adapt_results: str | None = flag(
        None, "CSV written with this evaluation's rows in the reference's adapt_results.csv format (Date Finished, "
        "Name, Task, Num Tasks Learned, Current Val: accuracy right after learning, Adapt Val: accuracy now)")
    supsup_labels: str = flag("unshared", "inferred-task scenarios: unshared labels (GNu: right only when the task "
                              "and the class are) or shared (GNs: the class predicted with the inferred task's mask)",
                              choices=("unshared", "shared"))
    supsup_summary: str | None = flag(None, "run summary JSON the inference writes")

    def validate(self) -> None:
        super().validate()
        if self.mode == "finetune" and self.arch not in ARCHITECTURES:  # inference takes the checkpoint's
            raise UsageError(f"--method supsup needs one of the architectures {', '.join(ARCHITECTURES)}, "
                             f"not {self.arch}")
        if not 0.0 < self.supsup_density <= 1.0:
            raise UsageError(f"--supsup_density must be in (0, 1], got {self.supsup_density}")
        if self.mode == "inference" and not (self.load_folder or self.supsup_task_folders):
            raise UsageError("--method supsup --mode inference needs --load_folder or --supsup_task_folders")

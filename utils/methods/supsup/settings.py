"""Settings of SupSup (torch-free: the entry point parses them before importing torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from unforget.utils.cli import UsageError
from unforget.utils.methods.stage_settings import OptInValidationFlag
from unforget.utils.settings import StageSettings, flag

ARCHITECTURES = ("lenet_300_100", "fc_1024_1024", "gem_resnet18")


@dataclass(frozen=True)
class SupSupSettings(OptInValidationFlag, StageSettings):
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
    supsup_transfer: bool = flag(False, "SupSup Transfer: a new task's scores start at the mean of the earlier "
                                 "tasks' final scores (each task saves to its own folder)")
    supsup_results: str | None = flag(None, "CSV the inference rows are added to (a rerun replaces its own rows)")
    supsup_adapt_results: str | None = flag(
        None, "CSV written with this evaluation's rows in the reference's adapt_results.csv format (Date Finished, "
        "Name, Task, Num Tasks Learned, Current Val: accuracy right after learning, Adapt Val: accuracy now)")
    supsup_labels: str = flag("unshared", "inferred-task scenarios: unshared labels (GNu: right only when the task "
                              "and the class are) or shared (GNs: the class predicted with the inferred task's mask)",
                              choices=("unshared", "shared"))
    supsup_summary: str | None = flag(None, "run summary JSON the inference writes")
    supsup_scenario: str = flag(
        "given", "given: the task is known while training (GG, GNu, GNs); nns: never known, the model finds new tasks "
        "in the stream and allocates masks itself; hopfield: per-task batch-norm masks kept in a Hopfield network "
        "and recovered by descent (HopSupSup)", choices=("given", "nns", "hopfield"))
    supsup_stream: str | None = flag(None, "nns, hopfield: comma-separated tasks in the order their data arrives")
    supsup_nns_every: int = flag(100, "nns: training batches between two new-task checks", at_least=1)
    supsup_nns_task_batches: int = flag(1000, "nns: training batches each task of the stream brings", at_least=1)
    supsup_nns_budget: int = flag(2500, "nns: most masks the model may allocate", at_least=1)
    supsup_nns_epsilon: float = flag(0.125, "nns: a check allocates a new mask when n max_i softmax(-dH/dalpha)_i "
                                     "< 1 + epsilon over its n candidate masks", at_least=0.0)
    supsup_nns_maxn: int = flag(5, "nns: least candidates in a check (untrained masks fill up to it)", at_least=2)
    supsup_hop_hidden: int = flag(2048, "hopfield: units of each of the two hidden layers", at_least=1)
    supsup_hop_steps: int = flag(30, "hopfield: recovery steps (SGD on entropy, then energy)", at_least=1)
    supsup_hop_lr: float = flag(500.0, "hopfield: learning rate of the recovery", at_least=0.0)
    supsup_hop_gamma: float = flag(3.072, "hopfield: weight of the Hopfield energy per channel, -s^T W s / (2 d), "
                                   "in the recovery (the reference's 1.5e-3 on -s^T W s / 2 at its d = 2048)",
                                   at_least=0.0)

    def validate(self) -> None:
        super().validate()
        own_network = self.supsup_scenario == "hopfield"  # inference takes the checkpoint's
        if self.mode == "finetune" and not own_network and self.arch not in ARCHITECTURES:
            raise UsageError(f"--method supsup needs one of the architectures {', '.join(ARCHITECTURES)}, "
                             f"not {self.arch}")
        if not 0.0 < self.supsup_density <= 1.0:
            raise UsageError(f"--supsup_density must be in (0, 1], got {self.supsup_density}")
        if (self.supsup_transfer and self.mode == "finetune" and self.load_folder
                and Path(self.load_folder).resolve() == Path(self.needed(self.save_folder, "save_folder")).resolve()):
            raise UsageError("--supsup_transfer saves each task to a folder of its own: --save_folder must differ "
                             "from --load_folder, whose score sum the task starts from")
        if self.supsup_scenario != "given":
            self._validate_stream()
        if self.mode == "inference" and not (self.load_folder or self.supsup_task_folders):
            raise UsageError("--method supsup --mode inference needs --load_folder or --supsup_task_folders")

    def _validate_stream(self) -> None:
        from unforget.utils.data.registry import get_benchmark

        if self.supsup_nns_epsilon <= 0.0:
            raise UsageError(f"--supsup_nns_epsilon must be above 0, got {self.supsup_nns_epsilon}")
        if self.mode == "finetune" and not self.supsup_stream:
            raise UsageError(f"--supsup_scenario {self.supsup_scenario} --mode finetune needs --supsup_stream")
        names = get_benchmark(self.benchmark).task_names
        stream = stream_names(self)
        for name in stream:
            if name not in names:
                raise UsageError(f"--supsup_stream: {name!r} is not a task of {self.benchmark}")
        if len(set(stream)) != len(stream):
            raise UsageError("--supsup_stream names a task twice")


def stream_names(settings: SupSupSettings) -> list[str]:
    """The tasks of --supsup_stream in their order (NNs and HopSupSup)."""
    return [name for name in (settings.supsup_stream or "").split(",") if name]


def too_few_outputs(task: str, classes: int, outputs: int) -> None:
    """A setting checked against the data before any training: the head must have a unit per class."""
    if classes > outputs:
        raise UsageError(f"task {task} has {classes} classes, more than the network's {outputs} outputs "
                         f"(--supsup_output_size {outputs}); give at least {classes}")

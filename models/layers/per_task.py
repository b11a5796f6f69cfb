"""Per-task modules around the shared layers: one batch-norm or one head per task, only the active
task's runs, and only the active task's trains."""

from __future__ import annotations

import torch
from torch import nn

from unforget.models.layers.base import SharedLinear, TaskSpec, TaskState, copy_into_corner, scaled


class PerTask(TaskState):
    """One module per task in `per_task`; only the active task's one runs. Subclasses add tasks."""

    def __init__(self):
        super().__init__()
        self.per_task = nn.ModuleList()
        self.active_task = 0

    def append_task(self, module: nn.Module) -> None:
        self.per_task.append(module)
        self.set_task(len(self.per_task))

    def set_task(self, task: int) -> None:
        self.active_task = task

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        return list(self.per_task[task - 1].parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_task[self.active_task - 1](x)


class TaskBatchNorm2d(PerTask):
    """One BatchNorm2d per task, each at its task's width.

    A new task starts from the previous task's statistics and affine parameters
    (new channels from the defaults) and then trains its own copy, so evaluating
    an old task never sees statistics of a later one.
    """

    def __init__(self, channels: int, scale: bool = True):
        super().__init__()
        self.channels, self.scale = channels, scale

    def _size(self, spec: TaskSpec) -> int:
        return scaled(self.channels, spec.width) if self.scale else self.channels

    def restore_task(self, spec: TaskSpec) -> None:
        """A stored task's batch-norm, which the checkpoint fills in (nothing copied from the previous one)."""
        device = self.per_task[-1].weight.device if len(self.per_task) else None
        self.append_task(nn.BatchNorm2d(self._size(spec), device=device))

    def add_task(self, spec: TaskSpec) -> None:
        device = self.per_task[-1].weight.device if len(self.per_task) else None
        norm = nn.BatchNorm2d(self._size(spec), device=device)
        if len(self.per_task):
            with torch.no_grad():
                for name, value in self.per_task[-1].state_dict().items():
                    target = norm.state_dict()[name]
                    if value.dim() == 0:
                        target.copy_(value)
                    else:
                        copy_into_corner(target, value)
        self.append_task(norm)


class TaskNonAffineBatchNorm2d(PerTask):
    """One non-affine BatchNorm2d (own running statistics) per task, fresh for every new task, so
    evaluating task i after task j never uses j's statistics (SupSup reference's issue 11)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def add_task(self, spec: TaskSpec) -> None:
        device = self.per_task[-1].running_mean.device if len(self.per_task) else None
        self.append_task(nn.BatchNorm2d(self.channels, affine=False, device=device))


class TaskHeads(PerTask):
    """One linear classifier per task, reading the features at that task's width."""

    def __init__(self, in_features: int, scale_in: bool = True):
        super().__init__()
        self.in_features, self.scale_in = in_features, scale_in

    def _append_head(self, spec: TaskSpec, initialise: bool) -> None:
        head = SharedLinear(self.in_features, spec.num_classes, width=spec.width, mode="plain",
                            scale_in=self.scale_in, scale_out=False)
        if initialise:  # drawn on the CPU whatever the device, so a task's head starts the same everywhere
            nn.init.normal_(head.weights.weight, 0.0, 0.01)
        if len(self.per_task):
            head.to(self.per_task[-1].weights.weight.device)
        self.append_task(head)

    def restore_task(self, spec: TaskSpec) -> None:
        """A stored task's head, which the checkpoint fills in (no initial values drawn)."""
        self._append_head(spec, initialise=False)

    def add_task(self, spec: TaskSpec) -> None:
        self._append_head(spec, initialise=True)


def affine_norm(channels: int, width: float) -> TaskBatchNorm2d:
    """The per-task affine batch-norm of a layer mode (`LayerMode.norm`)."""
    return TaskBatchNorm2d(channels)


def head_per_task(in_features: int, outputs: int, width: float) -> TaskHeads:
    """One plain head per task (`LayerMode.head`); each task's class count sets its outputs."""
    return TaskHeads(in_features)

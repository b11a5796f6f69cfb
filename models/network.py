"""A multi-task network: shared body, per-task batch-norm and heads, one active task."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers import CPGWeights, PlainWeights, TaskHeads


@dataclass(frozen=True)
class TaskSpec:
    """What a checkpoint must remember to rebuild a task: its name, classes and width."""

    name: str
    num_classes: int
    width: float

    def to_json(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes, "width": self.width}

    @classmethod
    def from_json(cls, data: dict) -> TaskSpec:
        return cls(str(data["name"]), int(data["num_classes"]), float(data["width"]))


class TaskNetwork(nn.Module):
    """Body (`features`, then `classifier`) built from shared layers, then the active task's head.

    Subclasses build `features`, `classifier` and `heads`; this class keeps the
    task list and switches every per-task module to the active task.
    """

    features: nn.Module
    classifier: nn.Module
    heads: TaskHeads

    def __init__(self, width: float, mode: str):
        super().__init__()
        self.width, self.mode = width, mode
        self.tasks: list[TaskSpec] = []

    def add_task(self, name: str, num_classes: int, width: float | None = None) -> int:
        """Append a task learned at `width` (default: the network's width); returns its 1-based id."""
        width = self.width if width is None else width
        if width > self.width:
            raise ValueError(f"task {name!r} has width {width}, wider than the network ({self.width})")
        self.tasks.append(TaskSpec(name, num_classes, width))
        for module in list(self.modules()):
            if module is not self and module is not self.heads and hasattr(module, "add_task"):
                module.add_task(width)
        self.heads.add_task(width, num_classes)
        self.set_task(len(self.tasks))
        return len(self.tasks)

    def take_over(self, name: str, num_classes: int) -> int:
        """Let a new task continue from the latest task's weights, batch-norm and head (the
        finetune baselines); returns its id, which is the latest task's."""
        last = self.tasks[-1]
        if last.num_classes != num_classes:
            raise ValueError(f"task {name!r} has {num_classes} classes, the loaded head {last.num_classes}")
        self.tasks[-1] = TaskSpec(name, num_classes, last.width)
        return len(self.tasks)

    def set_task(self, task: int) -> None:
        if not 1 <= task <= len(self.tasks):
            raise ValueError(f"task {task} is not one of the {len(self.tasks)} tasks of this network")
        self.active_task = task
        for module in self.modules():
            if module is not self and hasattr(module, "set_task"):
                module.set_task(task)

    def task_id(self, name: str) -> int:
        for index, spec in enumerate(self.tasks, start=1):
            if spec.name == name:
                return index
        raise KeyError(name)

    def cpg_layers(self) -> list[CPGWeights]:
        return [m for m in self.modules() if isinstance(m, CPGWeights)]

    def shared_weights(self) -> list[torch.Tensor]:
        """The weight tensors of the body's shared layers (not the heads)."""
        return [m.weight for m in (*self.features.modules(), *self.classifier.modules())
                if isinstance(m, (CPGWeights, PlainWeights))]

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """What training task `task` may change: the body's weights plus that task's own
        batch-norm, biases and head (never another task's, never a piggymask)."""
        chosen = []
        for name, param in self.named_parameters():
            parts = name.split(".")
            if "piggymask" in parts:
                continue
            for marker in ("per_task", "biases"):
                if marker in parts and parts[parts.index(marker) + 1] != str(task - 1):
                    break
            else:
                chosen.append(param)
        return chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.classifier(self.features(x)))

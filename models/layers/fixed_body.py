"""Fixed-body modes: one body weight shared by every task, which only per-task parts (heads, batch-norm,
in `batche` rank-one vectors) build on. The separate-heads baselines of SupSup's GG experiments.

`fixed_body`: the body trains with the first task and is frozen from the second on.
`fixed_body_randw`: the body is fixed signed-constant random weights (as SupSup's) and never trains.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unforget.models.layers.base import Geometry, LayerMode, WeightMode, register
from unforget.models.layers.per_task import TaskNonAffineBatchNorm2d, head_per_task


def signed_constant(shape: tuple[int, ...]) -> torch.Tensor:
    """+-sqrt(2 / fan_in) with random signs from the global generator (SupSup's `signed_constant`)."""
    signs = torch.randint(0, 2, shape).mul_(2).sub_(1).to(torch.float32)
    return signs * math.sqrt(2.0 / math.prod(shape[1:]))


class FixedBodyWeights(WeightMode):
    """A body weight without bias: a parameter that task 1 trains (`random` False; the architecture's
    reference init fills it) or a signed-constant buffer that nothing trains (`random` True)."""

    def __init__(self, geometry: Geometry, width: float, bias: bool, random: bool = False):
        super().__init__()
        if bias:
            raise ValueError("fixed-body layers have no bias (per-task heads carry the biases)")
        shape = geometry.shape(width)
        self.random = random
        self.initialises_itself = random
        if random:
            self.register_buffer("weight", signed_constant(shape))
        else:
            self.weight = nn.Parameter(torch.empty(shape))
        self.active_task = 0

    def set_task(self, task: int) -> None:
        self.active_task = task

    def body_parameters(self, task: int) -> list[nn.Parameter]:
        """The shared weight while the first task trains it, else nothing: no later task moves it."""
        return [self.weight] if task == 1 and isinstance(self.weight, nn.Parameter) else []  # not random

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        return self.body_parameters(task)

    def forward(self) -> tuple[torch.Tensor, None]:
        return self.weight, None


def fixed_body_norm(channels: int, width: float) -> TaskNonAffineBatchNorm2d:
    """Non-affine batch-norm with each task's own statistics (the reference's MultitaskNonAffineBN)."""
    return TaskNonAffineBatchNorm2d(channels)


register(LayerMode("fixed_body", FixedBodyWeights, fixed_body_norm, head_per_task, bias=False))
register(LayerMode("fixed_body_randw", lambda geometry, width, bias: FixedBodyWeights(geometry, width, bias, True),
                   fixed_body_norm, head_per_task, bias=False))

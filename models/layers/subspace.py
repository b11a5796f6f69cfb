"""Subspace modes (lines, curves, simplexes): every layer holds S vertices and computes at one point
of their span, set by the trainer before each forward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.layers.base import (
    Geometry,
    LayerMode,
    SharedLinear,
    TaskSpec,
    TaskState,
    WeightMode,
    register,
    scaled,
)

SUBSPACE_MODES: dict[str, int] = {"line": 2, "curve": 3, **{f"simplex{n}": n for n in range(2, 10)}}
"""Subspace weight modes and their vertex counts; a curve's index 2 is the control point."""


class SubspaceWeights(WeightMode):
    """S vertex weights stacked in one tensor [S, *shape].

    The effective weight is the contraction of the stack with `coeffs` [S], a plain
    attribute (not in the state dict) that the trainer sets before each forward, so
    one fused op mixes any number of vertices. Every vertex has its own
    kaiming-normal draw (fan-in, gain sqrt 2), as in the reference.
    """

    initialises_itself = True

    def __init__(self, geometry: Geometry, width: float, bias: bool, vertices: int):
        super().__init__()
        shape = geometry.shape(width)
        self.weight = nn.Parameter(torch.empty(vertices, *shape))
        with torch.no_grad():
            for vertex in self.weight:
                nn.init.kaiming_normal_(vertex, mode="fan_in", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(vertices, shape[0])) if bias else None
        self.coeffs = torch.full((vertices,), 1.0 / vertices)

    def _apply(self, fn, *args, **kwargs):
        self.coeffs = fn(self.coeffs)
        return super()._apply(fn, *args, **kwargs)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = torch.tensordot(self.coeffs, self.weight, dims=1)
        bias = self.coeffs @ self.bias if self.bias is not None else None
        return weight, bias


class SubspaceBatchNorm2d(nn.Module):
    """Batch-norm of a subspace: S stacked affine sets mixed by `coeffs`, one shared set of
    running statistics (recalibrated at the evaluated point before evaluation)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, channels: int, vertices: int, width: float = 1.0, scale: bool = True):
        super().__init__()
        size = scaled(channels, width) if scale else channels
        self.weight = nn.Parameter(torch.ones(vertices, size))
        self.bias = nn.Parameter(torch.zeros(vertices, size))
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self.eps, self.momentum = 1e-5, 0.1
        self.coeffs = torch.full((vertices,), 1.0 / vertices)

    def _apply(self, fn, *args, **kwargs):
        self.coeffs = fn(self.coeffs)
        return super()._apply(fn, *args, **kwargs)

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.coeffs @ self.weight,
                            self.coeffs @ self.bias, self.training, self.momentum, self.eps)


class SubspaceHead(TaskState):
    """The classifier of a single-task subspace network, itself a subspace layer (created with the task)."""

    def __init__(self, in_features: int, mode: str):
        super().__init__()
        self.in_features, self.mode = in_features, mode
        self.layer: SharedLinear | None = None

    def add_task(self, spec: TaskSpec) -> None:
        if self.layer is not None:
            raise ValueError("a subspace network holds exactly one task")
        self.layer = SharedLinear(self.in_features, spec.num_classes, width=spec.width, bias=False, mode=self.mode,
                                  scale_out=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            raise TypeError("the subspace head has no task to compute (add_task first)")
        return self.layer(x)


def _subspace_mode(name: str, vertices: int) -> LayerMode:
    return LayerMode(
        name, lambda geometry, width, bias: SubspaceWeights(geometry, width, bias, vertices),
        norm=lambda channels, width: SubspaceBatchNorm2d(channels, vertices, width),
        head=lambda in_features, outputs, width: SubspaceHead(in_features, name), bias=False)


for _name, _vertices in SUBSPACE_MODES.items():
    register(_subspace_mode(_name, _vertices))

"""Students mode (Expand-and-Cluster): N independent students stacked as a batch dimension."""

from __future__ import annotations

import math

import torch
from torch import nn

from unforget.models.layers.base import Geometry, LayerMode, WeightMode, register

DEFAULT_STUDENTS = 10  # Expand-and-Cluster's N


class StudentsWeights(WeightMode):
    """Weight [N, out, in] and bias [N, out], so one batched matmul runs every student (no contraction).

    Each student's weight is a kaiming-normal draw over its own fan-in (the reference drew over
    the whole 3-D tensor, which shrank the scale by sqrt(out * N)); biases start at zero.
    """

    initialises_itself = True

    def __init__(self, geometry: Geometry, width: float, bias: bool, students: int = DEFAULT_STUDENTS):
        super().__init__()
        out_features, in_features = geometry.shape(width)
        self.weight = nn.Parameter(torch.randn(students, out_features, in_features) * math.sqrt(2.0 / in_features))
        self.bias = nn.Parameter(torch.zeros(students, out_features)) if bias else None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight, self.bias


register(LayerMode("students", StudentsWeights))

"""Plain mode: an ordinary trainable weight and bias (task heads, the baselines, a teacher)."""

from __future__ import annotations

import torch
from torch import nn

from unforget.models.layers.base import Geometry, LayerMode, WeightMode, register
from unforget.models.layers.per_task import affine_norm, head_per_task


class PlainWeights(WeightMode):
    def __init__(self, geometry: Geometry, width: float, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(geometry.shape(width)))
        self.bias = nn.Parameter(torch.zeros(self.weight.shape[0])) if bias else None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight, self.bias

    @torch.no_grad()
    def add_weight_decay(self, decay: float) -> None:
        if self.weight.grad is not None:
            self.weight.grad.add_(self.weight, alpha=decay)


register(LayerMode("plain", PlainWeights, affine_norm, head_per_task))

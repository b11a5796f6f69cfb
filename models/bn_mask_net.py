"""HopSupSup's network (the reference's BNNet): two hidden layers with Swish over fixed signed-constant
weights; what a task learns is only which batch-norm output channels of each hidden layer are on."""

from __future__ import annotations

import math

import torch
from torch import nn

from unforget.models.layers.base import SharedLinear
from unforget.models.layers.hopfield import HopfieldMaskedNorm
from unforget.models.network import TaskNetwork


def _signed_constant(layer: SharedLinear) -> None:
    """Frozen +-sqrt(2 / fan_in) with random signs (the global seed), as SupSup's weights."""
    weight = layer.weights.weight
    with torch.no_grad():
        weight.copy_(torch.randint(0, 2, weight.shape).mul_(2).sub_(1) * math.sqrt(2.0 / weight.shape[1]))
    weight.requires_grad_(False)


class BNMaskNet(TaskNetwork):
    """Flatten, [linear, masked batch-norm, Swish] x 2, linear over `outputs` shared by every task."""

    def __init__(self, width: float = 1.0, mode: str = "plain", input_shape: tuple[int, ...] = (1, 28, 28),
                 outputs: int = 10, hidden: int = 2048):
        super().__init__(width, mode)
        layers: list[nn.Module] = [nn.Flatten()]
        previous = math.prod(input_shape)
        for _ in range(2):
            layers += [SharedLinear(previous, hidden, bias=False, mode=mode, scale_in=False, scale_out=False),
                       HopfieldMaskedNorm(hidden), nn.SiLU()]
            previous = hidden
        self.features = nn.Sequential(*layers)
        self.classifier = SharedLinear(previous, outputs, bias=False, mode=mode, scale_in=False, scale_out=False)
        self.heads = nn.Identity()
        for module in self.modules():
            if isinstance(module, SharedLinear):
                _signed_constant(module)

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """Only the task's channel scores (the weights never train)."""
        return [p for p in super().task_parameters(task) if p.requires_grad]

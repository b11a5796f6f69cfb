"""Fully connected nets of the SupSup experiments, from the shared layers: LeNet 300-100 and FC 1024-1024.

Inputs are flattened images of any size. The layer mode decides the head and the biases: in SupSup
mode every layer, the last included (`outputs` units: task classes plus superfluous neurons), is
masked and has no bias, as in the reference; in the other modes each task has its own head.
"""

from __future__ import annotations

import math

from torch import nn

from unforget.models.digits import init_weights
from unforget.models.layers.base import SharedLinear
from unforget.models.network import TaskNetwork


class MLP(TaskNetwork):
    """Flatten, hidden layers with ReLU, then the head."""

    def __init__(self, hidden: tuple[int, ...], width: float = 1.0, mode: str = "supsup",
                 input_shape: tuple[int, ...] = (1, 28, 28), outputs: int = 10):
        super().__init__(width, mode)
        layers: list[nn.Module] = [nn.Flatten()]
        previous = math.prod(input_shape)
        for index, size in enumerate(hidden):
            layers += [SharedLinear(previous, size, width=width, bias=self.layers.bias, mode=mode, scale_in=index > 0),
                       nn.ReLU()]
            previous = size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Identity()
        self.heads = self.layers.head(previous, outputs, width)
        init_weights(self)


def LeNet300100(**kwargs) -> MLP:  # noqa: N802 (an architecture name)
    return MLP((300, 100), **kwargs)


def FC10241024(**kwargs) -> MLP:  # noqa: N802 (an architecture name)
    return MLP((1024, 1024), **kwargs)

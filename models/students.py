"""Fully connected networks held as N students in one set of tensors (Expand-and-Cluster).

Every layer is a `SharedLinear` in the students weight mode, so N independent networks
run as one batched matmul per layer and output [N, B, out]. The same class with N = 1 and
a linear skip `theta` is the reconstructed network: relu(-z) = relu(z) - z, so a last-layer
neuron recovered with the opposite sign leaves a term linear in that layer's input, which
the skip (from that input to the output) absorbs.
"""

from __future__ import annotations

import torch
from torch import nn

from unforget.models.layers.base import SharedLinear
from unforget.models.layers.students import StudentsWeights
from unforget.models.lenet import MLP

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class StudentsMLP(nn.Module):
    """N fully connected networks `sizes[0] -> ... -> sizes[-1]`, activation after every hidden layer."""

    def __init__(self, sizes: list[int], students: int, activation: str = "relu", skip: bool = False):
        super().__init__()
        self.sizes, self.students, self.activation = list(sizes), students, activation
        self.layers = nn.ModuleList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layer = SharedLinear(fan_in, fan_out, mode="students")
            layer.weights = StudentsWeights(layer.geometry, 1.0, True, students=students)
            self.layers.append(layer)
        self.act = ACTIVATIONS[activation]()
        self.theta = nn.Parameter(torch.zeros(students, sizes[-3] + 1, sizes[-1])) if skip else None

    def weights(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `index`'s weight [N, out, in] and bias [N, out]."""
        weights = self.layers[index].weights
        if not isinstance(weights, StudentsWeights) or weights.bias is None:
            raise TypeError(f"layer {index} is not a students layer with biases")
        return weights.weight, weights.bias

    def below_last(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's input: `x` itself for one hidden layer, else the activity below it."""
        for layer in self.layers[:-2]:
            x = self.act(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        below = self.below_last(x)
        out = self.layers[-1](self.act(self.layers[-2](below)))
        if self.theta is not None:
            ones = torch.ones(*below.shape[:-1], 1, dtype=below.dtype, device=below.device)
            out = out + torch.cat([below, ones], -1).expand(self.students, *below.shape[-2:-1], -1) @ self.theta
        return out


def DigitsTeacherMLP(**kwargs) -> MLP:  # noqa: N802 (an architecture name)
    """A small fully connected ReLU teacher (64 -> 16 -> classes) for extraction from 8x8 digits."""
    return MLP((16,), input_shape=(1, 8, 8), **kwargs)


def MnistTeacherMLP(**kwargs) -> MLP:  # noqa: N802 (an architecture name)
    """A fully connected ReLU teacher with one hidden layer (784 -> 32 -> classes) for extraction from MNIST."""
    return MLP((32,), input_shape=(1, 28, 28), **kwargs)


def MnistDeepTeacherMLP(**kwargs) -> MLP:  # noqa: N802 (an architecture name)
    """A fully connected ReLU teacher with two hidden layers (784 -> 32 -> 16 -> classes) for extraction."""
    return MLP((32, 16), input_shape=(1, 28, 28), **kwargs)

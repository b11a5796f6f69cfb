"""What every layer mode shares: geometry and widths, bit packing, the weight-mode protocol, the mode
registry and the two layer classes.

A layer owns only its geometry (sizes, stride, padding); its weights live in a *weight mode* module
that turns the mode's state into one effective weight (and bias) per forward. A mode also says
which of its parameters belong to which task, what adding or restoring a task does, and how it
saves itself (through the usual state-dict hooks), so nothing outside the mode knows its internals.

Widths: a layer is declared with its base sizes; at a width multiplier `w` a scaled dimension has
`int(base * sqrt(w))` channels, so the parameter count grows by about `w`. Each task remembers the
width it was learned at and always runs at that width, which keeps old tasks' outputs bit-identical
after growth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channels of a scaled dimension at parameter multiplier `width`."""
    return int(channels * math.sqrt(width))


@dataclass(frozen=True)
class Geometry:
    """Base sizes of a layer and which of its dimensions follow the width multiplier."""

    in_features: int
    out_features: int
    kernel: tuple[int, ...] = ()
    scale_in: bool = True
    scale_out: bool = True
    positions: int = 1
    """inputs per input channel: a linear layer reading a flattened C x H x W map (channel-major) has
    H*W, so its inputs grow by whole channels and a narrower layer's weights stay its top-left corner"""

    def shape(self, width: float) -> tuple[int, ...]:
        out = scaled(self.out_features, width) if self.scale_out else self.out_features
        inp = scaled(self.in_features, width) if self.scale_in else self.in_features
        return (out, inp * self.positions, *self.kernel)


def slice_to(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Top-left corner of `tensor` with the given shape (a view, no copy)."""
    if tuple(tensor.shape) == tuple(shape):
        return tensor
    return tensor[tuple(slice(0, n) for n in shape)]


def copy_into_corner(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy a narrower tensor into the top-left corner of a wider one (growth)."""
    if src.dim() != dst.dim() or any(s > d for s, d in zip(src.shape, dst.shape, strict=True)):
        raise ValueError(f"cannot grow a tensor of shape {tuple(src.shape)} into {tuple(dst.shape)}")
    slice_to(dst, tuple(src.shape)).copy_(src)


def packed_size(shape: tuple[int, ...]) -> int:
    """Bytes `pack_bits` needs for a mask of this shape."""
    return -(-math.prod(shape) // 8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor as 1 bit per element (uint8, little-endian bit order, zero-padded)."""
    flat = mask.flatten().to(torch.uint8)
    flat = F.pad(flat, (0, -flat.numel() % 8)).view(-1, 8)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=mask.device)
    return (flat * weights).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `pack_bits`."""
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.view(-1, 1) >> shifts) & 1
    return bits.flatten()[: math.prod(shape)].view(shape).bool()


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


class TaskState(nn.Module):
    """A module holding per-task state: the network tells it when a task is added, restored from a
    checkpoint or made active, and asks it which parameters training a task may change."""

    def add_task(self, task: TaskSpec) -> None:
        """Open a new task to learn."""

    def restore_task(self, task: TaskSpec) -> None:
        """Make room for a stored task whose values a checkpoint is about to fill in."""
        self.add_task(task)

    def restore_tasks(self, tasks: list[TaskSpec]) -> None:
        """Make room for several stored tasks at once (modes with per-task stacks size them once)."""
        for task in tasks:
            self.restore_task(task)

    def set_task(self, task: int) -> None:
        """Compute as 1-based task `task` from now on."""

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """What training task `task` may change (default: every parameter)."""
        return list(self.parameters())


class WeightMode(TaskState):
    """The weights of one layer; `forward()` gives the effective (weight, bias)."""

    weight: torch.Tensor
    """the mode's full-width weight (a parameter, or a buffer where nothing trains it)"""

    initialises_itself = False
    """True when the mode draws its own initial values (the architectures' reference init skips it)."""

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def add_weight_decay(self, decay: float) -> None:
        """grad += decay * w on the weights the active task trains (after backward)."""


def no_norm(channels: int, width: float) -> nn.Module:
    """`LayerMode.norm` of a mode without batch-norm: an architecture with batch-norm cannot use it."""
    raise TypeError("this layer mode has no batch-norm (LayerMode.norm) for an architecture with batch-norm")


def no_head(in_features: int, outputs: int, width: float) -> nn.Module:
    """`LayerMode.head` of a mode without task heads: a multi-task architecture cannot use it."""
    raise TypeError("this layer mode has no task heads (LayerMode.head) for a multi-task architecture")


@dataclass(frozen=True)
class LayerMode:
    """A weight mode and the per-task pieces a network in that mode is built with."""

    name: str
    weights: Callable[[Geometry, float, bool], WeightMode]
    norm: Callable[[int, float], nn.Module] = no_norm
    """(channels, width) -> the batch-norm after a conv, for architectures with batch-norm"""
    head: Callable[[int, int, float], nn.Module] = no_head
    """(in_features, outputs, width) -> the classifier(s) on top, for multi-task architectures"""
    bias: bool = True
    """whether the body's linear layers have biases"""


LAYER_MODES: dict[str, LayerMode] = {}


def register(mode: LayerMode) -> LayerMode:
    LAYER_MODES[mode.name] = mode
    return mode


def layer_mode(name: str) -> LayerMode:
    if name not in LAYER_MODES:
        raise ValueError(f"unknown layer mode {name!r}; known: {', '.join(sorted(LAYER_MODES))}")
    return LAYER_MODES[name]


class SharedConv2d(nn.Module):
    """A 2-D convolution whose weight comes from the chosen weight mode."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, width: float = 1.0,
                 stride: int = 1, padding: int = 0, bias: bool = False, mode: str = "cpg",
                 scale_in: bool = True, scale_out: bool = True):
        super().__init__()
        self.geometry = Geometry(in_channels, out_channels, (kernel_size, kernel_size), scale_in, scale_out)
        self.stride, self.padding = stride, padding
        self.weights = layer_mode(mode).weights(self.geometry, width, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weights()
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class SharedLinear(nn.Module):
    """A fully connected layer whose weight comes from the chosen weight mode."""

    def __init__(self, in_features: int, out_features: int, *, width: float = 1.0, bias: bool = True,
                 mode: str = "cpg", scale_in: bool = True, scale_out: bool = True, positions: int = 1):
        super().__init__()
        self.geometry = Geometry(in_features, out_features, (), scale_in, scale_out, positions)
        self.weights = layer_mode(mode).weights(self.geometry, width, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weights()
        if weight.dim() == 3:  # students [N, out, in]: x is [N, B, in], or [B, in] shared by all students
            x = x.expand(weight.shape[0], *x.shape[-2:])
            if bias is None:
                return torch.bmm(x, weight.transpose(1, 2))
            return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        return F.linear(x, weight, bias)


def weight_modes(network: nn.Module, kind: type[WeightMode]) -> list:
    """Every weight-mode module of class `kind` in `network`, in module order."""
    return [module for module in network.modules() if isinstance(module, kind)]

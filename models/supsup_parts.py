"""Pieces the SupSup networks add around the shared layers: per-task non-affine batch-norm, a masked
head shared by all tasks, and helpers that act on every SupSup layer of a network at once."""

from __future__ import annotations

import torch
from torch import nn

from models.layers import PerTask, SharedLinear, SupSupWeights, TaskBatchNorm2d, TaskHeads


class TaskNonAffineBatchNorm2d(PerTask):
    """One non-affine BatchNorm2d (own running statistics) per task, fresh for every new task, so
    evaluating task i after task j never uses j's statistics (the reference's issue 11)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def add_task(self, width: float = 1.0) -> None:
        device = self.per_task[-1].running_mean.device if len(self.per_task) else None
        self.append_task(nn.BatchNorm2d(self.channels, affine=False, device=device))


class MaskedHead(nn.Module):
    """The last layer of a SupSup network: one masked layer over `outputs` units for every task (the
    first ones are the task's classes, the rest superfluous neurons used by task inference)."""

    def __init__(self, in_features: int, outputs: int):
        super().__init__()
        self.outputs = outputs
        self.layer = SharedLinear(in_features, outputs, bias=False, mode="supsup", scale_in=False, scale_out=False)

    def add_task(self, width: float, num_classes: int) -> None:
        if num_classes > self.outputs:
            raise ValueError(f"a task with {num_classes} classes needs at least {num_classes} outputs, "
                             f"the network has {self.outputs}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def task_norm(channels: int, mode: str) -> nn.Module:
    """Per-task batch-norm: non-affine in SupSup mode (nothing but masks is learned), else affine."""
    return TaskNonAffineBatchNorm2d(channels) if mode == "supsup" else TaskBatchNorm2d(channels)


def task_head(in_features: int, outputs: int, mode: str) -> nn.Module:
    """The masked shared head in SupSup mode, one plain head per task otherwise."""
    return MaskedHead(in_features, outputs) if mode == "supsup" else TaskHeads(in_features)


def supsup_layers(network: nn.Module) -> list[SupSupWeights]:
    return [module for module in network.modules() if isinstance(module, SupSupWeights)]


def set_density(network: nn.Module, density: float | None, er_factor: float = 0.0) -> None:
    """Masking rule of every layer: threshold (density None), a flat top-k density, or with
    `er_factor` s > 0 the ER budget min(0.5, s (c_out + c_in) / (c_out c_in k_h k_w))."""
    for layer in supsup_layers(network):
        if density is not None and er_factor > 0:
            out_channels, in_channels = layer.weight.shape[:2]
            density = min(0.5, er_factor * (out_channels + in_channels) / layer.weight.numel())
        layer.density = density


def set_alphas(network: nn.Module, alphas: torch.Tensor | None) -> None:
    """Run every layer in superposition with mixing weights `alphas` [T] (None: the active task)."""
    for layer in supsup_layers(network):
        layer.alphas = alphas


def store_masks(network: nn.Module) -> None:
    for layer in supsup_layers(network):
        layer.store_masks()


def mask_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The live scores: what a SupSup stage trains."""
    return [score for layer in supsup_layers(network) for score in layer.scores.values()]

"""Architectures by name, and rebuilding a network from a checkpoint's task list."""

from __future__ import annotations

from collections.abc import Callable

from models.digits import DigitsConvNet
from models.network import TaskNetwork, TaskSpec

ARCHITECTURES: dict[str, Callable[..., TaskNetwork]] = {
    "digits_convnet": DigitsConvNet,
}


def build_network(arch: str, width: float, tasks: list[TaskSpec] = (), mode: str = "cpg") -> TaskNetwork:
    """A network of `arch` at `width` holding `tasks` (each at its own width), untrained."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    network = ARCHITECTURES[arch](width=width, mode=mode)
    for spec in tasks:
        network.add_task(spec.name, spec.num_classes, spec.width)
    return network

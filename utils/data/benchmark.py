"""What a benchmark is (`Benchmark`) and how data fails (`DataError`): the leaf of the data layer.

Every other data module imports these from here, so the registry (names to benchmarks) and the spec
reader (files to benchmarks) build on one definition without importing each other at module level.
Torch-free, like the registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unforget.utils.data.spec import Spec


class DataError(Exception):
    """Data that is missing or unreadable; the message says what to put where."""


EMBEDDED_LOADERS = ("unforget.utils.data.digits:", "unforget.utils.data.synthetic:",
                    "unforget.utils.data.mnist:load_permuted_digits")
"""The loaders whose images the code makes itself (no files identify them)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    task_names: tuple[str, ...]
    arch: str | None
    """the default architecture (None: the benchmark serves a method that brings its own networks)"""
    loader: str | None
    """`module:function` decoding one task; None: the benchmark has no images, the method that uses it draws
    its inputs itself (gaussian_teacher)"""
    crop_padding: int
    flip: bool
    default_goals: dict[str, float] = field(default_factory=dict)
    spec: Spec | None = None
    """a spec file's checked content, handed to its loader first (built-in benchmarks have none)"""
    val_fraction: float = 0.1
    """the share of each task's training images held out to choose on (`--val_fraction`'s default): 0.1 leaves
    CIFAR-100's 2,500-image tasks 250 and split MNIST's ~12,000 ~1,200, fine enough for accuracy goals while
    training keeps 90%"""

    @property
    def embedded(self) -> bool:
        """whether the code makes the images itself (no files identify them)"""
        return self.spec is None and (self.loader is None or self.loader.startswith(EMBEDDED_LOADERS))

    def load_task(self, data_root, task_name: str):
        """Decode (or read from cache) one task's uint8 images; see `utils.data.TaskData`."""
        if task_name not in self.task_names:
            raise DataError(f"benchmark {self.name} has no task {task_name!r}; tasks: {', '.join(self.task_names)}")
        if self.loader is None:
            raise DataError(f"benchmark {self.name} has no images; its inputs are drawn by the method that uses it")
        module_name, function_name = self.loader.split(":")
        loader = getattr(importlib.import_module(module_name), function_name)
        return loader(data_root, task_name) if self.spec is None else loader(self.spec, data_root, task_name)

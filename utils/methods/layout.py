"""A run's checkpoint layout as `tools.report --checkpoints NAME` reads it, and the report code a method names
for it. Torch-free: the registry (utils/methods/__init__.py) declares layouts, and the hooks, named as
"module:function", are imported only when a report runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def named_function(name: str) -> Callable:
    """The function a "module:function" string names (imported only when a report runs)."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class ReportInputs:
    """What `tools.report --root` was asked for, handed to a layout's summary."""

    root: Path
    names: list[str]
    """the tasks, in the order the run learned them"""
    folders: list[Path]
    """each task's final checkpoint folder in the layout read (Layout.folders)"""
    benchmark: str
    data_root: Path
    device: Any
    """a torch.device (the registry imports no torch)"""
    baselines: dict[str, float] | None = None
    """each task's accuracy learned alone (adds FWT)"""
    objective: str = "h"
    """SupSup's task-inference objective (--inference_objective)"""


@dataclass(frozen=True)
class Layout:
    """How a run keeps one final checkpoint per task, as `tools.report --checkpoints NAME` reads it, and the
    method code ("module:function") that reports on it: `summarise(ReportInputs) -> dict` (the record, with at
    least `task_names` and `accuracy_matrix`) and `write(root, summary) -> None` (its files and printed lines)."""

    folder: str
    """where each task's final checkpoint is under <root>/<task>/ ("." for <root>/<task> itself)"""
    summarise: str
    write: str
    finished: str = "meta.json"
    """the file in that folder that a finished task has"""
    whole_run: str | None = None
    """a file under <root> that, when there, says one checkpoint holds every task (SupSup's GNu: model/meta.json)"""

    def folders(self, root: Path, names: list[str]) -> list[Path]:
        """Each task's final checkpoint folder."""
        return [root / name / self.folder for name in names]

    def missing(self, root: Path, names: list[str]) -> list[str]:
        """The tasks without a finished folder (none when one checkpoint holds the whole run)."""
        if self.whole_run is not None and (root / self.whole_run).is_file():
            return []
        return [name for name, folder in zip(names, self.folders(root, names), strict=True)
                if not (folder / self.finished).is_file()]

    def summary_of(self, inputs: ReportInputs) -> dict:
        """The report's record, from the method's summarise hook (this imports the method, and so torch)."""
        return named_function(self.summarise)(inputs)

    def write_out(self, root: Path, summary: dict) -> None:
        """The report's files and printed lines, from the method's write hook."""
        named_function(self.write)(root, summary)

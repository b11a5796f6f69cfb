"""Decoded tasks cached on disk as uint8 tensors, so decoding happens once per machine."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from unforget.utils.atomic import atomic_torch_save
from unforget.utils.data.benchmark import DataError
from unforget.utils.data.tasks import TaskData

FIELDS = ("train_images", "train_labels", "test_images", "test_labels")
STALE = (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, KeyError, TypeError, ValueError)
"""What reading a truncated, older or foreign cache file raises; anything else is a bug to report."""


def cached_task(path: Path, decode: Callable[[], TaskData]) -> TaskData:
    """Read `path` if present and sound, else decode and write it atomically."""
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return TaskData(stored["name"], tuple(stored["classes"]), stored["train_images"], stored["train_labels"],
                            stored["test_images"], stored["test_labels"], tuple(stored["mean"]), tuple(stored["std"]))
        except OSError as error:
            raise DataError(f"cannot read the data cache {path}: {error.strerror or error}") from error
        except STALE:  # a stale or truncated cache is simply rebuilt
            path.unlink(missing_ok=True)
    task = decode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"name": task.name, "classes": list(task.classes), "mean": list(task.mean),
                           "std": list(task.std), **{f: getattr(task, f) for f in FIELDS}}, path)
    except OSError as error:
        raise DataError(f"data cache: {error}") from error
    return task

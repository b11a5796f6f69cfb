"""Copying checkpoint folders for the chooser tools, atomically and without importing torch. The JSON readers
the choosers share with the reports live in utils/run_files.py (re-exported here for the tools)."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

from unforget.utils.atomic import atomic_write
from unforget.utils.run_files import CheckpointFileError as CheckpointFileError
from unforget.utils.run_files import accuracy as accuracy
from unforget.utils.run_files import number as number
from unforget.utils.run_files import read_json as read_json

FILES = ("checkpoint.pth", "meta.json")


def has_checkpoint(folder: Path) -> bool:
    return all((Path(folder) / name).is_file() for name in FILES)


def copy_checkpoint(source: Path, destination: Path) -> None:
    """Copy checkpoint.pth then meta.json, each via a temporary file and a rename."""
    for name in FILES:
        with (Path(source) / name).open("rb") as file:
            atomic_write(Path(destination) / name, partial(shutil.copyfileobj, file))  # copyfileobj(file, out)

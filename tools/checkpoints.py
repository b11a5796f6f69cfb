"""Copying checkpoint folders for the chooser tools, atomically and without importing torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from utils.atomic import atomic_write

FILES = ("checkpoint.pth", "meta.json")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def has_checkpoint(folder: Path) -> bool:
    return all((Path(folder) / name).is_file() for name in FILES)


def copy_checkpoint(source: Path, destination: Path) -> None:
    """Copy checkpoint.pth then meta.json, each via a temporary file and a rename."""
    for name in FILES:
        with (Path(source) / name).open("rb") as file:
            atomic_write(Path(destination) / name, lambda out, src=file: shutil.copyfileobj(src, out))

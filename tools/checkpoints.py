"""Copying checkpoint folders for the chooser tools, atomically and without importing torch."""

from __future__ import annotations

import json
import math
import shutil
from functools import partial
from pathlib import Path

from utils.atomic import atomic_write

FILES = ("checkpoint.pth", "meta.json")


class CheckpointFileError(Exception):
    """A checkpoint folder's JSON file that is missing, unreadable or not what the tools expect (exit 65)."""


def read_json(path: Path, *keys: str) -> dict:
    """A JSON object from a checkpoint folder that holds `keys`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointFileError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from error
    except (ValueError, RecursionError) as error:  # an integer of thousands of digits; nesting deeper than json's
        raise CheckpointFileError(f"{path} is not what this toolkit wrote (a number too long or nesting too deep "
                                  "for JSON's reader)") from error
    if not isinstance(data, dict) or any(key not in data for key in keys):
        expected = f"the keys {', '.join(keys)}" if keys else "a JSON object"
        raise CheckpointFileError(f"{path} is not what this toolkit wrote (expected {expected})")
    return data


def number(data: dict, key: str, path: Path) -> float:
    """data[key] as a finite number, else the file is not what the toolkit wrote."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointFileError(f"{path}: {key} is {value!r}, not a number")
    return float(value)


def accuracy(data: dict, key: str, path: Path) -> float:
    """data[key] as an accuracy, a fraction in [0, 1]: any other number would decide the comparison it enters."""
    value = number(data, key, path)
    if not 0.0 <= value <= 1.0:
        raise CheckpointFileError(f"{path}: {key} is {value!r}, not an accuracy in [0, 1]")
    return value


def has_checkpoint(folder: Path) -> bool:
    return all((Path(folder) / name).is_file() for name in FILES)


def copy_checkpoint(source: Path, destination: Path) -> None:
    """Copy checkpoint.pth then meta.json, each via a temporary file and a rename."""
    for name in FILES:
        with (Path(source) / name).open("rb") as file:
            atomic_write(Path(destination) / name, partial(shutil.copyfileobj, file))  # copyfileobj(file, out)

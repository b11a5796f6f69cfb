"""Atomic writes: a reader sees the old file or the new one, never half of one. New files get the
permissions the umask allows, as `open` would give them."""

from __future__ import annotations

import csv
import errno
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class WriteError(OSError):
    """An output that could not be written; the file it was to replace is intact."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _os_error(error: BaseException | None) -> OSError | None:
    """The OSError behind `error`, if any (torch.save reports a failed write as a RuntimeError after it)."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = True) -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise WriteError(f"cannot write {path}: {error.strerror}") from error
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb" if binary else "w") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        cause = _os_error(error)
        if cause is None:
            raise
        reason = "the disk is full (or a file-size limit was reached)" if cause.errno in NO_SPACE else cause.strerror
        raise WriteError(f"cannot write {path}: {reason}; the previous file is intact") from error


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    atomic_write(path, lambda file: torch.save(obj, file))


def atomic_json_dump(obj: Any, path: Path) -> None:
    atomic_write(path, lambda file: file.write(json.dumps(obj, indent=2) + "\n"), binary=False)


def atomic_csv(path: Path, rows: Sequence[Mapping[str, object]], fieldnames: Sequence[str] | None = None,
               extrasaction: Literal["raise", "ignore"] = "raise") -> None:
    """Rows as a CSV with a header (`fieldnames`, by default the keys of the first row), written whole."""
    def write(file) -> None:
        writer = csv.DictWriter(file, fieldnames=list(fieldnames or rows[0]), lineterminator="\n",
                                extrasaction=extrasaction)
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write, binary=False)


class UnreadableFile(Exception):
    """A torch file that `read_torch_file` could not read: `os_error` when the system refused, else the file
    is not what torch.save writes (truncated, garbage, or holding more than tensors); `reason` is one line
    on why, for messages that stay one line (torch's own can be a paragraph)."""

    def __init__(self, path: Path, os_error: OSError | None, reason: str = ""):
        super().__init__(f"cannot read {path}: {os_error.strerror or os_error}" if os_error else
                         f"{path} is not a file torch.save wrote")
        self.os_error = os_error
        self.reason = reason or str(self)


def _load_failure(error: Exception) -> str:
    """torch.load's failure in one line: the instruction the weights-only unpickler refused (its message is
    a paragraph of advice around it), else the first line of the message."""
    text = str(error).strip()
    refused = text.partition("WeightsUnpickler error:")[2].strip()
    if refused:
        return f"the weights-only unpickler refused it: {refused.splitlines()[0]}"
    return text.splitlines()[0] if text else type(error).__name__


def read_torch_file(path: Path) -> Any:
    """torch.load of tensors only (weights_only); every failure but running out of memory is UnreadableFile.
    torch's warning about a plain pickle's protocol is silenced: the failure that follows says it all."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise UnreadableFile(path, error) from error
    except MemoryError:
        raise
    except Exception as error:  # whatever the unpickler trips over, the file is not what torch.save writes
        raise UnreadableFile(path, None, _load_failure(error)) from error

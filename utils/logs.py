"""train.log: one timestamped, greppable `key=value` line per epoch and per decision."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from unforget.utils.board import Board


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return f'"{text}"' if " " in text else text


class RunLog:
    """Appends lines to the log file; decisions are echoed to stdout for the driver's console. A quiet
    log (a rank other than 0 of a torchrun stage) writes and prints nothing, so each line appears once."""

    def __init__(self, path: Path | None, quiet: bool = False):
        self.path = Path(path) if path and not quiet else None
        self.quiet = quiet
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def line(self, **fields) -> str:
        text = time.strftime("%Y-%m-%dT%H:%M:%S") + " " + " ".join(f"{k}={_format(v)}" for k, v in fields.items())
        if self.path:
            with self.path.open("a") as file:
                file.write(text + "\n")
        return text

    def board(self, run: str) -> Board:
        """The TensorBoard writer of one stage, `tensorboard/<run>` beside the log file (nothing when quiet
        or without a file)."""
        return Board(self.path.parent / "tensorboard" / run if self.path else None)

    def decision(self, **fields) -> None:
        text = self.line(**fields)
        if not self.quiet:
            print(text, file=sys.stdout, flush=True)

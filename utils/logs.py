"""train.log: one timestamped, greppable `key=value` line per epoch and per decision."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return f'"{text}"' if " " in text else text


class RunLog:
    """Appends lines to the log file; decisions are echoed to stdout for the driver's console."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def line(self, **fields) -> str:
        text = time.strftime("%Y-%m-%dT%H:%M:%S") + " " + " ".join(f"{k}={_format(v)}" for k, v in fields.items())
        if self.path:
            with self.path.open("a") as file:
                file.write(text + "\n")
        return text

    def decision(self, **fields) -> None:
        print(self.line(**fields), file=sys.stdout, flush=True)

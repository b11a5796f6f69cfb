"""TensorBoard curves beside train.log: one event folder per stage, `<log folder>/tensorboard/<run>`, so
`tensorboard --logdir <run root>` shows a whole run, stage by stage."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where the first scalar is written: a process that writes none needs no torch
    from torch.utils.tensorboard import SummaryWriter


class Board:
    """One stage's per-epoch scalars in `folder`; without a folder (no --log_path, or a rank other than 0
    under torchrun) it writes nothing. The folder is emptied at the stage's first epoch, so a rerun after
    an interruption replaces the curves instead of adding a second set of steps. Each epoch is flushed, so
    a live TensorBoard, and an interrupted stage's folder, show every finished epoch."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.writer: SummaryWriter | None = None

    def epoch(self, epoch: int, **values: object) -> None:
        """Every numeric value as a scalar at step `epoch`; the text fields of a log line are left out."""
        if self.folder is None:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            shutil.rmtree(self.folder, ignore_errors=True)
            self.writer = SummaryWriter(str(self.folder))
        for tag, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

"""Where a lottery run keeps its levels: `level_<k>/` under the run's root, the rewind point in
`level_0/rewind/`, and each control of level k in `level_<k>/<control>/`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LotteryFolders:
    root: Path

    def level(self, level: int) -> Path:
        return self.root / f"level_{level}"

    def rewind(self) -> Path:
        return self.level(0) / "rewind"

    def control(self, level: int, control: str) -> Path:
        return self.level(level) / control

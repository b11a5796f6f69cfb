"""The state codes `main_normal.py` exits with; drivers branch on them (docs/design.md#exit-codes)."""

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    EXPAND = 2
    NO_GOAL = 3
    NO_SPACE = 5
    STOP = 6
    USAGE = 64
    BAD_CHECKPOINT = 65

"""Argument parsing shared by the entry point and the tools."""

import argparse
import re
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from unforget.utils.exit_codes import ExitCode

LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
"""What str.splitlines splits on."""


def one_line(message: str) -> str:
    """`message` with its line breaks written as escapes: a value the user gave can hold one, and an error
    is one line."""
    return LINE_BREAKS.sub(lambda match: repr(match.group())[1:-1], message)


class UsageError(Exception):
    """Flags or inputs that do not make sense together; the entry point prints it and exits 64."""


class UsageParser(argparse.ArgumentParser):
    """argparse that exits 64 with one line: its default 2 would read as 'expand'."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {one_line(message)}\n")

    def bad_checkpoint(self, message: str) -> NoReturn:
        """One line and exit 65: a checkpoint folder's file that cannot be trusted."""
        self.exit(ExitCode.BAD_CHECKPOINT, f"{self.prog}: error: {one_line(message)}\n")


def number_in(low: float, high: float = sys.float_info.max) -> Callable[[str], float]:
    """An argparse type for a finite number in [low, high] (default: any finite one from low): NaN compares
    false with every bound, so a tool that took one would decide as if the flag were not there."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not low <= value <= high:  # also false for NaN
            raise argparse.ArgumentTypeError(f"must be a finite number {_range(low, high)}, got {text!r}")
        return value

    return parse


def _range(low: float, high: float) -> str:
    return f"of at least {low}" if high == sys.float_info.max else f"from {low} to {high}"


def end_quietly_on_closed_pipe() -> None:
    """Let a closed standard output end this process silently, as it ends `head`'s writers (SIGPIPE's default
    action; Python ignores the signal and raises BrokenPipeError instead). The drivers read these tools
    through pipes, and a driver killed mid-read would otherwise leave a traceback on its terminal."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

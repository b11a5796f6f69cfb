"""Argument parsing shared by the entry point and the tools."""

import argparse

from utils.exit_codes import ExitCode


class UsageError(Exception):
    """Flags or inputs that do not make sense together; the entry point prints it and exits 64."""


class UsageParser(argparse.ArgumentParser):
    """argparse that exits 64 with one line: its default 2 would read as 'expand'."""

    def error(self, message: str):
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")

    def bad_checkpoint(self, message: str):
        """One line and exit 65: a checkpoint folder's file that cannot be trusted."""
        self.exit(ExitCode.BAD_CHECKPOINT, f"{self.prog}: error: {message}\n")

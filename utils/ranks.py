"""Rank facts: which process of a torchrun stage this is, read from the environment torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK). Without torchrun: rank 0 of a world of 1.

Torch-free, because the entry point and the logs read them before torch is imported, and light: the warm-start
client (utils/warm_client.py) imports it before every stage. The collectives that use them are in
`utils/distributed.py`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING's value without importing typing (5 ms of every warm client's start)
if TYPE_CHECKING:
    from collections.abc import Callable

STATE_FILE = "CPG_STATE_FILE"
"""Where rank 0 writes a torchrun stage's state code (see `report_state`)."""
LAUNCHER = os.getppid()
"""The process that started this one (torchrun, for a rank), read when the entry point starts."""


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its machine: its GPU is cuda:LOCAL_RANK."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the one process that writes files and logs and whose decisions the others take."""
    return rank() == 0


def report_state(stage: Callable[[], int]) -> int:
    """Run `stage` and return the exit code this process should end with.

    torchrun reads any non-zero exit of a rank as a crash (and exits 1 itself), so the state codes
    (2 expand, 5 no space, 6 stop, 64 usage, ...) cannot pass through it. When CPG_STATE_FILE is set,
    rank 0 writes the stage's code there and every rank exits 0; a crash still exits non-zero, and
    torchrun fails. Without torchrun, or without the file, the code itself.
    """
    state_file = os.environ.get(STATE_FILE)
    if world_size() == 1 or not state_file:
        return stage()
    try:
        code = stage()
    except SystemExit as stop:  # flag errors (64) are decided alike on every rank
        code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
    if is_main():
        with open(state_file, "w") as file:
            file.write(f"{int(code)}\n")
    return 0

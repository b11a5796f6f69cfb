"""The client half of the warm start (utils/warm_start.py): hand a stage or a tool to the server.

`main_normal.py` imports this before anything else, once per stage, so it holds only what a client needs and
imports only modules that cost nothing to load (no json, threading or pathlib): the interpreter's start is
most of a warm stage's cost outside its epochs. The request travels as `marshal` data, which both ends read
with the same interpreter.
"""

from __future__ import annotations

import array
import marshal
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence

from unforget.utils.ranks import world_size

ENV_VAR = "CPG_STAGE_SERVER"
START_ENV = "CPG_PROCESS_START"
"""The client's process start, passed on in its environment: a warm child times its stage from there."""
ENTRY = "unforget.utils.entry"
"""The module whose main(argv) runs a stage of `main_normal.py`."""
CPU_VAR = "CPG_STAGE_CPU"
HEADER = struct.Struct("!I")
STARTED = b"+"  # a child's first word: after it, an end of the connection means the stage's child ended


def send_message(conn: socket.socket, payload: bytes, fds: Sequence[int] = ()) -> None:
    data = HEADER.pack(len(payload)) + payload
    if fds:
        conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        conn.sendall(data)


def receive_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(size)
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def encode_request(module: str, argv: list[str]) -> bytes:
    """What the server's child needs to run `module` as this process would: its arguments, folder and
    environment."""
    return marshal.dumps({"module": module, "argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)})


def run_remote(argv: list[str], module: str = ENTRY) -> int | None:
    """Run `module`'s main(argv) (a stage of `main_normal.py` by default, or a tool's) in the warm server;
    None when no server is reachable, and in a rank of a torchrun stage, which runs in its own process."""
    path = os.environ.get(ENV_VAR)
    if not path or world_size() != 1:  # a torchrun rank is a process of its own
        return None
    try:
        return _run_remote(path, argv, module)
    except KeyboardInterrupt:  # the connection is closed on the way out, which stops the stage
        return 128 + signal.SIGINT


def _run_remote(path: str, argv: list[str], module: str) -> int | None:
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
    except OSError:
        return None
    request = encode_request(module, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    with conn:
        try:
            send_message(conn, request, [0, 1, 2])
            receive_exactly(conn, len(STARTED))
        except OSError:  # the server went away before a child started the stage (its driver was killed while
            return None  # the request waited, say): no stage ran, and the caller runs it
        try:
            return HEADER.unpack(receive_exactly(conn, HEADER.size))[0]
        except OSError:  # ConnectionError included: the stage's child ended without sending a code
            print("main_normal.py: error: the warm-start child running this stage ended without an exit code",
                  file=sys.stderr)
            return 1

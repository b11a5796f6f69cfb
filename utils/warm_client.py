"""The client half of the warm start (utils/warm_start.py): hand a stage or a tool to the server.

`main_normal.py` imports this before anything else, once per stage, so it holds only what a client needs and
imports only modules built into the interpreter or nearly so: the interpreter's start is most of a warm stage's
cost outside its epochs. So no json, threading or pathlib, and not even `socket`, `signal`, `array` or
`typing`, whose imports (enum, selectors, collections, re) took 12 of the client's 30 ms of CPU: the
connection is `_socket`'s, the C type under `socket.socket`, with the same methods. The request travels as
`marshal` data, which both ends read with the same interpreter.
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET
from _socket import socket as unix_socket

from unforget.utils.ranks import world_size

ENV_VAR = "CPG_STAGE_SERVER"
START_ENV = "CPG_PROCESS_START"
"""The client's process start, passed on in its environment: a warm child times its stage from there."""
ENTRY = "unforget.utils.entry"
"""The module whose main(argv) runs a stage of `main_normal.py`."""
CPU_VAR = "CPG_STAGE_CPU"
HEADER = struct.Struct("!I")
STARTED = b"+"  # a child's first word: after it, an end of the connection means the stage's child ended
INTERRUPTED = 130  # the shell's code for a Ctrl-C, 128 + SIGINT


def send_message(conn: unix_socket, payload: bytes, fds: list[int]) -> None:
    """`payload` after its length, with `fds` passed along as the receiver's own descriptors (a blocking Unix
    stream socket sends all of it in one call)."""
    data = HEADER.pack(len(payload)) + payload
    conn.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def receive_exactly(conn: unix_socket, size: int) -> bytes:
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
        return INTERRUPTED


def _run_remote(path: str, argv: list[str], module: str) -> int | None:
    try:
        conn = unix_socket(AF_UNIX, SOCK_STREAM)
        conn.connect(path)
    except OSError:
        return None
    request = encode_request(module, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
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
    finally:  # also on the way out of an interrupt: the closed connection stops the stage
        conn.close()

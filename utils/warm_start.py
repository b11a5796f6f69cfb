"""Warm start: run each stage in a child forked from a process that has already imported torch.

A driver calls `main_normal.py` about 14 times per task and a fresh interpreter
spends about 1.5 s importing torch before the first step. A driver may start
`python -m utils.warm_start --socket PATH` once and export
`CPG_STAGE_SERVER=PATH`; `main_normal.py` then hands its arguments, working
folder, environment and standard streams to the server, which forks a child
that says it started (one byte), runs the stage and sends back the exit code.
The child dies with its client: if the driver is killed, the stage stops too.
Without the variable, or when the server cannot be reached or goes away before
a child started the stage, `main_normal.py` runs the stage itself.

SIGINT and SIGTERM stop the server, a stage child or a waiting client quietly
(no traceback) with the shell's code for the signal, 128 + its number; a child
sends that code to its client first.

The server dies with the driver that started it (`--parent`), at every moment:
the kernel sends it SIGTERM when its parent dies (Linux's parent-death signal),
set before anything else. It keeps none of the descriptors it inherits but
its standard streams, so it never holds the run folder's lock. It reaps each child itself, so the stages' CPU time
reaches the server and, once the driver has waited for the server, the driver; each child also writes its
own CPU time where CPG_STAGE_CPU names, for the driver's per-stage record (`.stages/<stage>.cpu`).

A request names the module whose `main(argv)` to run: the entry (utils/entry.py) for a stage, or a tool
(utils/warm_run.py: the tools that evaluate networks start warm too).
"""

from __future__ import annotations

import array
import importlib
import marshal
import os
import resource
import signal
import socket
import sys
import threading

from unforget.utils.warm_client import CPU_VAR, ENTRY, HEADER, STARTED, receive_exactly


def _exit_quietly(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _reap_children(_signum: int = 0, _frame: object = None) -> None:
    """Wait for every ended child, so that its resource usage accrues to this process."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _stop_server(signum: int, _frame: object) -> None:
    _reap_children()
    os._exit(128 + signum)


def die_with_parent(parent: int) -> None:
    """Have the kernel stop this process when `parent` dies; exit now if it is gone already.

    The parent-death signal is set first and the parent checked after, so no moment is left in which the
    parent could die unnoticed (a check alone misses a death just after it). Elsewhere than Linux only the
    check is made, and the serve loop's polling does the rest.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(128 + signal.SIGTERM)


def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = conn.recvmsg(HEADER.size, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    length = HEADER.unpack(data + receive_exactly(conn, HEADER.size - len(data)))[0]
    request = marshal.loads(receive_exactly(conn, length))
    if not isinstance(request, dict):
        raise ValueError("a request is a dict")
    return request, list(fds)


def _die_with_client(conn: socket.socket) -> None:
    """The client sends nothing after its request; an end of stream means it is gone."""
    try:
        conn.recv(1)
    finally:
        os._exit(1)


def _run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    try:
        conn.sendall(STARTED)
    except OSError:  # the client is gone already: no stage to run
        os._exit(1)

    def stop(signum: int, _frame: object) -> None:
        """Interrupted: tell the client the signal's code (it may be gone already) and leave quietly."""
        try:
            conn.sendall(HEADER.pack(128 + signum))
        except OSError:
            pass
        os._exit(128 + signum)

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed output ends the stage silently, as a tool's
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    threading.Thread(target=_die_with_client, args=(conn,), daemon=True).start()
    try:
        module = importlib.import_module(request.get("module", ENTRY))
        if module.__file__ is None:
            raise TypeError(f"{module.__name__} is not a module file to run")
        sys.argv = [module.__file__, *request["argv"]]  # usage lines name the program as if run by itself
        code = module.main(request["argv"])
    except SystemExit as exiting:
        code = exiting.code if isinstance(exiting.code, int) else 1
    except BaseException:  # the client must get a code whatever happens
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    _report_cpu()
    conn.sendall(HEADER.pack(int(code)))
    os._exit(int(code))


def _report_cpu() -> None:
    """Write this stage's CPU seconds (this child's and its own children's) where CPG_STAGE_CPU names: the
    server reaps the child, so its CPU time reaches the driver only when the server ends, too late to say
    what each stage cost."""
    path = os.environ.get(CPU_VAR)
    if path:
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        with open(path, "w") as file:
            file.write(f"{sum(use.ru_utime + use.ru_stime for use in usage):.3f}\n")


def serve(path: str, parent: int, methods: tuple[str, ...] = ("cpg",)) -> None:
    """Import the stage machinery (of `methods`) once, then fork one child per request while `parent` lives."""
    signal.signal(signal.SIGINT, _stop_server)  # a stop, not a crash: no KeyboardInterrupt traceback
    signal.signal(signal.SIGTERM, _stop_server)
    from unforget.utils.data.registry import BENCHMARKS
    from unforget.utils.methods import METHODS

    importlib.import_module(ENTRY)  # by name, as the children run it: the entry imports this module
    for method in methods:
        METHODS[method].runner()
    for benchmark in BENCHMARKS.values():  # the data loaders, which a stage imports when it reads its task
        if benchmark.loader is not None:
            importlib.import_module(benchmark.loader.split(":")[0])
    importlib.import_module("torch.utils.tensorboard")  # utils.board imports it at a stage's first epoch

    signal.signal(signal.SIGCHLD, _reap_children)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    server.settimeout(1.0)
    while os.getppid() == parent:  # the parent-death signal's fallback where there is none
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        try:
            request, fds = _receive_request(conn)
        except (OSError, ValueError, EOFError, TypeError):  # marshal's errors for a request cut short
            conn.close()
            continue
        if os.fork() == 0:
            server.close()
            _run_child(conn, request, fds)
        for fd in fds:
            os.close(fd)
        conn.close()


if __name__ == "__main__":
    import argparse  # here, not above: every client imports this module before its stage

    parser = argparse.ArgumentParser(description="Serve main_normal.py stages from a warm process.")
    parser.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
    parser.add_argument("--parent", type=int, required=True,
                        help="pid of the process that starts the server (the driver); the server dies with it")
    parser.add_argument("--method", action="append", default=None,
                        help="a method whose stages to import before serving, repeatable (default: cpg)")
    args = parser.parse_args()
    die_with_parent(args.parent)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # inherited ones, above all the run folder's lock: the driver's
    serve(args.socket, args.parent, tuple(args.method or ["cpg"]))

"""A small stand-in for the drivers' PYTHON, so that driver tests check the shell logic without training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

# A stand-in for PYTHON: `-m tools.<module>` (or `-m utils.warm_run tools.<module>`) runs for real (the
# drivers need the task names), but for the run
# report (the stand-in trains nothing to report on), which succeeds at once; any other call appends its
# arguments, its thread settings and its PID to STUB_LOG as a JSON line, sleeps STUB_SLEEP seconds if set, and
# exits with STUB_CODES[its --dataset] (default 0).
STUB = f"""#!{sys.executable}
import json, os, sys, time
args = sys.argv[1:]
if args[:2] == ["-m", "utils.warm_run"]:  # a tool handed to the warm start runs as the tool itself
    args = ["-m", *args[2:]]
if args[:2] == ["-m", "tools.report"]:
    sys.exit(0)
if args[:1] == ["-m"] and args[1].startswith("tools."):
    os.execv(sys.executable, [sys.executable, *args])
threads = {{name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "threads": threads, "pid": os.getpid()}}) + "\\n")
time.sleep(float(os.environ.get("STUB_SLEEP") or 0))
dataset = args[args.index("--dataset") + 1] if "--dataset" in args else ""
sys.exit(json.loads(os.environ.get("STUB_CODES", "{{}}")).get(dataset, 0))
"""


def stub_env(folder: Path, **codes: int) -> dict[str, str]:
    """The environment that makes a driver call the stand-in, with these exit codes per dataset."""
    stub = folder / "python_stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return {"PYTHON": str(stub), "STUB_LOG": str(folder / "stub.jsonl"), "STUB_CODES": json.dumps(codes),
            "FAST_START": "0", "DEVICE": "cpu"}


def stub_calls(env: dict[str, str]) -> list[dict]:
    path = Path(env["STUB_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

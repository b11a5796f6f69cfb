"""A run folder is its settings: record them when a run starts, and refuse a rerun with other ones.

A driver (scripts/lib.sh `begin_run`) calls this before its first stage with every setting it passes on
or reads from the environment. The first run writes ROOT/run_settings.json: those settings, what
identifies the data (a spec file's content hash; for data files the names and sizes under the data root)
and the goals file's content, beside the code version and the command. A later run into the same folder
with the same settings resumes; with other settings it exits 64 before any stage runs, one line per
differing setting (old -> new), since its stages' markers would otherwise hand it the old results. A folder
where no stage has finished (the first one refused a bad setting, say) takes the new settings instead.
The code version is recorded, not compared: a run may resume on a newer checkout (it is said in a line).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

if not __package__:  # run as `python tools/run_settings.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.atomic import atomic_json_dump
from unforget.utils.cli import UsageParser, end_quietly_on_closed_pipe
from unforget.utils.data.registry import DataError, get_benchmark

FILE = "run_settings.json"
REPO = Path(__file__).resolve().parents[1]
LISTED_LEVELS = 3
LISTED_ENTRIES = 10_000
"""The data files are identified by the names and sizes of at most this many entries, this many folders
down: enough to tell one download or image folder from another without reading a large data set whole."""
NOT_COMPARED = ("SEED", "DATA_ROOT")
"""What a run card's settings leave out: runs that differ only in these are seeds of one configuration."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _listing(root: Path) -> str:
    """A digest of the names and sizes under `root`, caches (the loaders' `*_cache` folders) left out."""
    lines: list[str] = []

    def walk(folder: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            if len(lines) >= LISTED_ENTRIES or entry.name.endswith("_cache") or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=True):
                lines.append(f"{path.relative_to(root)}/")
                if level < LISTED_LEVELS:
                    walk(path, level + 1)
            elif entry.is_file(follow_symlinks=True):
                lines.append(f"{path.relative_to(root)} {entry.stat().st_size}")

    walk(root, 1)
    return _sha256("\n".join(lines).encode())


def data_identity(benchmark: str, data_root: str) -> dict[str, str]:
    """The benchmark's name (a spec file's absolute path: the run folder is named by its file name alone, and the
    same spec given by a relative path resumes the run), a spec file's content hash, and for data read from
    files its root and listing; the embedded benchmarks are made by the code itself."""
    identity = {"BENCHMARK": benchmark}
    found = get_benchmark(benchmark)
    if found.spec is not None:
        identity["BENCHMARK"] = str(Path(benchmark).resolve())
        identity["benchmark spec sha256"] = _sha256(Path(benchmark).read_bytes())
    if found.spec is not None or not found.embedded:
        root = Path(data_root).resolve()
        identity["DATA_ROOT"] = str(root)
        identity["data files sha256"] = _listing(root)
    return identity


def goals_identity(goals: str | None) -> tuple[dict[str, str], object]:
    """The goals file's content hash for the settings, and its content for the record."""
    if goals is None:
        return {}, None
    raw = Path(goals).read_bytes()
    try:
        content = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        content = raw.decode(errors="replace")  # the stage refuses it; the record still shows what it held
    return {"GOALS content sha256": _sha256(raw)}, {"file": str(Path(goals).resolve()), "content": content}


def code_version() -> dict:
    """The checkout's commit and whether its tracked files differ from it ("unknown" outside git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One line per setting that differs, old -> new ("unset" where one side lacks it). A setting one side lacks
    and the other leaves empty does not differ: a driver's new opt-in setting leaves its earlier runs resumable."""
    return [f"{name}: {old.get(name, 'unset')!r} -> {new.get(name, 'unset')!r}"
            for name in sorted(old.keys() | new.keys()) if old.get(name, "") != new.get(name, "")]


def finished_stage(root: Path) -> bool:
    """Whether a stage of the run in ROOT has finished (a marker in one of its .stages folders). Only then do
    its settings guard results: a run whose first stage refused a bad setting may start again with a good one."""
    return any(entry.is_file() for folder in root.rglob(".stages") if folder.is_dir() for entry in folder.iterdir())


def card_settings(record: dict) -> dict[str, str]:
    """The settings a run card carries: all but the seed and the data root's path."""
    return {name: value for name, value in record["settings"].items() if name not in NOT_COMPARED}


def _read(path: Path, parser: UsageParser) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        parser.bad_checkpoint(f"cannot read {path} ({getattr(error, 'strerror', None) or error}): move it away "
                              "to start this run afresh")
    settings = record.get("settings") if isinstance(record, dict) else None
    if not isinstance(settings, dict) or not all(isinstance(value, str) for value in settings.values()):
        parser.bad_checkpoint(f"{path} is not what this toolkit wrote (no settings of strings): move it away to "
                              "start this run afresh")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="run_settings", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the run folder")
    parser.add_argument("--card", action="store_true", help="print the settings ROOT's run card carries (JSON)")
    parser.add_argument("--driver", help="the driver's name (cpg.sh, ...); required unless --card")
    parser.add_argument("--command", default="", help="the command line, recorded")
    parser.add_argument("--benchmark", help="the benchmark (a name or a spec file)")
    parser.add_argument("--data_root", default="data")
    parser.add_argument("--goals", help="the accuracy-goal file the run reads, if one was given")
    parser.add_argument("--settings", nargs="*", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    path = args.root / FILE
    if args.card:
        print(json.dumps(card_settings(_read(path, parser)), sort_keys=True))
        return 0
    if not args.driver:
        parser.error("--driver is required")
    settings = {"driver": args.driver}
    for pair in args.settings:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            parser.error(f"settings are NAME=VALUE, got {pair!r}")
        settings[name] = value
    try:
        if args.benchmark is not None:
            settings.update(data_identity(args.benchmark, args.data_root))
        goals, goals_content = goals_identity(args.goals)
    except DataError as error:
        parser.error(str(error))
    except OSError as error:
        parser.error(f"cannot read {error.filename}: {error.strerror}")
    settings.update(goals)
    code = code_version()
    if path.exists():
        record = _read(path, parser)
        changed = differences(record["settings"], settings)
        if not changed:
            if record.get("code", {}).get("commit") != code["commit"]:
                print(f"note: this run started at commit {record.get('code', {}).get('commit')}, now "
                      f"{code['commit']}; resuming with the same settings")
            return 0
        if finished_stage(args.root):
            for line in changed:
                print(f"{args.driver}: error: setting {line}", file=sys.stderr)
            parser.exit(64, f"{args.driver}: error: {args.root} holds a run with other settings (above); nothing "
                            "was run. Give the new run its own folder (another setting name, EXPERIMENT or "
                            "CKPT_ROOT), or delete that folder to start it over\n")
        print(f"note: {args.root} holds no finished stage; its settings are replaced by this run's")
    args.root.mkdir(parents=True, exist_ok=True)
    atomic_json_dump({"settings": settings, "goals": goals_content, "code": code, "command": args.command,
                      "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}, path)
    return 0


if __name__ == "__main__":
    end_quietly_on_closed_pipe()
    sys.exit(main())

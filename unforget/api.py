"""The toolkit from Python, for notebooks: open a finished run, get a task's network for raw images, load a
benchmark's tasks, run a driver. The bash drivers stay the main road; this module reads what they write and
calls them, and reimplements neither (docs/python.md).

    from unforget import api
    run = api.open_run("checkpoints/CPG/split_digits/quickstart_mul_1.5_seed1/digits_convnet")
    run.tasks, run.accuracy_matrix, run.metrics       # what the run learned and how well
    model = run.network(1)                            # task 1, normalisation included
    task = api.load_benchmark("split_digits").task(1) # raw uint8 images, labels
    logits = model(task.test_images)

Tasks are numbered from 1 in learning order (as the network's `set_task` counts them) or named. Importing
this module imports no torch; a network or a task's tensors do. A missing piece raises `RunError` (one line
naming what is missing and where); an unreadable checkpoint raises `CheckpointError`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unforget.utils.data.registry import DataError, get_benchmark
from unforget.utils.exit_codes import ExitCode

if TYPE_CHECKING:
    from unforget.ready import RawImageNetwork
    from unforget.utils.data.tasks import TaskData

CHECKPOINT_FOLDERS = ("gradual_prune", "model", ".")
"""Where a task's final checkpoint is under <run>/<task>/: CPG and PackNet, Piggyback, the rest (the report's
layouts, utils/methods/__init__.py); a run with one checkpoint for every task keeps it in <run>/model."""


class RunError(Exception):
    """A run folder that lacks what was asked of it (the message names the file and the folder)."""


def __getattr__(name: str) -> Any:
    """`api.CheckpointError` without importing torch before it is needed."""
    if name == "CheckpointError":
        from unforget.utils.checkpoint import CheckpointError

        return CheckpointError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent} has no {path.name} ({what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"cannot read {path} ({what}): {error}") from None
    if not isinstance(value, dict):
        raise RunError(f"{path} ({what}) is not a JSON object")
    return value


@dataclass(frozen=True)
class TaskInfo:
    """One task of a run as its checkpoints record it (None: not recorded, e.g. a format-1 checkpoint)."""

    name: str
    classes: tuple[str, ...] | None
    image_shape: tuple[int, ...] | None
    """[C, H, W] of the raw images the network reads"""
    train: int | None
    """training images (the validation images among them)"""
    validation: int | None
    """training images held out to choose on (None: the method chose on none, or it was not recorded)"""
    test: int | None
    mean: tuple[float, ...] | None
    """per-channel normalisation on the [0, 1] scale: the network reads (image / 255 - mean) / std"""
    std: tuple[float, ...] | None


@dataclass(frozen=True)
class StageTime:
    """One finished stage of the run: its folder under the run (its task, or "." for the run's own), its
    name as the driver's marker calls it, wall seconds and CPU seconds (None: not recorded)."""

    folder: str
    stage: str
    seconds: float | None
    cpu_seconds: float | None


class Run:
    """A finished run folder of any method, read from the files its driver and report wrote."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise RunError(f"run folder {self.folder} does not exist")

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r})"

    @cached_property
    def card(self) -> dict:
        """run.json: method, benchmark, seed, command and settings ({} for a run that wrote no card)."""
        path = self.folder / "run.json"
        return _read_json(path, "the run card") if path.is_file() else {}

    @cached_property
    def settings(self) -> dict[str, str]:
        """The settings the driver recorded (run.json's, else run_settings.json's), by name."""
        if isinstance(self.card.get("settings"), dict) and self.card["settings"]:
            return dict(self.card["settings"])
        path = self.folder / "run_settings.json"
        if not path.is_file():
            raise RunError(f"{self.folder} has neither run.json nor run_settings.json: not a driver's run folder")
        return dict(_read_json(path, "the run's settings").get("settings") or {})

    @property
    def method(self) -> str | None:
        return self.card.get("method") or self.settings.get("METHOD")

    @property
    def benchmark(self) -> str | None:
        return self.card.get("benchmark") or self.settings.get("BENCHMARK") or self._first_meta().get("benchmark")

    @property
    def data_root(self) -> Path:
        """The data root the run's stages read (a checkpoint's settings; "data" when none records it)."""
        return Path((self._first_meta().get("settings") or {}).get("data_root") or "data")

    @cached_property
    def report(self) -> dict:
        """The report's record: summary.json when it holds the accuracy matrix (CPG, PackNet), else metrics.json
        (every other layout), else summary.json (single-task runs: subspaces)."""
        summary, metrics = self.folder / "summary.json", self.folder / "metrics.json"
        if summary.is_file():
            record = _read_json(summary, "the run's summary")
            if "accuracy_matrix" in record or not metrics.is_file():
                return record
        if metrics.is_file():
            return _read_json(metrics, "the report's metrics")
        raise RunError(f"{self.folder} has neither summary.json nor metrics.json: the run did not finish its report "
                       "(python -m tools.report writes them)")

    @cached_property
    def task_names(self) -> list[str]:
        """The tasks in learning order."""
        record = self.report if self._has_report() else {}
        if isinstance(record.get("task_names"), list):
            return list(record["task_names"])
        summary = self._summary()
        if isinstance(summary.get("tasks"), list):
            return [row["task"] for row in summary["tasks"]]
        if isinstance(summary.get("task"), str):
            return [summary["task"]]
        names = [spec["name"] for spec in self._first_meta().get("tasks", [])]
        if not names:
            raise RunError(f"{self.folder} names no tasks: no report and no checkpoint's meta.json")
        return names

    @cached_property
    def tasks(self) -> list[TaskInfo]:
        """Each task's classes, image shape, image counts and normalisation, as the checkpoints record them."""
        records: dict[str, dict] = {}
        for meta in self._metas():
            records = {**(meta.get("task_data") or {}), **records}  # the latest checkpoint's first
        infos = []
        for name in self.task_names:
            record = records.get(name, {})
            infos.append(TaskInfo(name, _tuple(record.get("classes")), _tuple(record.get("image_shape")),
                                  record.get("train"), record.get("validation"), record.get("test"),
                                  _tuple(record.get("mean")), _tuple(record.get("std"))))
        return infos

    @property
    def accuracy_matrix(self) -> np.ndarray:
        """R[i, j]: task i's test accuracy with the network after task j (NaN above the diagonal)."""
        matrix = self.report.get("accuracy_matrix")
        if not isinstance(matrix, list):
            raise RunError(f"{self.folder}'s report holds no accuracy matrix (it holds "
                           f"{', '.join(sorted(self.report)) or 'nothing'})")
        return np.array([[np.nan if value is None else value for value in row] for row in matrix], dtype=float)

    @property
    def accuracy_learned(self) -> np.ndarray:
        """Each task's test accuracy right after it was learned (the matrix's diagonal)."""
        return np.diag(self.accuracy_matrix).copy()

    @property
    def accuracy_final(self) -> np.ndarray:
        """Each task's test accuracy after the last task (the matrix's last column)."""
        return self.accuracy_matrix[:, -1].copy()

    @property
    def metrics(self) -> dict[str, float | None]:
        """ACC, BWT, forgetting (and FWT) as the report computed them (utils/metrics.py); None: too few tasks."""
        metrics = self.report.get("metrics")
        if not isinstance(metrics, dict):
            raise RunError(f"{self.folder}'s report holds no metrics")
        return dict(metrics)

    @property
    def summary(self) -> list[dict]:
        """The per-task rows of summary.json (CPG: accuracies, sparsity, width, owned share; SupSup: accuracies);
        a single-task run's summary.json as one row."""
        summary = self._summary()
        if isinstance(summary.get("tasks"), list):
            return list(summary["tasks"])
        if isinstance(summary.get("task"), str):
            return [summary]
        raise RunError(f"{self.folder / 'summary.json'} has no per-task rows")

    @property
    def stages(self) -> list[StageTime]:
        """Every finished stage with its wall and CPU seconds (.stages/<stage>.seconds and .cpu)."""
        found = []
        for marker in sorted(self.folder.rglob(".stages/*.seconds")):
            stage = marker.name.removesuffix(".seconds")
            folder = marker.parent.parent.relative_to(self.folder).as_posix()
            found.append(StageTime(folder, stage, _number(marker), _number(marker.with_name(f"{stage}.cpu"))))
        if not found:
            raise RunError(f"{self.folder} has no stage markers (.stages/*.seconds)")
        return found

    def checkpoint(self, task: int | str) -> Path:
        """The folder of the task's final checkpoint: the run's last checkpoint that holds the task (for a
        sequential finetune baseline, whose later checkpoints answer every task with the latest head, the one
        saved right after learning it)."""
        name = self._name(task)
        candidates = [self.folder / "model"] + [self.folder / later / where for later in reversed(self.task_names)
                                                for where in CHECKPOINT_FOLDERS]
        for folder in candidates:
            if (folder / "checkpoint.pth").is_file() and name in _held_tasks(folder):
                return folder
        holding = sorted(path.parent for path in self.folder.rglob("checkpoint.pth")
                         if name in _held_tasks(path.parent))
        if len(holding) == 1:
            return holding[0]
        if not holding:
            raise RunError(f"no checkpoint under {self.folder} holds task {name!r}")
        raise RunError(f"{len(holding)} checkpoints under {self.folder} hold task {name!r} (e.g. {holding[0]}): "
                       "pick one with api.load_network(folder, task)")

    def network(self, task: int | str, alpha: float | None = None) -> RawImageNetwork:
        """Task `task`'s network from its final checkpoint, for raw images (see `load_network`); a checkpoint
        saved before format 2 takes the normalisation from the run's data."""
        folder = self.checkpoint(task)
        info = self.tasks[self.task_names.index(self._name(task))]
        normalisation = (info.mean, info.std) if info.mean and info.std else None
        if normalisation is None:
            found = load_benchmark(self.benchmark or "", self.data_root).task(info.name)
            normalisation = (found.mean, found.std)
        from unforget import ready

        return ready.load(folder, info.name, alpha, normalisation)

    def _name(self, task: int | str) -> str:
        names = self.task_names
        if isinstance(task, int) and not isinstance(task, bool):
            if not 1 <= task <= len(names):
                raise RunError(f"task {task} is not one of the run's {len(names)} tasks (1 to {len(names)})")
            return names[task - 1]
        if task not in names:
            raise RunError(f"the run learned no task {task!r}; it learned {', '.join(names)}")
        return task

    def _has_report(self) -> bool:
        return (self.folder / "summary.json").is_file() or (self.folder / "metrics.json").is_file()

    def _summary(self) -> dict:
        path = self.folder / "summary.json"
        return _read_json(path, "the run's summary") if path.is_file() else {}

    def _metas(self) -> list[dict]:
        """The meta.json of every checkpoint in the run, oldest first."""
        paths = sorted(self.folder.rglob("meta.json"), key=lambda path: path.stat().st_mtime)
        return [_read_json(path, "a checkpoint's meta") for path in paths]

    def _first_meta(self) -> dict:
        metas = self._metas()
        return metas[0] if metas else {}


def open_run(folder: str | Path) -> Run:
    """A finished run folder (the <run root> a driver names at its end, the one holding run.json)."""
    return Run(folder)


def load_network(folder: str | Path, task: int | str | None = None, alpha: float | None = None) -> RawImageNetwork:
    """The network of the checkpoint in `folder` (holding checkpoint.pth; meta.json is not needed) for `task`
    (1-based index, e.g. a SupSup mask by index, or name; default the latest), in eval mode: `model(images)` on
    raw images in the benchmark's layout ([N, C, H, W] uint8) gives the task's logits, normalisation included.
    `alpha` puts a subspace network at that point of its line, curve or simplex edge (default: its centre; its
    batch-norm statistics are the stored ones unless `model.recalibrate(train_images)`)."""
    from unforget import ready

    return ready.load(Path(folder), task, alpha)


@dataclass(frozen=True)
class BenchmarkData:
    """A benchmark's tasks from its data root (see `load_benchmark`)."""

    name: str
    task_names: tuple[str, ...]
    data_root: Path
    val_fraction: float
    """the share of each task's training images the CPG family holds out to choose on by default"""

    def task(self, task: int | str) -> TaskData:
        """Task `task` (1-based or named): name, classes, train/test images (uint8 [N, C, H, W]) and labels
        (int64), mean and std."""
        name = task
        if isinstance(task, int) and not isinstance(task, bool):
            if not 1 <= task <= len(self.task_names):
                raise RunError(f"benchmark {self.name} has tasks 1 to {len(self.task_names)}, not {task}")
            name = self.task_names[task - 1]
        try:
            return get_benchmark(self.name).load_task(self.data_root, str(name))
        except DataError as error:
            raise RunError(str(error)) from None

    def split(self, task: int | str, split: str, val_fraction: float | None = None) -> tuple[Any, Any]:
        """(raw images, labels) of "train", "validation" or "test", the validation images held out of the training
        images as the stages hold them out (`val_fraction`, default the benchmark's; 0: train is every
        training image and there is no validation split)."""
        data = self.task(task)
        if split == "test":
            return data.test_images, data.test_labels
        fraction = self.val_fraction if val_fraction is None else val_fraction
        if split not in ("train", "validation"):
            raise ValueError(f"split must be train, validation or test, not {split!r}")
        if not fraction:
            if split == "validation":
                raise RunError("val_fraction 0 holds out no validation images")
            return data.train_images, data.train_labels
        from unforget.utils.data.tasks import hold_out

        held = hold_out(data, fraction)  # its train images are the kept ones, its test images the held-out ones
        return (held.train_images, held.train_labels) if split == "train" else (held.test_images, held.test_labels)


def load_benchmark(name_or_spec: str | Path, data_root: str | Path = "data") -> BenchmarkData:
    """A built-in benchmark by name or one a spec file describes (*.json), reading (or caching) its data under
    `data_root` (the embedded split_digits needs no files there)."""
    try:
        found = get_benchmark(str(name_or_spec))
    except DataError as error:
        raise RunError(str(error)) from None
    return BenchmarkData(str(name_or_spec), found.task_names, Path(data_root), found.val_fraction)


@dataclass(frozen=True)
class DriverResult:
    """What a driver ended with: its exit code, that code's name, and the run folders it finished."""

    code: int
    state: str
    runs: list[Path]
    output: str | None = None
    """its stdout and stderr when run with `capture=True`"""


def exit_state(code: int) -> str:
    """The name of a driver's exit code (utils/exit_codes.py; 128 + n: stopped by signal n)."""
    try:
        return ExitCode(code).name
    except ValueError:
        pass
    if code > 128:
        try:
            return f"INTERRUPTED_{signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return "FAILED"


def repository() -> Path:
    """The checkout that holds the drivers: $UNFORGET_REPO, else the one this package was installed from
    (an editable install); a non-editable install has none."""
    root = Path(os.environ.get("UNFORGET_REPO") or Path(__file__).resolve().parents[1])
    if not (root / "scripts" / "lib.sh").is_file():
        raise RunError(f"no drivers under {root}/scripts: the drivers need the repository's checkout (install it "
                       "with pip install -e, or set UNFORGET_REPO to the checkout)")
    return root


def run_driver(script: str, *args: str, env: dict[str, str] | None = None, capture: bool = False) -> DriverResult:
    """Run `bash scripts/<script> args...` from the repository's root, as one would in a shell (the driver does
    everything; `env` adds environment variables such as EPOCHS or CKPT_ROOT), and return its exit state and
    the run folders it finished (which drivers append to $RUN_ROOTS_FILE). The driver's Python is this one unless
    PYTHON is set. Its output goes to this process's stdout and stderr, or with `capture` into the result."""
    root = repository()
    path = Path(script if script.endswith(".sh") else f"{script}.sh")
    path = path if path.parent != Path(".") else Path("scripts") / path
    if not (root / path).is_file():
        raise RunError(f"no driver {path} in {root}")
    with tempfile.TemporaryDirectory(prefix="unforget-runs-") as work:
        roots_file = Path(work) / "run_roots"
        roots_file.touch()
        environment = {"PYTHON": sys.executable, **os.environ, **(env or {}), "RUN_ROOTS_FILE": str(roots_file)}
        done = subprocess.run(["bash", str(path), *map(str, args)], cwd=root, env=environment, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.STDOUT if capture else None)
        lines = dict.fromkeys(line for line in roots_file.read_text().splitlines() if line)
    runs = [Path(line) if Path(line).is_absolute() else root / line for line in lines]
    return DriverResult(done.returncode, exit_state(done.returncode), runs, done.stdout if capture else None)


def _held_tasks(folder: Path) -> list[str]:
    """The task names a checkpoint holds: from its meta.json, else from the checkpoint itself."""
    meta = folder / "meta.json"
    if meta.is_file():
        return [spec["name"] for spec in _read_json(meta, "a checkpoint's meta").get("tasks", [])]
    from unforget.utils.checkpoint import load_checkpoint

    return [spec.name for spec in load_checkpoint(folder)["tasks"]]


def _tuple(value: Any) -> tuple | None:
    return tuple(value) if isinstance(value, list) else None


def _number(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None

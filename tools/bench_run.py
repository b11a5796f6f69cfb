"""Whole-run cost: a full driver against a bare in-process loop doing the same epochs, evaluations and saves.

For each method (CPG and PackNet through scripts/cpg.sh on split_digits, SupSup GG through scripts/supsup_gg.sh
on permuted_digits) it runs the driver in a temporary CKPT_ROOT on one thread and takes its CPU time (user + sys
of the whole process tree, the warm-start server's children included, from wait4's resource usage). A bare
loop reads a driver run's records (each stage's command line in `.stages/<stage>.args`, its epochs from
train.log) and does the same work with the same network and data: per stage, the epochs that ran (pruning
steps in prune stages), the evaluations a decision needs (the stage's accuracy, every epoch where the stage
evaluated each epoch, and the test accuracy where choices are made on a validation split) and one checkpoint
saved; at the end each task evaluated once more, for the results. It runs as a program of its own, whose CPU
time (interpreter start and torch's import included, once, as any PyTorch script pays them) is the bare
figure; the loop's alone is printed beside it. The network is built once at the run's final width and each
task is added to it, so a run that grew pays the wider network's epochs from the start in the bare loop (its
ratio errs low).

A shared machine's speed drifts by a fifth within minutes, more than the overhead being measured, so on the
CPU the two run side by side (`--pairing paired`, one thread each on two cores): a first driver run, not
measured, gives the records, and each repeat runs the driver and a bare loop replaying those records at the
same time, so that both meet the same machine; a repeat whose run did other work than the first is an error.
`--calibrate` runs two bare loops side by side instead, whose ratio shows what the pairing leaves of the
noise. `--pairing sequential` (the default on a GPU, which two programs would share) runs the bare loop after
each driver run, on that run's records.

It prints, per method, the medians over --repeats of the two CPU times and their ratio, and where the driver's
extra goes per stage kind (from `.stages/*.cpu`, `*.seconds` and train.log's `seconds=`, `setup_seconds=` and
`eval_seconds=`): set-up before the first epoch (process start, imports, data, checkpoint load), the epochs,
what follows them (final evaluation, checkpoint save, records), the decision tools, and the rest of the driver
(its shell, the warm server's imports, the report).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if not __package__:  # run as `python tools/bench_run.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.cli import UsageParser

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
DRIVERS = {
    "cpg": ("cpg.sh", "split_digits", "CPG"),
    "packnet": ("cpg.sh", "split_digits", "PackNet"),
    "supsup_gg": ("supsup_gg.sh", "permuted_digits", "SupSup"),
}
QUICKSTART = {"BATCH_SIZE": "16", "FINETUNE_EPOCHS": "15", "PRUNE_EPOCHS": "4", "RETRAIN_EPOCHS": "5",
              "PRUNING_INTERVAL": "2", "PRUNING_FREQUENCY": "3"}
"""The quickstart's settings (scripts/quickstart.sh), the CPG and PackNet runs' default."""
SUPSUP = {"NUM_TASKS": "5", "EPOCHS": "5", "ARCH": "lenet_300_100", "BATCH_SIZE": "128"}
STAGE_MODES = {"finetune": "finetune", "prune": "prune", "retrain": "retrain"}
DECISION_TOOLS = ("choose_pruning_ratio", "choose_retrain")


@dataclass
class StageRun:
    """One trained stage as the driver ran it: its command line and what its train.log lines say."""

    kind: str
    argv: list[str]
    epochs: int = 0
    evaluated_epochs: int = 0
    epoch_seconds: float = 0.0
    setup_seconds: float = 0.0
    eval_seconds: float = 0.0
    seconds: float = 0.0
    cpu: float = 0.0


@dataclass
class RunRecord:
    """A finished driver run: its trained stages in order, and the decision tools' seconds."""

    tasks: list[str] = field(default_factory=list)
    stages: dict[str, list[StageRun]] = field(default_factory=dict)
    tools: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))


def _stage_argv(marker: Path) -> list[str]:
    """A marker's recorded command line from main_normal.py's first flag on."""
    words = marker.with_name(marker.name + ".args").read_bytes().split(b"\0")[:-1]
    text = [word.decode() for word in words]
    start = next(i for i, word in enumerate(text) if word == "ranked_main" or word.endswith("main_normal.py"))
    return text[start + 1:]


def _log_stages(log: Path) -> list[list[dict[str, str]]]:
    """train.log's trained stages in order: each a list of its epoch lines' fields (a decision line ends one)."""
    groups: list[list[dict[str, str]]] = []
    current: list[dict[str, str]] = []
    for line in log.read_text().splitlines():
        fields = dict(FIELD.findall(line))
        stage = fields.get("stage", "")
        if stage not in ("finetune", "prune", "retrain", "supsup_finetune"):
            continue
        if "epoch" in fields:
            current.append(fields)
        elif "exit" in fields:
            groups.append(current)
            current = []
    return groups


def read_run(root: Path) -> RunRecord:
    """The trained stages of every task folder under `root`, in the order they ran (markers by time)."""
    record = RunRecord()
    folders = sorted((path.parent.parent for path in root.glob("*/.stages/*.seconds")),
                     key=lambda folder: min(p.stat().st_mtime_ns for p in (folder / ".stages").glob("*.seconds")))
    for folder in dict.fromkeys(folders):
        record.tasks.append(folder.name)
        markers = sorted((folder / ".stages").glob("*.seconds"), key=lambda p: p.stat().st_mtime_ns)
        runs = []
        for timing in markers:
            marker = timing.with_suffix("")
            name = marker.name.split("_")[0]
            seconds, cpu = float(timing.read_text()), float(timing.with_suffix(".cpu").read_text())
            if marker.name in DECISION_TOOLS:
                record.tools[marker.name].append((seconds, cpu))
            elif name in STAGE_MODES:
                runs.append(StageRun(STAGE_MODES[name], _stage_argv(marker), seconds=seconds, cpu=cpu))
        groups = _log_stages(folder / "train.log")
        if len(groups) != len(runs):
            raise SystemExit(f"bench_run: {folder} has {len(runs)} stage markers but {len(groups)} stages in its log")
        for run, lines in zip(runs, groups, strict=True):
            run.epochs = len(lines)
            run.evaluated_epochs = sum("eval_seconds" in line for line in lines)
            run.epoch_seconds = sum(float(line["seconds"]) for line in lines)
            run.eval_seconds = sum(float(line.get("eval_seconds", 0)) for line in lines)
            run.setup_seconds = float(lines[0]["setup_seconds"]) if lines else run.seconds
        record.stages[folder.name] = runs
    return record


@dataclass
class Started:
    """A program started by the benchmark; `finish` waits for it and takes its own resource usage."""

    what: str
    process: subprocess.Popen
    stdout: Any
    stderr: Any
    started: float


def start(what: str, args: list[str], env: dict[str, str]) -> Started:
    """Start `args` in the repository with its output kept in files (two programs at once never block on a pipe)."""
    stdout, stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=stdout, stderr=stderr, text=True)
    return Started(what, process, stdout, stderr, time.perf_counter())


def finish(program: Started) -> tuple[float, float, str]:
    """Wait for `program`: its CPU seconds (its waited-for descendants' included), wall seconds and output."""
    _, status, usage = os.wait4(program.process.pid, 0)
    wall = time.perf_counter() - program.started
    program.process.returncode = os.waitstatus_to_exitcode(status)
    outputs = []
    for stream in (program.stdout, program.stderr):
        stream.seek(0)
        outputs.append(stream.read())
        stream.close()
    if program.process.returncode != 0:
        raise SystemExit(f"bench_run: {program.what} exited {program.process.returncode}:\n{outputs[1][-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall, outputs[0]


def start_driver(method: str, ckpt: Path, data_root: Path, env_overrides: dict[str, str],
                 device: str = "cpu") -> Started:
    """The driver of `method` writing its run under `ckpt` (emptied first)."""
    script, benchmark, _ = DRIVERS[method]
    shutil.rmtree(ckpt, ignore_errors=True)
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), "DEVICE": device, "OMP_NUM_THREADS": "1",
           "CKPT_ROOT": str(ckpt), "DATA_ROOT": str(data_root), **env_overrides}
    if method == "supsup_gg":
        env = {**SUPSUP, **env, "BENCHMARK": benchmark}
        args = ["bash", f"scripts/{script}"]
    else:
        env = {**QUICKSTART, **env, "METHOD": method}
        args = ["bash", f"scripts/{script}", benchmark, str(data_root), "bench", env.get("MAX_WIDTH", "1.5")]
    return start(f"{script} ({method})", args, env)


def run_folder(method: str, ckpt: Path) -> Path:
    """The one run folder a driver wrote under `ckpt`."""
    folder = ckpt / DRIVERS[method][2]
    roots = [path.parent for path in folder.rglob("run_settings.json")]
    if len(roots) != 1:
        raise SystemExit(f"bench_run: expected one run folder under {folder}, found {len(roots)}")
    return roots[0]


def run_driver(method: str, ckpt: Path, data_root: Path, env_overrides: dict[str, str],
               device: str = "cpu") -> tuple[float, float, Path]:
    """The driver's CPU seconds (its whole waited-for tree), its wall seconds and its run folder."""
    cpu, wall, _ = finish(start_driver(method, ckpt, data_root, env_overrides, device))
    return cpu, wall, run_folder(method, ckpt)


def _saved(network, folder: Path, count: list[int]) -> None:
    import torch

    count[0] += 1
    torch.save({key: value.detach().cpu() for key, value in network.state_dict().items()}, folder / f"{count[0]}.pth")


def bare_ownership(record: RunRecord, data_root: Path, scratch: Path, device: torch.device) -> float:
    """CPU seconds of CPG's or PackNet's stages as one bare loop (see the module's docstring)."""
    from unforget.models import build_network, input_options
    from unforget.models.layers.cpg import cpg_layers
    from unforget.utils.data.registry import get_benchmark
    from unforget.utils.data.tasks import hold_out
    from unforget.utils.engine import evaluate
    from unforget.utils.entry import parse_settings
    from unforget.utils.methods.cpg.pruner import GradualPruner
    from unforget.utils.methods.cpg.settings import CPGSettings
    from unforget.utils.methods.cpg.stages import _optimizers, _train_loop

    def settings_of(argv: list[str]) -> CPGSettings:
        settings = parse_settings(argv)
        if not isinstance(settings, CPGSettings):
            raise SystemExit(f"bench_run: a stage of {settings.method}, not of CPG or PackNet")
        return settings

    first = settings_of(record.stages[record.tasks[0]][0].argv)
    benchmark, speed, arch = get_benchmark(first.benchmark), first.speed, first.needed(first.arch, "arch")
    width = max(settings_of(run.argv).width() for runs in record.stages.values() for run in runs)
    started = time.process_time()
    image_shape = benchmark.load_task(data_root, record.tasks[0]).image_shape
    network = build_network(arch, width, mode=first.LAYER_MODE, **input_options(arch, image_shape)).to(device)
    tests, saves = [], [0]
    for task_name in record.tasks:
        task_data = benchmark.load_task(data_root, task_name)
        task = network.add_task(task_name, task_data.num_classes)
        network.to(device)
        network.set_task(task)
        test = task_data.on_device(device, benchmark.crop_padding, benchmark.flip, speed.resident_data)
        fraction = first.val_fraction
        data = hold_out(task_data, fraction).on_device(device, benchmark.crop_padding, benchmark.flip,
                                                       speed.resident_data) if fraction else test
        tests.append((task, test))
        for run in record.stages[task_name]:
            settings = settings_of(run.argv)
            stage: Any = SimpleNamespace(network=network, task=task, settings=settings, device=device)
            sgd, adam = _optimizers(stage, settings.lr, settings.lr_mask)
            after_step = None
            if run.kind == "prune" and run.epochs:
                pruner = GradualPruner(cpg_layers(network), task, settings.initial_sparsity, settings.target_sparsity,
                                       settings.pruning_frequency, 0,
                                       settings.pruning_interval * data.steps_per_epoch(settings.batch_size),
                                       sgd.momentum_buffers.get, on_device=speed.device_pruning)
                after_step = pruner.step
            loop = _train_loop(stage, [sgd, adam], after_step=after_step)
            generator = data.generator(settings.seed)
            if run.kind == "retrain":
                evaluate(network, data, settings.val_batch_size, speed)
            for _ in range(run.epochs):
                loop.epoch(data, settings.batch_size, generator)
                if run.evaluated_epochs:
                    evaluate(network, data, settings.val_batch_size, speed)
            if run.kind == "prune" and run.epochs:
                pruner.finish()
            if run.epochs and not run.evaluated_epochs:
                evaluate(network, data, settings.val_batch_size, speed)
            if run.epochs:
                if data is not test:
                    evaluate(network, test, settings.val_batch_size, speed)
                _saved(network, scratch, saves)
    for task, test in tests:
        network.set_task(task)
        evaluate(network, test, first.val_batch_size, speed)
    return time.process_time() - started


def bare_supsup(record: RunRecord, data_root: Path, scratch: Path, device: torch.device) -> float:
    """CPU seconds of SupSup GG's tasks as one bare loop: each task's mask trained on its own network, stored,
    evaluated and saved, then every task evaluated once more."""
    from unforget.models import build_network
    from unforget.models.layers.supsup import set_density, store_masks
    from unforget.utils.data.registry import get_benchmark
    from unforget.utils.engine import TrainLoop, evaluate
    from unforget.utils.entry import parse_settings
    from unforget.utils.methods.supsup.settings import SupSupSettings
    from unforget.utils.methods.supsup.stages import _optimizer

    saves, finals = [0], []
    started = time.process_time()
    for task_name in record.tasks:
        (run,) = record.stages[task_name]
        settings = parse_settings(run.argv)
        if not isinstance(settings, SupSupSettings):
            raise SystemExit(f"bench_run: a stage of {settings.method}, not of SupSup")
        benchmark = get_benchmark(settings.benchmark)
        task_data = benchmark.load_task(data_root, task_name)
        outputs = settings.supsup_output_size or task_data.num_classes
        network = build_network(settings.needed(settings.arch, "arch"), 1.0, mode="supsup",
                                input_shape=task_data.image_shape, outputs=outputs)
        task = network.add_task(task_name, task_data.num_classes)
        set_density(network, settings.supsup_density if settings.supsup_masks == "topk" else None,
                    settings.supsup_er)
        network.to(device)
        data = task_data.on_device(device, benchmark.crop_padding, benchmark.flip)
        loop = TrainLoop(network, [_optimizer(settings, network.task_parameters(task))], device)
        generator = data.generator(settings.seed)
        for _ in range(run.epochs):
            loop.epoch(data, settings.batch_size, generator)
        store_masks(network)
        evaluate(network, data, settings.val_batch_size)
        _saved(network, scratch, saves)
        finals.append((network, data, settings.val_batch_size))
    for network, data, batch in finals:
        evaluate(network, data, batch)
    return time.process_time() - started


def breakdown(record: RunRecord, driver_cpu: float) -> dict[str, float]:
    """Seconds the driver spent per kind of work: epochs, and the overhead around them."""
    runs = [run for runs in record.stages.values() for run in runs]
    parts = {"epochs": sum(run.epoch_seconds - run.eval_seconds for run in runs),
             "per-epoch evaluation": sum(run.eval_seconds for run in runs)}
    for kind in sorted({run.kind for run in runs}):
        mine = [run for run in runs if run.kind == kind]
        parts[f"{kind}: set-up (start, imports, data, checkpoint load) x{len(mine)}"] = sum(
            run.setup_seconds for run in mine)
        parts[f"{kind}: after the epochs (evaluation, save, records) x{len(mine)}"] = sum(
            max(run.seconds - run.setup_seconds - run.epoch_seconds, 0.0) for run in mine)
    for tool, calls in record.tools.items():  # labels stay the same from run to run, so repeats take medians
        parts[f"{tool} x{len(calls)} CPU"] = sum(cpu for _, cpu in calls)
        parts[f"{tool} seconds a call"] = statistics.mean(seconds for seconds, _ in calls)
    stages_cpu = sum(run.cpu for run in runs) + sum(cpu for calls in record.tools.values() for _, cpu in calls)
    parts["driver outside its stages (shell, warm server, report) CPU"] = driver_cpu - stages_cpu
    return {key: round(value, 3) for key, value in parts.items()}


def start_bare(method: str, root: Path, data_root: Path, scratch: Path, device: str) -> Started:
    """The bare loop as a program of its own (interpreter start and torch's import included, once, as any
    PyTorch script pays them), replaying the driver run in `root`; its last output word is the loop's CPU."""
    return start(f"the bare loop ({method})",
                 [sys.executable, "-m", "tools.bench_run", "--bare", method, "--root", str(root),
                  "--data_root", str(data_root), "--work", str(scratch), "--device", device],
                 {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def bare_process(method: str, root: Path, data_root: Path, scratch: Path, device: str) -> tuple[float, float, float]:
    """The bare loop run alone: its CPU seconds, its wall seconds and the loop's own CPU seconds."""
    cpu, wall, output = finish(start_bare(method, root, data_root, scratch, device))
    return cpu, wall, float(output.split()[-1])


def run_bare(method: str, root: Path, data_root: Path, scratch: Path, device: str) -> float:
    """In the bare loop's own process: read the driver's run and do its work; the loop's CPU seconds."""
    import torch

    torch.set_num_threads(1)
    scratch.mkdir(parents=True, exist_ok=True)
    bare = bare_supsup if method == "supsup_gg" else bare_ownership
    try:
        return bare(read_run(root), data_root, scratch, torch.device(device))
    finally:
        shutil.rmtree(scratch)


def work_done(record: RunRecord, ckpt: Path) -> list[tuple]:
    """What a bare loop replays of a run: per task, each stage's kind, epochs, evaluated epochs and command line
    (its checkpoint root written as <ckpt>, so that runs under different roots compare)."""
    return [(task, run.kind, run.epochs, run.evaluated_epochs,
             [word.replace(str(ckpt), "<ckpt>") for word in run.argv])
            for task in record.tasks for run in record.stages[task]]


def _row(driver_cpu: float, driver_wall: float, bare_cpu: float, bare_wall: float, loop_cpu: float,
         record: RunRecord) -> dict:
    return {"driver_cpu": driver_cpu, "bare_cpu": bare_cpu, "loop_cpu": loop_cpu, "ratio": driver_cpu / bare_cpu,
            "driver_wall": driver_wall, "bare_wall": bare_wall, "wall_ratio": driver_wall / bare_wall,
            "stages": sum(len(runs) for runs in record.stages.values()), "breakdown": breakdown(record, driver_cpu)}


def measure_sequential(method: str, work: Path, data_root: Path, env_overrides: dict[str, str], device: str) -> dict:
    """One driver run, then a bare loop replaying it."""
    driver_cpu, driver_wall, root = run_driver(method, work / "ckpt", data_root, env_overrides, device)
    record = read_run(root)
    bare_cpu, bare_wall, loop_cpu = bare_process(method, root, data_root, work / "bare", device)
    return _row(driver_cpu, driver_wall, bare_cpu, bare_wall, loop_cpu, record)


@dataclass
class Pilot:
    """The first, unmeasured driver run whose records every paired bare loop replays."""

    root: Path
    work: list[tuple]


def pilot_run(method: str, work: Path, data_root: Path, env_overrides: dict[str, str], device: str) -> Pilot:
    ckpt = work / "pilot"
    _, _, root = run_driver(method, ckpt, data_root, env_overrides, device)
    return Pilot(root, work_done(read_run(root), ckpt))


def measure_paired(method: str, work: Path, data_root: Path, env_overrides: dict[str, str], device: str,
                   pilot: Pilot) -> dict:
    """A driver run and, at the same time, a bare loop replaying the pilot's records."""
    bare = start_bare(method, pilot.root, data_root, work / "bare", device)
    try:
        driver_cpu, driver_wall, _ = finish(start_driver(method, work / "ckpt", data_root, env_overrides, device))
    except SystemExit:  # the driver failed: stop the loop beside it before saying so
        bare.process.kill()
        bare.process.wait()
        raise
    bare_cpu, bare_wall, output = finish(bare)
    record = read_run(run_folder(method, work / "ckpt"))
    if work_done(record, work / "ckpt") != pilot.work:
        raise SystemExit(f"bench_run: a {method} run did other work than the first one, so the bare loop beside it "
                         "replayed other stages; measure it with --pairing sequential")
    return _row(driver_cpu, driver_wall, bare_cpu, bare_wall, float(output.split()[-1]), record)


def calibrate(method: str, work: Path, data_root: Path, device: str, pilot: Pilot) -> float:
    """The CPU ratio of two bare loops replaying the same records side by side: the pairing's own noise."""
    first = start_bare(method, pilot.root, data_root, work / "bare_a", device)
    second = start_bare(method, pilot.root, data_root, work / "bare_b", device)
    return finish(first)[0] / finish(second)[0]


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", action="append", choices=sorted(DRIVERS), default=None,
                        help="a driver to measure, repeatable (default: all three)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per method (medians are reported)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a driver setting (e.g. NUM_TASKS=2, PRUNE_EPOCHS=2), repeatable")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (the bare loop on the same device)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--pairing", choices=("paired", "sequential"), default=None,
                        help="paired: the driver and the bare loop side by side, the loop replaying a first, "
                             "unmeasured run (the default on the CPU); sequential: the loop after each run "
                             "(the default on a GPU)")
    parser.add_argument("--calibrate", action="store_true",
                        help="instead, two bare loops side by side: their ratio is what pairing leaves of the noise")
    parser.add_argument("--bare", choices=sorted(DRIVERS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data_root", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:  # the bare loop's own process (bare_process)
        print(f"{run_bare(args.bare, args.root, args.data_root, args.work, args.device):.3f}")
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    pairing = args.pairing or ("sequential" if args.device.startswith("cuda") else "paired")
    if args.calibrate and pairing != "paired":
        parser.error("--calibrate measures the paired bench; it takes no --pairing sequential")
    overrides = {}
    for text in args.set:
        name, equals, value = text.partition("=")
        if not equals or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            parser.error(f"--set takes NAME=VALUE with an upper-case setting name, got '{text}'")
        overrides[name] = value
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from unforget.utils.data.registry import get_benchmark

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-run-"))
    data_root = work / "data"
    methods = args.method or ["cpg", "packnet", "supsup_gg"]
    for method in methods:  # decoded once, before any timing: every run reads the same cache
        benchmark = get_benchmark(DRIVERS[method][1])
        for name in benchmark.task_names:
            benchmark.load_task(data_root, name)
    print(f"one thread, {args.repeats} run(s) per method, {pairing}, CPU seconds (user + sys), medians")
    for method in methods:
        folder = work / method
        pilot = pilot_run(method, folder, data_root, overrides, args.device) if pairing == "paired" else None
        if args.calibrate and pilot:
            pairs = [calibrate(method, folder, data_root, args.device, pilot) for _ in range(args.repeats)]
            print(f"{method} a/a: ratio={statistics.median(pairs):.3f} "
                  f"ratios={','.join(f'{pair:.3f}' for pair in pairs)}")
            continue
        rows = [measure_paired(method, folder, data_root, overrides, args.device, pilot) if pilot else
                measure_sequential(method, folder, data_root, overrides, args.device) for _ in range(args.repeats)]
        driver = statistics.median(row["driver_cpu"] for row in rows)
        bare = statistics.median(row["bare_cpu"] for row in rows)
        ratio = statistics.median(row["ratio"] for row in rows)
        wall = statistics.median(row["wall_ratio"] for row in rows)
        ratios = ",".join(f"{row['ratio']:.3f}" for row in rows)
        loop = statistics.median(row["loop_cpu"] for row in rows)
        print(f"{method}: driver_cpu={driver:.2f} bare_cpu={bare:.2f} ratio={ratio:.3f} stages={rows[0]['stages']} "
              f"ratios={ratios} wall_ratio={wall:.3f} bare_loop_alone_cpu={loop:.2f}")
        for key in rows[0]["breakdown"]:
            value = statistics.median(row["breakdown"][key] for row in rows)
            print(f"  {key}: {value:.2f}")
    if args.work is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())

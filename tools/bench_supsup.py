"""Time SupSup at scale: a stage against the number of stored masks, one-shot task inference against the
number of tasks, and the GNu driver against the same stages called in one process.

stage: for each k, a checkpoint holding k stored masks (random bits, so no k tasks need training) is
loaded by one finetune stage that learns one more task and saves; the stage runs in a fresh process
(interpreter and torch start-up included) and forked from a warm-start server (`utils/warm_start.py`,
the stage alone). Its cost should not depend on k. inference: per-image one-shot task inference over
k stored masks, in this process; its cost should grow linearly with k. driver: a
`scripts/supsup_gnu_permuted_mnist.sh` run against its own main_normal.py stages replayed in one
process (their argument lists recorded by a first, untimed run of the driver), and with FAST_START=0. Writes JSON and
prints tables; run it with OMP_NUM_THREADS=1 for one-thread figures.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as `python tools/bench_supsup.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.tools.bench import device_name, stage_server
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.cli import UsageParser
from unforget.utils.data.registry import get_benchmark
from unforget.utils.warm_client import CPU_VAR

REPO = Path(__file__).resolve().parents[1]
GNU_FLAGS = ["--supsup_masks", "threshold", "--supsup_optimizer", "rmsprop", "--supsup_weight_decay", "0",
             "--supsup_schedule", "constant", "--lr", "1e-4", "--batch_size", "128"]
RECORDER = """import json, os, sys
if sys.argv[1:2] == ["main_normal.py"]:
    with open(os.environ["SUPSUP_BENCH_RECORD"], "a") as file:
        file.write(json.dumps(sys.argv[2:]) + "\\n")
os.execv(os.environ["SUPSUP_BENCH_PYTHON"], [os.environ["SUPSUP_BENCH_PYTHON"], *sys.argv[1:]])
"""


def stored_checkpoint(folder: Path, data_root: Path, count: int, benchmark: str, arch: str, outputs: int) -> None:
    """A SupSup checkpoint of `arch` holding `count` stored tasks with random mask bits."""
    import torch

    from unforget.models import build_network
    from unforget.models.layers.base import TaskSpec
    from unforget.models.layers.supsup import supsup_layers
    from unforget.utils.checkpoint import save_checkpoint
    from unforget.utils.entry import parse_settings

    data = get_benchmark(benchmark).load_task(data_root, get_benchmark(benchmark).task_names[0])
    settings = parse_settings(["--method", "supsup", "--mode", "finetune", "--benchmark", benchmark, "--arch", arch,
                               "--dataset", data.name, "--data_root", str(data_root), "--save_folder", str(folder),
                               *GNU_FLAGS])
    specs = [TaskSpec(f"stored_{index:05d}", data.num_classes, 1.0) for index in range(count)]
    network = build_network(arch, 1.0, specs, "supsup", input_shape=data.image_shape, outputs=outputs)
    generator = torch.Generator().manual_seed(count)
    for layer in supsup_layers(network):
        layer.stack.copy_(torch.randint(0, 256, layer.stack.shape, dtype=torch.uint8, generator=generator))
    save_checkpoint(folder, network, arch, settings, {
        "input_shape": list(data.image_shape), "outputs": outputs,
        "accuracy_after_learning": {spec.name: 0.0 for spec in specs}})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stage_seconds(argv: list[str], env: dict[str, str], cpu_file: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one stage: the process's own CPU, and a warm child's (which the server reaps, so
    it reaches this process only through the file it writes where CPG_STAGE_CPU names, as for the drivers)."""
    cpu_file.unlink(missing_ok=True)
    cpu_before, started = _children_cpu(), time.perf_counter()
    result = subprocess.run([sys.executable, "main_normal.py", *argv], capture_output=True, text=True, cwd=REPO,
                            env={**env, CPU_VAR: str(cpu_file)})
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if result.returncode != 0:
        raise SystemExit(f"bench_supsup: stage {' '.join(argv)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    if cpu_file.exists():  # a warm child: its own CPU time, beside its client's
        cpu += float(cpu_file.read_text())
    return seconds, cpu


def stage_costs(counts: list[int], work: Path, benchmark: str, arch: str, outputs: int, epochs: int,
                repeats: int) -> list[dict]:
    """Median wall seconds of one finetune stage on top of k stored masks, cold and warm, per k."""
    task = get_benchmark(benchmark).task_names[0]
    rows = []
    for count in counts:
        stored = work / f"stored_{count}"
        stored_checkpoint(stored, work / "data", count, benchmark, arch, outputs)
        argv = ["--method", "supsup", "--mode", "finetune", "--benchmark", benchmark, "--arch", arch,
                "--data_root", str(work / "data"), "--dataset", task, "--load_folder", str(stored),
                "--supsup_output_size", str(outputs), "--epochs", str(epochs), "--device", "cpu", *GNU_FLAGS]
        row = {"stored_masks": count, "checkpoint_mib": round((stored / "checkpoint.pth").stat().st_size / 2**20, 2)}
        for start in ("cold", "warm"):
            server = work / f"server_{count}"  # a fresh socket path: a stale one would fail the bind
            server.mkdir(exist_ok=True)
            with stage_server(start == "warm", server, "supsup") as env:
                times, cpus = [], []
                for repeat in range(repeats):
                    out = work / f"out_{count}_{start}_{repeat}"
                    seconds, cpu = _stage_seconds([*argv, "--save_folder", str(out), "--log_path",
                                                   str(out / "train.log")], env, server / "stage.cpu")
                    times.append(seconds)
                    cpus.append(cpu)
                    shutil.rmtree(out)
            row[f"{start}_seconds"] = round(statistics.median(times), 3)
            row[f"{start}_cpu_seconds"] = round(statistics.median(cpus), 3)
        rows.append(row)
        shutil.rmtree(stored)
        print(json.dumps(row), flush=True)
    return rows


def inference_costs(counts: list[int], work: Path, benchmark: str, arch: str, outputs: int, images: int,
                    repeats: int) -> list[dict]:
    """Seconds of per-image one-shot task inference (G objective) over k stored masks, per k."""
    import torch

    from unforget.utils.methods.supsup.checkpoints import load
    from unforget.utils.methods.supsup.infer import infer_tasks

    data = get_benchmark(benchmark).load_task(work / "data", get_benchmark(benchmark).task_names[0])
    batch = data.on_device(torch.device("cpu"), 0, False)
    inputs = next(batch.test_batches(images))[0]
    rows = []
    for count in counts:
        stored = work / f"stored_{count}"
        stored_checkpoint(stored, work / "data", count, benchmark, arch, outputs)
        network, _ = load(stored)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            infer_tasks(network, inputs, "oneshot", "g", 10, 1)
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        row = {"tasks": count, "images": len(inputs), "seconds": round(seconds, 4),
               "us_per_image_and_task": round(1e6 * seconds / (len(inputs) * count), 3)}
        rows.append(row)
        shutil.rmtree(stored)
        print(json.dumps(row), flush=True)
    return rows


def _driver_env(work: Path, root: str, tasks: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "DEVICE": "cpu", "BENCHMARK": "permuted_digits",
            "NUM_TASKS": str(tasks), "DATA_ROOT": str(work / "data"), "CKPT_ROOT": str(work / root), **extra}


def _run_driver(env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(["bash", "scripts/supsup_gnu_permuted_mnist.sh"], capture_output=True, text=True,
                            cwd=REPO, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bench_supsup: the driver exited {result.returncode}:\n{result.stderr[-2000:]}")
    return seconds


def driver_against_one_process(work: Path, tasks: int, repeats: int) -> dict:
    """Wall seconds of the GNu driver on permuted_digits and of its stages called in one process."""
    record = work / "stages.jsonl"
    recorder = work / "recorder.py"
    recorder.write_text(f"#!{sys.executable}\n{RECORDER}")
    recorder.chmod(0o755)
    _run_driver(_driver_env(work, "recorded", tasks, PYTHON=str(recorder), SUPSUP_BENCH_RECORD=str(record),
                            SUPSUP_BENCH_PYTHON=sys.executable))
    stages = [json.loads(line) for line in record.read_text().splitlines()]
    replay = ("import json, sys, time\nstarted = time.perf_counter()\nfrom utils import entry\n"
              "for argv in json.load(sys.stdin):\n    assert entry.main(argv) == 0\n"
              "print(time.perf_counter() - started)\n")
    driver, cold_driver, one_process = [], [], []
    for repeat in range(repeats):
        shutil.rmtree(work / "driver", ignore_errors=True)
        driver.append(_run_driver(_driver_env(work, "driver", tasks)))
        shutil.rmtree(work / "driver")
        cold_driver.append(_run_driver(_driver_env(work, "driver", tasks, FAST_START="0")))
        root = work / f"replay_{repeat}"
        argv = json.dumps([[arg.replace(str(work / "recorded"), str(root)) for arg in stage] for stage in stages])
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", replay], input=argv, capture_output=True, text=True, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        if result.returncode != 0:
            raise SystemExit(f"bench_supsup: the replayed stages failed:\n{result.stderr[-2000:]}")
        one_process.append(time.perf_counter() - started)
    row = {"tasks": tasks, "stages": len(stages), "driver_seconds": round(statistics.median(driver), 3),
           "driver_without_warm_start_seconds": round(statistics.median(cold_driver), 3),
           "one_process_seconds": round(statistics.median(one_process), 3)}
    row["ratio"] = round(row["driver_seconds"] / row["one_process_seconds"], 3)
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=("stage", "inference", "driver"), default=None,
                        help="what to time, repeatable (default: all three)")
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 300, 2500], help="stored masks k")
    parser.add_argument("--benchmark", default="permuted_digits")
    parser.add_argument("--arch", default="lenet_300_100")
    parser.add_argument("--outputs", type=int, default=100, help="output units (GNu: classes + superfluous)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the timed stage's new task")
    parser.add_argument("--images", type=int, default=100, help="test images per inference timing")
    parser.add_argument("--driver_tasks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("logs/bench_supsup.json"))
    args = parser.parse_args(argv)
    if min(args.counts) < 1 or args.repeats < 1 or args.images < 1 or args.driver_tasks < 1:
        parser.error("--counts, --repeats, --images and --driver_tasks must be at least 1")
    parts = args.part or ["stage", "inference", "driver"]
    work = args.work or Path(tempfile.mkdtemp(prefix="supsup-bench-"))
    (work / "data").mkdir(parents=True, exist_ok=True)
    summary = {"device": device_name("cpu"), "threads": os.environ.get("OMP_NUM_THREADS"),
               "benchmark": args.benchmark, "arch": args.arch, "outputs": args.outputs}
    if "stage" in parts:
        summary["stage"] = stage_costs(args.counts, work, args.benchmark, args.arch, args.outputs, args.epochs,
                                       args.repeats)
    if "inference" in parts:
        summary["inference"] = inference_costs(args.counts, work, args.benchmark, args.arch, args.outputs,
                                               args.images, args.repeats)
    if "driver" in parts:
        summary["driver"] = driver_against_one_process(work, args.driver_tasks, args.repeats)
    atomic_json_dump(summary, args.out)
    print_tables(summary)
    print(f"written to {args.out}")
    return 0


def print_tables(summary: dict) -> None:
    print(f"{summary['arch']} on {summary['benchmark']}, {summary['device']}, OMP_NUM_THREADS={summary['threads']}")
    if "stage" in summary:
        base = summary["stage"][0]
        print(f"{'stored masks':>12} {'ckpt MiB':>9} {'cold s':>8} {'x':>6} {'warm s':>8} {'x':>6} "
              f"{'warm CPU s':>11} {'x':>6}")
        for row in summary["stage"]:
            print(f"{row['stored_masks']:>12} {row['checkpoint_mib']:>9.2f} {row['cold_seconds']:>8.3f} "
                  f"{row['cold_seconds'] / base['cold_seconds']:>6.2f} {row['warm_seconds']:>8.3f} "
                  f"{row['warm_seconds'] / base['warm_seconds']:>6.2f} {row['warm_cpu_seconds']:>11.3f} "
                  f"{row['warm_cpu_seconds'] / base['warm_cpu_seconds']:>6.2f}")
    if "inference" in summary:
        print(f"{'tasks':>12} {'images':>7} {'seconds':>9} {'us/image/task':>14}")
        for row in summary["inference"]:
            print(f"{row['tasks']:>12} {row['images']:>7} {row['seconds']:>9.4f} {row['us_per_image_and_task']:>14.3f}")
    if "driver" in summary:
        row = summary["driver"]
        print(f"driver, {row['tasks']} tasks ({row['stages']} stages): {row['driver_seconds']:.2f} s; "
              f"the same stages in one process: {row['one_process_seconds']:.2f} s; ratio {row['ratio']:.2f} "
              f"(without the warm start, FAST_START=0: {row['driver_without_warm_start_seconds']:.2f} s)")


if __name__ == "__main__":
    sys.exit(main())

"""Time the CPG stages through the real entry point and project the 20-task protocol.

For each variant (a name and the speed flags it passes to `main_normal.py`) it runs
finetune (task 1), prune (task 1), finetune (task 2, on top), retrain (task 2) and
inference, each as its own `main_normal.py` process the way the drivers call it, through
a warm-start server unless `--cold`. From each train.log it reads the seconds of every
epoch, of every evaluation and the set-up time before the first step, and reports:
images per second, a finetune epoch with its evaluation (the reference evaluated every
epoch), a 20-epoch prune stage (pruning in its first 4 epochs, as in the reference),
process start to first step, and the projected wall time of the reference protocol
(100 finetune epochs, 10 prune stages, 30 retrain epochs and 14 processes a task, 20
tasks). Variants run side by side in one call, so their ratios are fair. Writes JSON and
prints a table.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

if not __package__:  # run as `python tools/bench.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.utils.atomic import atomic_json_dump
from unforget.utils.cli import UsageParser
from unforget.utils.data.registry import get_benchmark

REPO = Path(__file__).resolve().parents[1]
FINETUNE_EPOCHS, PRUNE_STAGES, PRUNE_EPOCHS, PRUNE_RAMP_EPOCHS, RETRAIN_EPOCHS = 100, 10, 20, 4, 30
PROCESSES_PER_TASK, TASKS = 14, 20
FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def log_fields(log: Path) -> list[dict[str, str]]:
    """The key=value fields of every epoch line of a stage's train.log."""
    lines = [dict(FIELD.findall(line)) for line in log.read_text().splitlines()] if log.exists() else []
    return [fields for fields in lines if "epoch" in fields and "seconds" in fields]


def epoch_timings(log: Path) -> tuple[list[float], float | None]:
    """Seconds of each epoch in a stage's train.log, and the set-up time before its first step."""
    lines = log_fields(log)
    setup = next((float(fields["setup_seconds"]) for fields in lines if "setup_seconds" in fields), None)
    return [float(fields["seconds"]) for fields in lines], setup


def run_stage(name: str, flags: list[str], work: Path, common: list[str], env: dict[str, str]) -> dict:
    log = work / f"{name}.log"
    started = time.time()
    result = subprocess.run([sys.executable, "main_normal.py", *common, *flags, "--log_path", str(log)],
                            capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.time() - started
    if result.returncode not in (0, 2, 5, 6):
        raise SystemExit(f"bench: stage {name} failed with exit {result.returncode}:\n{result.stderr[-2000:]}")
    seconds, setup = epoch_timings(log)
    evaluations = [float(fields["eval_seconds"]) for fields in log_fields(log) if "eval_seconds" in fields]
    return {"stage": name, "wall_seconds": round(wall, 3), "setup_seconds": setup, "epoch_list": seconds,
            "epoch_seconds": round(statistics.median(seconds), 4) if seconds else None, "epochs": len(seconds),
            "eval_seconds": round(statistics.median(evaluations), 4) if evaluations else None}


def run_variant(tasks: tuple[str, ...], work: Path, common: list[str], env: dict[str, str]) -> list[dict]:
    first, second = tasks[:2]
    work.mkdir(parents=True, exist_ok=True)
    record = ["--jsonfile", str(work / "record.txt")]
    rows = [
        run_stage("finetune", ["--mode", "finetune", "--dataset", first, "--save_folder", str(work / "t1"), *record],
                  work, common, env),
        run_stage("prune", ["--mode", "prune", "--dataset", first, "--load_folder", str(work / "t1"),
                            "--save_folder", str(work / "t1p"), "--lr", "1e-3", "--lr_mask", "0",
                            "--target_sparsity", "0.5", "--pruning_interval", "1", *record], work, common, env),
    ]
    pruned = work / ("t1p" if (work / "t1p/checkpoint.pth").exists() else "t1")  # short prunes may miss the gate
    rows += [
        run_stage("finetune_second_task", ["--mode", "finetune", "--dataset", second, "--load_folder", str(pruned),
                                           "--save_folder", str(work / "t2"), "--jsonfile",
                                           str(work / "record2.txt")], work, common, env),
        run_stage("retrain", ["--mode", "retrain", "--dataset", second, "--load_folder", str(work / "t2"),
                              "--save_folder", str(work / "t2r"), "--lr", "1e-3", "--lr_mask", "1e-4"],
                  work, common, env),
        run_stage("inference", ["--mode", "inference", "--dataset", first, "--load_folder", str(work / "t2r")],
                  work, common, env),
    ]
    return rows


def summarise(rows: list[dict], train_images: int) -> dict:
    """Per-epoch figures and the protocol projection from one variant's stage rows."""
    by_stage = {row["stage"]: row for row in rows}
    finetune, prune, retrain = by_stage["finetune"], by_stage["prune"], by_stage["retrain"]
    evaluation = retrain["eval_seconds"] or 0.0
    ramp = prune["epoch_list"][0]  # --pruning_interval 1: the first epoch updates the masks
    after = statistics.median(prune["epoch_list"][1:]) if prune["epochs"] > 1 else ramp
    prune_training = PRUNE_RAMP_EPOCHS * ramp + (PRUNE_EPOCHS - PRUNE_RAMP_EPOCHS) * after
    overhead = statistics.mean(row["wall_seconds"] - sum(row["epoch_list"]) for row in rows)
    per_task = (FINETUNE_EPOCHS * finetune["epoch_seconds"] + PRUNE_STAGES * prune_training
                + RETRAIN_EPOCHS * retrain["epoch_seconds"] + PROCESSES_PER_TASK * overhead)
    return {
        "images_per_second": round(train_images / finetune["epoch_seconds"], 1),
        "finetune_epoch_with_eval_seconds": round(finetune["epoch_seconds"] + evaluation, 4),
        "prune_stage_20_epochs_seconds": round(prune["wall_seconds"] - sum(prune["epoch_list"]) + prune_training, 2),
        "start_to_first_step_seconds": prune["setup_seconds"],
        "process_overhead_seconds": round(overhead, 3),
        "projected_protocol_minutes": round(TASKS * per_task / 60, 1),
    }


def device_name(device: str) -> str:
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return f"cpu ({os.cpu_count()} cores, torch {torch.__version__})"
    name = torch.cuda.get_device_name(None if device == "auto" else torch.device(device))
    return f"{name} (torch {torch.__version__}, CUDA {torch.version.cuda})"


@contextmanager
def stage_server(enabled: bool, work: Path, method: str = "cpg"):
    """The drivers' warm start: a server that imported torch and `method`'s stages once forks every stage. One
    that does not come up is an error: the stages would quietly run cold."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not enabled:
        env.pop("CPG_STAGE_SERVER", None)
        yield env
        return
    socket = work / "stages.sock"
    server = subprocess.Popen([sys.executable, "-m", "utils.warm_start", "--socket", str(socket), "--parent",
                               str(os.getpid()), "--method", method], cwd=REPO, env=env)
    try:
        deadline = time.time() + 60
        while not socket.exists() and time.time() < deadline and server.poll() is None:
            time.sleep(0.05)
        if not socket.exists():
            raise SystemExit(f"bench: the warm-start server did not start (exit {server.poll()})")
        yield {**env, "CPG_STAGE_SERVER": str(socket)}
    finally:
        server.kill()
        server.wait()


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, flags = text.partition("=")
    return name, shlex.split(flags)


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="synthetic_cifar", help="synthetic_cifar (VGG16) or any other")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each timed stage")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--variant", action="append", default=None, metavar="NAME=FLAGS",
                        help="a named set of speed flags, repeatable (default: plain=--plain and default=)")
    parser.add_argument("--cold", action="store_true", help="every stage starts its own interpreter")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("logs/bench.json"))
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the prune stage's first epoch updates masks, the rest do not)")
    variants = [parse_variant(text) for text in (args.variant or ["plain=--plain", "default="])]
    work = args.work or Path(tempfile.mkdtemp(prefix="cpg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--benchmark", args.benchmark, "--data_root", str(work), "--device", args.device,
              "--batch_size", str(args.batch_size), "--epochs", str(args.epochs)]
    benchmark = get_benchmark(args.benchmark)
    tasks = benchmark.task_names
    train_images = benchmark.load_task(work, tasks[0]).train_labels.numel()
    results = []
    with stage_server(not args.cold, work) as env:
        for name, flags in variants:
            rows = run_variant(tasks, work / name, [*common, *flags], env)
            results.append({"name": name, "flags": " ".join(flags), "stages": rows, **summarise(rows, train_images)})
    summary = {"benchmark": args.benchmark, "device": device_name(args.device), "batch_size": args.batch_size,
               "epochs": args.epochs, "warm_start": not args.cold, "variants": results}
    atomic_json_dump(summary, args.out)
    print_table(summary)
    print(f"written to {args.out}")
    return 0


def print_table(summary: dict) -> None:
    print(f"{summary['benchmark']} on {summary['device']}, batch {summary['batch_size']}, "
          f"{'warm' if summary['warm_start'] else 'cold'} start")
    columns = [("images/s", "images_per_second", "{:.0f}"), ("finetune ep+eval s", "finetune_epoch_with_eval_seconds",
               "{:.3f}"), ("prune stage s", "prune_stage_20_epochs_seconds", "{:.2f}"),
               ("start->step s", "start_to_first_step_seconds", "{:.2f}"),
               ("protocol min", "projected_protocol_minutes", "{:.1f}")]
    print(f"{'variant':<14}" + "".join(f"{title:>20}" for title, _, _ in columns))
    base = summary["variants"][0]
    for result in summary["variants"]:
        cells = "".join(f"{form.format(result[key]):>20}" for _, key, form in columns)
        speedup = base["projected_protocol_minutes"] / result["projected_protocol_minutes"]
        print(f"{result['name']:<14}{cells}   x{speedup:.2f} vs {base['name']}")


if __name__ == "__main__":
    sys.exit(main())

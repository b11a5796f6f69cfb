"""Time the CPG stages through the real entry point and project the 20-task protocol.

Runs finetune (task 1), prune (task 1), finetune (task 2, on top), retrain (task 2) and
inference, each as its own `main_normal.py` process the way the drivers call it (set
CPG_STAGE_SERVER to time warm starts). From each train.log it reads the seconds of every
epoch and the set-up time before the first step; it reports images per second, seconds per
epoch per stage, process start to first step, and the projected wall time of the reference
protocol (100 finetune, 10 x 20 prune and 30 retrain epochs, 14 processes a task, 20 tasks).
Writes JSON and prints a table.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from utils.atomic import atomic_json_dump
from utils.cli import UsageParser
from utils.data.registry import get_benchmark

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = {"finetune": 100, "prune": 200, "retrain": 30}
PROCESSES_PER_TASK, TASKS = 14, 20
FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def epoch_timings(log: Path) -> tuple[list[float], float | None]:
    """Seconds of each epoch in a stage's train.log, and the set-up time before its first step."""
    seconds, setup = [], None
    for line in log.read_text().splitlines():
        fields = dict(FIELD.findall(line))
        if "epoch" in fields and "seconds" in fields:
            seconds.append(float(fields["seconds"]))
            setup = float(fields["setup_seconds"]) if "setup_seconds" in fields else setup
    return seconds, setup


def run_stage(name: str, flags: list[str], work: Path, common: list[str]) -> dict:
    log = work / f"{name}.log"
    started = time.time()
    result = subprocess.run([sys.executable, "main_normal.py", *common, *flags, "--log_path", str(log)],
                            capture_output=True, text=True, cwd=REPO)
    wall = time.time() - started
    if result.returncode not in (0, 2, 5, 6):
        raise SystemExit(f"bench: stage {name} failed with exit {result.returncode}:\n{result.stderr[-2000:]}")
    seconds, setup = epoch_timings(log) if log.exists() else ([], None)
    return {"stage": name, "wall_seconds": round(wall, 3), "setup_seconds": setup,
            "epoch_seconds": round(statistics.median(seconds), 4) if seconds else None, "epochs": len(seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="synthetic_cifar", help="synthetic_cifar (VGG16) or any other")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each timed stage")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("logs/bench.json"))
    args = parser.parse_args(argv)
    benchmark = get_benchmark(args.benchmark)
    first, second = benchmark.task_names[:2]
    work = args.work or Path(tempfile.mkdtemp(prefix="cpg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--benchmark", args.benchmark, "--data_root", str(work), "--device", args.device,
              "--batch_size", str(args.batch_size), "--epochs", str(args.epochs)]
    record = ["--jsonfile", str(work / "record.txt")]
    rows = [
        run_stage("finetune", ["--mode", "finetune", "--dataset", first, "--save_folder", str(work / "t1"), *record],
                  work, common),
        run_stage("prune", ["--mode", "prune", "--dataset", first, "--load_folder", str(work / "t1"),
                            "--save_folder", str(work / "t1p"), "--lr", "1e-3", "--lr_mask", "0",
                            "--target_sparsity", "0.5", "--pruning_interval", "1", *record], work, common),
    ]
    pruned = work / ("t1p" if (work / "t1p/checkpoint.pth").exists() else "t1")  # short prunes may miss the gate
    rows += [
        run_stage("finetune_second_task", ["--mode", "finetune", "--dataset", second, "--load_folder", str(pruned),
                                           "--save_folder", str(work / "t2"), "--jsonfile",
                                           str(work / "record2.txt")], work, common),
        run_stage("retrain", ["--mode", "retrain", "--dataset", second, "--load_folder", str(work / "t2"),
                              "--save_folder", str(work / "t2r"), "--lr", "1e-3", "--lr_mask", "1e-4"], work, common),
        run_stage("inference", ["--mode", "inference", "--dataset", first, "--load_folder", str(work / "t2r")],
                  work, common),
    ]
    by_stage = {row["stage"]: row for row in rows}
    train_images = benchmark.load_task(work, first).train_labels.numel()
    overhead = statistics.mean(row["wall_seconds"] - (row["epoch_seconds"] or 0) * row["epochs"] for row in rows)
    per_task = sum(PROTOCOL[stage] * by_stage[stage]["epoch_seconds"] for stage in PROTOCOL)
    summary = {
        "benchmark": args.benchmark, "device": args.device, "batch_size": args.batch_size, "stages": rows,
        "images_per_second": round(train_images / by_stage["finetune"]["epoch_seconds"], 1),
        "start_to_first_step_seconds": by_stage["prune"]["setup_seconds"],
        "process_overhead_seconds": round(overhead, 3),
        "projected_protocol_minutes": round(TASKS * (per_task + PROCESSES_PER_TASK * overhead) / 60, 1),
    }
    atomic_json_dump(summary, args.out)
    print(f"{'stage':<22} {'s/epoch':>9} {'setup s':>8} {'wall s':>8}")
    for row in rows:
        epoch = f"{row['epoch_seconds']:.3f}" if row["epoch_seconds"] is not None else "-"
        setup = f"{row['setup_seconds']:.2f}" if row["setup_seconds"] is not None else "-"
        print(f"{row['stage']:<22} {epoch:>9} {setup:>8} {row['wall_seconds']:>8.2f}")
    print(f"images/s {summary['images_per_second']}, start to first step {summary['start_to_first_step_seconds']} s, "
          f"projected 20-task protocol {summary['projected_protocol_minutes']} min; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

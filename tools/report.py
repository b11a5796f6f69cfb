"""Per-task table and run summary JSON of a CPG run (design section 4), or a checkpoint's settings.

For every task: accuracy right after it was learned (its own final checkpoint),
accuracy after the last task (the last task's checkpoint, each task at its own
width with its own batch-norm, head and picks), chosen sparsity, width and the
share of the network's weights it owns; then the averages.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.checkpoints import CheckpointFileError, number, read_json
from utils.atomic import atomic_json_dump
from utils.cli import UsageError, UsageParser
from utils.data.registry import DataError, get_benchmark

SUMMARY = "summary.json"


def task_accuracies(network, data: dict, device) -> dict[str, float]:
    """Accuracy of each task in `data` (name -> DeviceTaskData) with the network's checkpoint."""
    from utils.engine import evaluate

    network.to(device)
    accuracies = {}
    for name, task_data in data.items():
        network.set_task(network.task_id(name))
        accuracies[name] = round(evaluate(network, task_data), 4)
    return accuracies


def ownership(network, arch: str) -> tuple[dict[int, float], int, float]:
    """Share of the shared weights each task owns, their number, and the network's size relative to
    the same architecture unexpanded (width 1.0)."""
    import torch

    from models import build_network
    from models.layers.cpg import cpg_layers

    layers = cpg_layers(network)
    total = sum(layer.owner.numel() for layer in layers)
    counts = sum(torch.bincount(layer.owner.flatten().long(), minlength=len(network.tasks) + 1) for layer in layers)
    unexpanded = sum(layer.weight.numel() for layer in cpg_layers(build_network(arch, 1.0, mode=network.mode)))
    shares = {task: counts[task].item() / total for task in range(1, len(counts)) if counts[task]}
    return shares, total, total / unexpanded


def summarise(root: Path, names: list[str], benchmark: str, data_root: Path, device) -> dict:
    from utils.checkpoint import load_checkpoint, network_from_checkpoint

    spec = get_benchmark(benchmark)
    data = {name: spec.load_task(data_root, name).on_device(device, spec.crop_padding, spec.flip) for name in names}
    last = root / names[-1] / "gradual_prune"
    last_payload = load_checkpoint(last)
    last_network = network_from_checkpoint(last_payload)
    final = task_accuracies(last_network, data, device)
    owned, shared_weights, relative_size = ownership(last_network, last_payload["arch"])
    rows = []
    for name in names:
        index = last_network.task_id(name)  # 1-based; a pretrained backbone's task comes first
        folder = root / name / "gradual_prune"
        meta, chosen = read_json(folder / "meta.json", "tasks"), read_json(folder / "chosen.json", "sparsity")
        after = task_accuracies(network_from_checkpoint(load_checkpoint(folder)), {name: data[name]}, device)[name]
        rows.append({"task": name, "accuracy_after_learning": after, "accuracy_final": final[name],
                     "sparsity": float(chosen["sparsity"]), "retrained": bool(chosen.get("retrained")),
                     "width": meta["tasks"][index - 1]["width"], "owned_fraction": round(owned.get(index, 0.0), 6)})

    def mean(key: str) -> float:
        return round(sum(row[key] for row in rows) / len(rows), 4)

    return {"benchmark": benchmark, "tasks": rows, "average_accuracy_after_learning": mean("accuracy_after_learning"),
            "average_accuracy_final": mean("accuracy_final"),
            "final_width": number(read_json(last / "meta.json", "width"), "width", last / "meta.json"),
            "shared_weights": shared_weights,
            "size_vs_unexpanded": round(relative_size, 4),
            "free_fraction": round(1.0 - sum(owned.values()), 6)}


def format_table(summary: dict) -> str:
    lines = [f"{'task':<34} {'learned':>8} {'final':>8} {'sparsity':>9} {'width':>6} {'owned':>7}"]
    for row in summary["tasks"]:
        lines.append(f"{row['task']:<34} {row['accuracy_after_learning']:>8.4f} {row['accuracy_final']:>8.4f} "
                     f"{row['sparsity']:>9.2f} {row['width']:>6.2f} {row['owned_fraction']:>7.3f}")
    lines.append(f"{'average':<34} {summary['average_accuracy_after_learning']:>8.4f} "
                 f"{summary['average_accuracy_final']:>8.4f}   free weights {summary['free_fraction']:.3f}")
    lines.append(f"final width {summary['final_width']}: {summary['shared_weights']:,} shared weights, "
                 f"{summary['size_vs_unexpanded']:.2f}x the unexpanded network")
    return "\n".join(lines)


def format_settings(meta: dict) -> str:
    """The settings a checkpoint was made with, one `--flag value` per line (switches alone when on)."""
    lines = []
    for name, value in meta["settings"].items():
        if value is True:
            lines.append(f"--{name}")
        elif value is not None and value is not False:
            lines.append(f"--{name} {value}")
    return "\n".join(lines)


def print_settings(parser: UsageParser, folder: Path) -> int:
    meta = read_json(folder / "meta.json")
    if not isinstance(meta.get("settings"), dict):
        parser.error(f"{folder / 'meta.json'} holds no settings: it predates settings in meta.json")
    print(format_settings(meta))
    return 0


def summary_of(parser: UsageParser, args) -> dict:
    if args.root is None:
        parser.error("--root is needed (or --settings FOLDER)")
    if args.num_tasks is not None and args.num_tasks < 1:
        parser.error(f"--num_tasks must be at least 1, got {args.num_tasks}")
    if not args.data_root.is_dir():
        parser.error(f"data root {args.data_root} does not exist: pass --data_root, the folder the run used")
    try:
        names = list(get_benchmark(args.benchmark).task_names[: args.num_tasks])
    except DataError as error:
        parser.error(str(error))
    missing = [name for name in names if not (args.root / name / "gradual_prune" / "chosen.json").is_file()]
    if missing:
        parser.error(f"no finished task folder for {', '.join(missing)} under {args.root}")
    from utils.checkpoint import CheckpointError
    from utils.device import resolve_device

    try:
        return summarise(args.root, names, args.benchmark, args.data_root, resolve_device(args.device))
    except (UsageError, DataError) as error:
        parser.error(str(error))
    except CheckpointError as error:
        parser.bad_checkpoint(str(error))
    except (KeyError, IndexError, TypeError, ValueError) as error:
        parser.bad_checkpoint(f"a meta.json or chosen.json under {args.root} is malformed ({error!r})")


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="checkpoints/CPG/<experiment>/<setting>/<arch>")
    parser.add_argument("--settings", type=Path, metavar="FOLDER",
                        help="print the settings a checkpoint folder was made with, as flags, and stop")
    parser.add_argument("--benchmark", default="split_digits")
    parser.add_argument("--data_root", default="data", type=Path)
    parser.add_argument("--num_tasks", type=int, default=None, help="first N tasks of the benchmark (default: all)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        if args.settings:
            return print_settings(parser, args.settings)
        summary = summary_of(parser, args)
    except CheckpointFileError as error:
        parser.bad_checkpoint(str(error))
    atomic_json_dump(summary, args.root / SUMMARY)
    print(format_table(summary))
    print(f"summary written to {args.root / SUMMARY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

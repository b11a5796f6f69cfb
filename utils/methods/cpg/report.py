"""CPG's and PackNet's report (`tools.report`, their `gradual_prune` Layout in utils/methods/__init__.py):
summary.json and its table, from each task's final checkpoint (docs/design.md#file-formats).

For every task: test accuracy right after it was learned (its own final checkpoint), test accuracy after the
last task (the last task's checkpoint, each task at its own width with its own batch-norm, head and picks),
chosen sparsity, width and the share of the network's weights it owns; then the averages. A task that kept
every free weight while tasks remained, and the tasks left without any (finetune exit 5), are marked and get
one warning line on stderr naming the cause and the setting that changes it. Beside them the accuracy matrix
R[i][j] (task i after task j, from task j's checkpoint), the continual-learning metrics of utils/metrics.py,
each task's capacity (owned and picked weights, width, bytes against one network per task) and the plots of
utils/plots.py.
"""

from __future__ import annotations

import operator
import sys
from functools import reduce
from pathlib import Path

from unforget.utils import metrics, plots, run_board
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.methods.layout import ReportInputs
from unforget.utils.methods.matrices import accuracy_matrix, state_bytes, storage, task_data
from unforget.utils.methods.sequences import format_metrics
from unforget.utils.run_files import number, read_json

SUMMARY = "summary.json"


def capacity(payload: dict, network) -> dict:
    """Every stored task's share of the checkpoint's network, in weights: those it owns, the earlier tasks'
    weights it picks (CPG's pick bits; PackNet uses every earlier weight), the network's size at its width
    and the weights still free after it; then the bytes of the masks (ownership and picks) and of the
    model against one plain width-1.0 network per task."""
    import torch

    from unforget.models import build_network
    from unforget.models.layers.base import unpack_bits
    from unforget.models.layers.cpg import cpg_layers

    layers = cpg_layers(network)
    rows, taken = [], 0
    for task, spec in enumerate(network.tasks, start=1):
        owned = picked = size = 0
        for layer in layers:
            shape = layer.task_shapes[task - 1]
            owner = layer.owner[tuple(slice(0, n) for n in shape)]
            old = (owner > 0) & (owner < task)
            pick = getattr(layer, f"pick_{task}", None)
            if pick is not None:
                old &= unpack_bits(pick, shape)
            owned += int((owner == task).sum())
            picked += int(old.sum())
            size += int(torch.Size(shape).numel())
        taken += owned
        rows.append({"task": spec.name, "width": spec.width, "owned_weights": owned, "picked_weights": picked,
                     "weights_at_width": size, "free_weights_after": size - taken})
    state = payload["model"]
    masks = {key: value for key, value in state.items() if key.rsplit(".", 1)[-1].startswith(("owner", "pick_"))}
    unexpanded = sum(layer.weight.numel() for layer in cpg_layers(build_network(payload["arch"], 1.0,
                                                                                mode=network.mode)))
    return {"tasks": rows, "unexpanded_weights": unexpanded, "mask_bytes": state_bytes(masks),
            **storage(state_bytes(state), payload["arch"], network.tasks)}


def ownership(network, arch: str) -> tuple[dict[int, float], int, float]:
    """Share of the shared weights each task owns, their number, and the network's size relative to
    the same architecture unexpanded (width 1.0)."""
    import torch

    from unforget.models import build_network
    from unforget.models.layers.cpg import cpg_layers

    layers = cpg_layers(network)
    total = sum(layer.owner.numel() for layer in layers)
    counts = reduce(operator.add, (torch.bincount(layer.owner.flatten().long(), minlength=len(network.tasks) + 1)
                                   for layer in layers))
    unexpanded = sum(layer.weight.numel() for layer in cpg_layers(build_network(arch, 1.0, mode=network.mode)))
    shares = {task: counts[task].item() / total for task in range(1, len(counts)) if counts[task]}
    return shares, total, total / unexpanded


def keeper_cause(chosen: dict | None) -> tuple[str, str]:
    """Why a task kept every free weight, from its chosen.json (None: a pretrained backbone), and what
    changes it."""
    growth = "allow growth (a larger max width)"
    if chosen is None:
        return "the pretrained backbone owns every weight at its width", f"To own the wider rest, {growth}."
    recorded = chosen.get("pruning_stopped")  # a task that kept every weight kept its unpruned model: why?
    skipped = isinstance(recorded, dict) and str(chosen.get("reason", "")).startswith("pruning was skipped")
    # a stop after pruned models were recorded did not keep it unpruned
    stop: dict = chosen["pruning_stopped"] if skipped else {}
    if stop.get("kind") == "train_accuracy_gate":
        return (f"its training accuracy {stop['train_accuracy']:.4f} did not exceed --train_accuracy_gate "
                f"{stop['train_accuracy_gate']:g} at sparsity {stop['sparsity']}, so pruning stopped before saving",
                f"Lower TRAIN_ACCURACY_GATE, train longer (FINETUNE_EPOCHS, PRUNE_EPOCHS) or {growth}.")
    if stop.get("kind") == "last_task":
        return (f"it missed its goal at the width cap as the last of --total_num_tasks {stop['total_num_tasks']}, "
                "so pruning was skipped", f"Set TOTAL_TASKS to the number of tasks the run learns, or {growth}.")
    return (f"it kept its unpruned model ({chosen.get('reason', 'no pruned model met its goal')})",
            f"Lower its goal (GOALS) or {growth}.")


def starvation(rows: list[dict], chosen: dict[str, dict]) -> tuple[set[str], set[str], list[str]]:
    """From the capacity rows of the last checkpoint (every stored task in order, a pretrained backbone
    first) and the run's chosen.json per task: the tasks that had no free weights to own (finetune exit 5),
    the tasks that kept every free weight while tasks remained, and one warning line per such task (or
    per backbone that left tasks without weights) naming the cause and the settings that change it."""
    groups: list[tuple[str, list[str]]] = []  # a task that left no free weight, and the tasks that got none
    for index, row in enumerate(rows):
        if row["owned_weights"] == 0:
            if groups:
                groups[-1][1].append(row["task"])
        elif row["free_weights_after"] == 0 and index < len(rows) - 1:
            groups.append((row["task"], []))
    warnings = []
    for keeper, starved in groups:
        if keeper not in chosen and not starved:
            continue  # a pretrained backbone owns every weight at width 1.0 by design
        cause, change = keeper_cause(chosen.get(keeper))
        after = (f"task{'s' if len(starved) > 1 else ''} {', '.join(starved)} had no free weights (exit 5)"
                 if starved else "later tasks had to grow the network")
        warnings.append(f"warning: task {keeper} kept every free weight: {cause}; {after}. {change}")
    return ({name for _, starved in groups for name in starved}, {keeper for keeper, _ in groups if keeper in chosen},
            warnings)


def summarise(root: Path, names: list[str], benchmark: str, data_root: Path, device,
              baselines: dict[str, float] | None = None) -> dict:
    """The run's summary.json record: per task its accuracies, chosen sparsity, width and owned share, the
    averages, the matrix and its metrics, the capacity and the starvation warnings."""
    data = task_data(names, benchmark, data_root, device)
    last = root / names[-1] / "gradual_prune"
    seen: list = []
    matrix = accuracy_matrix([root / name / "gradual_prune" for name in names], names, data, device,
                             lambda payload, network: seen.append((payload, network)))
    last_payload, last_network = seen[-1]
    owned, shared_weights, relative_size = ownership(last_network, last_payload["arch"])
    cost = capacity(last_payload, last_network)
    chosen = {name: read_json(root / name / "gradual_prune" / "chosen.json", "sparsity") for name in names}
    starved, keepers, warnings = starvation(cost["tasks"], chosen)
    rows = []
    for i, name in enumerate(names):
        index = last_network.task_id(name)  # 1-based; a pretrained backbone's task comes first
        meta = read_json(root / name / "gradual_prune" / "meta.json", "tasks")
        rows.append({"task": name, "accuracy_after_learning": matrix[i][i], "accuracy_final": matrix[i][-1],
                     "sparsity": float(chosen[name]["sparsity"]), "retrained": bool(chosen[name].get("retrained")),
                     "width": meta["tasks"][index - 1]["width"], "owned_fraction": round(owned.get(index, 0.0), 6),
                     "kept_every_free_weight": name in keepers, "starved": name in starved})

    def mean(key: str) -> float:
        return round(sum(row[key] for row in rows) / len(rows), 4)

    return {"benchmark": benchmark, "tasks": rows, "average_accuracy_after_learning": mean("accuracy_after_learning"),
            "average_accuracy_final": mean("accuracy_final"),
            "final_width": number(read_json(last / "meta.json", "width"), "width", last / "meta.json"),
            "shared_weights": shared_weights,
            "size_vs_unexpanded": round(relative_size, 4),
            "free_fraction": round(1.0 - sum(owned.values()), 6),
            "task_names": names, "accuracy_matrix": matrix, "metrics": metrics.metrics(matrix, names, baselines),
            "capacity": cost, "warnings": warnings}


def format_table(summary: dict) -> str:
    """The summary as the table the run's driver ends with."""
    lines = [f"{'task':<34} {'learned':>8} {'final':>8} {'sparsity':>9} {'width':>6} {'owned':>7}"]
    for row in summary["tasks"]:
        lines.append(f"{row['task']:<34} {row['accuracy_after_learning']:>8.4f} {row['accuracy_final']:>8.4f} "
                     f"{row['sparsity']:>9.2f} {row['width']:>6.2f} {row['owned_fraction']:>7.3f}")
    lines.append(f"{'average':<34} {summary['average_accuracy_after_learning']:>8.4f} "
                 f"{summary['average_accuracy_final']:>8.4f}   free weights {summary['free_fraction']:.3f}")
    lines.append(f"final width {summary['final_width']}: {summary['shared_weights']:,} shared weights, "
                 f"{summary['size_vs_unexpanded']:.2f}x the unexpanded network")
    lines.append(format_metrics(summary))
    cost = summary["capacity"]
    lines.append(f"model {cost['model_bytes']:,} bytes (masks {cost['mask_bytes']:,}) against "
                 f"{cost['independent_models_bytes']:,} for one width-1.0 network per task: "
                 f"{cost['model_vs_independent']:.2f}x")
    return "\n".join(lines)


def summarise_run(inputs: ReportInputs) -> dict:
    """The layout's summary hook (summarise keeps its arguments for the callers that build no ReportInputs)."""
    return summarise(inputs.root, inputs.names, inputs.benchmark, inputs.data_root, inputs.device,
                     inputs.baselines)


def write(root: Path, summary: dict) -> None:
    """summary.json, its plots and the run's TensorBoard summary, the table, then the warnings on stderr."""
    atomic_json_dump(summary, root / SUMMARY)
    plots.write_all(root, summary)
    run_board.write_summary(root, summary)
    print(format_table(summary))
    print(f"summary written to {root / SUMMARY}, plots and {metrics.MATRIX_CSV} beside it")
    for warning in summary["warnings"]:
        print(warning, file=sys.stderr)

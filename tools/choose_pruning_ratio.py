"""Make the best pruned model the task's checkpoint (`<task>/gradual_prune/checkpoint.pth`).

Highest sparsity whose accuracy meets the goal (minus --allow_acc_loss), else the
unpruned model; at the width cap with the unpruned model below its goal, the
highest recorded sparsity (the goal is lost anyway, so free capacity). When no
pruned model was recorded it says why pruning was skipped (a prune stage's stop
note, or a task that owns no weights), and chosen.json keeps the note. Running it
again gives the same result. The per-sparsity folders stay: the driver removes them
once the task is done (scripts/lib/stages.sh drop_stage_checkpoints; KEEP_STAGES=1 keeps them).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

if not __package__:  # run as `python tools/choose_pruning_ratio.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.tools.checkpoints import CheckpointFileError, copy_checkpoint, has_checkpoint, number, read_json
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.cli import UsageParser, number_in
from unforget.utils.data.registry import DataError, get_benchmark
from unforget.utils.logs import RunLog
from unforget.utils.records import FORCE_GROWTH, STOP_NOTE, MissingGoal, RecordError, goal_for, read_goals, read_record


def choose(record: dict[str, float], goal: float, allow_loss: float, at_cap: bool,
           skipped: str = "") -> tuple[str, str]:
    """The sparsity key to keep ("0.0" for the unpruned model) and why; `skipped` is why no pruned model
    was recorded, where that is known."""
    pruned = sorted((key for key in record if key != "0.0"), key=float, reverse=True)
    if not pruned:
        return "0.0", f"pruning was skipped: {skipped or 'no pruned model was recorded'}"
    for key in pruned:
        if record[key] + allow_loss >= goal:
            return key, "highest sparsity meeting the goal"
    if at_cap and record["0.0"] < goal:
        return pruned[0], "at the width cap below the goal: free the most capacity"
    return "0.0", "no pruned model meets the goal"


def stop_note(prune_folder: Path, chosen: dict) -> dict | None:
    """Why pruning stopped without saving: the note of the prune stage that stopped (pruning ends there), or
    the one an earlier run of this tool kept in chosen.json."""
    notes = sorted(prune_folder.glob(f"*/{STOP_NOTE}"))
    if notes:
        return read_json(notes[-1], "sparsity", "kind", "cause")
    kept = chosen.get("pruning_stopped")
    if kept is not None and not (isinstance(kept, dict) and isinstance(kept.get("cause"), str)):
        raise CheckpointFileError(f"{prune_folder / 'chosen.json'}: pruning_stopped is not what this toolkit wrote")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task_folder", required=True, type=Path, help="checkpoints/.../<arch>/<task>")
    parser.add_argument("--dataset", required=True, help="task name (its accuracy goal is used)")
    parser.add_argument("--benchmark", default="split_digits")
    parser.add_argument("--baseline_acc_file", default=None)
    parser.add_argument("--method", default="cpg", choices=("cpg", "packnet"),
                        help="packnet has no goals and keeps the sparsest recorded model")
    parser.add_argument("--max_allowed_network_width_multiplier", type=number_in(1.0), required=True)
    parser.add_argument("--allow_acc_loss", type=number_in(0.0, 1.0), default=0.0,
                        help="accuracy (a fraction) a pruned model may lose against the goal")
    parser.add_argument("--log_path", default=None)
    args = parser.parse_args(argv)
    prune_folder = args.task_folder / "gradual_prune"
    try:
        if args.method == "packnet":
            goal = 0.0
        else:
            goals = read_goals(args.baseline_acc_file) if args.baseline_acc_file else get_benchmark(
                args.benchmark).default_goals
            goal = goal_for(goals, args.dataset, args.baseline_acc_file or "the benchmark defaults")
        record = read_record(prune_folder / "record.txt")
    except (RecordError, MissingGoal, DataError) as error:
        parser.error(str(error))
    if "0.0" not in record:
        parser.error(f"{prune_folder / 'record.txt'} has no unpruned accuracy; run finetune first")
    chosen_file = prune_folder / "chosen.json"
    try:
        scratch_meta = args.task_folder / "scratch" / "meta.json"
        scratch = read_json(scratch_meta, "width")
        width = number(scratch, "width", scratch_meta)
        at_cap = width >= args.max_allowed_network_width_multiplier
        chosen = read_json(chosen_file, "sparsity") if chosen_file.is_file() else {}
        stop = stop_note(prune_folder, chosen)
        skipped = stop["cause"] if stop else ("the task owns no free weights (finetune exit 5)"
                                              if scratch.get("owned_fraction") == 0 else "")
        key, reason = choose(record, goal, args.allow_acc_loss, at_cap, skipped)
        already = chosen.get("sparsity") == key and has_checkpoint(prune_folder)
    except CheckpointFileError as error:
        parser.bad_checkpoint(str(error))
    source = args.task_folder / "scratch" if key == "0.0" else prune_folder / key
    if not already:
        if not has_checkpoint(source):
            parser.error(f"the chosen sparsity {key} has no checkpoint in {source}")
        copy_checkpoint(source, prune_folder)
        shown_goal = goal if math.isfinite(goal) else FORCE_GROWTH  # JSON has no infinity
        atomic_json_dump({"sparsity": key, "accuracy": record[key], "goal": shown_goal, "retrained": False,
                          "reason": reason, **({"pruning_stopped": stop} if stop else {})}, chosen_file)
    RunLog(args.log_path).decision(stage="choose_pruning_ratio", task=args.dataset, sparsity=key,
                                   val_acc=record[key], goal=goal, width=width, reason=reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())

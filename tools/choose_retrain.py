"""Keep the retrained model only if its accuracy beats the pruned one (the reference looked at
directory order only). Running it again, also after a kill between its two writes, gives the same
result: it compares with the pruned accuracy recorded in chosen.json, which the copy does not touch."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python tools/choose_retrain.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unforget.tools.checkpoints import CheckpointFileError, accuracy, copy_checkpoint, has_checkpoint, read_json
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.cli import UsageParser
from unforget.utils.logs import RunLog


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save_folder", required=True, type=Path, help="<task>/gradual_prune")
    parser.add_argument("--load_folder", required=True, type=Path, help="<task>/retrain")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--log_path", default=None)
    args = parser.parse_args(argv)
    chosen_file = args.save_folder / "chosen.json"
    if not has_checkpoint(args.save_folder) or not chosen_file.is_file():
        parser.error(f"{args.save_folder} holds no chosen checkpoint; run choose_pruning_ratio first")
    log = RunLog(args.log_path)
    try:
        chosen = read_json(chosen_file, "sparsity", "accuracy")
        if chosen.get("retrained"):
            log.decision(stage="choose_retrain", task=args.dataset, kept="retrain", reason="already chosen")
            return 0
        pruned = accuracy(chosen, "accuracy", chosen_file)
        if not has_checkpoint(args.load_folder):
            log.decision(stage="choose_retrain", task=args.dataset, kept="gradual_prune", reason="no retrained model")
            return 0
        retrained_meta = args.load_folder / "meta.json"
        retrained = accuracy(read_json(retrained_meta, "accuracy"), "accuracy", retrained_meta)
    except CheckpointFileError as error:
        parser.bad_checkpoint(str(error))
    if retrained > pruned:
        copy_checkpoint(args.load_folder, args.save_folder)
        atomic_json_dump({**chosen, "accuracy": retrained, "retrained": True}, chosen_file)
    log.decision(stage="choose_retrain", task=args.dataset, kept="retrain" if retrained > pruned else "gradual_prune",
                 pruned_acc=pruned, retrained_acc=retrained, reason="higher validation accuracy wins")
    return 0


if __name__ == "__main__":
    sys.exit(main())

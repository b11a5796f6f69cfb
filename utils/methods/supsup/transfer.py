"""SupSup Transfer (`--supsup_transfer`; the reference's `--reinit-adapt running_mean`): a new task's scores
start at the mean of the earlier tasks' final scores instead of a fresh draw.

A stored task keeps only its 1-bit mask, so the scores' running sum goes beside the checkpoint in its own
file, written before the checkpoint and read from the folder the next task loads. Each task therefore
saves to a folder of its own (the settings check it): the loaded folder's sum stays that of its tasks,
and a stage that is killed and rerun starts from the same mean.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unforget.models.layers.supsup import supsup_layers
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import UnreadableFile, atomic_torch_save, read_torch_file
from unforget.utils.checkpoint import CheckpointError
from unforget.utils.cli import UsageError

SCORE_SUM = "score_sum.pt"


def _stored_sum(folder: Path, tasks: int) -> list[torch.Tensor]:
    """Per SupSup layer, the sum of the final scores of the folder's `tasks` tasks."""
    path = Path(folder) / SCORE_SUM
    try:
        stored = read_torch_file(path)
    except UnreadableFile as error:
        raise CheckpointError(f"cannot read the score sum SupSup Transfer needs ({error}); was {folder} learned "
                              "with --supsup_transfer?") from error
    if not isinstance(stored, dict) or stored.get("tasks") != tasks:
        raise CheckpointError(f"{path} does not hold the scores of the {tasks} tasks of its checkpoint")
    return stored["sums"]


def start_from_mean(network: TaskNetwork, task: int, load_folder: str | None) -> None:
    """Set new task `task`'s scores in every SupSup layer to the mean of tasks 1..task-1's final scores (the
    first task keeps its draw)."""
    if task == 1:
        return
    if load_folder is None:  # never: a second task is learned on the checkpoint in --load_folder
        raise UsageError("--supsup_transfer needs --load_folder from the second task on")
    layers = supsup_layers(network)
    sums = _stored_sum(Path(load_folder), task - 1)
    if len(sums) != len(layers):
        raise CheckpointError(f"the score sum in {load_folder} has {len(sums)} layers, the network {len(layers)}")
    with torch.no_grad():
        for layer, total in zip(layers, sums, strict=True):
            layer.scores[str(task)].copy_(total / (task - 1))


def save_sum(network: TaskNetwork, task: int, load_folder: str | None, save_folder: str) -> None:
    """Add task `task`'s final scores (before its mask is stored) to the running sum, into `save_folder`."""
    scores = [layer.scores[str(task)].detach().cpu() for layer in supsup_layers(network)]
    if task > 1:
        if load_folder is None:  # never: a second task is learned on the checkpoint in --load_folder
            raise UsageError("--supsup_transfer needs --load_folder from the second task on")
        scores = [total + new for total, new in zip(_stored_sum(Path(load_folder), task - 1), scores, strict=True)]
    atomic_torch_save({"tasks": task, "sums": scores}, Path(save_folder) / SCORE_SUM)

"""SupSup checkpoints as networks: load one, merge GG's one-task checkpoints, cut a network back to its
first tasks. Public, because the report (utils/methods/supsup/report.py) and the benchmarks (tools/bench_supsup.py) read
SupSup runs as the stages do.
"""

from __future__ import annotations

from pathlib import Path

import torch

from unforget.models.layers.per_task import PerTask
from unforget.models.layers.supsup import supsup_layers
from unforget.models.network import TaskNetwork
from unforget.utils.checkpoint import (
    build_options,
    carried_records,
    carry_records,
    load_checkpoint,
    network_from_checkpoint,
    read_meta,
)
from unforget.utils.cli import UsageError


def load(folder: Path) -> tuple[TaskNetwork, dict]:
    """A SupSup checkpoint as a network with every task's mask stored, and its meta."""
    payload, meta = load_checkpoint(folder), read_meta(folder)
    if payload["mode"] != "supsup":
        raise UsageError(f"{folder} holds a {payload['mode']} checkpoint, not a supsup one")
    network = network_from_checkpoint(payload, **build_options(payload, folder))
    return network, meta


def merge(folders: list[Path]) -> tuple[TaskNetwork, dict]:
    """One network holding the tasks of several checkpoints, each with its masks and batch-norm: the
    first checkpoint's network, with room made for all the others' tasks at once, then filled in."""
    parts = [load(folder) for folder in folders]
    network, meta = parts[0]
    for folder, (part, _) in zip(folders[1:], parts[1:], strict=True):
        for ours, theirs in zip(supsup_layers(network), supsup_layers(part), strict=True):
            if not torch.equal(ours.weight, theirs.weight):
                raise UsageError(f"{folder} was trained on other fixed weights (another --seed or arch)")
    offset = len(network.tasks)
    network.restore_tasks([spec for part, _ in parts[1:] for spec in part.tasks])
    for part, part_meta in parts[1:]:
        carry_records(network, carried_records(part))
        for ours, theirs in zip(supsup_layers(network), supsup_layers(part), strict=True):
            ours.stack[offset:offset + theirs.num_tasks] = theirs.stack
        for our_norms, their_norms in zip(task_norms(network), task_norms(part), strict=True):
            for index, norm in enumerate(their_norms.per_task):
                our_norms.per_task[offset + index].load_state_dict(norm.state_dict())
        meta["accuracy_after_learning"].update(part_meta["accuracy_after_learning"])
        offset += len(part.tasks)
    return network, meta


def first_tasks(network: TaskNetwork, count: int) -> TaskNetwork:
    """The network as it was when it had learned its first `count` tasks: a task's mask and batch-norm never
    change once learned, so dropping the later ones restores that state exactly."""
    if count > len(network.tasks):
        raise UsageError(f"--supsup_tasks {count}: the checkpoint holds only {len(network.tasks)} tasks")
    for layer in supsup_layers(network):
        layer.keep_tasks(count)
    for norm in task_norms(network):
        del norm.per_task[count:]
    network.tasks = network.tasks[:count]
    if count:
        network.set_task(count)
    return network


def task_norms(network: TaskNetwork) -> list[PerTask]:
    """The per-task batch-norms (not the heads): what a task owns besides its masks."""
    return [m for m in network.modules() if isinstance(m, PerTask) and m is not network.heads]

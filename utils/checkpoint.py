"""Checkpoints: one `checkpoint.pth` (tensors, loaded with weights_only=True) and a `meta.json`
beside it that tools read without importing torch. Both are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from models import build_network
from models.layers import copy_into_corner
from models.network import TaskNetwork, TaskSpec
from utils.atomic import atomic_json_dump, atomic_torch_save

CHECKPOINT = "checkpoint.pth"
META = "meta.json"
FORMAT = 1


class CheckpointError(Exception):
    """A checkpoint that is missing or cannot be read."""


def save_checkpoint(folder: Path, network: TaskNetwork, arch: str, meta: dict) -> None:
    """Write the network and its task list, then meta.json (the tools' view of the same checkpoint). Tensors
    are stored in the standard layout, whatever memory format the run trained in."""
    folder = Path(folder)
    for layer in network.cpg_layers():
        layer.store_picks()
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items() if not k.endswith(".piggymask")}
    payload = {"format": FORMAT, "arch": arch, "mode": network.mode, "width": network.width,
               "tasks": [spec.to_json() for spec in network.tasks], "model": state}
    atomic_torch_save(payload, folder / CHECKPOINT)
    atomic_json_dump({"arch": arch, "mode": network.mode, "width": network.width, "tasks": payload["tasks"], **meta},
                     folder / META)


def load_checkpoint(folder: Path) -> dict:
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError(f"unknown format {payload.get('format')!r}")
        payload["tasks"] = [TaskSpec.from_json(t) for t in payload["tasks"]]
        return payload
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint of this toolkit ({error})") from error


def read_meta(folder: Path) -> dict:
    path = Path(folder) / META
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error


def network_from_checkpoint(payload: dict, width: float | None = None) -> TaskNetwork:
    """Rebuild the checkpoint's network, grown to `width` if that is wider (new weights stay freshly
    initialised, ownership of the new region is free)."""
    width = max(payload["width"], width or 0.0)
    network = build_network(payload["arch"], width, payload["tasks"], payload["mode"])
    target = network.state_dict()
    stored = payload["model"]
    if set(stored) != set(target):
        missing, extra = sorted(set(target) - set(stored)), sorted(set(stored) - set(target))
        raise CheckpointError(f"checkpoint does not match {payload['arch']}: missing {missing[:3]}, extra {extra[:3]}")
    with torch.no_grad():
        for name, value in stored.items():
            if value.shape == target[name].shape:
                target[name].copy_(value)
            else:
                copy_into_corner(target[name], value)
    network.set_task(len(network.tasks))
    return network

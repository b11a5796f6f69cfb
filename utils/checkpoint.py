"""Checkpoints: one `checkpoint.pth` (tensors, loaded with weights_only=True) and a `meta.json`
beside it that tools read without importing torch; meta.json also holds the full settings that
made the checkpoint. Both are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from unforget.models import build_network
from unforget.models.layers.base import copy_into_corner
from unforget.models.network import TaskNetwork, TaskSpec
from unforget.utils.atomic import UnreadableFile, atomic_json_dump, atomic_torch_save, read_torch_file
from unforget.utils.settings import Settings

CHECKPOINT = "checkpoint.pth"
META = "meta.json"
FORMAT = 1


class CheckpointError(Exception):
    """A checkpoint that is missing or cannot be read."""


def save_checkpoint(folder: Path, network: TaskNetwork, arch: str, settings: Settings, meta: dict) -> None:
    """Write the network and its task list, then meta.json (the tools' view of the same checkpoint, with the
    settings that made it): a failed write leaves the previous checkpoint whole. Tensors are stored in the
    standard layout, whatever memory format the run trained in; each layer mode decides what of it the
    state dict carries."""
    folder = Path(folder)
    state = {k: _compact(v.detach().cpu().contiguous()) for k, v in network.state_dict().items()}
    payload = {"format": FORMAT, "arch": arch, "mode": network.mode, "width": network.width,
               "tasks": [spec.to_json() for spec in network.tasks], "model": state}
    atomic_torch_save(payload, folder / CHECKPOINT)
    atomic_json_dump({**meta, "arch": arch, "mode": network.mode, "width": network.width, "tasks": payload["tasks"],
                      "settings": settings.to_json()}, folder / META)  # a loaded meta's stale task list never wins


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor alone: a view into a larger buffer (a stack with spare rows) is copied, since saving
    a view writes its whole storage."""
    if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size():
        return tensor.clone()
    return tensor


def _checked(payload: object) -> dict:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"unknown format {payload.get('format') if isinstance(payload, dict) else payload!r}")
    if not isinstance(payload.get("arch"), str) or not isinstance(payload.get("mode"), str):
        raise ValueError("arch and mode must be names")
    if isinstance(payload.get("width"), bool) or not isinstance(payload.get("width"), (int, float)):
        raise ValueError(f"width {payload.get('width')!r} is not a number")
    if not isinstance(payload.get("model"), dict) or not isinstance(payload.get("tasks"), list):
        raise ValueError("no model state or task list")
    try:
        payload["tasks"] = [TaskSpec.from_json(task) for task in payload["tasks"]]
    except (KeyError, TypeError) as error:
        raise ValueError(f"a task entry lacks {error}") from error
    return payload


def load_checkpoint(folder: Path) -> dict:
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = read_torch_file(path)
    except UnreadableFile as error:
        if error.os_error:
            raise CheckpointError(f"checkpoint {error}") from error
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint of this toolkit "
                              f"({error.reason})") from error
    try:
        return _checked(payload)
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path} is not a checkpoint of this toolkit ({error})") from error


def read_meta(folder: Path) -> dict:
    path = Path(folder) / META
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error


def network_from_checkpoint(payload: dict, width: float | None = None, **arch_options) -> TaskNetwork:
    """Rebuild the checkpoint's network, grown to `width` if that is wider (new weights stay freshly
    initialised, ownership of the new region is free). Every stored task is restored at its final
    size straight from the checkpoint, without replaying how it was learned."""
    width = max(payload["width"], width or 0.0)
    grown = width > payload["width"]
    try:
        network = build_network(payload["arch"], width, payload["tasks"], payload["mode"], **arch_options)
    except ValueError as error:  # an unknown architecture or layer mode, a width that does not fit it
        raise CheckpointError(f"checkpoint names a network this toolkit cannot build ({error})") from error
    target = network.state_dict()
    stored = payload["model"]
    if set(stored) != set(target):
        missing, extra = sorted(set(target) - set(stored)), sorted(set(stored) - set(target))
        raise CheckpointError(f"checkpoint does not match {payload['arch']}: missing {missing[:3]}, extra {extra[:3]}")
    with torch.no_grad():
        for name, value in stored.items():
            try:
                if value.shape == target[name].shape:
                    target[name].copy_(value)
                elif grown:
                    copy_into_corner(target[name], value)
                else:  # the same width yet another shape: built for other data (input shape, outputs)
                    raise CheckpointError(f"checkpoint tensor {name} {tuple(value.shape)} does not fit the "
                                          f"{payload['arch']} rebuilt from it {tuple(target[name].shape)}")
            except (ValueError, RuntimeError, AttributeError) as error:
                raise CheckpointError(f"checkpoint tensor {name} does not fit {payload['arch']} ({error})") from error
    network.set_task(len(network.tasks))
    return network

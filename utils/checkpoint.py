"""Checkpoints: one `checkpoint.pth` (tensors, loaded with weights_only=True) and a `meta.json`
beside it that tools read without importing torch; meta.json also holds the full settings that
made the checkpoint. Both are written atomically.

A checkpoint is self-contained (format 2): besides the weights and the task list, its payload records
what rebuilding and using it needs without the data or the driver: the architecture's build options, the
image shape it reads, the benchmark's identity (its name; a spec's file name and content hash, never a path) and,
per task, its class names, image counts and normalisation. A network rebuilt from a checkpoint carries
those task records on to the checkpoints saved from it. Format-1 checkpoints (before these fields) still
load; their fields are absent, and their build options are in meta.json.
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from unforget.models import build_network, input_options
from unforget.models.layers.base import copy_into_corner
from unforget.models.network import TaskNetwork, TaskSpec
from unforget.utils.atomic import UnreadableFile, atomic_json_dump, atomic_torch_save, read_torch_file
from unforget.utils.data.spec import is_spec
from unforget.utils.settings import Settings

if TYPE_CHECKING:
    from unforget.utils.data.tasks import TaskData

CHECKPOINT = "checkpoint.pth"
META = "meta.json"
FORMAT = 2
READABLE = (1, 2)
"""the formats this toolkit loads: 1 predates the self-contained fields, which it lacks"""
ARCH_OPTIONS = ("input_shape", "outputs", "hidden")
"""the meta.json keys that are build options of the architecture (SupSup, the GG baselines and HopSupSup size
their networks to the data); the payload records them as `arch_options`"""
_CARRIED: weakref.WeakKeyDictionary[TaskNetwork, dict[str, dict]] = weakref.WeakKeyDictionary()
"""the task records of each network rebuilt from a checkpoint, carried on to the checkpoints saved from it"""


class CheckpointError(Exception):
    """A checkpoint that is missing or cannot be read."""


def save_checkpoint(folder: Path, network: TaskNetwork, arch: str, settings: Settings, meta: dict,
                    records: dict[str, dict] | None = None) -> None:
    """Write the network, its task list and what using it needs (see the module's docstring), then meta.json
    (the tools' view of the same checkpoint, with the settings that made it): a failed write leaves the
    previous checkpoint whole. `records` are `task_record`s of the tasks this stage read; the network's
    earlier tasks keep the records of the checkpoint it was rebuilt from. Tensors are stored in the standard
    layout, whatever memory format the run trained in; each layer mode decides what of it the state dict
    carries."""
    folder = Path(folder)
    state = {k: _compact(v.detach().cpu().contiguous()) for k, v in network.state_dict().items()}
    records, dataset = records or {}, getattr(settings, "dataset", None)
    known = {**records, **carried_records(network)}  # an earlier task's record is the stage's that learned it
    if dataset in records:
        known[dataset] = records[dataset]
    task_data = {spec.name: known[spec.name] for spec in network.tasks if spec.name in known}
    current = task_data.get(dataset or "", {})
    input_shape = meta.get("input_shape") or current.get("image_shape")
    options = {**(input_options(arch, tuple(input_shape)) if input_shape else {}),
               **{key: meta[key] for key in ARCH_OPTIONS if key in meta}}
    options = {key: list(value) if isinstance(value, tuple) else value for key, value in options.items()}
    described = {"arch_options": options, "image_shape": list(input_shape) if input_shape else None,
                 "benchmark_identity": benchmark_identity(getattr(settings, "benchmark", None)),
                 "task_data": task_data}
    payload = {"format": FORMAT, "arch": arch, "mode": network.mode, "width": network.width,
               "tasks": [spec.to_json() for spec in network.tasks], **described, "model": state}
    atomic_torch_save(payload, folder / CHECKPOINT)
    # the meta's own fields come first: a loaded meta's stale task list or records never win
    atomic_json_dump({**meta, "arch": arch, "mode": network.mode, "width": network.width, "tasks": payload["tasks"],
                      **described, "settings": settings.to_json()}, folder / META)


def task_record(task: TaskData, validation: int | None = None) -> dict:
    """What a checkpoint keeps of one task's data: class names, image shape, image counts (`validation`: the
    training images held out to choose on, None when none were) and the normalisation its network expects
    (per channel, on the [0, 1] scale: the network sees (image / 255 - mean) / std)."""
    return {"classes": list(task.classes), "image_shape": list(task.image_shape),
            "train": int(task.train_labels.numel()), "validation": validation, "test": int(task.test_labels.numel()),
            "mean": [float(value) for value in task.mean], "std": [float(value) for value in task.std]}


def benchmark_identity(benchmark: str | None) -> dict | None:
    """A built-in benchmark's name; a spec file's name (without folder or suffix) and the sha256 of its content,
    so a checkpoint never holds an absolute path yet tells which spec made it (None when no benchmark is known)."""
    if benchmark is None:
        return None
    if not is_spec(benchmark):
        return {"name": benchmark, "spec_sha256": None}
    path = Path(benchmark)
    try:
        digest: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"name": path.stem, "spec_sha256": digest}


def carried_records(network: TaskNetwork) -> dict[str, dict]:
    """The task records `network` carries from the checkpoint it was rebuilt from (empty for a fresh one)."""
    return dict(_CARRIED.get(network, {}))


def carry_records(network: TaskNetwork, records: dict[str, dict]) -> None:
    """Let `network` carry these task records too (a network assembled from several checkpoints' tasks)."""
    _CARRIED[network] = {**_CARRIED.get(network, {}), **records}


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor alone: a view into a larger buffer (a stack with spare rows) is copied, since saving
    a view writes its whole storage."""
    if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size():
        return tensor.clone()
    return tensor


def _checked(payload: object) -> dict:
    if not isinstance(payload, dict) or payload.get("format") not in READABLE:
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
    if payload["format"] >= 2:
        _check_described(payload)
    return payload


def _check_described(payload: dict) -> None:
    """The self-contained fields of format 2 have the types their readers rely on."""
    options, shape, identity, records = (payload.get(key) for key in ("arch_options", "image_shape",
                                                                       "benchmark_identity", "task_data"))
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise ValueError(f"arch_options {options!r} is not a mapping of names")
    if shape is not None and not _whole_numbers(shape):
        raise ValueError(f"image_shape {shape!r} is not a list of sizes")
    if identity is not None and not (isinstance(identity, dict) and isinstance(identity.get("name"), str)):
        raise ValueError(f"benchmark_identity {identity!r} does not name a benchmark")
    if not isinstance(records, dict):
        raise ValueError("task_data is not a mapping of task names")
    for name, record in records.items():
        if not _task_record_fits(record):
            raise ValueError(f"task_data[{name!r}] lacks class names, an image shape or a mean and std per channel")


def _task_record_fits(record: Any) -> bool:
    """A task record as `task_record` writes it: class names, [C, H, W] and C finite means and positive stds."""
    if not isinstance(record, dict) or not isinstance(record.get("classes"), list):
        return False
    shape: Any = record.get("image_shape")
    mean: Any = record.get("mean")
    std: Any = record.get("std")
    if not _whole_numbers(shape) or len(shape) != 3:
        return False
    return all(isinstance(values, list) and len(values) == shape[0] and all(
        isinstance(v, float) and math.isfinite(v) for v in values) for values in (mean, std)) and min(std) > 0


def _whole_numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def stored_options(payload: dict) -> dict | None:
    """The build options a format-2 payload records (input shape as a tuple), or None for format 1 (whose
    options are in meta.json: `meta_options`)."""
    options = payload.get("arch_options")
    if options is None:
        return None
    return {key: tuple(value) if isinstance(value, list) else value for key, value in options.items()}


def meta_options(meta: dict) -> dict:
    """The build options a meta.json records (format 1's only record of them)."""
    return {key: tuple(meta[key]) if isinstance(meta[key], list) else meta[key] for key in ARCH_OPTIONS
            if key in meta}


def build_options(payload: dict, folder: Path | None = None) -> dict:
    """The options that rebuild the checkpoint's network: the payload's, else (format 1) the meta.json in
    `folder`, else none."""
    options = stored_options(payload)
    if options is not None:
        return options
    return meta_options(read_meta(folder)) if folder is not None and (Path(folder) / META).is_file() else {}


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
    size straight from the checkpoint, without replaying how it was learned. The build options are the
    payload's (format 2) updated by `arch_options`; the network carries the payload's task records."""
    width = max(payload["width"], width or 0.0)
    grown = width > payload["width"]
    options = {**(stored_options(payload) or {}), **arch_options}
    try:
        network = build_network(payload["arch"], width, payload["tasks"], payload["mode"], **options)
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
    carry_records(network, payload.get("task_data") or {})
    return network

"""The torch half of `unforget.api`: a checkpoint's task as a network that takes raw images.

`unforget.api` imports this module only when a network is asked for, so opening a run or listing a benchmark
imports no torch. A checkpoint holds every task it learned; `RawImageNetwork` fixes one (a SupSup mask by its
index, a subspace point by alpha) and puts the task's normalisation in front of it, computed as the stages
compute it (utils.data.tasks.DeviceTaskData.normalise), so its logits are the run's bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from unforget.models.layers.subspace import SUBSPACE_MODES
from unforget.models.network import TaskNetwork
from unforget.utils.checkpoint import CheckpointError, build_options, load_checkpoint, network_from_checkpoint
from unforget.utils.methods.subspace.points import Subspace, centre_coefficients, recalibrate_bn


class RawImageNetwork(nn.Module):
    """`model(images)`: task `task`'s logits for raw images [N, C, H, W] as the benchmark serves them (uint8,
    0-255; a float tensor is read on the same scale), normalised with the task's per-channel mean and std."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, network: TaskNetwork, task: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.network, self.task = network, task
        self.task_name = network.tasks[task - 1].name
        deviation = torch.tensor(std).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * deviation))
        self.register_buffer("shift", -torch.tensor(mean).view(1, -1, 1, 1) / deviation)
        network.set_task(task)
        self.eval()

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Raw images as the network reads them: image / 255 - mean, over std, per channel."""
        return images.to(self.scale.device).to(torch.float32) * self.scale + self.shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.network.set_task(self.task)  # several wrappers may share one network
        return self.network(self.normalise(images))

    @torch.no_grad()
    def recalibrate(self, images: torch.Tensor, batch_size: int = 100) -> RawImageNetwork:
        """A subspace point's batch-norm statistics measured afresh on raw training `images` (the stored ones
        were gathered at random points while training; the run's sweep recalibrates on augmented batches)."""
        norms = Subspace.of(self.network).norms if self.network.mode in SUBSPACE_MODES else []
        if not norms:
            raise ValueError(f"a {self.network.mode} network has no subspace batch-norm to recalibrate")
        no_labels = torch.empty(0)  # recalibration reads images only
        batches = ((self.normalise(images[start:start + batch_size]), no_labels)
                   for start in range(0, len(images), batch_size))
        recalibrate_bn(self.network, norms, batches)
        self.eval()
        return self


def task_index(network: TaskNetwork, task: int | str | None) -> int:
    """The 1-based index of `task` (an index, a name, or None for the latest task) in the network."""
    names = [spec.name for spec in network.tasks]
    if task is None:
        return len(names)
    if isinstance(task, int) and not isinstance(task, bool):
        if not 1 <= task <= len(names):
            raise ValueError(f"task {task} is not one of the checkpoint's {len(names)} tasks (1 to {len(names)})")
        return task
    if task not in names:
        raise ValueError(f"the checkpoint holds no task {task!r}; it holds {', '.join(names)}")
    return names.index(task) + 1


def set_point(network: TaskNetwork, alpha: float | None) -> None:
    """Move a subspace network to the point at `alpha` (lines and curves: along them; a simplex: along its edge
    from vertex 0 to vertex 1), or to its centre when `alpha` is None."""
    if network.mode not in SUBSPACE_MODES:
        if alpha is not None:
            raise ValueError(f"alpha picks a point of a subspace; this checkpoint is a {network.mode} network")
        return
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    subspace = Subspace.of(network)
    device = next(network.parameters()).device
    if alpha is None:
        subspace.set_point(centre_coefficients(subspace.kind, subspace.vertices, device))
    else:
        subspace.set_point(subspace.at_alpha(alpha, device))


def load(folder: Path, task: int | str | None = None, alpha: float | None = None,
         normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> RawImageNetwork:
    """The network of the checkpoint in `folder` for `task`, from the checkpoint file alone (a format-1
    checkpoint also reads its meta.json and needs `normalisation`, (mean, std), from its data)."""
    payload = load_checkpoint(Path(folder))
    network = network_from_checkpoint(payload, **build_options(payload, Path(folder)))
    index = task_index(network, task)
    name = network.tasks[index - 1].name
    record = (payload.get("task_data") or {}).get(name)
    if record is not None:
        normalisation = (tuple(record["mean"]), tuple(record["std"]))
    if normalisation is None:
        raise CheckpointError(f"checkpoint {Path(folder) / 'checkpoint.pth'} records no normalisation for task "
                              f"{name!r} (saved before format 2): open it through its run, or pass mean and std")
    set_point(network, alpha)
    return RawImageNetwork(network, index, *normalisation)

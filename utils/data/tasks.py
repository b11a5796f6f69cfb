"""Task data kept as uint8 tensors on the device, augmented and normalised there."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from unforget.utils.data.benchmark import DataError


@dataclass
class TaskData:
    """One task: uint8 images [N, C, H, W], int64 labels, class names and per-channel mean/std in [0, 1]."""

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """[C, H, W] of the images a network sees (networks that size their inputs build from it)."""
        return tuple(self.train_images.shape[1:])

    def split_training(self, kept: torch.Tensor, held: torch.Tensor) -> TaskData:
        """The task trained on training images `kept` and evaluated on training images `held` (see `hold_out`)."""
        return replace(self, train_images=self.train_images[kept], train_labels=self.train_labels[kept],
                       test_images=self.train_images[held], test_labels=self.train_labels[held])

    def on_device(self, device: torch.device, crop_padding: int, flip: bool, resident: bool = True,
                  channels_last: bool = False, shard: tuple[int, int] = (0, 1)) -> DeviceTaskData:
        """The task ready to serve batches on `device` (see `DeviceTaskData`; large image sets stream)."""
        return DeviceTaskData(self, device, crop_padding, flip, resident, channels_last, shard)


VALIDATION_SEED = 0
"""Which training images are held out does not depend on --seed: every stage of a task sees the same."""


def hold_out(task: TaskData, fraction: float) -> TaskData:
    """The task with a seeded `fraction` of its training images as its evaluation split (validation), so
    stages choose on them and never look at the test images."""
    total = task.train_labels.numel()
    count = round(fraction * total)
    if not 0 < count < total:
        raise DataError(f"a validation fraction of {fraction} holds out {count} of the {total} training images "
                        f"of {task.name}: give another --val_fraction (0 chooses on the test images)")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    return task.split_training(order[count:].sort().values, order[:count].sort().values)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the [0, 1] scale."""
    values = images.to(torch.float64).div_(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(values.mean(1).tolist()), tuple(values.std(1).tolist())


def shard_of(index: torch.Tensor, images: torch.Tensor,
             shard: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """This rank's contiguous slice of a batch (its indices and images); None for a batch with fewer
    images than ranks, which every rank skips."""
    rank, ranks = shard
    if ranks == 1:
        return index, images
    if index.numel() < ranks:
        return None
    return index.tensor_split(ranks)[rank], images.tensor_split(ranks)[rank]


class DeviceTaskData:
    """A task moved once to the device; batches are augmented and normalised there.

    With `resident=False` (the plain path) the uint8 data stays on the host, batches are
    drawn and augmented there and moved to the device one at a time; on a CPU device both
    are the same computation. `channels_last` hands out images in that memory layout.
    `shard` (rank, ranks): this process trains on its slice of every training batch (torchrun)."""

    def __init__(self, task: TaskData, device: torch.device, crop_padding: int, flip: bool, resident: bool = True,
                 channels_last: bool = False, shard: tuple[int, int] = (0, 1)):
        self.name = task.name
        self.shard = shard
        self.num_classes = task.num_classes
        self.storage = device if resident else torch.device("cpu")
        self.train_images = task.train_images.to(self.storage)
        self.train_labels = task.train_labels.to(self.storage)
        self.test_images = task.test_images.to(self.storage)
        self.test_labels = task.test_labels.to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        std = torch.tensor(task.std, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(task.mean, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.crop_padding, self.flip = crop_padding, flip
        self.device = device

    def generator(self, seed: int) -> torch.Generator:
        """The seeded generator batches are drawn with (on the device that holds the data)."""
        return torch.Generator(device=self.storage).manual_seed(seed)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images wherever they are -> normalised float32 on the compute device."""
        images = images.to(self.device, non_blocking=True).to(torch.float32) * self.scale + self.shift
        return images.contiguous(memory_format=self.memory_format)

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop (zero padding) and optional horizontal flip, one draw per image."""
        n, _, height, width = images.shape
        if self.crop_padding:
            pad = self.crop_padding
            padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
            offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=self.storage)
            rows = (offsets[0].view(n, 1) + torch.arange(height, device=self.storage)).view(n, 1, height, 1)
            cols = (offsets[1].view(n, 1) + torch.arange(width, device=self.storage)).view(n, 1, 1, width)
            padded = padded.gather(2, rows.expand(n, padded.shape[1], height, padded.shape[3]))
            images = padded.gather(3, cols.expand(n, padded.shape[1], height, width))
        if self.flip:
            flip = torch.rand(n, generator=generator, device=self.storage) < 0.5
            images = torch.where(flip.view(n, 1, 1, 1), images.flip(3), images)
        return images

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled, augmented, normalised training batches (the last one may be smaller).

        Sharded, every rank draws each whole batch as one process would (the same seed keeps their
        generators in step) and keeps its contiguous slice, so the ranks' slices cover the epoch once,
        and together make the batch one process would have trained on. A last batch with fewer images
        than ranks would leave a rank without any: every rank skips it (at most ranks - 1 images)."""
        order = torch.randperm(self.train_labels.numel(), generator=generator, device=self.storage)
        for start in range(0, order.numel(), batch_size):
            index = order[start:start + batch_size]
            images = self.augment(self.train_images[index], generator)
            mine = shard_of(index, images, self.shard)
            if mine is not None:
                yield self.normalise(mine[1]), self.train_labels[mine[0]].to(self.device, non_blocking=True)

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, self.test_labels.numel(), batch_size):
            stop = start + batch_size
            yield self.normalise(self.test_images[start:stop]), self.test_labels[start:stop]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches `train_batches` yields: a last batch too small to shard is not one."""
        count, ranks = self.train_labels.numel(), self.shard[1]
        return -(-count // batch_size) - int(0 < count % batch_size < ranks)


class TensorBatches:
    """Inputs and targets already on the device, served like `DeviceTaskData.train_batches`: shuffled
    batches of equal size (a last partial batch is dropped), or the whole set in order when one batch
    holds it (probe sets for Expand-and-Cluster)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        self.inputs, self.targets, self.device = inputs, targets, inputs.device

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.inputs)
        if batch_size >= count:
            yield self.inputs, self.targets
            return
        order = torch.randperm(count, generator=generator, device=self.device)
        for start in range(0, count - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            yield self.inputs[index], self.targets[index]

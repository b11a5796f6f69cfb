"""Image sets too large to keep in memory at full size (fine-grained images at 224 pixels).

Each split is decoded once into a memory-mapped uint8 file at a fixed short side, centre-cropped to
a square; training sees random-resized crops with a horizontal flip computed on the device, testing
the centre crop. When the images fit in the device's free memory they are moved there once (as
`DeviceTaskData` does); otherwise batches are read from the memory map by a background thread into
pinned memory, so reading overlaps computing. Either way the stages see `DeviceTaskData`'s interface.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unforget.utils.atomic import atomic_torch_save
from unforget.utils.data.benchmark import DataError
from unforget.utils.data.cache import STALE
from unforget.utils.data.tasks import DeviceTaskData, TaskData, shard_of

SPLITS = ("train", "test")
CACHE_VERSION = 1
SCALE = (0.08, 1.0)
"""Share of the image's area a random-resized crop covers (torchvision's default range)."""
RATIO = (3 / 4, 4 / 3)
"""Aspect ratios (width / height) of the crops (torchvision's default range)."""
SHARE_OF_FREE_MEMORY = 0.5
"""The images go to the device when they take at most this share of its free memory (the rest is the network's)."""
READ_AHEAD = 2
"""Batches the loader thread keeps ready."""
STATS_CHUNK = 256

Split = tuple[list[int], Iterable[np.ndarray]]
"""Labels of a split and its images in the same order, each [C, S, S] uint8."""


@dataclass(kw_only=True)
class LargeTaskData(TaskData):
    """A task whose `train_images` / `test_images` are memory maps [N, C, S, S]: the task's images are
    the `train_rows` / `test_rows` of them (a hold-out moves rows, not pixels), labels aligned with the rows."""

    crop: int
    train_rows: torch.Tensor
    test_rows: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.train_images.shape[1], self.crop, self.crop

    def split_training(self, kept: torch.Tensor, held: torch.Tensor) -> LargeTaskData:
        return replace(self, train_rows=self.train_rows[kept], train_labels=self.train_labels[kept],
                       test_images=self.train_images, test_rows=self.train_rows[held],
                       test_labels=self.train_labels[held])

    def on_device(self, device: torch.device, crop_padding: int, flip: bool, resident: bool = True,
                  channels_last: bool = False, shard: tuple[int, int] = (0, 1)) -> LargeDeviceData:
        """Streamed when the images do not fit on the device (or `resident` is False, the plain path);
        `crop_padding` does not apply (random-resized crops instead)."""
        return LargeDeviceData(self, device, flip, resident and fits_on(self, device), channels_last, shard)


def fits_on(task: LargeTaskData, device: torch.device) -> bool:
    """Whether the task's images take at most SHARE_OF_FREE_MEMORY of the device's free memory."""
    size = (task.train_rows.numel() + task.test_rows.numel()) * math.prod(task.train_images.shape[1:])
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):  # a system that does not say: stream, which works everywhere
            free = 0
    return size <= SHARE_OF_FREE_MEMORY * free


def cached_large_task(folder: Path, name: str, classes: tuple[str, ...], image_shape: tuple[int, int, int],
                      crop: int, decode: Callable[[], dict[str, Split]],
                      stats: tuple[tuple[float, ...], tuple[float, ...]] | None) -> LargeTaskData:
    """The task from its memory-mapped cache in `folder`, decoding it first (`decode()`: each split's
    labels and images) when the cache is absent or stale; `stats` None means the training images' own."""
    meta_path = folder / f"meta.v{CACHE_VERSION}.pt"
    if meta_path.is_file():
        try:
            return _open(folder, torch.load(meta_path, map_location="cpu", weights_only=True), crop)
        except OSError as error:
            raise DataError(f"cannot read the data cache {folder}: {error.strerror or error}") from error
        except STALE:  # a stale or truncated cache is simply rebuilt
            meta_path.unlink()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        splits = decode()
        for split, (labels, images) in splits.items():
            _write(folder / f"{split}.u8", image_shape, len(labels), images)
        mean, std = stats or _channel_stats(_memmap(folder / "train.u8", len(splits["train"][0]), image_shape))
        meta = {"name": name, "classes": list(classes), "shape": list(image_shape), "mean": list(mean),
                "std": list(std), **{f"{split}_labels": torch.tensor(splits[split][0]) for split in SPLITS}}
        atomic_torch_save(meta, meta_path)  # written last: its presence says the image files are complete
    except OSError as error:
        raise DataError(f"data cache: {error}") from error
    return _open(folder, meta, crop)


def _write(path: Path, image_shape: tuple[int, int, int], count: int, images: Iterable[np.ndarray]) -> None:
    """Fill a new memory-mapped file with `count` images, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    rows = np.memmap(temporary, dtype=np.uint8, mode="w+", shape=(count, *image_shape))
    for row, image in zip(range(count), images, strict=True):
        rows[row] = image
    rows.flush()
    del rows
    os.replace(temporary, path)


def _memmap(path: Path, count: int, image_shape: tuple[int, ...]) -> torch.Tensor:
    """The file as a tensor whose pages are read when touched (copy-on-write: the cache is never changed)."""
    expected = count * math.prod(image_shape)
    if not path.is_file() or path.stat().st_size != expected:  # a cache from elsewhere or half deleted: rebuild
        raise ValueError(f"{path} is missing or does not hold {expected} bytes")
    return torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c", shape=(count, *image_shape)))


def _open(folder: Path, meta: dict, crop: int) -> LargeTaskData:
    shape = tuple(meta["shape"])
    train_labels, test_labels = meta["train_labels"], meta["test_labels"]
    return LargeTaskData(meta["name"], tuple(meta["classes"]), _memmap(folder / "train.u8", len(train_labels), shape),
                         train_labels, _memmap(folder / "test.u8", len(test_labels), shape), test_labels,
                         tuple(meta["mean"]), tuple(meta["std"]), crop=crop,
                         train_rows=torch.arange(len(train_labels)), test_rows=torch.arange(len(test_labels)))


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std on the [0, 1] scale, a chunk at a time (the images need not fit
    in memory); the same numbers as `channel_stats`."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in images.split(STATS_CHUNK):
        values = chunk.to(torch.float64).div_(255).transpose(0, 1).reshape(channels, -1)
        total += values.sum(1)
        squares += values.square().sum(1)
    count = images.numel() // channels
    mean = total / count
    variance = (squares - count * mean.square()) / (count - 1)
    return tuple(mean.tolist()), tuple(variance.clamp_(min=0).sqrt().tolist())


class _Failure:
    """An exception raised in the loader thread, re-raised in the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def read_ahead(items: Iterator, depth: int = READ_AHEAD) -> Iterator:
    """`items` produced by a background thread, up to `depth` ahead of the consumer; the thread stops when
    the consumer stops early."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                ready.put(item)
                if stop.is_set():
                    return
            ready.put(_END)
        except BaseException as error:  # handed over: the consumer raises it where the batch was wanted
            ready.put(_Failure(error))

    thread = threading.Thread(target=produce, name="batch-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # free a producer blocked on a full queue
            try:
                ready.get(timeout=0.01)
            except queue.Empty:
                pass


class LargeDeviceData(DeviceTaskData):
    """`DeviceTaskData` for a `LargeTaskData`: training batches are random-resized crops (with a flip),
    test batches centre crops. `resident`: the task's images are copied to the device once; otherwise
    they stay in the memory map and each batch is read ahead into pinned memory by a loader thread."""

    def __init__(self, task: LargeTaskData, device: torch.device, flip: bool, resident: bool,
                 channels_last: bool = False, shard: tuple[int, int] = (0, 1)):
        self.crop = task.crop
        if resident:
            task = replace(task, train_images=_gather(task.train_images, task.train_rows, device),
                           test_images=_gather(task.test_images, task.test_rows, device))
            self.train_rows = self.test_rows = None
        else:
            self.train_rows, self.test_rows = task.train_rows, task.test_rows
        super().__init__(task, device, 0, flip, resident, channels_last, shard)

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random-resized crops to crop x crop pixels (SCALE of the area, RATIO aspect, bilinear) and a
        horizontal flip for half of them, drawn with `generator` and computed where the images are."""
        n, channels = images.shape[:2]

        def uniform(low: float, high: float) -> torch.Tensor:
            draw = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
            return (low + (high - low) * draw).to(images.device)

        area = uniform(*SCALE)
        ratio = uniform(math.log(RATIO[0]), math.log(RATIO[1])).exp()
        width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
        theta = torch.zeros(n, 2, 3, dtype=torch.float64, device=images.device)
        theta[:, 0, 0] = width * (torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if self.flip else 1.0)
        theta[:, 1, 1] = height
        theta[:, 0, 2] = uniform(-1, 1) * (1 - width)  # box centres keep the box inside the image
        theta[:, 1, 2] = uniform(-1, 1) * (1 - height)
        grid = F.affine_grid(theta.float(), [n, channels, self.crop, self.crop], align_corners=False)
        return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _read(self, images: torch.Tensor, rows: torch.Tensor | None, indices: Iterable[torch.Tensor],
              window: slice = slice(None)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(index, uint8 images[index] cut to `window`) per index: straight from the device when resident,
        else read ahead from the memory map into pinned memory."""
        if rows is None:
            return ((index, images[index][..., window, window]) for index in indices)
        pin = self.device.type == "cuda"
        batches = ((index, images[rows[index]][..., window, window].contiguous()) for index in indices)
        return read_ahead((index, batch.pin_memory() if pin else batch) for index, batch in batches)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.train_labels.numel(), generator=generator, device=generator.device)
        indices = order.to(self.storage).split(batch_size)
        for index, images in self._read(self.train_images, self.train_rows, indices):
            images = self.augment(images.to(self.device, non_blocking=True), generator)
            mine = shard_of(index, images, self.shard)  # sharded as DeviceTaskData.train_batches
            if mine is not None:
                yield self.normalise(mine[1]), self.train_labels[mine[0]].to(self.device, non_blocking=True)

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        offset = (self.test_images.shape[-1] - self.crop) // 2
        window = slice(offset, offset + self.crop)
        indices = torch.arange(self.test_labels.numel(), device=self.storage).split(batch_size)
        for index, images in self._read(self.test_images, self.test_rows, indices, window):
            yield self.normalise(images), self.test_labels[index.to(self.device)]


def _gather(images: torch.Tensor, rows: torch.Tensor, device: torch.device, chunk: int = 1024) -> torch.Tensor:
    """images[rows] on `device`, copied a chunk at a time (the host need not hold them all at once)."""
    out = torch.empty((rows.numel(), *images.shape[1:]), dtype=torch.uint8, device=device)
    for start in range(0, rows.numel(), chunk):
        out[start:start + chunk] = images[rows[start:start + chunk]].to(device)
    return out

"""Decoding the tasks of a benchmark spec (checked by `utils.data.spec`): image folders, or a torchvision
dataset class read from the data root without downloading. Each task is decoded once and cached under
`<data_root>/spec_cache/<digest>/`, keyed by the spec's content, so an edited spec decodes again; a
spec with "large" gets the memory-mapped cache of `utils.data.large`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unforget.utils.data.cache import cached_task
from unforget.utils.data.large import Split, cached_large_task
from unforget.utils.data.spec import TORCHVISION, Spec, TaskSource, image_files
from unforget.utils.data.tasks import TaskData, channel_stats

CACHE_DIR = "spec_cache"
CACHE_VERSION = 1
DIGEST_LENGTH = 16
SPLITS = ("train", "test")
MODES = {1: "L", 3: "RGB"}
BROKEN_IMAGE = (OSError, ValueError, SyntaxError, EOFError)
"""What PIL raises for a truncated or corrupt file."""


@dataclass(frozen=True)
class Item:
    """One image to decode: its task label, what messages call it, and how to open it (a PIL image)."""

    label: int
    where: str
    open: Callable


def load_task(spec: Spec, data_root: Path, task_name: str) -> TaskData:
    """One task of the spec, from the cache or decoded (`DataError` naming the spec, task and file if not)."""
    source, root = spec.task(task_name), Path(data_root)
    folder = root / CACHE_DIR / spec.digest[:DIGEST_LENGTH]
    if spec.large is None:
        return cached_task(folder / f"{task_name}.v{CACHE_VERSION}.pt", lambda: _decode(spec, root, source))
    side = spec.large.short_side

    def decode() -> dict[str, Split]:
        return {split: _streamed(spec, _items(spec, root, source, split), source.name) for split in SPLITS}

    stats = None if spec.mean is None or spec.std is None else (spec.mean, spec.std)  # both None or neither
    return cached_large_task(folder / task_name, task_name, source.classes, (spec.channels, side, side),
                             spec.large.crop, decode, stats)


def _decode(spec: Spec, root: Path, source: TaskSource) -> TaskData:
    """Both splits in memory; every image must come out the same size (else the spec needs an image_size)."""
    splits, first = [], None
    for split in SPLITS:
        items = _items(spec, root, source, split)
        images = []
        for item in items:
            pixels = _pixels(spec, item, source.name)
            first = first or (item, pixels.shape)
            if pixels.shape != first[1]:
                raise spec.error(f"task {source.name!r}: {item.where} is {_size(pixels.shape)} pixels but "
                                 f"{first[0].where} is {_size(first[1])}; give the spec an \"image_size\"")
            images.append(pixels)
        splits.append((torch.from_numpy(np.stack(images)), torch.tensor([item.label for item in items])))
    (train_images, train_labels), (test_images, test_labels) = splits
    mean, std = channel_stats(train_images) if spec.mean is None or spec.std is None else (spec.mean, spec.std)
    return TaskData(source.name, source.classes, train_images, train_labels, test_images, test_labels, mean, std)


def _streamed(spec: Spec, items: list[Item], task_name: str) -> Split:
    """The labels now, the images one at a time as the memory map is filled."""
    return [item.label for item in items], (_pixels(spec, item, task_name) for item in items)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[1]}"


def _items(spec: Spec, root: Path, source: TaskSource, split: str) -> list[Item]:
    """The split's images in label order (files in name order; dataset rows in file order)."""
    if source.folder is not None:
        return [Item(label, str(path), functools.partial(_open_file, path))
                for label, name in enumerate(source.classes) for path in image_files(source.folder / split / name)]
    dataset = _dataset(spec, root, split)
    targets = np.asarray(dataset.targets if hasattr(dataset, "targets") else dataset.labels)
    label_of = {class_id: label for label, class_id in enumerate(source.class_ids)}
    return [Item(label_of[int(targets[row])], f"{spec.torchvision} {split} image {row}",
                 functools.partial(_open_row, dataset, row))
            for row in np.flatnonzero(np.isin(targets, source.class_ids))]


def _open_file(path: Path):
    from PIL import Image

    return Image.open(path)


def _open_row(dataset, row: int | np.integer):
    return dataset[row][0]


def _dataset(spec: Spec, root: Path, split: str):
    """The torchvision dataset's split as found under the data root (never downloaded)."""
    import torchvision

    if spec.torchvision is None:
        raise TypeError("a spec of image folders has no torchvision dataset")
    kind = getattr(torchvision.datasets, spec.torchvision)
    options = {"split": split} if spec.torchvision == "SVHN" else {"train": split == "train"}
    try:
        return kind(str(root), download=False, **options)
    except Exception as error:  # "Dataset not found", a failed checksum, a truncated file: the same advice
        detail = "" if "not found" in str(error) else f" ({_one_line(error)})"  # not: "use download=True"
        raise spec.error(f"torchvision {spec.torchvision} is missing or unreadable: put its files at "
                         f"{root}/{TORCHVISION[spec.torchvision].files}{detail}") from error


def _pixels(spec: Spec, item: Item, task_name: str) -> np.ndarray:
    """One image as uint8 [C, H, W]: the spec's channels, resized to image_size or (large) to the short
    side and centre-cropped square."""
    from PIL import Image

    try:
        with item.open() as opened:
            image = opened.convert(MODES[spec.channels])
            if spec.large is not None:
                image = _centre_square(image, spec.large.short_side)
            elif spec.image_size is not None:
                image = image.resize((spec.image_size, spec.image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image)
    except BROKEN_IMAGE as error:
        raise spec.error(f"task {task_name!r}: cannot decode {item.where} ({_one_line(error)})") from error
    return pixels.reshape(*pixels.shape[:2], -1).transpose(2, 0, 1)


def _centre_square(image, side: int):
    """Resized so the short side is `side` (aspect kept), then the centre `side` x `side` square."""
    from PIL import Image

    scale = side / min(image.size)
    width, height = (max(side, round(length * scale)) for length in image.size)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


"""The MNIST family of SupSup: permuted, rotated and split MNIST, plus permuted digits and plain MNIST.

MNIST comes from torchvision's files under the data root (`MNIST/raw/*-ubyte`); it is decoded
once into a uint8 cache, and every task is a cheap transform of that cache: a fixed pixel
permutation (task i seeded by i + PERMUTATION_SEED, task 0 permuted too, as the reference),
a rotation by 10 degrees per task (nearest neighbour, no expansion, like PIL's rotate), or a
pair of digits. `permuted_digits` applies the same permutations to the embedded 8x8 digits
(all ten classes), a no-download test bed for task inference.
"""

from __future__ import annotations

import functools
import math
import os
import socket
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unforget.utils.data.benchmark import DataError
from unforget.utils.data.cache import cached_task
from unforget.utils.data.digits import load_all_digits
from unforget.utils.data.supsup_names import (
    PERMUTED_DIGITS_TASKS,
    PERMUTED_MNIST_TASKS,
    ROTATED_MNIST_TASKS,
    ROTATION_STEP,
    SPLIT_MNIST_TASKS,
)
from unforget.utils.data.tasks import TaskData, channel_stats

PERMUTATION_SEED = 1
CACHE_VERSION = 1
DOWNLOAD_TIMEOUT_S = 10.0
DIGITS = tuple(str(d) for d in range(10))
IMAGE_SIZE = (28, 28)


def _raw_folder(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _read(root: Path, train: bool):
    import torchvision

    return torchvision.datasets.MNIST(str(root), train=train, download=False)


def _download(root: Path) -> None:
    """One quiet torchvision download when the files are absent; failures become one DataError line."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            import torchvision

            torchvision.datasets.MNIST(str(root), train=True, download=True)
    except Exception as error:  # network, checksum or archive: the same advice for the user
        for folder in (_raw_folder(root), _raw_folder(root).parent):  # leave no empty folder behind to mislead
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise DataError(f"MNIST not found: put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                        f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte in {_raw_folder(root)}/ "
                        f"(download failed: {' '.join(str(error).split())[:200]})") from error
    finally:
        socket.setdefaulttimeout(previous)


def _decode_mnist(root: Path) -> TaskData:
    if not _raw_folder(root).is_dir():
        _download(root)
    try:
        train, test = _read(root, True), _read(root, False)
    except Exception as error:  # torchvision says "Dataset not found" or fails on a truncated file
        raise DataError(f"cannot read MNIST in {_raw_folder(root)}/ ({' '.join(str(error).split())}); put "
                        f"torchvision's MNIST/raw files there") from error
    for split in (train, test):
        if tuple(split.data.shape[1:]) != IMAGE_SIZE:
            raise DataError(f"MNIST in {_raw_folder(root)}/ holds images of {tuple(split.data.shape[1:])} pixels, "
                            f"not {IMAGE_SIZE}: put torchvision's MNIST/raw files there")
    train_images, test_images = train.data.unsqueeze(1), test.data.unsqueeze(1)
    mean, std = channel_stats(train_images)
    return TaskData("mnist", DIGITS, train_images, train.targets, test_images, test.targets, mean, std)


def _base_mnist(root: Path) -> TaskData:
    return _read_base(Path(root).resolve())


@functools.lru_cache(maxsize=1)
def _read_base(root: Path) -> TaskData:
    """Decoded MNIST, read once per process: a stage evaluating k permuted or rotated tasks transforms
    one copy k times instead of reading the cache k times (the tasks never change it in place)."""
    return cached_task(root / "mnist_cache" / f"mnist.v{CACHE_VERSION}.pt", lambda: _decode_mnist(root))


def _with_images(base: TaskData, name: str, transform) -> TaskData:
    return TaskData(name, base.classes, transform(base.train_images), base.train_labels,
                    transform(base.test_images), base.test_labels, base.mean, base.std)


def permutation(index: int, pixels: int) -> torch.Tensor:
    """Task `index`'s pixel order (numpy's RandomState seeded by index + PERMUTATION_SEED)."""
    return torch.from_numpy(np.random.RandomState(index + PERMUTATION_SEED).permutation(pixels))


def permute(images: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    return images.flatten(1)[:, order].view_as(images)


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Counter-clockwise rotation about the centre, nearest neighbour, zero fill (PIL's rotate)."""
    angle = math.radians(degrees)
    theta = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]])
    grid = F.affine_grid(theta.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    rotated = F.grid_sample(images.float(), grid, mode="nearest", align_corners=False)
    return rotated.round().to(torch.uint8)


def load_mnist(data_root: Path, task_name: str) -> TaskData:
    """Plain MNIST, all ten digits as one task (single-task methods, e.g. the teachers of --method extract)."""
    return _base_mnist(data_root)


def load_permuted(data_root: Path, task_name: str) -> TaskData:
    base = _base_mnist(data_root)
    order = permutation(PERMUTED_MNIST_TASKS.index(task_name), base.train_images[0].numel())
    return _with_images(base, task_name, lambda images: permute(images, order))


def load_rotated(data_root: Path, task_name: str) -> TaskData:
    degrees = ROTATION_STEP * ROTATED_MNIST_TASKS.index(task_name)
    return _with_images(_base_mnist(data_root), task_name, lambda images: rotate(images, degrees))


def load_split(data_root: Path, task_name: str) -> TaskData:
    base = _base_mnist(data_root)
    first = 2 * SPLIT_MNIST_TASKS.index(task_name)
    splits = []
    for images, labels in ((base.train_images, base.train_labels), (base.test_images, base.test_labels)):
        member = (labels == first) | (labels == first + 1)
        splits += [images[member], labels[member] - first]
    train_images, train_labels, test_images, test_labels = splits
    mean, std = channel_stats(train_images)
    return TaskData(task_name, DIGITS[first:first + 2], train_images, train_labels, test_images, test_labels, mean, std)


def load_permuted_digits(data_root: Path, task_name: str) -> TaskData:
    base = load_all_digits(data_root, "digits10")
    order = permutation(PERMUTED_DIGITS_TASKS.index(task_name), base.train_images[0].numel())
    return _with_images(base, task_name, lambda images: permute(images, order))

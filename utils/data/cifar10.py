"""cifar10: CIFAR-10 as one ten-class task, read from the official python pickle.

Expects `<data_root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`
(no download). The task is decoded once and cached as uint8 tensors with its own
per-channel mean/std.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from unforget.utils.data.benchmark import DataError
from unforget.utils.data.cache import cached_task
from unforget.utils.data.tasks import TaskData, channel_stats

PICKLE_DIR = "cifar-10-batches-py"
CACHE_DIR = "cifar10_cache"
CACHE_VERSION = 1
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)


def load_task(data_root: Path, task_name: str) -> TaskData:
    root = Path(data_root)
    return cached_task(root / CACHE_DIR / f"{task_name}.v{CACHE_VERSION}.pt", lambda: _decode(root, task_name))


def _decode(root: Path, task_name: str) -> TaskData:
    folder = root / PICKLE_DIR
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 not found: put the official python version at {folder}/ "
                        f"({', '.join(TRAIN_FILES)}, {TEST_FILE})")
    train_images, train_labels = _read(folder, TRAIN_FILES)
    test_images, test_labels = _read(folder, (TEST_FILE,))
    mean, std = channel_stats(train_images)
    return TaskData(task_name, CLASSES, train_images, train_labels, test_images, test_labels, mean, std)


def _read(folder: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 3, 32, 32] uint8 and int64 labels of the named batch files, in file order."""
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with path.open("rb") as file:
                entry = pickle.load(file, encoding="bytes")
            data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, *IMAGE_SHAPE)
            label = np.asarray(entry[b"labels"], dtype=np.int64)
        except Exception as error:  # missing, truncated or foreign: one message naming the file
            raise DataError(f"cannot read {path} as a CIFAR-10 python batch ({type(error).__name__}: {error}); "
                            f"put the official python version at {folder}/") from error
        if len(data) != len(label):
            raise DataError(f"{path} holds {len(data)} images but {len(label)} labels")
        images.append(data)
        labels.append(label)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))

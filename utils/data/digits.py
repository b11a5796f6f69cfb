"""split_digits: scikit-learn's bundled 8x8 digits as five two-class tasks (0/1, 2/3, ... 8/9).

Real data that ships with a package, so the toolkit runs anywhere without a
download. Each class is split 2/3 train, 1/3 test with a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unforget.utils.data.cache import cached_task
from unforget.utils.data.tasks import TaskData, channel_stats

SPLIT_SEED = 0
TEST_FRACTION = 1 / 3
CACHE_VERSION = 1


def _decode(task_name: str) -> TaskData:
    first = int(task_name.removeprefix("digits_")[0])
    return decode_digits(task_name, tuple(range(first, first + 2)))


def decode_digits(task_name: str, classes: tuple[int, ...]) -> TaskData:
    """Consecutive digits `classes` as one task (labels from 0), each split with the fixed seed; the
    split of a digit is the same whichever task it is in."""
    from sklearn.datasets import load_digits  # slow import, only when the cache is cold

    digits = load_digits()
    first = classes[0]
    rng = np.random.RandomState(SPLIT_SEED)
    train_index, test_index = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(digits.target == digit))
        if digit in classes:
            cut = int(round(len(members) * TEST_FRACTION))
            test_index.append(members[:cut])
            train_index.append(members[cut:])
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]

    def subset(parts):
        index = np.sort(np.concatenate(parts))
        labels = (digits.target[index] - first).astype(np.int64)
        return torch.from_numpy(images[index].copy()), torch.from_numpy(labels)

    train_images, train_labels = subset(train_index)
    test_images, test_labels = subset(test_index)
    mean, std = channel_stats(train_images)
    return TaskData(task_name, tuple(str(c) for c in classes), train_images, train_labels, test_images,
                    test_labels, mean, std)


def load_task(data_root: Path, task_name: str) -> TaskData:
    path = Path(data_root) / "split_digits" / f"{task_name}.v{CACHE_VERSION}.pt"
    return cached_task(path, lambda: _decode(task_name))


def load_all_digits(data_root: Path, task_name: str) -> TaskData:
    """digits10: all ten digits as one task (single-task methods such as subspaces)."""
    path = Path(data_root) / "digits10" / f"{task_name}.v{CACHE_VERSION}.pt"
    return cached_task(path, lambda: decode_digits(task_name, tuple(range(10))))

"""rand_split_cifar100: SupSup's RandSplitCIFAR100, 20 tasks of 5 classes from a seeded permutation of
all 100 classes (np.random.seed(SPLIT_SEED) as the reference's --seed 0); labels follow the permutation
order within a task. Built from the CIFAR-100 reader's cached superclass tasks."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from unforget.utils.data.cifar100 import load_all_classes
from unforget.utils.data.cifar100_names import FINE_NAMES
from unforget.utils.data.supsup_names import RAND_SPLIT_CIFAR100_TASKS as TASK_NAMES
from unforget.utils.data.tasks import TaskData, channel_stats

SPLIT_SEED = 0
CLASSES_PER_TASK = 5


def task_classes(index: int) -> np.ndarray:
    """Fine class ids of task `index` (0-based)."""
    order = np.random.RandomState(SPLIT_SEED).permutation(len(FINE_NAMES))
    return order[index * CLASSES_PER_TASK:(index + 1) * CLASSES_PER_TASK]


@functools.lru_cache(maxsize=1)
def _all_classes(root: Path) -> list:
    """All 100 classes, assembled once per process: a stage evaluating every task (GG inference) selects each
    task from one copy instead of reading the 20 superclass caches again per task (none changes it in place)."""
    return load_all_classes(root)


def load_task(data_root: Path, task_name: str) -> TaskData:
    classes = torch.from_numpy(task_classes(TASK_NAMES.index(task_name)))
    splits = []
    for images, labels in _all_classes(Path(data_root).resolve()):
        member = (labels.unsqueeze(1) == classes).any(1)
        splits.append((images[member], (labels[member].unsqueeze(1) == classes).int().argmax(1)))
    (train_images, train_labels), (test_images, test_labels) = splits
    mean, std = channel_stats(train_images)
    return TaskData(task_name, tuple(FINE_NAMES[c] for c in classes.tolist()), train_images, train_labels,
                    test_images, test_labels, mean, std)

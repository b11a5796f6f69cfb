"""Benchmarks by name: their tasks, default architecture, augmentation and goals.

This module imports no torch, so drivers can list tasks in milliseconds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from utils.data.cifar100_names import TASK_NAMES as CIFAR100_TASKS
from utils.data.cifar100_names import baseline_goals
from utils.data.supsup_names import (
    PERMUTED_DIGITS_TASKS,
    PERMUTED_MNIST_TASKS,
    RAND_SPLIT_CIFAR100_TASKS,
    ROTATED_MNIST_TASKS,
    SPLIT_MNIST_TASKS,
)


class DataError(Exception):
    """Data that is missing or unreadable; the message says what to put where."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    task_names: tuple[str, ...]
    arch: str
    loader: str
    crop_padding: int
    flip: bool
    default_goals: dict[str, float] = field(default_factory=dict)
    needs_files: bool = True

    def load_task(self, data_root, task_name: str):
        """Decode (or read from cache) one task's uint8 images; see `utils.data.TaskData`."""
        if task_name not in self.task_names:
            raise DataError(f"benchmark {self.name} has no task {task_name!r}; tasks: {', '.join(self.task_names)}")
        module_name, function_name = self.loader.split(":")
        return getattr(importlib.import_module(module_name), function_name)(data_root, task_name)


DIGIT_TASKS = tuple(f"digits_{2 * i}{2 * i + 1}" for i in range(5))

BENCHMARKS: dict[str, Benchmark] = {
    "synthetic_cifar": Benchmark(
        name="synthetic_cifar",
        task_names=tuple(f"synthetic_{i}" for i in range(1, 21)),
        arch="custom_vgg_cifar100",
        loader="utils.data.synthetic:load_task",
        crop_padding=4,
        flip=True,
        default_goals={f"synthetic_{i}": 0.0 for i in range(1, 21)},
        needs_files=False,
    ),
    "split_digits": Benchmark(
        name="split_digits",
        task_names=DIGIT_TASKS,
        arch="digits_convnet",
        loader="utils.data.digits:load_task",
        crop_padding=1,
        flip=False,
        default_goals={name: 0.97 for name in DIGIT_TASKS},
        needs_files=False,
    ),
    "cifar100": Benchmark(
        name="cifar100",
        task_names=CIFAR100_TASKS,
        arch="custom_vgg_cifar100",
        loader="utils.data.cifar100:load_task",
        crop_padding=4,
        flip=True,
        default_goals=baseline_goals(),
        needs_files=True,
    ),
    "digits10": Benchmark(
        name="digits10",
        task_names=("digits10",),
        arch="digits_convnet",
        loader="utils.data.digits:load_all_digits",
        crop_padding=1,
        flip=False,
        default_goals={"digits10": 0.95},
        needs_files=False,
    ),
    "cifar10": Benchmark(
        name="cifar10",
        task_names=("cifar10",),
        arch="custom_vgg_cifar100",
        loader="utils.data.cifar10:load_task",
        crop_padding=4,
        flip=True,
        needs_files=True,
    ),
    "rand_split_cifar100": Benchmark(
        name="rand_split_cifar100", task_names=RAND_SPLIT_CIFAR100_TASKS, arch="gem_resnet18",
        loader="utils.data.rand_cifar100:load_task", crop_padding=4, flip=True,
    ),
    "permuted_mnist": Benchmark(
        name="permuted_mnist", task_names=PERMUTED_MNIST_TASKS, arch="lenet_300_100",
        loader="utils.data.mnist:load_permuted", crop_padding=0, flip=False,
    ),
    "rotated_mnist": Benchmark(
        name="rotated_mnist", task_names=ROTATED_MNIST_TASKS, arch="fc_1024_1024",
        loader="utils.data.mnist:load_rotated", crop_padding=0, flip=False,
    ),
    "split_mnist": Benchmark(
        name="split_mnist", task_names=SPLIT_MNIST_TASKS, arch="lenet_300_100",
        loader="utils.data.mnist:load_split", crop_padding=0, flip=False,
    ),
    "gaussian_teacher": Benchmark(
        name="gaussian_teacher", task_names=("gaussian",), arch="students_mlp",
        loader="utils.extraction.teachers:no_images", crop_padding=0, flip=False, needs_files=False,
    ),
    "permuted_digits": Benchmark(
        name="permuted_digits", task_names=PERMUTED_DIGITS_TASKS, arch="lenet_300_100",
        loader="utils.data.mnist:load_permuted_digits", crop_padding=0, flip=False, needs_files=False,
    ),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]

"""Benchmarks by name (or by spec file, see `utils.data.spec`): their tasks, default architecture,
augmentation and goals.

This module imports no torch, so drivers can list tasks in milliseconds. `Benchmark` and `DataError` live in
`utils.data.benchmark` (the data layer's leaf) and are importable from here too.
"""

from __future__ import annotations

from unforget.utils.data.benchmark import Benchmark, DataError
from unforget.utils.data.cifar100_names import TASK_NAMES as CIFAR100_TASKS
from unforget.utils.data.cifar100_names import baseline_goals
from unforget.utils.data.supsup_names import (
    PERMUTED_DIGITS_TASKS,
    PERMUTED_MNIST_TASKS,
    RAND_SPLIT_CIFAR100_TASKS,
    ROTATED_MNIST_TASKS,
    SPLIT_MNIST_TASKS,
)

DIGIT_TASKS = tuple(f"digits_{2 * i}{2 * i + 1}" for i in range(5))
SYNTHETIC_TASKS = tuple(f"synthetic_{i}" for i in range(1, 21))
MNIST = "unforget.utils.data.mnist"

BENCHMARKS: dict[str, Benchmark] = {benchmark.name: benchmark for benchmark in (
    # name, tasks in learning order, default architecture, loader, crop padding, flip, default goals
    Benchmark("split_digits", DIGIT_TASKS, "digits_convnet", "unforget.utils.data.digits:load_task", 1, False,
              dict.fromkeys(DIGIT_TASKS, 0.97), val_fraction=0.2),  # 48 of 240 images: the 0.97 goal allows 1 error
    Benchmark("digits10", ("digits10",), "digits_convnet", "unforget.utils.data.digits:load_all_digits", 1, False,
              {"digits10": 0.95}),
    Benchmark("permuted_digits", PERMUTED_DIGITS_TASKS, "lenet_300_100", f"{MNIST}:load_permuted_digits", 0, False),
    Benchmark("cifar100", CIFAR100_TASKS, "custom_vgg_cifar100", "unforget.utils.data.cifar100:load_task", 4, True,
              baseline_goals()),
    Benchmark("cifar10", ("cifar10",), "custom_vgg_cifar100", "unforget.utils.data.cifar10:load_task", 4, True),
    Benchmark("synthetic_cifar", SYNTHETIC_TASKS, "custom_vgg_cifar100", "unforget.utils.data.synthetic:load_task", 4,
              True, dict.fromkeys(SYNTHETIC_TASKS, 0.0)),
    Benchmark("rand_split_cifar100", RAND_SPLIT_CIFAR100_TASKS, "gem_resnet18",
              "unforget.utils.data.rand_cifar100:load_task", 4, True),
    Benchmark("permuted_mnist", PERMUTED_MNIST_TASKS, "lenet_300_100", f"{MNIST}:load_permuted", 0, False),
    Benchmark("rotated_mnist", ROTATED_MNIST_TASKS, "fc_1024_1024", f"{MNIST}:load_rotated", 0, False),
    Benchmark("split_mnist", SPLIT_MNIST_TASKS, "lenet_300_100", f"{MNIST}:load_split", 0, False),
    Benchmark("mnist", ("mnist",), "mnist_mlp_32", f"{MNIST}:load_mnist", 0, False),
    Benchmark("gaussian_teacher", ("gaussian",), None, None, 0, False),  # no images: --method extract draws inputs
)}


def get_benchmark(name: str) -> Benchmark:
    """A built-in benchmark by name, or the one a spec file (`*.json`, see `utils.data.spec`) describes."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    from unforget.utils.data.spec import is_spec, read_spec

    if is_spec(name):
        return read_spec(name)
    raise DataError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}, or a benchmark spec file "
                    "(*.json, see the README)")

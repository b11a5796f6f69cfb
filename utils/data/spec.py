"""Benchmark specs: a task sequence described by a small JSON file, usable wherever a built-in
benchmark name is (`--benchmark path/to/spec.json`).

Tasks come from image folders (`<images>/<task>/{train,test}/<class>/*.{jpg,jpeg,png}`) or from a
torchvision dataset class on disk, split by class lists or a seeded partition. Everything a spec
can get wrong that is visible without decoding is checked here, without torch, so
`tools.list_tasks` stays fast and a bad spec is one `DataError` line naming the file and the entry;
decoding is `utils.data.spec_data`'s job. The README section "Bring your own data" is the
user-facing description of the format.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from unforget.utils.data.benchmark import Benchmark, DataError
from unforget.utils.data.cifar100_names import FINE_NAMES
from unforget.utils.records import RecordError, goal_value

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
"""The first bytes of a PNG and of a JPEG file: checking them catches garbage without decoding."""
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""Task names become folder names and --dataset values: no separators, no leading dot or dash."""
KEYS = ("arch", "images", "torchvision", "tasks", "split", "channels", "image_size", "large", "normalise",
        "crop_padding", "flip", "goals")
SPLIT_KEYS = ("tasks", "seed", "classes_per_task", "names")
DIGITS = tuple(str(digit) for digit in range(10))
MAX_DEPTH = 16
"""A spec nests a few levels (split names in an object in the spec); a deeper file is not a spec."""
MAX_SIDE = 4096
"""The largest image side (image_size, large's sizes) a spec may ask for: a batch of larger ones fits no GPU."""
MAX_PADDING = 256
MAX_SEED = 2**32 - 1  # numpy's RandomState takes no larger one
MNIST_FILES = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"


@dataclass(frozen=True)
class TorchvisionSet:
    """A torchvision dataset class the loader knows: its class names (label order), channels, and
    where its files go under the data root (said in every message about missing files)."""

    classes: tuple[str, ...]
    channels: int
    files: str


TORCHVISION: dict[str, TorchvisionSet] = {
    "MNIST": TorchvisionSet(DIGITS, 1, f"MNIST/raw/ ({MNIST_FILES})"),
    "FashionMNIST": TorchvisionSet(("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                    "Sneaker", "Bag", "Ankle boot"), 1, f"FashionMNIST/raw/ ({MNIST_FILES})"),
    "CIFAR10": TorchvisionSet(("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                               "truck"), 3, "cifar-10-batches-py/ (data_batch_1 ... data_batch_5, test_batch, "
                                            "batches.meta)"),
    "CIFAR100": TorchvisionSet(FINE_NAMES, 3, "cifar-100-python/ (train, test, meta)"),
    "SVHN": TorchvisionSet(DIGITS, 3, "train_32x32.mat and test_32x32.mat (reading them needs scipy)"),
}


@dataclass(frozen=True)
class Large:
    """Images kept at `short_side` (centre-cropped square) in a memory-mapped cache, trained on
    random-resized crops of `crop` pixels and tested on the centre crop."""

    short_side: int
    crop: int


@dataclass(frozen=True)
class TaskSource:
    """One task: its class names in label order and where its images are: `folder` (image folders)
    or the dataset labels `class_ids` (torchvision)."""

    name: str
    classes: tuple[str, ...]
    folder: Path | None = None
    class_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A checked spec. `digest` keys the decode cache: it changes with the file's content and with
    where its image folders are."""

    path: Path
    digest: str
    tasks: tuple[TaskSource, ...]
    torchvision: str | None
    channels: int
    image_size: int | None
    large: Large | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def task(self, name: str) -> TaskSource:
        return next(task for task in self.tasks if task.name == name)

    def error(self, message: str) -> DataError:
        return DataError(f"{self.path}: {message}")


def is_spec(name: str) -> bool:
    """Whether a --benchmark value names a spec file rather than a built-in benchmark."""
    return name.endswith(".json")


def image_files(folder: Path) -> list[Path]:
    """A class folder's images in sorted name order (hidden files skipped), so every machine decodes the same."""
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES
                  and not path.name.startswith(".") and path.is_file())


def read_spec(name: str) -> Benchmark:
    """The benchmark a spec file describes; `DataError` (one line: the file, the entry, what is wrong)
    for anything amiss."""
    path = Path(name)
    try:
        content = path.read_bytes()
    except FileNotFoundError as error:
        raise DataError(f"benchmark spec {name} does not exist (relative paths start at {Path.cwd()})") from error
    except OSError as error:
        raise DataError(f"cannot read benchmark spec {name}: {error.strerror or error}") from error
    return _parse(name, path.resolve(), content)


@functools.lru_cache(maxsize=8)
def _parse(name: str, path: Path, content: bytes) -> Benchmark:
    """Parsed once per process and content: a stage asks for its benchmark several times."""
    try:
        _check_depth(name, content.decode())
        data = json.loads(content, parse_int=functools.partial(_integer, name), parse_constant=functools.partial(
            _constant, name))
    except UnicodeDecodeError as error:
        raise DataError(f"{name}: not a text file") from error
    except json.JSONDecodeError as error:
        raise DataError(f"{name}: not JSON ({error.msg} at line {error.lineno} column {error.colno})") from error
    return _Parser(name, path).benchmark(data, content)


def _check_depth(name: str, text: str) -> None:
    """Refuse brackets nested deeper than MAX_DEPTH before json does, which recurses once per level."""
    depth = 0
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', "", text):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise DataError(f"{name}: brackets nested deeper than {MAX_DEPTH} levels; not a benchmark spec")
        elif char in "]}":
            depth -= 1


def _integer(name: str, digits: str) -> int:
    """JSON integers of at most 18 digits: no spec number is larger, and int() refuses very long ones."""
    if len(digits.lstrip("-")) > 18:
        raise DataError(f"{name}: the number {digits[:20]}... is too large for any entry of a spec")
    return int(digits)


def _constant(name: str, constant: str) -> float:
    raise DataError(f"{name}: {constant} is not allowed (JSON has no such number; give a finite one)")


class _Parser:
    """Checks one spec's entries in order; `fail` names the file and the entry."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path

    def fail(self, entry: str, problem: str) -> DataError:
        return DataError(f"{self.name}: {entry}: {problem}")

    def benchmark(self, data: Any, content: bytes) -> Benchmark:
        if not isinstance(data, dict):
            raise DataError(f"{self.name}: not a JSON object (see the README's \"Bring your own data\")")
        for key in data:
            if key not in KEYS:
                raise self.fail(repr(key), f"unknown key (known: {', '.join(KEYS)})")
        tasks, where, default_channels = self.source(data)
        channels = data.get("channels", default_channels)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise self.fail('"channels"', f"must be 1 (grey) or 3 (RGB), got {channels!r}")
        large = self.large(data.get("large"))
        image_size = self.integer(data, "image_size", None, 1, MAX_SIDE)
        if large and image_size:
            raise self.fail('"image_size"', "does not go with \"large\" (which sets its own sizes)")
        crop_padding = self.integer(data, "crop_padding", 0, 0, min(MAX_PADDING, image_size or MAX_PADDING))
        if large and crop_padding:
            raise self.fail('"crop_padding"', "does not go with \"large\" (which trains on random-resized crops)")
        flip = data.get("flip", False)
        if not isinstance(flip, bool):
            raise self.fail('"flip"', f"must be true or false, got {flip!r}")
        arch = data.get("arch")
        if arch is not None and not (isinstance(arch, str) and arch):
            raise self.fail('"arch"', f"must be an architecture name, got {arch!r}")
        mean, std = self.normalise(data.get("normalise", "per_task"), channels)
        names = tuple(task.name for task in tasks)
        spec = Spec(self.path, hashlib.sha256(content + b"\0" + where.encode()).hexdigest(), tasks,
                    data.get("torchvision"), channels, image_size, large, mean, std)
        return Benchmark(self.name, names, arch, "unforget.utils.data.spec_data:load_task", crop_padding, flip,
                         self.goals(data.get("goals", {}), names), spec)

    def source(self, data: dict) -> tuple[tuple[TaskSource, ...], str, int]:
        """The tasks, where their images are (part of the cache key) and the source's own channel count."""
        if ("images" in data) == ("torchvision" in data):
            raise DataError(f"{self.name}: give exactly one source: \"images\" (a folder of task folders) or "
                            f"\"torchvision\" (a dataset class: {', '.join(TORCHVISION)})")
        if "torchvision" in data:
            kind = data["torchvision"]
            dataset = TORCHVISION.get(kind) if isinstance(kind, str) else None
            if dataset is None:
                raise self.fail('"torchvision"', f"unknown dataset class {kind!r} (known: "
                                                 f"{', '.join(TORCHVISION)})")
            return self.torchvision_tasks(data, dataset), "", dataset.channels
        if "split" in data:
            raise self.fail('"split"', "only a torchvision source is split by a partition; image folders "
                                       "are one task each")
        root = self.images_root(data["images"])
        return self.folder_tasks(data, root), str(root), 3

    @overload
    def integer(self, data: dict, key: str, default: int, at_least: int, at_most: int) -> int: ...

    @overload
    def integer(self, data: dict, key: str, default: None, at_least: int, at_most: int, *,
                required: Literal[True]) -> int: ...

    @overload
    def integer(self, data: dict, key: str, default: None, at_least: int, at_most: int) -> int | None: ...

    def integer(self, data: dict, key: str, default: int | None, at_least: int, at_most: int, *,
                required: bool = False) -> int | None:
        """data[key], a whole number in [at_least, at_most]; `default` where an optional key is left out. A
        required key's null is refused like any other non-number (it would reach arithmetic as None)."""
        value = data.get(key, default)
        if value is default and not required:
            return value
        if not isinstance(value, int) or isinstance(value, bool) or not at_least <= value <= at_most:
            raise self.fail(repr(key), f"must be a whole number from {at_least} to {at_most}, got {value!r}")
        return value

    def large(self, value: Any) -> Large | None:
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"short_side", "crop"}:
            raise self.fail('"large"', f"must be {{\"short_side\": N, \"crop\": M}} (e.g. 256 and 224), got "
                                       f"{json.dumps(value)}")
        short_side, crop = (self.integer(value, key, None, 1, MAX_SIDE, required=True)
                            for key in ("short_side", "crop"))
        if crop > short_side:
            raise self.fail('"large"', f"crop {crop} is larger than short_side {short_side}")
        return Large(short_side, crop)

    def normalise(self, value: Any, channels: int) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """(None, None) for per-task statistics, else the given mean and std on the [0, 1] scale."""
        if value == "per_task":
            return None, None
        if not isinstance(value, dict) or set(value) != {"mean", "std"}:
            raise self.fail('"normalise"', f"must be \"per_task\" or {{\"mean\": [...], \"std\": [...]}}, got "
                                           f"{json.dumps(value)}")
        parts = []
        for key in ("mean", "std"):
            numbers = value[key]
            if not (isinstance(numbers, list) and len(numbers) == channels and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers)):
                raise self.fail(f'"normalise" {key}', f"must be {channels} number(s), one per channel, got "
                                                      f"{json.dumps(numbers)}")
            parts.append(tuple(float(x) for x in numbers))
        if min(parts[1]) <= 0:
            raise self.fail('"normalise" std', f"must be positive, got {list(parts[1])}")
        return parts[0], parts[1]

    def goals(self, value: Any, names: tuple[str, ...]) -> dict[str, float]:
        if not isinstance(value, dict):
            raise self.fail('"goals"', "must map task names to accuracy goals (fractions, or \"force_growth\")")
        goals = {}
        for task, goal in value.items():
            if task not in names:
                raise self.fail(f'"goals" {task!r}', "is not a task of this spec")
            try:
                goals[task] = goal_value(goal, f'"goals" {task!r}')
            except RecordError as error:
                raise DataError(f"{self.name}: {error}") from error
        return goals

    def task_list(self, data: dict) -> list:
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise self.fail('"tasks"', "missing or empty: list the tasks in learning order")
        return tasks

    def task_name(self, value: Any, entry: str, seen: set[str]) -> str:
        if not isinstance(value, str) or not TASK_NAME.fullmatch(value):
            raise self.fail(entry, f"task name {value!r} must be letters, digits, '_', '.', '+' or '-' "
                                   "(not starting with '.', '+' or '-')")
        if value in seen:
            raise self.fail(entry, f"duplicate task name {value!r}")
        seen.add(value)
        return value

    def images_root(self, value: Any) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail('"images"', f"must be a folder path, got {value!r}")
        root = Path(value) if Path(value).is_absolute() else self.path.parent / value
        if not root.is_dir():
            raise self.fail('"images"', f"no folder {root}")
        return root

    def folder_tasks(self, data: dict, root: Path) -> tuple[TaskSource, ...]:
        seen: set[str] = set()
        tasks = []
        for index, value in enumerate(self.task_list(data)):
            entry = f"tasks[{index}]"
            name = self.task_name(value, entry, seen)
            entry = f"{entry} {name!r}"
            classes = None
            for split in ("train", "test"):
                folder = root / name / split
                if not folder.is_dir():
                    raise self.fail(entry, f"no folder {folder} (expected {root}/<task>/{{train,test}}/<class>/)")
                found = tuple(sorted(path.name for path in folder.iterdir()
                                     if path.is_dir() and not path.name.startswith(".")))
                if classes is not None and found != classes:
                    raise self.fail(entry, f"{folder} holds classes {', '.join(found) or 'none'}, but train/ "
                                           f"holds {', '.join(classes)}")
                classes = found
                if len(found) < 2:
                    raise self.fail(entry, f"{folder} holds {len(found)} class folder(s); a task needs at least 2")
                for class_name in found:
                    self.check_images(entry, folder / class_name)
            tasks.append(TaskSource(name, found, folder=root / name))  # test/'s classes, the same as train/'s
        return tuple(tasks)

    def check_images(self, entry: str, folder: Path) -> None:
        files = image_files(folder)
        if not files:
            raise self.fail(entry, f"class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for file in files:
            try:
                with file.open("rb") as stream:
                    head = stream.read(8)
            except OSError as error:
                raise self.fail(entry, f"cannot read {file}: {error.strerror or error}") from error
            if not head.startswith(SIGNATURES):
                raise self.fail(entry, f"{file} is not a PNG or JPEG image")

    def torchvision_tasks(self, data: dict, dataset: TorchvisionSet) -> tuple[TaskSource, ...]:
        if ("tasks" in data) == ("split" in data):
            raise DataError(f"{self.name}: give exactly one of \"tasks\" (class lists) or \"split\" "
                            "(a seeded partition) for a torchvision source")
        if "split" in data:
            return self.partition(data["split"], dataset)
        seen: set[str] = set()
        owner: dict[int, str] = {}
        tasks = []
        for index, value in enumerate(self.task_list(data)):
            entry = f"tasks[{index}]"
            if not isinstance(value, dict) or set(value) != {"name", "classes"}:
                raise self.fail(entry, f"must be {{\"name\": ..., \"classes\": [...]}}, got {json.dumps(value)}")
            name = self.task_name(value["name"], entry, seen)
            entry = f"{entry} {name!r}"
            classes = value["classes"]
            if not isinstance(classes, list) or len(classes) < 2:
                raise self.fail(entry, f"a task needs at least 2 classes, got {json.dumps(classes)}")
            ids = []
            for label in classes:
                class_id = self.class_id(label, dataset, entry)
                if class_id in owner:
                    raise self.fail(entry, f"class {label!r} is already in task {owner[class_id]!r}")
                owner[class_id] = name
                ids.append(class_id)
            tasks.append(TaskSource(name, tuple(dataset.classes[i] for i in ids), class_ids=tuple(ids)))
        return tuple(tasks)

    def class_id(self, label: Any, dataset: TorchvisionSet, entry: str) -> int:
        """A class given by its label number or its name."""
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(dataset.classes):
            return label
        if isinstance(label, str) and label in dataset.classes:
            return dataset.classes.index(label)
        raise self.fail(entry, f"unknown class {label!r} (a label 0..{len(dataset.classes) - 1} or a name such as "
                               f"{dataset.classes[0]!r})")

    def partition(self, value: Any, dataset: TorchvisionSet) -> tuple[TaskSource, ...]:
        """Tasks of `classes_per_task` classes (default: all classes shared out) from a permutation of the
        labels drawn by numpy's RandomState(seed), as SupSup's random splits do."""
        if not isinstance(value, dict) or not {"tasks", "seed"} <= set(value) <= set(SPLIT_KEYS):
            raise self.fail('"split"', f"must be {{\"tasks\": N, \"seed\": S}} with optional "
                                       f"\"classes_per_task\" and \"names\", got {json.dumps(value)}")
        classes = len(dataset.classes)
        count = self.integer(value, "tasks", None, 1, classes // 2, required=True)  # at least 2 classes a task
        seed = self.integer(value, "seed", None, 0, MAX_SEED, required=True)
        per_task = self.integer(value, "classes_per_task", classes // count, 2, classes)
        if count * per_task > classes:
            raise self.fail('"split"', f"{count} tasks of {per_task} classes need {count * per_task} of the "
                                       f"{len(dataset.classes)} classes, and at least 2 per task")
        names = value.get("names", [f"task_{i}" for i in range(1, count + 1)])
        if not isinstance(names, list) or len(names) != count:
            raise self.fail('"split" names', f"must list {count} task names, got {json.dumps(names)}")
        seen: set[str] = set()
        names = [self.task_name(name, f'"split" names[{i}]', seen) for i, name in enumerate(names)]
        import numpy as np  # only partitions need it

        order = np.random.RandomState(seed).permutation(len(dataset.classes)).tolist()
        chunks = [order[i * per_task:(i + 1) * per_task] for i in range(count)]
        return tuple(TaskSource(name, tuple(dataset.classes[i] for i in ids), class_ids=tuple(ids))
                     for name, ids in zip(names, chunks, strict=True))

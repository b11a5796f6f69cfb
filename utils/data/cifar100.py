"""cifar100: the 20 CIFAR-100 superclasses as five-class tasks, labels in alphabetical fine-name order.

Reads the official python pickle (`cifar-100-python/`, which carries coarse labels) or the
`cifar100_org/{train,test}/<superclass>/<class>/*.png` layout the original CPG used; only if
neither is there does it try one torchvision download. Each task is decoded once and cached as
uint8 tensors with its own mean/std (per-superclass normalisation, as in the original).
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch

from unforget.utils.data.benchmark import DataError
from unforget.utils.data.cache import cached_task
from unforget.utils.data.cifar100_names import FINE_NAMES, SUPERCLASSES, TASK_NAMES
from unforget.utils.data.tasks import TaskData, channel_stats

PICKLE_DIR = "cifar-100-python"
PNG_DIR = "cifar100_org"
CACHE_DIR = "cifar100_cache"
CACHE_VERSION = 1
SPLITS = ("train", "test")
IMAGE_SHAPE = (3, 32, 32)
DOWNLOAD_TIMEOUT_S = 10.0

Split = tuple[torch.Tensor, torch.Tensor]


def load_task(data_root: Path, task_name: str) -> TaskData:
    """One superclass task, read from the cache or decoded from whichever layout is present."""
    root = Path(data_root)
    path = root / CACHE_DIR / f"{task_name}.v{CACHE_VERSION}.pt"
    return cached_task(path, lambda: _decode(root, task_name))


def load_all_classes(data_root: Path) -> list[Split]:
    """[(train images, labels), (test images, labels)] of all 100 classes, labels the fine ids in
    FINE_NAMES order, assembled from the 20 cached superclass tasks (so decoding happens once)."""
    parts: list[list[Split]] = [[], []]
    for task_name in TASK_NAMES:
        task = load_task(data_root, task_name)
        fine_ids = torch.tensor([FINE_NAMES.index(name) for name in task.classes])
        parts[0].append((task.train_images, fine_ids[task.train_labels]))
        parts[1].append((task.test_images, fine_ids[task.test_labels]))
    return [(torch.cat([p[0] for p in split]), torch.cat([p[1] for p in split])) for split in parts]


def _where(root: Path) -> str:
    """Where the files belong, for every message about missing or broken data."""
    return (f"put the official python version at {root / PICKLE_DIR}/ (train, test, meta) "
            f"or PNGs at {root / PNG_DIR}/{{train,test}}/<superclass>/<class>/*.png")


def _decode(root: Path, task_name: str) -> TaskData:
    (train_images, train_labels), (test_images, test_labels) = _reader(root)(root, task_name)
    mean, std = channel_stats(train_images)
    return TaskData(task_name, SUPERCLASSES[task_name], train_images, train_labels, test_images, test_labels,
                    mean, std)


def _reader(root: Path) -> Callable[[Path, str], list[Split]]:
    """The pickle if present, else the PNGs, else the pickle a torchvision download leaves behind."""
    if (root / PICKLE_DIR).is_dir():
        return _read_pickle
    if (root / PNG_DIR).is_dir():
        return _read_png
    _download(root)
    return _read_pickle


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _download(root: Path) -> None:
    """One quiet torchvision download; a socket timeout keeps an offline machine from hanging on it."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            import torchvision

            torchvision.datasets.CIFAR100(root=str(root), download=True)
    except Exception as error:  # any failure (network, checksum, archive) means the same thing to the user
        raise DataError(f"CIFAR-100 not found: {_where(root)} (download failed: {_one_line(error)})") from error
    finally:
        socket.setdefaulttimeout(previous)


def _unpickle(path: Path, root: Path) -> dict:
    try:
        with path.open("rb") as file:
            content = pickle.load(file, encoding="bytes")
    except Exception as error:  # a missing, truncated or foreign file: say which, and what belongs there
        raise DataError(f"cannot read {path} ({_one_line(error)}); {_where(root)}") from error
    if not isinstance(content, dict):
        raise DataError(f"{path} is not a CIFAR-100 python file (no dict inside); {_where(root)}")
    return content


def _check_meta(folder: Path, root: Path) -> None:
    """A meta file with other names means another label order, which would silently mislabel tasks."""
    path = folder / "meta"
    if not path.is_file():
        return
    meta = _unpickle(path, root)
    fine, coarse = (_names(meta, key) for key in (b"fine_label_names", b"coarse_label_names"))
    if fine != FINE_NAMES or coarse != TASK_NAMES:
        raise DataError(f"{path} lists other CIFAR-100 names than utils/data/cifar100_names.py; "
                        f"is {folder} the official python version?")


def _names(meta: dict, key: bytes) -> tuple[str, ...]:
    return tuple(name.decode() if isinstance(name, bytes) else str(name) for name in meta.get(key, ()))


def _read_pickle(root: Path, task_name: str) -> list[Split]:
    folder = root / PICKLE_DIR
    _check_meta(folder, root)
    return [_pickle_split(folder / split, root, task_name) for split in SPLITS]


def _pickle_split(path: Path, root: Path, task_name: str) -> Split:
    """The task's rows, grouped by label (stable, so file order is kept within a class)."""
    entry = _unpickle(path, root)
    try:
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        fine = np.asarray(entry[b"fine_labels"], dtype=np.int64)
        coarse = np.asarray(entry[b"coarse_labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path} is not a CIFAR-100 python file ({_one_line(error)}); "
                        f"{_where(root)}") from error
    if data.ndim != 2 or data.shape[1] != np.prod(IMAGE_SHAPE) or not len(data) == len(fine) == len(coarse):
        raise DataError(f"{path} holds data of shape {data.shape} with {len(fine)} labels, "
                        f"not [N, 3072] with N labels; {_where(root)}")
    rows = np.flatnonzero(coarse == TASK_NAMES.index(task_name))
    class_ids = np.array([FINE_NAMES.index(name) for name in SUPERCLASSES[task_name]])
    if not np.isin(fine[rows], class_ids).all():
        raise DataError(f"{path}: fine labels of superclass {task_name} fall outside its classes "
                        f"{', '.join(SUPERCLASSES[task_name])}")
    labels = np.searchsorted(class_ids, fine[rows])  # fine ids are alphabetical, so this is the task label
    order = np.argsort(labels, kind="stable")
    images = data[rows[order]].reshape(-1, *IMAGE_SHAPE)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels[order].astype(np.int64))


def _read_png(root: Path, task_name: str) -> list[Split]:
    return [_png_split(root / PNG_DIR / split / task_name, root, SUPERCLASSES[task_name]) for split in SPLITS]


def _png_split(folder: Path, root: Path, classes: tuple[str, ...]) -> Split:
    """Classes in label order, files in sorted name order, so every machine decodes the same tensors."""
    found = _class_folders(folder)
    if found != list(classes):
        raise DataError(f"{folder} should hold the class folders {', '.join(classes)} (found: "
                        f"{', '.join(found) or 'none'}); {_where(root)}")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted((folder / name).glob("*.png"))
        if not files:
            raise DataError(f"no PNG images in {folder / name}")
        images.extend(_decode_png(path) for path in files)
        labels.extend([label] * len(files))
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


def _class_folders(folder: Path) -> list[str]:
    """Visible subfolders, sorted; hidden ones (editor or notebook litter) are not classes."""
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def _decode_png(path: Path) -> np.ndarray:
    from PIL import Image  # only the PNG layout needs it

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot decode {path} ({_one_line(error)})") from error
    if pixels.shape != (*IMAGE_SHAPE[1:], IMAGE_SHAPE[0]):
        raise DataError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels, CIFAR-100 images are 32x32")
    return pixels.transpose(2, 0, 1)

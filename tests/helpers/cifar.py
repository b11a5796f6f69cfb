"""A tiny fake CIFAR-100 in both layouts the loader reads, for tests that must not need the real files.

Both writers draw the same pixels for the same seed, and PNG file names follow the pickle's row
order, so the two layouts decode to identical tasks.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from unforget.utils.data.cifar100_names import FINE_NAMES, SUPERCLASSES, TASK_NAMES

COARSE_OF_FINE = {fine: TASK_NAMES.index(coarse) for coarse, names in SUPERCLASSES.items() for fine in names}


def fake_split(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 rows [N, 3072] (CHW) and fine labels, every class `per_class` times, shuffled."""
    rng = np.random.RandomState(seed)
    fine = rng.permutation(np.repeat(np.arange(len(FINE_NAMES)), per_class))
    data = rng.randint(0, 256, size=(len(fine), 3 * 32 * 32), dtype=np.uint8)
    return data, fine


def _splits(per_class_train: int, per_class_test: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": fake_split(per_class_train, seed), "test": fake_split(per_class_test, seed + 1)}


def _dump(obj: dict, path: Path) -> None:
    with path.open("wb") as file:
        pickle.dump(obj, file)


def write_cifar100_pickle(root: Path, per_class_train: int = 4, per_class_test: int = 2, seed: int = 0) -> Path:
    """`<root>/cifar-100-python/{train,test,meta}` as the official python version lays them out."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, (data, fine) in _splits(per_class_train, per_class_test, seed).items():
        coarse = [COARSE_OF_FINE[FINE_NAMES[label]] for label in fine]
        _dump({b"data": data, b"fine_labels": fine.tolist(), b"coarse_labels": coarse}, folder / split)
    _dump({b"fine_label_names": [name.encode() for name in FINE_NAMES],
           b"coarse_label_names": [name.encode() for name in TASK_NAMES]}, folder / "meta")
    return folder


def write_cifar100_png(root: Path, per_class_train: int = 4, per_class_test: int = 2, seed: int = 0) -> Path:
    """`<root>/cifar100_org/{train,test}/<superclass>/<class>/<row>.png` with the pickle fixture's pixels."""
    from PIL import Image

    folder = Path(root) / "cifar100_org"
    for split, (data, fine) in _splits(per_class_train, per_class_test, seed).items():
        for row, (pixels, label) in enumerate(zip(data, fine, strict=True)):
            name = FINE_NAMES[label]
            target = folder / split / TASK_NAMES[COARSE_OF_FINE[name]] / name
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels.reshape(3, 32, 32).transpose(1, 2, 0)).save(target / f"{row:05d}.png")
    return folder

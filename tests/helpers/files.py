"""Files the tests build as the toolkit or a user would leave them: image folders for specs, finished run
folders for reports, and a check that a plot was drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

TASKS = ("rows", "cols", "diag")
SIDE = 8


def pattern(task: int, label: int, rng: np.random.RandomState, side: int = SIDE) -> np.ndarray:
    """A grey side x side image a small net tells apart: noise plus a bright band whose place depends on
    the class (top/bottom half, left/right half, one diagonal or the other, by task)."""
    image = rng.randint(0, 60, (side, side))
    half = slice(0, side // 2) if label == 0 else slice(side // 2, side)
    if task == 0:
        image[half, :] += 180
    elif task == 1:
        image[:, half] += 180
    else:
        diagonal = np.eye(side, dtype=bool)
        image[diagonal if label == 0 else diagonal[::-1]] += 180
    return image.astype(np.uint8)


def write_folders(root: Path, tasks: tuple[str, ...] = TASKS, train: int = 12, test: int = 6) -> Path:
    """`root/<task>/{train,test}/{a,b}/NNN.png`, two classes per task."""
    rng = np.random.RandomState(0)
    for index, task in enumerate(tasks):
        for split, count in (("train", train), ("test", test)):
            for label, name in enumerate(("a", "b")):
                folder = root / task / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    Image.fromarray(pattern(index % 3, label, rng)).save(folder / f"{i:03d}.png")
    return root


def run_folder(root, method: str, seed: int, acc: float, bwt: float, seconds: list[float], capacity: float = 0.5,
                settings: dict[str, str] | None = None):
    """A finished run as a driver leaves it: run.json (with `settings` when given; older cards have none),
    the report's metrics.json and stage times."""
    root.mkdir(parents=True)
    card = {"method": method, "benchmark": "split_digits", "seed": seed, "command": f"bash scripts/{method}.sh"}
    (root / "run.json").write_text(json.dumps(card if settings is None else {**card, "settings": settings}))
    (root / "metrics.json").write_text(json.dumps({
        "accuracy_matrix": [[acc]], "metrics": {"average_accuracy": acc, "backward_transfer": bwt,
                                                 "forgetting": -bwt},
        "capacity": {"model_vs_independent": capacity}}))
    for k, value in enumerate(seconds):
        stages = root / f"task_{k}" / ".stages"
        stages.mkdir(parents=True)
        (stages / "finetune.seconds").write_text(f"{value}\n")
        (stages / "finetune").write_text("0\n")
    return root


def table_row(table: str, method: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {method} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def png_is_drawn(path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24)) > 8

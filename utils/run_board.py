"""The run-level TensorBoard summary, written when the report writes the run's metrics: `<run>/tensorboard/summary`
holds the accuracy matrix as an image (the report's own heatmap), each task's accuracy after each task of the
sequence, and the final metrics (ACC, BWT, forgetting, FWT) as scalars, so `tensorboard --logdir <run>` shows
the result beside the stages' curves."""

from __future__ import annotations

import shutil
from pathlib import Path

from unforget.utils.plots import HEATMAP

RUN = "summary"
"""the summary's run under `<run>/tensorboard`"""
MATRIX_TAG = "accuracy_matrix"
METRIC_TAGS = {"average_accuracy": "metrics/ACC", "backward_transfer": "metrics/BWT",
               "forgetting": "metrics/forgetting", "forward_transfer": "metrics/FWT"}
"""summary.json's metric keys -> their scalar tags (step: the number of tasks)"""


def task_tag(name: str) -> str:
    """The tag of task `name`'s accuracy after each task j (step j, 1-based): R[i][j] along its row."""
    return f"accuracy/{name}"


def write_summary(root: Path, summary: dict) -> Path:
    """The summary run of the report in `root` (its heatmap already drawn there: a report whose plots are not
    drawn gets the scalars alone); a second report replaces it. Metrics a run has too few tasks for (None) are
    left out. Returns the run's folder."""
    import matplotlib.image
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(root) / "tensorboard" / RUN
    shutil.rmtree(folder, ignore_errors=True)
    names, matrix = summary["task_names"], summary["accuracy_matrix"]
    with SummaryWriter(str(folder)) as writer:
        heatmap = Path(root) / HEATMAP
        if heatmap.is_file():
            writer.add_image(MATRIX_TAG, matplotlib.image.imread(str(heatmap))[..., :3], len(names), dataformats="HWC")
        for key, value in summary["metrics"].items():
            if value is not None:
                writer.add_scalar(METRIC_TAGS.get(key, f"metrics/{key}"), value, len(names))
        for name, row in zip(names, matrix, strict=True):
            for j, value in enumerate(row, start=1):
                if value is not None:
                    writer.add_scalar(task_tag(name), value, j)
    return folder

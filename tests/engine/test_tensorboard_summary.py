"""The run-level TensorBoard summary the report writes beside its metrics (`<run>/tensorboard/summary`): the
accuracy matrix as an image (the report's heatmap), each task's row of the matrix and the final metrics as
scalars, read back with TensorBoard's own event reader, through both places a report writes its metrics."""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib.image
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from unforget.utils import metrics
from unforget.utils.methods.cpg import report as cpg_report
from unforget.utils.methods.sequences import write_metrics
from unforget.utils.plots import HEATMAP
from unforget.utils.run_board import MATRIX_TAG, METRIC_TAGS, RUN, task_tag

accuracies = st.floats(0.0, 1.0, allow_nan=False).map(lambda value: round(value, 4))


@st.composite
def matrices(draw) -> tuple[list[str], list[list[float | None]]]:
    """Task names and a lower-triangular R[i][j] (blank above the diagonal), 1 to 4 tasks."""
    count = draw(st.integers(1, 4))
    names = [f"task_{i}" for i in range(count)]
    rows = [[None] * i + draw(st.lists(accuracies, min_size=count - i, max_size=count - i)) for i in range(count)]
    return names, rows


def _read(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def _check(root: Path, names: list[str], matrix: list[list[float | None]], summary: dict) -> None:
    """The summary run holds the heatmap's pixels, every metric the run has and every known R[i][j]."""
    events = _read(root / "tensorboard" / RUN)
    [image] = events.Images(MATRIX_TAG)
    drawn = matplotlib.image.imread(str(root / HEATMAP))
    shown = matplotlib.image.imread(io.BytesIO(image.encoded_image_string), format="png")
    assert (image.height, image.width) == drawn.shape[:2] and image.step == len(names)
    assert abs(shown[..., :3] - drawn[..., :3]).max() <= 1 / 255 + 1e-6
    scalars = set(events.Tags()["scalars"])
    for key, value in summary["metrics"].items():
        if value is None:
            assert METRIC_TAGS[key] not in scalars, key
        else:
            [point] = events.Scalars(METRIC_TAGS[key])
            assert point.step == len(names) and abs(point.value - value) <= 1e-6, key
    for name, row in zip(names, matrix, strict=True):
        points = [(point.step, point.value) for point in events.Scalars(task_tag(name))]
        expected = [(j, value) for j, value in enumerate(row, start=1) if value is not None]
        assert [step for step, _ in points] == [step for step, _ in expected]
        assert all(abs(got - value) <= 1e-6 for (_, got), (_, value) in zip(points, expected, strict=True))


@settings(max_examples=6, deadline=None)
@given(drawn=matrices(), baselines=st.booleans())
def test_the_generic_report_writes_the_summary_run(tmp_path_factory, drawn, baselines):
    names, matrix = drawn
    root = tmp_path_factory.mktemp("run")
    summary = {"benchmark": "split_digits", "task_names": names, "accuracy_matrix": matrix,
               "metrics": metrics.metrics(matrix, names, dict.fromkeys(names, 0.5) if baselines else None)}
    write_metrics(root, summary)
    _check(root, names, matrix, summary)


def test_a_second_report_replaces_the_summary_run(tmp_path):
    names = ["a", "b"]
    for first in (0.25, 0.75):
        matrix = [[first, first], [None, 1.0]]
        write_metrics(tmp_path, {"task_names": names, "accuracy_matrix": matrix,
                                 "metrics": metrics.metrics(matrix, names)})
    assert len(list((tmp_path / "tensorboard" / RUN).iterdir())) == 1
    _check(tmp_path, names, [[0.75, 0.75], [None, 1.0]], {"metrics": metrics.metrics(matrix, names)})


def test_the_cpg_report_writes_the_summary_run(tmp_path, capsys):
    """CPG's report (its own writer, summary.json) ends with the same run."""
    names, matrix = ["digits_01", "digits_23"], [[0.98, 0.97], [None, 0.99]]
    for name in names:
        folder = tmp_path / name / "gradual_prune"
        folder.mkdir(parents=True)
        (folder / "record.txt").write_text(json.dumps({"0.0": 0.98, "0.5": 0.97}))
        (folder / "chosen.json").write_text(json.dumps({"sparsity": "0.5", "goal": 0.97}))
    tasks = [{"task": name, "accuracy_after_learning": matrix[i][i], "accuracy_final": matrix[i][-1],
              "sparsity": 0.5, "width": 1.0, "owned_fraction": 0.25} for i, name in enumerate(names)]
    capacity = {"tasks": [{"task": name, "owned_weights": 10, "picked_weights": 0, "free_weights_after": 5}
                          for name in names],
                "unexpanded_weights": 30, "model_bytes": 100, "mask_bytes": 10, "independent_models_bytes": 200,
                "model_vs_independent": 0.5}
    summary = {"benchmark": "split_digits", "tasks": tasks, "average_accuracy_after_learning": 0.985,
               "average_accuracy_final": 0.98, "final_width": 1.0, "shared_weights": 30, "size_vs_unexpanded": 1.0,
               "free_fraction": 0.5, "task_names": names, "accuracy_matrix": matrix,
               "metrics": metrics.metrics(matrix, names), "capacity": capacity, "warnings": []}
    cpg_report.write(tmp_path, summary)
    assert "ACC" in capsys.readouterr().out
    _check(tmp_path, names, matrix, summary)

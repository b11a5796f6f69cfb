"""Runs side by side: `tools.report --runs`, SEEDS in the drivers and scripts/compare_split_digits.sh."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from tests.helpers import run_driver
from tests.helpers.files import png_is_drawn, run_folder, table_row
from unforget.tools import report

METHODS = ("independent", "finetune", "cpg", "packnet", "piggyback", "supsup_gg", "wsn", "hat", "ewc", "lwf")


def test_runs_table_gives_mean_and_spread_over_seeds(tmp_path, capsys):
    accuracies, seconds = [0.91, 0.83, 0.88], [[1.5, 2.0], [3.0], [2.25, 0.25]]
    roots = [run_folder(tmp_path / f"a{seed}", "alpha", seed, acc, -0.1 * seed, time)
             for seed, acc, time in zip((3, 1, 2), accuracies, seconds, strict=True)]
    roots.append(run_folder(tmp_path / "b", "beta", 7, 0.5, 0.0, [4.0], capacity=1.25))
    assert report.main(["--runs", *map(str, roots), "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    method, seeds, acc, bwt, forgetting, storage, time = table_row(table, "alpha")
    assert seeds == "1 2 3"
    assert acc == f"{statistics.fmean(accuracies):.4f} ± {statistics.stdev(accuracies):.4f}"
    assert bwt == f"{-0.2:.4f} ± {statistics.stdev([-0.3, -0.1, -0.2]):.4f}"
    assert forgetting.startswith("0.2000 ±") and storage == "0.50"
    assert time == f"{statistics.fmean(map(sum, seconds)):.0f} ± {statistics.stdev(map(sum, seconds)):.0f}"
    beta = table_row(table, "beta")
    assert beta[2:4] == ["0.5000", "0.0000"] and beta[5:] == ["1.25", "4"]  # one seed: its values, no spread
    assert (tmp_path / "out/comparison.md").read_text().strip() == table.split("\ntable and plot")[0].strip()
    assert png_is_drawn(tmp_path / "out/comparison.png")


def test_runs_refuse_a_folder_that_is_no_finished_run(tmp_path, capsys):
    good = run_folder(tmp_path / "good", "alpha", 1, 0.9, 0.0, [1.0])
    with pytest.raises(SystemExit) as stop:
        report.main(["--runs", str(good), str(tmp_path)])
    assert stop.value.code == 64 and f"no run.json) in {tmp_path}" in capsys.readouterr().err
    (next(good.rglob("*.seconds"))).write_text("nan\n")
    with pytest.raises(SystemExit) as stop:
        report.main(["--runs", str(good)])
    assert stop.value.code == 65 and "seconds" in capsys.readouterr().err
    (good / "metrics.json").unlink()
    with pytest.raises(SystemExit) as stop:
        report.main(["--runs", str(good)])
    assert stop.value.code == 64 and "has not finished" in capsys.readouterr().err


def test_seeds_must_be_whole_numbers(tmp_path):
    result = run_driver("finetune.sh", "split_digits", SEEDS="1 two", CKPT_ROOT=str(tmp_path))
    assert result.returncode == 64 and "SEEDS must list whole numbers, got 'two'" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_finetune_driver_forgets_on_every_seed_and_seeds_run_side_by_side(data_root, tmp_path):
    """Each task takes over the previous task's model and head, so the earlier two-class tasks are answered
    by the newest head: their accuracy falls (BWT < 0), which the matrix of each seed's run must show."""
    result = run_driver("finetune.sh", "split_digits", SEEDS="1 2", SEED_WORKERS="2", NUM_TASKS="3", EPOCHS="4",
                        BATCH_SIZE="16", DEVICE="cpu", DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path),
                        LOGFILE=str(tmp_path / "unused.json"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for seed in (1, 2):
        root = tmp_path / f"baselines/split_digits/finetune_seed{seed}/digits_convnet"
        summary = json.loads((root / "metrics.json").read_text())
        assert json.loads((root / "run.json").read_text())["seed"] == seed
        assert summary["metrics"]["backward_transfer"] < 0 and summary["metrics"]["forgetting"] > 0
        assert png_is_drawn(root / "accuracy_matrix.png")
    assert table_row(result.stdout, "finetune")[1] == "1 2"


def _column_constant(matrix: list[list[float | None]]) -> bool:
    return all(row[i:] == [row[i]] * (len(row) - i) for i, row in enumerate(matrix))


@pytest.mark.slow
def test_comparison_script_ends_with_the_table_and_every_plot(data_root, tmp_path):
    epochs = {"PLAIN_EPOCHS": "3", "FINETUNE_EPOCHS": "3", "PRUNE_EPOCHS": "1", "RETRAIN_EPOCHS": "1",
              "SPARSITY_STEPS": "0.5 0.9", "BACKBONE_EPOCHS": "3", "MASK_EPOCHS": "2", "SUPSUP_EPOCHS": "2",
              "WSN_EPOCHS": "2", "HAT_EPOCHS": "2", "REG_EPOCHS": "2"}
    result = run_driver("compare_split_digits.sh", SEEDS="1", NUM_TASKS="3", DATA_ROOT=str(data_root),
                        CKPT_ROOT=str(tmp_path), **epochs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (tmp_path / "comparison.md").read_text()
    for method in METHODS:
        assert table_row(table, method)[1] == "1", method
    runs = {json.loads(card.read_text())["method"]: card.parent for card in tmp_path.rglob("run.json")}
    assert set(runs) == set(METHODS)
    for method in ("cpg", "packnet", "supsup_gg", "independent", "wsn"):  # methods that never forget
        name = "summary.json" if method in ("cpg", "packnet") else "metrics.json"
        summary = json.loads((runs[method] / name).read_text())
        assert _column_constant(summary["accuracy_matrix"]), method
        assert summary["metrics"]["backward_transfer"] == 0.0, method
    supsup = json.loads((runs["supsup_gg"] / "metrics.json").read_text())
    learned = json.loads((runs["supsup_gg"] / "summary.json").read_text())["tasks"]
    assert [row[i] for i, row in enumerate(supsup["accuracy_matrix"])] == [t["accuracy_after_learning"]
                                                                           for t in learned]
    assert [point["num_tasks"] for point in supsup["task_inference"]] == [2, 3]
    assert all(0.0 <= point["task_inference_accuracy"] <= 1.0 for point in supsup["task_inference"])
    plots = [tmp_path / "comparison.png", runs["supsup_gg"] / "task_inference.png"]
    plots += [runs[method] / f"{name}.png" for method in ("cpg", "packnet") for name in ("pruning_curves", "capacity")]
    plots += [runs[method] / "accuracy_matrix.png" for method in METHODS]
    for path in plots:
        assert png_is_drawn(path), path
    for method in METHODS:
        assert not math.isnan(float(table_row(table, method)[2].split(" ± ")[0]))

"""TensorBoard runs: each stage writes its epoch lines' numbers under `<log folder>/tensorboard/<run>`,
step = epoch, read back with TensorBoard's own event reader; a rerun replaces its run; no log, no events."""

import json
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import main_normal
from unforget.utils.logs import RunLog

TINY = ["--data_root", "{data}", "--device", "cpu", "--batch_size", "16", "--epochs", "2"]


def _main(data_root: Path, *args: str) -> int:
    return main_normal.main([*(flag.format(data=data_root) for flag in TINY), *args])


def _cpg(data_root: Path, task: Path, mode: str, *args: str) -> int:
    return _main(data_root, "--mode", mode, "--dataset", "digits_01", "--jsonfile", str(task / "record.txt"),
                 "--log_path", str(task / "train.log"), "--max_allowed_network_width_multiplier", "1.0", *args)


def _prune(data_root: Path, task: Path) -> int:
    return _cpg(data_root, task, "prune", "--lr", "1e-3", "--lr_mask", "0", "--target_sparsity", "0.5",
                "--load_folder", str(task / "scratch"), "--save_folder", str(task / "gradual_prune"))


@pytest.fixture(scope="module")
def cpg_task(data_root, tmp_path_factory) -> Path:
    """One task's folder after a tiny finetune, prune and retrain, laid out as scripts/cpg.sh lays it out."""
    task = tmp_path_factory.mktemp("cpg") / "digits_01"
    assert _cpg(data_root, task, "finetune", "--lr", "0.05", "--save_folder", str(task / "scratch")) in (0, 2)
    assert _prune(data_root, task) in (0, 6)
    assert _cpg(data_root, task, "retrain", "--lr", "1e-3", "--lr_mask", "1e-4",
                "--load_folder", str(task / "gradual_prune"), "--save_folder", str(task / "retrain")) == 0
    return task


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a run folder as (step, value) pairs, as TensorBoard reads them."""
    events = EventAccumulator(str(run))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _lines(log: Path) -> list[dict[str, str]]:
    return [dict(field.split("=", 1) for field in line.split()[1:] if "=" in field)
            for line in log.read_text().splitlines()]


def _epoch_lines(log: Path, stage: str) -> list[dict[str, str]]:
    return [line for line in _lines(log) if line.get("stage") == stage and "epoch" in line]


def test_each_stage_has_a_run_of_its_own(cpg_task):
    board = cpg_task / "tensorboard"
    assert sorted(path.name for path in board.iterdir()) == ["finetune_w1.0", "prune_0.5", "record", "retrain"]
    for run in board.iterdir():
        assert len(list(run.glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("stage, run, tags", [
    ("finetune", "finetune_w1.0", {"loss", "train_acc", "width", "lr", "seconds", "setup_seconds"}),
    ("prune", "prune_0.5", {"loss", "train_acc", "width", "lr", "seconds", "setup_seconds", "sparsity"}),
    ("retrain", "retrain", {"loss", "train_acc", "width", "lr", "seconds", "setup_seconds", "val_acc",
                            "eval_seconds"}),
])
def test_scalars_are_the_epoch_lines(cpg_task, stage, run, tags):
    scalars = _scalars(cpg_task / "tensorboard" / run)
    lines = _epoch_lines(cpg_task / "train.log", stage)
    assert tags <= set(scalars) and "paths" not in scalars
    assert [step for step, _ in scalars["loss"]] == [1, 2] == [int(line["epoch"].split("/")[0]) for line in lines]
    assert [step for step, _ in scalars["setup_seconds"]] == [1]
    for tag in ("loss", "train_acc", "width", "lr") + (("sparsity",) if stage == "prune" else ()):
        for (_, value), line in zip(scalars[tag], lines, strict=True):
            assert abs(value - float(line[tag])) <= 0.5e-4 + 1e-6, (tag, value, line[tag])  # the log's 4 decimals


@pytest.mark.parametrize("stage, run, folder", [
    ("finetune", "finetune_w1.0", "scratch"), ("prune", "prune_0.5", "gradual_prune"),
    ("retrain", "retrain", "retrain"),
])
def test_validation_accuracy_is_on_the_board(cpg_task, stage, run, folder):
    """Finetune and prune measure once after their epochs (a point at the last epoch, the decision's val_acc),
    retrain after each epoch (the epoch lines' val_acc). The test accuracy is a tag of its own where it is
    measured: after the epochs, or at each epoch retrain keeps; the last is the checkpoint's test_accuracy."""
    scalars = _scalars(cpg_task / "tensorboard" / run)
    steps = [1, 2] if stage == "retrain" else [2]
    assert [step for step, _ in scalars["val_acc"]] == steps
    assert all(0.0 <= value <= 1.0 for _, value in scalars["val_acc"] + scalars["test_acc"])
    decisions = [line for line in _lines(cpg_task / "train.log") if line.get("stage") == stage and "exit" in line]
    if stage != "retrain":
        assert abs(scalars["val_acc"][-1][1] - float(decisions[-1]["val_acc"])) <= 0.5e-4 + 1e-6
    best, kept = -1.0, []
    for step, value in scalars["val_acc"]:
        if value > best:
            best, kept = value, [*kept, step]
    assert [step for step, _ in scalars["test_acc"]] == (kept if stage == "retrain" else steps)
    meta = json.loads((cpg_task / folder / "meta.json").read_text())
    assert abs(scalars["test_acc"][-1][1] - meta["test_accuracy"]) <= 0.5e-4 + 1e-6


def test_the_record_is_accuracy_against_sparsity(cpg_task):
    """record.txt as one series: step = sparsity in per-mille, value = its accuracy; beside it the width of
    each row (the task's, as its decisions say)."""
    record = json.loads((cpg_task / "record.txt").read_text())
    scalars = _scalars(cpg_task / "tensorboard" / "record")
    series = scalars["accuracy_vs_sparsity"]
    assert series == [(round(float(key) * 1000), pytest.approx(value, abs=1e-6)) for key, value in record.items()]
    assert [step for step, _ in series][0] == 0 and len(series) >= 2
    assert all(0.0 <= value <= 1.0 for _, value in series)
    widths = {float(line["width"]) for line in _lines(cpg_task / "train.log") if "exit" in line}
    assert [step for step, _ in scalars["width"]] == [step for step, _ in series]
    assert {value for _, value in scalars["width"]} == widths == {1.0}


def test_a_grown_task_records_its_width(data_root, tmp_path):
    """A task that grew (an unreachable goal makes finetune exit 2 below the cap) records at its grown width."""
    task = tmp_path / "digits_01"
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps({"digits_01": "force_growth"}))
    common = ["--lr", "0.05", "--epochs", "1", "--baseline_acc_file", str(goals), "--save_folder",
              str(task / "scratch"), "--max_allowed_network_width_multiplier", "1.5"]
    assert _cpg(data_root, task, "finetune", *common) == 2
    assert _cpg(data_root, task, "finetune", *common, "--network_width_multiplier", "1.5") == 0
    assert _scalars(task / "tensorboard" / "record")["width"] == [(0, 1.5)]


def test_choices_on_the_test_images_are_test_acc(data_root, tmp_path):
    """With --val_fraction 0 the stage chooses on the test images: its board says test_acc, never val_acc."""
    task = tmp_path / "digits_01"
    assert _cpg(data_root, task, "finetune", "--lr", "0.05", "--val_fraction", "0",
                "--save_folder", str(task / "scratch")) in (0, 2)
    scalars = _scalars(task / "tensorboard" / "finetune_w1.0")
    assert "val_acc" not in scalars and [step for step, _ in scalars["test_acc"]] == [2]


def test_a_rerun_replaces_the_stage_run(cpg_task, data_root, tmp_path):
    task = tmp_path / "digits_01"
    shutil.copytree(cpg_task, task)
    assert _prune(data_root, task) in (0, 6)
    run = task / "tensorboard" / "prune_0.5"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert [step for step, _ in _scalars(run)["loss"]] == [1, 2]
    assert len(_epoch_lines(task / "train.log", "prune")) == 4  # the log keeps both runs' lines


@pytest.mark.parametrize("method, benchmark, dataset, run, tags", [
    ("supsup", "split_digits", "digits_01", "supsup_finetune_digits_01", {"loss", "train_acc", "lr", "seconds"}),
    ("subspace", "digits10", "digits10", "subspace_finetune_digits10", {"loss", "train_acc", "lr", "cos2", "seconds"}),
    ("lottery", "digits10", "digits10", "lottery_level_0", {"loss", "train_acc", "lr", "seconds"}),
    ("gg_baseline", "split_digits", "digits_01", "gg_batche_digits_01", {"loss", "train_acc", "seconds"}),
])
def test_other_methods_write_their_scalars(data_root, tmp_path, method, benchmark, dataset, run, tags):
    arch = ["--arch", "lenet_300_100"] if method in ("supsup", "lottery", "gg_baseline") else []
    if method == "gg_baseline":
        arch += ["--gg_layers", "batche"]
    code = _main(data_root, "--method", method, "--mode", "finetune", "--benchmark", benchmark, "--dataset", dataset,
                 "--lr", "0.01", *arch, "--save_folder", str(tmp_path / "model"), "--log_path",
                 str(tmp_path / "train.log"))
    assert code == 0
    scalars = _scalars(tmp_path / "tensorboard" / run)
    assert tags <= set(scalars)
    assert [step for step, _ in scalars["loss"]] == [1, 2]
    assert [step for step, _ in scalars["test_acc"]] == [2] and 0.0 <= scalars["test_acc"][0][1] <= 1.0
    assert "val_acc" not in scalars  # these methods measure on the test images


@pytest.mark.parametrize("scenario, runs, tags, steps", [
    ("nns", ["supsup_nns"], {"masks_allocated", "n_max_nu", "candidates"}, [4, 8, 12]),
    ("hopfield", ["supsup_hopfield_digits_01", "supsup_hopfield_digits_23"], {"loss", "train_acc", "lr", "test_acc"},
     [1, 2]),
])
def test_supsup_streams_write_their_scalars(data_root, tmp_path, scenario, runs, tags, steps):
    """NNs puts a point at each new-task check (step: the stream's batch), HopSupSup a run per task."""
    scale = (["--supsup_nns_task_batches", "8", "--supsup_nns_every", "4", "--arch", "lenet_300_100"]
             if scenario == "nns" else ["--supsup_hop_hidden", "32", "--arch", "bn_mask_net"])
    code = _main(data_root, "--method", "supsup", "--mode", "finetune", "--benchmark", "split_digits", "--dataset",
                 "digits_01", "--supsup_scenario", scenario, "--supsup_stream", "digits_01,digits_23", "--lr", "0.01",
                 *scale, "--save_folder", str(tmp_path / "model"), "--log_path", str(tmp_path / "train.log"))
    assert code == 0
    for run in runs:
        scalars = _scalars(tmp_path / "tensorboard" / run)
        assert tags <= set(scalars), run
        assert [step for step, _ in scalars[min(tags)]] == steps, run


def test_no_log_file_or_a_quiet_rank_writes_nothing(tmp_path):
    for log in (RunLog(None), RunLog(tmp_path / "train.log", quiet=True)):
        with log.board("finetune_w1.0") as board:
            board.epoch(1, loss=0.5)
    assert not any(tmp_path.iterdir())

"""Every method's stage run shows validation accuracy on TensorBoard, read back with TensorBoard's own reader:
the CPG family holds its validation images out by default, the methods whose papers train on every training
image (SupSup, the GG baselines, subspace, lottery, Expand-and-Cluster, EWC, LwF) when --val_fraction asks; the test
accuracy is a tag of its own, the one the checkpoint records; with --val_fraction 0 they show no val_acc."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import main_normal

DIGITS = ["--benchmark", "split_digits", "--dataset", "digits_01"]
DIGITS10 = ["--benchmark", "digits10", "--dataset", "digits10"]
OWNERSHIP = [*DIGITS, "--mode", "finetune", "--lr", "0.05", "--max_allowed_network_width_multiplier", "1.0"]
STREAM = ["--mode", "finetune", *DIGITS, "--supsup_stream", "digits_01,digits_23"]
FRACTION = "0.25"


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def _checkpoint_accuracy(key: str, task: str | None = None) -> Callable[[Path], float]:
    """The test accuracy the stage's checkpoint records (meta.json under --save_folder `model`)."""
    def read(run: Path) -> float:
        meta = _meta(run / "model")
        return meta[key][task] if task else meta[key]
    return read


def _recomputed(folder: Path, benchmark: str, dataset: str, data_root: Path) -> float:
    """The test accuracy of the checkpoint in `folder`, measured here on the task's test images."""
    import torch

    from unforget.utils.data.registry import get_benchmark
    from unforget.utils.engine import evaluate
    from unforget.utils.methods.matrices import checkpoint_network

    _, network = checkpoint_network(folder)
    network.set_task(network.task_id(dataset))
    task = get_benchmark(benchmark).load_task(data_root, dataset)
    return evaluate(network, task.on_device(torch.device("cpu"), 0, False), 100)


def _lottery_accuracy(run: Path) -> float:
    return _meta(run / "model" / "level_0")["accuracy"]


# method: (its flags, its TensorBoard run under the log's folder, its checkpoint's test accuracy or None,
# whether --val_fraction is opt-in)
CASES: dict[str, tuple[list[str], str, Callable[[Path], float] | None, bool]] = {
    "cpg": (["--method", "cpg", *OWNERSHIP], "finetune_w1.0", None, False),
    "packnet": (["--method", "packnet", *OWNERSHIP], "finetune_w1.0", None, False),
    "piggyback": (["--method", "piggyback", *DIGITS, "--mode", "finetune", "--lr", "0.05"], "finetune_w1.0", None,
                  False),
    "baseline": (["--method", "baseline", *DIGITS, "--mode", "finetune", "--lr", "0.05"], "finetune_w1.0", None,
                 False),
    "supsup": (["--method", "supsup", "--mode", "finetune", *DIGITS, "--arch", "lenet_300_100"],
               "supsup_finetune_digits_01", _checkpoint_accuracy("accuracy"), True),
    "supsup_nns": (["--method", "supsup", *STREAM, "--supsup_scenario", "nns", "--arch", "lenet_300_100",
                    "--supsup_nns_task_batches", "6", "--supsup_nns_every", "3"], "supsup_nns_tasks", None, True),
    "supsup_hopfield": (["--method", "supsup", *STREAM, "--supsup_scenario", "hopfield", "--supsup_hop_hidden",
                         "32"], "supsup_hopfield_digits_01",
                        _checkpoint_accuracy("accuracy_after_learning", "digits_01"), True),
    "gg_baseline": (["--method", "gg_baseline", "--mode", "finetune", *DIGITS, "--arch", "lenet_300_100",
                     "--gg_layers", "batche"], "gg_batche_digits_01", _checkpoint_accuracy("accuracy"), True),
    "subspace": (["--method", "subspace", "--mode", "finetune", *DIGITS10], "subspace_finetune_digits10",
                 _checkpoint_accuracy("accuracy"), True),
    "lottery": (["--method", "lottery", "--mode", "finetune", *DIGITS10, "--arch", "lenet_300_100"],
                "lottery_level_0", _lottery_accuracy, True),
    "wsn": (["--method", "wsn", "--mode", "finetune", *DIGITS], "finetune", _checkpoint_accuracy("test_accuracy"),
            False),
    "hat": (["--method", "hat", "--mode", "finetune", *DIGITS], "hat", _checkpoint_accuracy("accuracy"), False),
    "ewc": (["--method", "ewc", "--mode", "finetune", *DIGITS], "ewc_digits_01", _checkpoint_accuracy("accuracy"),
            True),
    "lwf": (["--method", "lwf", "--mode", "finetune", *DIGITS], "lwf_digits_01", _checkpoint_accuracy("accuracy"),
            True),
}


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a run folder as (step, value) pairs, as TensorBoard reads them."""
    events = EventAccumulator(str(run))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _stage(data_root: Path, folder: Path, method: str, *fraction: str) -> dict[str, list[tuple[int, float]]]:
    """One tiny stage of `method` (1 epoch, batches of 16) logged under `folder`; its run's scalars."""
    flags, run, _, _ = CASES[method]
    record = ["--jsonfile", str(folder / "record.txt")] if method in ("cpg", "packnet") else []
    code = main_normal.main([*flags, *record, "--data_root", str(data_root), "--device", "cpu", "--epochs", "1",
                             "--batch_size", "16", "--save_folder", str(folder / "model"),
                             "--log_path", str(folder / "train.log"), *fraction])
    assert code in (0, 2), code  # a CPG-family finetune below its goal asks for growth (2): it still measured
    return _scalars(folder / "tensorboard" / run)


def _accuracies(scalars: dict[str, list[tuple[int, float]]], tag: str) -> list[float]:
    values = [value for _, value in scalars[tag]]
    assert values and all(0.0 <= value <= 1.0 for value in values), (tag, values)
    return values


@pytest.mark.parametrize("method", CASES)
def test_each_method_shows_validation_accuracy_apart_from_test_accuracy(data_root, tmp_path, method):
    """Validation (the CPG family by default, the others with --val_fraction) and test accuracy, each under
    its own tag at the stage's last epoch; the test accuracy is the checkpoint's, never the validation's."""
    _, _, recorded, opt_in = CASES[method]
    scalars = _stage(data_root, tmp_path, method, *(["--val_fraction", FRACTION] if opt_in else []))
    _accuracies(scalars, "val_acc")
    tests = _accuracies(scalars, "test_acc")
    assert scalars["val_acc"][-1][0] == scalars["test_acc"][-1][0]
    if recorded is not None:
        assert tests[-1] == pytest.approx(recorded(tmp_path), abs=0.5e-4 + 1e-6)
    if method == "gg_baseline":  # measured again from the checkpoint alone: the test images' accuracy
        assert tests[-1] == pytest.approx(_recomputed(tmp_path / "model", *DIGITS[1::2], data_root), abs=1e-6)
    if method == "supsup_nns":  # a point per stream task, with how often inference picked the task's mask
        assert [step for step, _ in scalars["task_inference_acc"]] == [1, 2]
        _accuracies(scalars, "task_inference_acc")


@pytest.mark.parametrize("method", [method for method, case in CASES.items() if case[3]])
def test_without_a_fraction_the_methods_papers_protocol_shows_no_validation(data_root, tmp_path, method):
    """--val_fraction 0 (the default): every training image trains, and only the test accuracy is shown."""
    _, _, recorded, _ = CASES[method]
    scalars = _stage(data_root, tmp_path, method, "--val_fraction", "0")
    assert "val_acc" not in scalars
    tests = _accuracies(scalars, "test_acc")
    if recorded is not None:
        assert tests[-1] == pytest.approx(recorded(tmp_path), abs=0.5e-4 + 1e-6)


@pytest.fixture(scope="module")
def teacher(data_root, tmp_path_factory) -> Path:
    """A one-epoch fully connected digits10 teacher for Expand-and-Cluster."""
    folder = tmp_path_factory.mktemp("teacher")
    assert main_normal.main(["--method", "baseline", "--mode", "finetune", "--arch", "digits_mlp_16", *DIGITS10,
                             "--data_root", str(data_root), "--device", "cpu", "--epochs", "1",
                             "--save_folder", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("fraction", ["0", FRACTION])
def test_extraction_shows_its_recovery_and_the_rebuilt_networks_accuracy(data_root, tmp_path, teacher, fraction):
    """The fine-tune's run: the recovery of the report (per hidden layer) before the fine-tune (step 0) and at
    the epoch it keeps, with the rebuilt network's test accuracy there and, with --val_fraction, its accuracy
    on the training images no student saw."""
    flags = ["--method", "extract", *DIGITS10, "--data_root", str(data_root), "--device", "cpu", "--load_folder",
             str(teacher), "--save_folder", str(tmp_path), "--ec_students", "4", "--epochs", "30", "--batch_size",
             "2000", "--ec_finetune_epochs", "5", "--ec_gamma", "0.5", "--ec_beta", "1.01", "--val_fraction", fraction,
             "--ec_report", str(tmp_path / "report.json")]
    assert main_normal.main([*flags, "--mode", "finetune"]) == 0
    assert main_normal.main([*flags, "--mode", "retrain"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    (run,) = tmp_path.glob("ec_*/tensorboard/fine_tune")
    scalars = _scalars(run)
    steps = [0, report["after_tuning"]["kept_epoch"]]
    for stage, step in zip(("after_reconstruction", "after_tuning"), steps, strict=True):
        for layer in report[stage]["layers"]:
            for figure in ("recovered", "max_incoming"):
                assert (step, pytest.approx(layer[figure])) in scalars[f"{figure}_L{layer['layer']}"], (stage, figure)
        assert (step, pytest.approx(report[stage]["test_loss"], rel=1e-6)) in scalars["test_loss"]
    assert [step for step, _ in scalars["test_acc"]] == steps
    _accuracies(scalars, "test_acc")
    if fraction == "0":
        assert "val_acc" not in scalars
    else:
        assert [step for step, _ in scalars["val_acc"]] == steps
        _accuracies(scalars, "val_acc")


@pytest.mark.parametrize("flags", [["--benchmark", "gaussian_teacher", "--dataset", "gaussian"],
                                   [*DIGITS10, "--ec_probe", "gaussian", "--load_folder", "teacher"]])
def test_extraction_without_images_to_hold_out_refuses_a_fraction(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as stop:
        main_normal.main(["--method", "extract", "--mode", "finetune", *flags, "--data_root", str(tmp_path),
                          "--save_folder", str(tmp_path), "--val_fraction", FRACTION])
    err = capsys.readouterr().err
    assert stop.value.code == 64 and len(err.strip().splitlines()) == 1 and "--val_fraction" in err, err

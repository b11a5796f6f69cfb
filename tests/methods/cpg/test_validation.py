"""Every choice is made on a seeded validation split held out of the training images by default, and what
reports and inference show is test accuracy; --val_fraction 0 chooses on the test images (the reference)."""

import json

import pytest
import torch

import main_normal
from unforget.tools import report
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import hold_out
from unforget.utils.engine import evaluate

TASK = "digits_01"


def _flags(data_root, folder, *extra: str) -> list[str]:
    return ["--mode", "finetune", "--dataset", TASK, "--data_root", str(data_root), "--device", "cpu",
            "--epochs", "2", "--lr", "0.05", "--max_allowed_network_width_multiplier", "1.0",
            "--save_folder", str(folder), "--jsonfile", str(folder.parent / f"{folder.name}_record.txt"), *extra]


def _accuracy(folder, task_data) -> float:
    """The accuracy of the checkpoint in `folder` on `task_data`'s evaluation images, to record.txt's 4 places."""
    network = network_from_checkpoint(load_checkpoint(folder))
    network.set_task(network.task_id(TASK))
    benchmark = get_benchmark("split_digits")
    return round(evaluate(network, task_data.on_device(torch.device("cpu"), benchmark.crop_padding,
                                                       benchmark.flip)), 4)


@pytest.mark.parametrize("method, extra", [("cpg", ["--jsonfile", "r.txt"]), ("baseline", []), ("piggyback", [])])
def test_the_default_holds_out_the_benchmarks_share_and_zero_means_the_test_images(data_root, tmp_path, method,
                                                                                    extra):
    common = ["--method", method, "--mode", "finetune", "--data_root", str(data_root), "--save_folder", str(tmp_path),
              *extra]
    digits = main_normal.parse_settings([*common, "--dataset", TASK])
    cifar = main_normal.parse_settings([*common, "--benchmark", "cifar100", "--dataset", "aquatic_mammals"])
    reference = main_normal.parse_settings([*common, "--dataset", TASK, "--val_fraction", "0"])
    assert (digits.val_fraction, cifar.val_fraction, reference.val_fraction) == (0.2, 0.1, 0.0)


def test_split_digits_tasks_keep_enough_validation_images_to_resolve_their_goal(data_root):
    benchmark = get_benchmark("split_digits")
    for name in benchmark.task_names:
        held = hold_out(benchmark.load_task(data_root, name), benchmark.val_fraction).test_labels
        assert held.numel() >= 47 and 1 - 1 / held.numel() >= benchmark.default_goals[name], name
        assert set(held.tolist()) == {0, 1}, name  # both classes are judged


def test_choices_are_made_on_held_out_training_images_by_default_and_on_the_test_images_with_zero(data_root,
                                                                                                  tmp_path):
    """By default record.txt and meta.json's accuracy are the held-out images' accuracy and test_accuracy the test
    images'; --val_fraction 0 records the test images' accuracy (the reference's protocol)."""
    task = get_benchmark("split_digits").load_task(data_root, TASK)
    assert main_normal.main(_flags(data_root, tmp_path / "default")) in (0, 5)
    validation, test = _accuracy(tmp_path / "default", hold_out(task, 0.2)), _accuracy(tmp_path / "default", task)
    assert validation != test  # otherwise this test could not tell them apart
    record = json.loads((tmp_path / "default_record.txt").read_text())
    meta = json.loads((tmp_path / "default/meta.json").read_text())
    assert record["0.0"] == meta["accuracy"] == validation
    assert meta["test_accuracy"] == test

    assert main_normal.main(_flags(data_root, tmp_path / "reference", "--val_fraction", "0")) in (0, 5)
    record = json.loads((tmp_path / "reference_record.txt").read_text())
    meta = json.loads((tmp_path / "reference/meta.json").read_text())
    assert record["0.0"] == meta["accuracy"] == _accuracy(tmp_path / "reference", task)
    assert "test_accuracy" not in meta


def test_the_summary_and_inference_report_test_accuracy(data_root, tmp_path, capsys):
    folder = tmp_path / "run" / TASK / "gradual_prune"
    assert main_normal.main(_flags(data_root, folder)) in (0, 5)
    (folder / "chosen.json").write_text('{"sparsity": "0.0"}')
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["accuracy"] != meta["test_accuracy"]
    summary = report.summarise(tmp_path / "run", [TASK], "split_digits", data_root, torch.device("cpu"))
    assert summary["tasks"][0]["accuracy_after_learning"] == summary["tasks"][0]["accuracy_final"] \
        == summary["metrics"]["average_accuracy"] == meta["test_accuracy"]
    capsys.readouterr()
    assert main_normal.main(["--mode", "inference", "--dataset", TASK, "--data_root", str(data_root), "--device",
                             "cpu", "--load_folder", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == meta["test_accuracy"]


def test_a_baseline_goal_file_holds_the_validation_accuracy_goals_are_compared_with(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    assert main_normal.main(["--method", "baseline", *_flags(data_root, tmp_path / "b"), "--logfile", str(goals)]) == 0
    meta = json.loads((tmp_path / "b/meta.json").read_text())
    assert meta["accuracy"] != meta["test_accuracy"]
    assert json.loads(goals.read_text())[TASK] == meta["accuracy"]


def test_piggyback_reports_the_test_accuracy_right_after_learning(data_root, tmp_path):
    assert main_normal.main(["--method", "piggyback", "--mode", "finetune", "--dataset", TASK, "--data_root",
                             str(data_root), "--device", "cpu", "--epochs", "2", "--lr", "0.05",
                             "--save_folder", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["accuracy"] != meta["test_accuracy"]
    assert meta["accuracy_after_learning"] == {TASK: meta["test_accuracy"]}

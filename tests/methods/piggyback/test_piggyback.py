"""Piggyback on split_digits: the backbone stays frozen after the first task, every old task's logits
stay bit-identical as tasks are added, and each later task costs 1 bit per backbone weight."""

import json

import pytest
import torch

import main_normal
from tests.helpers import run_driver
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import predict

TASKS = get_benchmark("split_digits").task_names[:3]


def _logits(folder, name: str, data_root) -> torch.Tensor:
    network = network_from_checkpoint(load_checkpoint(folder))
    network.set_task(network.task_id(name))
    benchmark = get_benchmark("split_digits")
    data = DeviceTaskData(benchmark.load_task(data_root, name), torch.device("cpu"), 0, False)
    return predict(network, data)


def _backbone(folder) -> dict:
    return {name: value for name, value in load_checkpoint(folder)["model"].items()
            if name.endswith(".weights.weight") and "heads" not in name}


def test_old_tasks_stay_bit_identical_and_the_backbone_frozen(tmp_path, data_root):
    learned = {}
    for index, name in enumerate(TASKS):
        load = ["--load_folder", str(tmp_path / TASKS[index - 1])] if index else []
        code = main_normal.main(["--method", "piggyback", "--mode", "finetune", "--dataset", name, "--data_root",
                                 str(data_root), "--device", "cpu", "--epochs", "3" if index else "6",
                                 "--lr", "0.05", "--save_folder", str(tmp_path / name), *load])
        assert code == 0
        learned[name] = _logits(tmp_path / name, name, data_root)
        for old in TASKS[:index]:
            assert torch.equal(_logits(tmp_path / name, old, data_root), learned[old]), (old, name)
    first, last = _backbone(tmp_path / TASKS[0]), _backbone(tmp_path / TASKS[-1])
    assert first.keys() == last.keys() and all(torch.equal(first[key], last[key]) for key in first)
    picks = [key for key in load_checkpoint(tmp_path / TASKS[-1])["model"] if ".pick_" in key]
    assert {key.rsplit("_", 1)[1] for key in picks} == {"2", "3"}


def test_a_pruning_flag_is_not_a_piggyback_flag(tmp_path, data_root, capsys):
    with pytest.raises(SystemExit) as stop:
        main_normal.main(["--method", "piggyback", "--mode", "finetune", "--dataset", TASKS[0], "--data_root",
                          str(data_root), "--save_folder", str(tmp_path), "--target_sparsity", "0.5"])
    assert stop.value.code == 64
    assert "--target_sparsity is a flag of --method cpg" in capsys.readouterr().err


@pytest.mark.slow
def test_driver_reports_unchanged_old_tasks_and_one_bit_per_weight(tmp_path, data_root):
    result = run_driver("piggyback.sh", "split_digits", DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path),
                        NUM_TASKS="3", BACKBONE_EPOCHS="6", EPOCHS="2", LR="0.05", BATCH_SIZE="16")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert [row["task"] for row in summary["tasks"]] == list(TASKS)
    for row in summary["tasks"]:
        assert row["accuracy_final"] == row["accuracy_after_learning"]
    assert 1.0 <= summary["mask_bits_per_backbone_weight"] < 1.01
    assert "bits per backbone weight" in result.stdout

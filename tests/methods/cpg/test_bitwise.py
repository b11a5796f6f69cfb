"""Earlier tasks' logits stay bit-identical through every later stage, including growth (CPU)."""

import pytest
import torch

import main_normal
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import predict

pytestmark = pytest.mark.slow


def _logits(folder, task_name, data_root):
    benchmark = get_benchmark("split_digits")
    network = network_from_checkpoint(load_checkpoint(folder))
    network.set_task(network.task_id(task_name))
    data = DeviceTaskData(benchmark.load_task(data_root, task_name), torch.device("cpu"), 1, False)
    return predict(network, data)


def _stage(data_root, tmp_path, mode, task, save, load=None, width="1.0", **flags):
    """One stage in-process; the width cap equals the width, so finetune never asks to expand."""
    args = ["--mode", mode, "--dataset", task, "--data_root", str(data_root), "--device", "cpu",
            "--batch_size", "16", "--epochs", "8" if mode == "finetune" else "3", "--network_width_multiplier", width,
            "--max_allowed_network_width_multiplier", width, "--jsonfile", str(tmp_path / task / "record.txt"),
            "--save_folder", str(tmp_path / save)]
    if load:
        args += ["--load_folder", str(tmp_path / load)]
    for name, value in flags.items():
        args += [f"--{name}", str(value)]
    assert main_normal.main(args) == 0
    assert (tmp_path / save / "checkpoint.pth").is_file()


def test_old_tasks_are_bit_identical_after_later_tasks_and_growth(data_root, tmp_path):
    prune = {"lr": 1e-3, "lr_mask": 0.0, "pruning_frequency": 2, "pruning_interval": 1, "target_sparsity": 0.6}
    retrain = {"lr": 1e-3, "lr_mask": 1e-4}
    _stage(data_root, tmp_path, "finetune", "digits_01", "t1/scratch")
    _stage(data_root, tmp_path, "prune", "digits_01", "t1/final", load="t1/scratch", **prune)
    learned = {"digits_01": _logits(tmp_path / "t1/final", "digits_01", data_root)}
    later = [
        ("finetune", "digits_23", "t2/scratch", "t1/final", "1.5", {}),  # grows the network
        ("prune", "digits_23", "t2/pruned", "t2/scratch", "1.5", prune),
        ("retrain", "digits_23", "t2/final", "t2/pruned", "1.5", retrain),
        ("finetune", "digits_45", "t3/scratch", "t2/final", "1.5", {}),
        ("prune", "digits_45", "t3/final", "t3/scratch", "1.5", prune),
    ]
    for mode, task, save, load, width, flags in later:
        _stage(data_root, tmp_path, mode, task, save, load, width, **flags)
        for old_task, logits in learned.items():
            assert torch.equal(_logits(tmp_path / save, old_task, data_root), logits), (old_task, save)
        if save.endswith("final"):
            learned[task] = _logits(tmp_path / save, task, data_root)
    assert load_checkpoint(tmp_path / "t3/final")["width"] == 1.5
    assert len(learned) == 3


def test_a_fully_connected_cpg_net_takes_the_datas_input_size_and_keeps_old_tasks_when_it_grows(data_root, tmp_path):
    """LeNet 300-100 on the 8x8 permuted digits: its first layer is sized from the data, the wider
    network rebuilt for task 2 copies the stored one into its corner, and task 1 answers bit for bit."""
    goals = tmp_path / "goals.json"
    goals.write_text('{"pdigits_00": 0.0, "pdigits_01": 0.0}')
    common = ["--benchmark", "permuted_digits", "--arch", "lenet_300_100", "--data_root", str(data_root),
              "--device", "cpu", "--epochs", "1", "--baseline_acc_file", str(goals)]
    for task, width, save, load in (("pdigits_00", "1.0", "a", []),
                                    ("pdigits_01", "1.5", "b", ["--load_folder", str(tmp_path / "a")])):
        code = main_normal.main(["--mode", "finetune", "--dataset", task, "--network_width_multiplier", width,
                                 "--max_allowed_network_width_multiplier", width, "--save_folder", str(tmp_path / save),
                                 "--jsonfile", str(tmp_path / f"{task}.json"), *common, *load])
        assert code == 0  # at the width cap: saved whatever the accuracy
    benchmark = get_benchmark("permuted_digits")
    data = DeviceTaskData(benchmark.load_task(data_root, "pdigits_00"), torch.device("cpu"), 0, False)
    logits = []
    for folder in ("a", "b"):
        network = network_from_checkpoint(load_checkpoint(tmp_path / folder), input_shape=(1, 8, 8))
        network.set_task(1)
        logits.append(predict(network, data))
    assert torch.equal(*logits)

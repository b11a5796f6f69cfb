"""The CIFAR-100 drivers end to end on a tiny generated CIFAR-100 (VGG16 on the CPU, one-epoch stages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_driver
from tests.helpers.cifar import write_cifar100_pickle
from unforget.utils.data.cifar100_names import TASK_NAMES

pytestmark = pytest.mark.slow

ONE_EPOCH = {"NUM_TASKS": "3", "FINETUNE_EPOCHS": "1", "PRUNE_EPOCHS": "1", "RETRAIN_EPOCHS": "1", "EPOCHS": "1"}


@pytest.fixture(scope="module")
def pickle_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar_pickle")
    write_cifar100_pickle(root)
    return root


def _check_task_folder(folder: Path) -> None:
    """Design sections 3-4: the chosen checkpoint (the scratch stage's is dropped once the task is done, its meta
    kept), a canonical record.txt, a readable log."""
    chosen = folder / "gradual_prune"
    assert (chosen / "checkpoint.pth").is_file() and (chosen / "meta.json").is_file()
    assert not (folder / "scratch" / "checkpoint.pth").exists() and (folder / "scratch" / "meta.json").is_file()
    record = json.loads((folder / "gradual_prune/record.txt").read_text())
    assert "0.0" in record
    for key, value in record.items():
        assert key == repr(round(float(key), 4)) and 0.0 <= value <= 1.0 and round(value, 4) == value
    assert list(record) == sorted(record, key=float)
    assert json.loads((folder / "gradual_prune/chosen.json").read_text())["sparsity"] in record
    log = (folder / "train.log").read_text()
    assert "stage=finetune" in log and "epoch=1/1" in log


def test_cpg_script_runs_three_tasks_and_inference_matches(tmp_path, pickle_root):
    """On the pickle layout; the PNG layout decodes to the same tensors (test_cifar100_data.py), and the
    drivers read both through the one loader."""
    env = {**ONE_EPOCH, "DATA_ROOT": str(pickle_root), "CKPT_ROOT": str(tmp_path / "ck")}
    result = run_driver("CPG_cifar100_scratch_mul_1.5.sh", "0", **env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    root = tmp_path / "ck/CPG/experiment1/scratch_mul_1.5_seed1/custom_vgg_cifar100"
    for task in TASK_NAMES[:3]:
        _check_task_folder(root / task)
    (root / "summary.json").unlink()
    inference = run_driver("inference_CPG_cifar100.sh", "0", **env)
    assert inference.returncode == 0, inference.stderr[-2000:]
    summary = json.loads((root / "summary.json").read_text())
    assert [row["task"] for row in summary["tasks"]] == list(TASK_NAMES[:3])
    for row in summary["tasks"]:
        assert row["accuracy_final"] == row["accuracy_after_learning"]
    assert summary["size_vs_unexpanded"] <= 1.5 + 1e-9
    assert "aquatic_mammals" in inference.stdout


def test_baselines_write_goal_files_and_packnet_runs(tmp_path, pickle_root):
    env = {**ONE_EPOCH, "NUM_TASKS": "2", "DATA_ROOT": str(pickle_root), "CKPT_ROOT": str(tmp_path / "ck")}
    for script, logfile in (("baseline_cifar100.sh", "base.json"), ("finetune_cifar100.sh", "fine.json")):
        result = run_driver(script, "0", **env, LOGFILE=str(tmp_path / logfile))
        assert result.returncode == 0, result.stderr[-2000:]
        goals = json.loads((tmp_path / logfile).read_text())
        assert list(goals) == list(TASK_NAMES[:2]) and all(0.0 <= v <= 1.0 for v in goals.values())
    packnet = run_driver("PackNet_cifar100.sh", "0", **env)
    assert packnet.returncode == 0, packnet.stderr[-2000:]
    root = tmp_path / "ck/PackNet/experiment1/one_shot_prune_seed1/vgg16_bn_cifar100"
    summary = json.loads((root / "summary.json").read_text())
    assert [row["width"] for row in summary["tasks"]] == [1.0, 1.0]
    assert not (root / "fish/retrain").exists()


def test_missing_cifar100_exits_64_naming_the_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_driver("CPG_cifar100_scratch_mul_1.5.sh", "0", **ONE_EPOCH, DATA_ROOT=str(tmp_path / "empty"),
                        CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 64
    assert "cifar-100-python" in result.stderr and "cifar100_org" in result.stderr
    assert "Traceback" not in result.stderr

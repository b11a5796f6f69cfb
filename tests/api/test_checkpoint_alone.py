"""A checkpoint is self-contained: copied alone (checkpoint.pth only: no meta.json, no data) into an empty
folder, unforget.api rebuilds it into a network whose logits on raw images are bit for bit those of the
network the run's stages build from the same checkpoint, normalising as they do (same process, same kernels).
Checked for CPG (two tasks, the first one's record carried through the second stage) and SupSup (a mask by
index); a bad checkpoint is a CheckpointError through the API and exit 65 with one line through the tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, environment, run_main
from unforget import api
from unforget.utils.checkpoint import CheckpointError
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.methods.matrices import checkpoint_network

pytestmark = pytest.mark.slow  # four training stages and a report: about 30 s on 2 shared cores
TASKS = ("digits_01", "digits_23")
STAGES = {"cpg": ["--method", "cpg", "--arch", "digits_convnet", "--jsonfile", "record.txt"],
          "supsup": ["--method", "supsup", "--arch", "lenet_300_100"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each method's checkpoint after two tasks, made by two finetune stages as a driver makes them."""
    root = tmp_path_factory.mktemp("alone")
    (root / "data").mkdir()
    folders = {}
    for method in STAGES:
        previous: list[str] = []
        for task in TASKS:
            folder = root / method / task
            flags = [str(folder / flag) if flag == "record.txt" else flag for flag in STAGES[method]]
            done = run_main(*flags, "--mode", "finetune", "--benchmark", "split_digits", "--dataset", task,
                            "--data_root", str(root / "data"), "--save_folder", str(folder), "--epochs", "1",
                            "--device", "cpu", *previous)
            assert done.returncode in (0, 5), done.stderr[-2000:]  # 5: saved, and no free weights left
            previous = ["--load_folder", str(folder)]
        folders[method] = folder
    folders["data"] = root / "data"
    return folders


def run_logits(folder: Path, task: int, images: torch.Tensor, data_root: Path) -> torch.Tensor:
    """Task `task`'s logits as the run computes them: the network the report rebuilds (with its meta.json) on
    images normalised by the task's device data."""
    _, network = checkpoint_network(folder)
    network.eval()
    network.set_task(task)
    data = get_benchmark("split_digits").load_task(data_root, TASKS[task - 1])
    with torch.no_grad():
        return network(DeviceTaskData(data, torch.device("cpu"), 0, False).normalise(images))


@pytest.mark.parametrize("method", sorted(STAGES))
def test_a_checkpoint_copied_alone_gives_the_runs_logits_bit_for_bit(runs, method, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(runs[method] / "checkpoint.pth", alone / "checkpoint.pth")
    for task in (1, 2):
        images = get_benchmark("split_digits").load_task(runs["data"], TASKS[task - 1]).test_images
        model = api.load_network(alone, task)  # by index: a SupSup mask by its index
        assert not model.training
        with torch.no_grad():
            logits = model(images)
        expected = run_logits(runs[method], task, images, runs["data"])
        assert logits.shape == expected.shape and torch.equal(logits, expected), (method, task)


def test_the_first_tasks_record_is_carried_into_the_second_checkpoint(runs):
    payload = torch.load(runs["cpg"] / "checkpoint.pth", weights_only=True)
    digits = get_benchmark("split_digits")
    for name in TASKS:
        task = digits.load_task(runs["data"], name)
        record = payload["task_data"][name]
        assert record["classes"] == list(task.classes) and tuple(record["mean"]) == task.mean
        assert tuple(record["std"]) == task.std and record["test"] == task.test_labels.numel()
    assert payload["benchmark_identity"] == {"name": "split_digits", "spec_sha256": None}
    assert payload["image_shape"] == [1, 8, 8]


def test_a_checkpoint_without_its_normalisation_is_refused_not_guessed(runs, tmp_path):
    payload = torch.load(runs["supsup"] / "checkpoint.pth", weights_only=True)
    del payload["task_data"][TASKS[0]]
    torch.save(payload, tmp_path / "checkpoint.pth")
    assert api.load_network(tmp_path, 2) is not None
    with pytest.raises(CheckpointError, match="records no normalisation for task 'digits_01'"):
        api.load_network(tmp_path, 1)


@pytest.mark.parametrize("content", [None, b"not a checkpoint", "nan_mean"])
def test_a_bad_checkpoint_is_a_checkpoint_error_through_the_api_and_exit_65_through_the_tools(runs, tmp_path,
                                                                                               content):
    folder = tmp_path / "digits_01"
    folder.mkdir()
    if content == "nan_mean":
        payload = torch.load(runs["cpg"] / "checkpoint.pth", weights_only=True)
        payload["task_data"][TASKS[0]]["mean"] = [float("nan")]
        torch.save(payload, folder / "checkpoint.pth")
    elif content is not None:
        (folder / "checkpoint.pth").write_bytes(content)
    with pytest.raises(CheckpointError):
        api.load_network(folder)
    assert api.CheckpointError is CheckpointError
    shutil.copy(runs["cpg"].parent / TASKS[0] / "meta.json", folder / "meta.json")
    done = subprocess.run([sys.executable, "-m", "tools.report", "--root", str(tmp_path), "--checkpoints",
                           "independent", "--num_tasks", "1", "--data_root", str(runs["data"])],
                          capture_output=True, text=True, cwd=REPO, env=environment(), timeout=120)
    assert done.returncode == 65, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr

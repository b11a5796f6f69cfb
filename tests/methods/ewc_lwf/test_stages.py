"""EWC's and LwF's stages: bad settings refused in one line, what each stage leaves in its folder and what the
next stage refuses to continue; the drivers' runs forget, less than the sequential finetune baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import main_normal
from tests.helpers import run_driver
from unforget.utils.atomic import read_torch_file
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import predict
from unforget.utils.methods.regularised import ewc

TASKS = get_benchmark("split_digits").task_names


def _stage(method: str, task: str, data_root: Path, save: Path, *flags: str) -> list[str]:
    return ["--method", method, "--mode", "finetune", "--dataset", task, "--data_root", str(data_root),
            "--device", "cpu", "--epochs", "2", "--batch_size", "16", "--save_folder", str(save), *flags]


def _refused(argv: list[str], capsys, code: int = 64) -> str:
    """The one stderr line of a refused stage (a parse error exits, a stage's own check returns)."""
    try:
        got = main_normal.main(argv)
    except SystemExit as stop:
        got = stop.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert got == code and len(lines) == 1, (got, lines)
    return lines[0]


@pytest.mark.parametrize("method, flag, value, text", [
    ("ewc", "--ewc_lambda", "-1", "--ewc_lambda must be at least 0"),
    ("ewc", "--ewc_lambda", "nan", "--ewc_lambda must be a finite number"),
    ("ewc", "--ewc_gamma", "0", "--ewc_gamma must be above 0"),
    ("ewc", "--ewc_gamma", "-0.5", "--ewc_gamma must be above 0"),
    ("ewc", "--ewc_gamma", "1.5", "--ewc_gamma must be at most 1"),
    ("ewc", "--ewc_gamma", "nan", "--ewc_gamma must be a finite number"),
    ("ewc", "--ewc_fisher_samples", "0", "--ewc_fisher_samples must be at least 1"),
    ("lwf", "--lwf_lambda", "-0.1", "--lwf_lambda must be at least 0"),
    ("lwf", "--lwf_lambda", "inf", "--lwf_lambda must be a finite number"),
    ("lwf", "--lwf_temperature", "0", "--lwf_temperature must be above 0"),
    ("lwf", "--lwf_temperature", "-2", "--lwf_temperature must be above 0"),
    ("lwf", "--lwf_temperature", "nan", "--lwf_temperature must be a finite number"),
    ("lwf", "--lwf_warmup_epochs", "-1", "--lwf_warmup_epochs must be at least 0"),
    ("lwf", "--ewc_lambda", "1", "--ewc_lambda is a flag of --method ewc"),
])
def test_bad_settings_are_one_line_and_64(tmp_path, data_root, capsys, method, flag, value, text):
    line = _refused(_stage(method, TASKS[0], data_root, tmp_path / "s", flag, value), capsys)
    assert text in line
    assert not (tmp_path / "s").exists()


def _logits(folder: Path, name: str, data_root: Path) -> torch.Tensor:
    network = network_from_checkpoint(load_checkpoint(folder))
    network.set_task(network.task_id(name))
    data = DeviceTaskData(get_benchmark("split_digits").load_task(data_root, name), torch.device("cpu"), 0, False)
    return predict(network, data)


@pytest.fixture(scope="module")
def ewc_run(tmp_path_factory, data_root) -> Path:
    """Two EWC tasks, the second with a strong penalty."""
    root = tmp_path_factory.mktemp("ewc")
    assert main_normal.main(_stage("ewc", TASKS[0], data_root, root / TASKS[0], "--lr", "0.05")) == 0
    assert main_normal.main(_stage("ewc", TASKS[1], data_root, root / TASKS[1], "--lr", "0.05", "--ewc_lambda",
                                   "1000", "--load_folder", str(root / TASKS[0]))) == 0
    return root


def test_each_ewc_folder_keeps_a_term_per_task_beside_its_network(ewc_run, data_root):
    payload = read_torch_file(ewc_run / TASKS[1] / ewc.STATE)
    assert payload["tasks"] == list(TASKS[:2]) and len(payload["terms"]) == 2
    network = network_from_checkpoint(load_checkpoint(ewc_run / TASKS[0]))
    body = ewc.body_parameters(network)
    first = payload["terms"][0]
    assert all(torch.equal(first["anchor"][name], value.detach()) for name, value in body.items())
    assert all((fisher >= 0).all() for fisher in first["fisher"].values())
    assert sum(fisher.sum() for fisher in first["fisher"].values()) > 0
    meta = json.loads((ewc_run / TASKS[1] / "meta.json").read_text())
    assert list(meta["accuracy_after_learning"]) == list(TASKS[:2]) and meta["method"] == "ewc"
    assert _logits(ewc_run / TASKS[1], TASKS[0], data_root).shape[1] == 2  # the old head is still there


def test_a_stage_refuses_another_variant_or_method_or_a_broken_state(ewc_run, data_root, tmp_path, capsys):
    last = str(ewc_run / TASKS[1])
    line = _refused(_stage("ewc", TASKS[2], data_root, tmp_path / "a", "--load_folder", last, "--ewc_online"), capsys)
    assert "continue it with no --ewc_online" in line
    line = _refused(_stage("lwf", TASKS[2], data_root, tmp_path / "b", "--load_folder", last), capsys)
    assert "holds a ewc checkpoint" in line
    line = _refused(_stage("ewc", TASKS[1], data_root, tmp_path / "c", "--load_folder", last), capsys)
    assert "already learned" in line
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("checkpoint.pth", "meta.json"):
        (broken / name).write_bytes((ewc_run / TASKS[1] / name).read_bytes())
    (broken / ewc.STATE).write_bytes(b"not a torch file")
    line = _refused(_stage("ewc", TASKS[2], data_root, tmp_path / "d", "--load_folder", str(broken)), capsys, 65)
    assert "EWC state" in line
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_a_diverged_training_is_refused_before_anything_is_written(ewc_run, data_root, tmp_path, capsys):
    """A penalty too stiff for the learning rate blows the weights up: one line, 64, no folder."""
    flags = ["--load_folder", str(ewc_run / TASKS[0]), "--ewc_lambda", "1e12", "--lr", "1", "--epochs", "1"]
    line = _refused(_stage("ewc", TASKS[1], data_root, tmp_path / "s", *flags), capsys)
    assert "diverged" in line and not (tmp_path / "s").exists()


def test_lwf_trains_the_old_heads_and_its_distillation_holds_the_old_task(tmp_path, data_root):
    """The second task with and without the distillation (lambda_o 1 and 0): the old head moves only with it
    (LwF trains theta_o), and with it the old task keeps its accuracy where without it the body drifts away."""
    first = tmp_path / TASKS[0]
    assert main_normal.main(_stage("lwf", TASKS[0], data_root, first, "--lr", "0.05", "--epochs", "4")) == 0
    accuracy, heads = {}, {}
    labels = get_benchmark("split_digits").load_task(data_root, TASKS[0]).test_labels
    for weight in ("0", "1"):
        second = tmp_path / f"{TASKS[1]}_{weight}"
        assert main_normal.main(_stage("lwf", TASKS[1], data_root, second, "--lr", "0.01", "--epochs", "6",
                                       "--lwf_lambda", weight, "--lwf_warmup_epochs", "1",
                                       "--load_folder", str(first))) == 0
        accuracy[weight] = (_logits(second, TASKS[0], data_root).argmax(1) == labels).float().mean().item()
        heads[weight] = load_checkpoint(second)["model"]["heads.per_task.0.weights.weight"]
    old_head = load_checkpoint(first)["model"]["heads.per_task.0.weights.weight"]
    assert torch.equal(heads["0"], old_head) and not torch.equal(heads["1"], old_head)
    assert accuracy["1"] > accuracy["0"] + 0.2, accuracy


def _forgetting(root: Path, pattern: str) -> float:
    (metrics,) = root.glob(pattern)
    return json.loads(metrics.read_text())["metrics"]["forgetting"]


@pytest.mark.slow
def test_ewc_and_lwf_forget_less_than_the_finetune_baseline(tmp_path, data_root):
    """Seed 1 of the comparison (EWC and LwF on LeNet 300-100, as there; minutes): each method forgets (above
    0), less than sequential finetuning does; a rerun resumes without training again. With fewer tasks or
    epochs EWC's tight penalty leaves the later tasks unlearned and its forgetting at exactly 0."""
    env = dict(DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path), EPOCHS="15", BATCH_SIZE="16",
               LOGFILE=str(tmp_path / "finetune_acc.json"))
    for script, arch in (("finetune.sh", "digits_convnet"), ("ewc.sh", "lenet_300_100"), ("lwf.sh", "lenet_300_100")):
        result = run_driver(script, "split_digits", **env, ARCH=arch)
        assert result.returncode == 0, result.stderr[-2000:]
    finetune = _forgetting(tmp_path, "baselines/split_digits/finetune_seed1/*/metrics.json")
    for method in ("EWC", "LwF"):
        forgetting = _forgetting(tmp_path, f"{method}/split_digits/default_seed1/*/metrics.json")
        assert 0 < forgetting < finetune, (method, forgetting, finetune)
    again = run_driver("ewc.sh", "split_digits", **env, ARCH="lenet_300_100")
    assert again.returncode == 0 and again.stdout.count("done before") == 5, again.stdout[-2000:]
    card = json.loads(next(tmp_path.glob("EWC/split_digits/default_seed1/*/run.json")).read_text())
    assert card["method"] == "ewc" and card["settings"]["EWC_LAMBDA"]

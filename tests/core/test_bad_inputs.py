"""Bad inputs thrown at main_normal.py and the tools: each gives exit 64 (65 for a checkpoint), exactly one
line on stderr, no traceback, never a code a driver acts on, and leaves the files of an earlier run as
they were."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, environment, run_main

pytestmark = pytest.mark.slow
TASK = "digits_01"


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root) -> Path:
    """An earlier finished task: finetune, one prune stage and the chosen checkpoint."""
    root = tmp_path_factory.mktemp("run")
    task = root / TASK
    common = ["--dataset", TASK, "--data_root", str(data_root), "--device", "cpu", "--epochs", "2", "--lr", "0.05",
              "--max_allowed_network_width_multiplier", "1.0", "--jsonfile", str(task / "gradual_prune/record.txt")]
    assert run_main("--mode", "finetune", *common, "--save_folder", str(task / "scratch")).returncode in (0, 5)
    assert run_main("--mode", "prune", *common, "--load_folder", str(task / "scratch"), "--target_sparsity", "0.5",
                    "--save_folder", str(task / "gradual_prune/0.5"), "--lr", "1e-3").returncode in (0, 6)
    chooser = [sys.executable, "-m", "tools.choose_pruning_ratio", "--task_folder", str(task), "--dataset", TASK,
               "--max_allowed_network_width_multiplier", "1.0"]
    assert subprocess.run(chooser, env=environment(), cwd=REPO, capture_output=True).returncode == 0
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _check(result: subprocess.CompletedProcess, code: int, text: str, run: Path, before: dict) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr[-2000:]
    assert len(lines) == 1 and text in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert _snapshot(run) == before


def _stage(run: Path, data_root: Path, out: Path, *flags: str) -> list[str]:
    """A finetune of a new task on the earlier run's checkpoint, writing only under `out`."""
    return ["--mode", "finetune", "--dataset", "digits_23", "--data_root", str(data_root), "--device", "cpu",
            "--epochs", "1", "--load_folder", str(run / TASK / "gradual_prune"), "--save_folder", str(out / "s"),
            "--jsonfile", str(out / "record.txt"), *flags]


@pytest.mark.parametrize("flags, text", [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "-0.1"], "--lr must be at least 0"),
    (["--weight_decay", "nan"], "--weight_decay must be a finite number"),
    (["--lr_mask", "inf"], "--lr_mask must be a finite number"),
    (["--max_allowed_network_width_multiplier", "nan"], "must be a finite number"),
    (["--max_allowed_network_width_multiplier", "inf"], "must be a finite number"),
    (["--network_width_multiplier", "nan", "--max_allowed_network_width_multiplier", "2"], "must be a finite"),
    (["--network_width_multiplier", "inf"], "must be a finite number"),
    (["--seed", str(2 ** 64)], "--seed must be below"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--device", "abc"], "--device must be"),
    (["--arch", "no_such_net"], "holds a digits_convnet"),
    (["--val_fraction", "1.0"], "--val_fraction must be below 1"),
    (["--method", "nope"], "invalid choice"),
    (["--total_num_tasks", "0"], "--total_num_tasks must be at least 1"),
])
def test_bad_flags(run, data_root, tmp_path, flags, text):
    before = _snapshot(run)
    _check(run_main(*_stage(run, data_root, tmp_path, *flags)), 64, text, run, before)


@pytest.mark.parametrize("method, flag", [("supsup", "--pruning_frequency"), ("subspace", "--bf16"),
                                          ("piggyback", "--target_sparsity"), ("extract", "--lr_mask")])
def test_a_flag_of_another_method(run, data_root, tmp_path, method, flag):
    before = _snapshot(run)
    result = run_main("--method", method, "--mode", "finetune", "--dataset", TASK, "--data_root", str(data_root),
                      "--save_folder", str(tmp_path / "s"), flag, "3")
    _check(result, 64, f"{flag} is a flag of --method", run, before)


def test_an_unknown_architecture_for_a_new_network(run, data_root, tmp_path):
    before = _snapshot(run)
    result = run_main("--mode", "finetune", "--dataset", TASK, "--data_root", str(data_root), "--device", "cpu",
                      "--arch", "no_such_net", "--save_folder", str(tmp_path / "s"), "--jsonfile",
                      str(tmp_path / "r.txt"))
    _check(result, 64, "unknown architecture 'no_such_net'", run, before)


@pytest.mark.parametrize("content, text", [
    ('{"digits_23": 97.5}', "not percentages"),
    ('{"digits_23": "high"}', "is not a number"),
    ('{"digits_23": NaN}', "outside"),
    ("[0.9]", "must hold a JSON object"),
    (None, "does not exist"),
    ("folder", "is a folder"),
])
def test_bad_goal_files(run, data_root, tmp_path, content, text):
    goals = tmp_path / "goals.json"
    if content == "folder":
        goals.mkdir()
    elif content is not None:
        goals.write_text(content)
    before = _snapshot(run)
    _check(run_main(*_stage(run, data_root, tmp_path, "--baseline_acc_file", str(goals))), 64, text, run, before)


def test_a_record_path_that_is_a_folder(run, data_root, tmp_path):
    before = _snapshot(run)
    result = run_main("--mode", "prune", "--dataset", TASK, "--data_root", str(data_root), "--device", "cpu",
                      "--load_folder", str(run / TASK / "gradual_prune"), "--save_folder", str(tmp_path / "p"),
                      "--jsonfile", str(run / TASK))
    _check(result, 64, "is a folder", run, before)


def test_prune_of_a_checkpoint_of_another_arch_is_refused(run, data_root, tmp_path):
    before = _snapshot(run)
    result = run_main("--mode", "prune", "--dataset", TASK, "--data_root", str(data_root), "--device", "cpu",
                      "--arch", "lenet_300_100", "--load_folder", str(run / TASK / "gradual_prune"),
                      "--save_folder", str(tmp_path / "p"), "--jsonfile", str(run / TASK / "gradual_prune/record.txt"))
    _check(result, 64, "holds a digits_convnet", run, before)
    assert not (tmp_path / "p").exists()


def _tampered(run: Path, folder: Path, change) -> Path:
    payload = torch.load(run / TASK / "gradual_prune/checkpoint.pth", weights_only=True)
    change(payload)
    folder.mkdir()
    torch.save(payload, folder / "checkpoint.pth")
    return folder


@pytest.mark.parametrize("change, text", [
    (lambda payload: payload.update(arch="no_such_net"), "cannot build"),
    (lambda payload: payload.update(width="wide"), "is not a number"),
    (lambda payload: payload.update(mode="no_such_mode"), "cannot build"),
    (lambda payload: payload["model"].update({"features.0.weights.weight": torch.zeros(3, 3)}), "does not fit"),
    (lambda payload: payload["model"].pop("features.0.weights.owner"), "does not match"),
    (lambda payload: payload.update(tasks=[{"name": TASK}]), "lacks"),
    (lambda payload: payload.update(format=7), "unknown format"),
])
def test_bad_checkpoints_exit_65(run, data_root, tmp_path, change, text):
    folder = _tampered(run, tmp_path / "bad", change)
    before = _snapshot(run)
    result = run_main("--mode", "inference", "--dataset", TASK, "--data_root", str(data_root), "--device", "cpu",
                      "--load_folder", str(folder))
    _check(result, 65, text, run, before)


def test_an_unreadable_data_cache_is_named(run, data_root, tmp_path):
    cache = tmp_path / "data" / "split_digits" / f"{TASK}.v1.pt"
    cache.mkdir(parents=True)
    before = _snapshot(run)
    result = run_main("--mode", "inference", "--dataset", TASK, "--data_root", str(tmp_path / "data"),
                      "--device", "cpu", "--load_folder", str(run / TASK / "gradual_prune"))
    _check(result, 64, "data cache", run, before)


def _tool(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=environment(), cwd=REPO,
                          timeout=300)


def _copy_of_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    for name, data in _snapshot(run).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    return copy


@pytest.mark.parametrize("broken, tool, text", [
    ("scratch/meta.json", "choose_pruning_ratio", "cannot read"),
    ("gradual_prune/chosen.json", "choose_retrain", "cannot read"),
    ("gradual_prune/chosen.json", "report", "cannot read"),
    ("gradual_prune/meta.json", "report", "cannot read"),
])
def test_tools_on_corrupt_json_exit_65(run, data_root, tmp_path, broken, tool, text):
    copy = _copy_of_run(run, tmp_path)
    (copy / TASK / broken).write_text("{truncated")
    argv = {"choose_pruning_ratio": ["tools.choose_pruning_ratio", "--task_folder", str(copy / TASK), "--dataset",
                                     TASK, "--max_allowed_network_width_multiplier", "1.0"],
            "choose_retrain": ["tools.choose_retrain", "--save_folder", str(copy / TASK / "gradual_prune"),
                               "--load_folder", str(copy / TASK / "retrain"), "--dataset", TASK],
            "report": ["tools.report", "--root", str(copy), "--data_root", str(data_root), "--num_tasks", "1"]}[tool]
    before = _snapshot(run)
    _check(_tool(*argv), 65, text, run, before)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04 truncated"])
def test_report_on_a_garbage_checkpoint_exits_65_with_one_line(run, data_root, tmp_path, content):
    """torch's weights-only failure is a paragraph; the report names the file in one line."""
    copy = _copy_of_run(run, tmp_path)
    checkpoint = copy / TASK / "gradual_prune/checkpoint.pth"
    assert checkpoint.is_file()
    checkpoint.write_bytes(content)
    before = _snapshot(run)
    result = _tool("tools.report", "--root", str(copy), "--data_root", str(data_root), "--num_tasks", "1")
    _check(result, 65, f"checkpoint {checkpoint} is corrupt or not a checkpoint of this toolkit", run, before)


@pytest.mark.parametrize("flags, text", [
    (["--num_tasks", "0"], "--num_tasks must be at least 1"),
    (["--benchmark", "nope"], "unknown benchmark"),
    (["--data_root", "/nonexistent/data"], "pass --data_root"),
])
def test_report_bad_flags_exit_64(run, data_root, flags, text):
    before = _snapshot(run)
    result = _tool("tools.report", "--root", str(run), "--data_root", str(data_root), "--num_tasks", "1", *flags)
    _check(result, 64, text, run, before)


def test_report_settings_of_a_folder_without_meta_is_a_bad_checkpoint(run, tmp_path):
    before = _snapshot(run)
    _check(_tool("tools.report", "--settings", str(tmp_path)), 65, "cannot read", run, before)


def test_report_settings_print_the_stage_flags(run):
    result = _tool("tools.report", "--settings", str(run / TASK / "scratch"))
    assert result.returncode == 0 and "--dataset digits_01" in result.stdout.splitlines()
    meta = json.loads((run / TASK / "scratch/meta.json").read_text())
    assert meta["settings"]["mode"] == "finetune"

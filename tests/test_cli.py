"""Bad input: one clear line and exit 64 (never a state code); missing goals 3; corrupt checkpoints 65."""

import pytest

from tests.conftest import run_main

STATE_CODES = {2, 3, 5, 6}


def _one_line_error(result, code: int, text: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_mode(data_root):
    result = run_main("--mode", "train", "--dataset", "digits_01", "--data_root", str(data_root))
    _one_line_error(result, 64, "invalid choice")


def test_missing_data_root(tmp_path):
    result = run_main("--mode", "inference", "--dataset", "digits_01", "--data_root", str(tmp_path / "none"),
                      "--load_folder", str(tmp_path))
    _one_line_error(result, 64, "does not exist")


@pytest.mark.parametrize("flags", [
    ["--dataset", "digits_01", "--epochs", "0"],
    ["--dataset", "digits_01", "--network_width_multiplier", "2", "--max_allowed_network_width_multiplier", "1.5"],
    ["--dataset", "digits_01", "--target_sparsity", "1.2"],
    ["--dataset", "nope"],
    ["--dataset", "digits_01", "--batch_size", "many"],
])
def test_bad_flags_exit_64(data_root, tmp_path, flags):
    result = run_main("--mode", "finetune", "--data_root", str(data_root), "--save_folder", str(tmp_path / "s"),
                      "--jsonfile", str(tmp_path / "r.txt"), *flags)
    assert result.returncode == 64 and result.returncode not in STATE_CODES
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_goal_file(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text("{not json")
    result = run_main("--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root),
                      "--save_folder", str(tmp_path / "s"), "--jsonfile", str(tmp_path / "r.txt"),
                      "--baseline_acc_file", str(goals))
    _one_line_error(result, 64, "not valid JSON")


def test_missing_goal_exits_3_with_advice(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text('{"digits_23": 0.9}')
    result = run_main("--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root),
                      "--save_folder", str(tmp_path / "s"), "--jsonfile", str(tmp_path / "r.txt"),
                      "--baseline_acc_file", str(goals))
    assert result.returncode == 3
    assert "--baseline_acc_file" in result.stderr


def test_malformed_record_file(data_root, tmp_path):
    record = tmp_path / "record.txt"
    record.write_text('{"0.0": "high"}')
    (tmp_path / "ckpt").mkdir()
    result = run_main("--mode", "prune", "--dataset", "digits_01", "--data_root", str(data_root),
                      "--load_folder", str(tmp_path / "ckpt"), "--save_folder", str(tmp_path / "p"),
                      "--jsonfile", str(record))
    _one_line_error(result, 64, "record file")


def test_corrupt_checkpoint_is_a_failure_not_a_state(data_root, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "checkpoint.pth").write_bytes(b"this is not a checkpoint")
    result = run_main("--mode", "inference", "--dataset", "digits_01", "--data_root", str(data_root),
                      "--load_folder", str(folder))
    _one_line_error(result, 65, "corrupt")

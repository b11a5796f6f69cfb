"""Bad input: one clear line and exit 64 (never a state code); missing goals 3; corrupt checkpoints 65."""

import pytest

from tests.helpers import REPO, run_main

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


@pytest.mark.parametrize("method, flag", [("supsup", "--pruning_frequency"), ("subspace", "--lr_mask"),
                                          ("supsup", "--bf16"), ("cpg", "--supsup_density")])
def test_a_flag_of_another_method_is_a_usage_error_naming_both(data_root, tmp_path, method, flag):
    result = run_main("--method", method, "--mode", "finetune", "--dataset", "digits_01", "--data_root",
                      str(data_root), "--save_folder", str(tmp_path / "s"), flag, "3")
    _one_line_error(result, 64, f"{flag} is a flag of --method")
    assert f"not of --method {method}" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_learning_rate_must_be_a_finite_non_negative_number(data_root, tmp_path, value):
    result = run_main("--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root),
                      "--save_folder", str(tmp_path / "s"), "--jsonfile", str(tmp_path / "r.txt"), "--lr", value)
    _one_line_error(result, 64, "--lr must be")


def test_a_bug_while_reading_a_checkpoint_is_not_reported_as_a_corrupt_file(data_root, monkeypatch):
    """Only the file's own faults are exit 65; an error of the toolkit's code surfaces as itself."""
    from unforget.models.network import TaskSpec
    from unforget.utils.checkpoint import CheckpointError, load_checkpoint

    def broken(data):
        raise AttributeError("a bug in the toolkit")

    monkeypatch.setattr(TaskSpec, "from_json", broken)
    with pytest.raises(AttributeError):
        try:
            load_checkpoint(REPO / "tests" / "fixtures" / "format1" / "cpg")
        except CheckpointError as error:
            pytest.fail(f"reported as a bad checkpoint: {error}")


def test_the_reference_keeps_its_give_way_sparsities_on_20_tasks_and_longer_runs_still_give_way():
    from unforget.utils.methods.cpg.stages import required_sparsity

    reference = [0.9] * 14 + [0.8] * 3 + [0.7, 0.5, 0.0]
    assert [required_sparsity(20, task) for task in range(1, 21)] == reference
    assert all(required_sparsity(25, task) == 0.95 for task in range(1, 6))


def test_at_the_cap_below_the_goal_pruning_gives_way_on_a_25_task_run(data_root, tmp_path):
    """With 20 or more tasks to come the reference's rule asked for sparsity 1.0 and never gave way."""
    record = tmp_path / "record.txt"
    record.write_text('{"0.0": 0.5}')
    result = run_main("--mode", "prune", "--dataset", "digits_23", "--data_root", str(data_root),
                      "--load_folder", str(REPO / "tests" / "fixtures" / "format1" / "cpg"),
                      "--save_folder", str(tmp_path / "p"), "--jsonfile", str(record),
                      "--network_width_multiplier", "1.5", "--total_num_tasks", "25",
                      "--initial_sparsity", "0.95", "--target_sparsity", "0.95")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "0.95 already freed" in result.stdout


def test_meta_json_holds_the_settings_that_reproduce_the_stage(data_root, tmp_path):
    import json

    import main_normal
    from unforget.tools import report

    flags = ["--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root), "--device", "cpu",
             "--epochs", "1", "--lr", "0.05", "--save_folder", str(tmp_path / "s"), "--jsonfile",
             str(tmp_path / "r.txt"), "--max_allowed_network_width_multiplier", "1.0", "--seed", "7"]
    assert main_normal.main(flags) in (0, 5)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    settings = main_normal.parse_settings(flags)
    assert meta["settings"] == settings.to_json()
    assert meta["settings"]["seed"] == 7 and meta["settings"]["arch"] == "digits_convnet"
    printed = report.format_settings(meta).split()
    assert main_normal.parse_settings(printed) == settings


def test_a_save_on_a_full_disk_keeps_the_previous_checkpoint(data_root, tmp_path):
    """A file-size limit (ulimit -f) stands in for a full disk: one line saying so, exit 65, the earlier
    checkpoint and its meta.json intact, no temporary file left."""
    import subprocess
    import sys

    from tests.helpers import environment

    folder = tmp_path / "s"
    flags = ["--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root), "--device", "cpu",
             "--epochs", "1", "--save_folder", str(folder), "--jsonfile", str(tmp_path / "r.txt"),
             "--max_allowed_network_width_multiplier", "1.0"]
    assert run_main(*flags).returncode in (0, 5)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    command = " ".join(["ulimit -f 64; exec", sys.executable, str(REPO / "main_normal.py"), *flags, "--seed", "2"])
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=environment(), cwd=REPO,
                            timeout=300)
    _one_line_error(result, 65, "the disk is full")
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before

"""WSN's stages, report and driver on split_digits: every old task answers bit-identically from every later
checkpoint, the accuracy matrix is column-constant with BWT 0, and bad settings are one line and exit 64."""

from __future__ import annotations

import contextlib
import io
import json
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import main_normal
from tests.helpers import run_driver
from tests.helpers.files import png_is_drawn
from unforget.tools import report
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import predict
from unforget.utils.methods import Method

TASKS = get_benchmark("split_digits").task_names[:3]


def _logits(folder, name: str, data_root) -> torch.Tensor:
    network = network_from_checkpoint(load_checkpoint(folder))
    network.set_task(network.task_id(name))
    data = DeviceTaskData(get_benchmark("split_digits").load_task(data_root, name), torch.device("cpu"), 0, False)
    return predict(network, data)


def _column_constant(matrix: list[list[float | None]]) -> bool:
    return all(row[i:] == [row[i]] * (len(row) - i) for i, row in enumerate(matrix))


def test_old_tasks_answer_bit_identically_and_the_report_shows_no_forgetting(tmp_path, data_root, capsys):
    learned = {}
    for index, name in enumerate(TASKS):
        load = ["--load_folder", str(tmp_path / TASKS[index - 1] / "model")] if index else []
        code = main_normal.main(["--method", "wsn", "--mode", "finetune", "--dataset", name, "--data_root",
                                 str(data_root), "--device", "cpu", "--epochs", "2", "--batch_size", "16",
                                 "--wsn_capacity", "0.3", "--save_folder", str(tmp_path / name / "model"), *load])
        assert code == 0
        learned[name] = _logits(tmp_path / name / "model", name, data_root)
        for old in TASKS[:index]:
            assert torch.equal(_logits(tmp_path / name / "model", old, data_root), learned[old]), (old, name)
    assert report.main(["--root", str(tmp_path), "--checkpoints", "wsn", "--data_root", str(data_root),
                        "--num_tasks", "3"]) == 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert _column_constant(summary["accuracy_matrix"])
    assert summary["metrics"]["backward_transfer"] == 0.0 and summary["metrics"]["forgetting"] == 0.0
    capacity = summary["capacity"]
    assert capacity["mask_bytes"] == 3 * sum(-(-n // 8) for n in _layer_sizes(tmp_path / TASKS[-1] / "model"))
    assert capacity["mask_entropy_bytes"] <= capacity["mask_huffman_bytes"] <= capacity["mask_bytes"]
    assert 0.3 <= capacity["used_fraction"] <= 0.9 and 0 < capacity["model_vs_independent"] < 1
    assert "storage" in capsys.readouterr().out


def _layer_sizes(folder) -> list[int]:
    model = load_checkpoint(folder)["model"]
    return [model[name].numel() for name in model if name.endswith(".weights.scores")]


class Accepted(Exception):
    """A stage was about to run: validation let the settings through."""


def _refuse_to_run(self: Method):
    def run(settings, process_start):
        raise Accepted(f"a stage would run with {settings}")
    return run


def _outcome(argv: list[str]) -> tuple[int, list[str], str]:
    """main_normal's exit code, its non-empty stderr lines and all it printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main_normal.main(argv)
        except SystemExit as stop:
            code = stop.code
    return code, [line for line in stderr.getvalue().splitlines() if line.strip()], stdout.getvalue() + \
        stderr.getvalue()


BAD = st.one_of(
    st.tuples(st.just("--wsn_capacity"), st.floats(-1e30, 0.0) | st.floats(1.0, 1e30, exclude_min=True)),
    st.tuples(st.just("--lr"), st.floats(-1e30, 0.0, exclude_max=True)),
    st.tuples(st.just("--wsn_lr_factor"), st.floats(-1e30, 1.0, exclude_max=True)),
    st.tuples(st.just("--wsn_lr_min"), st.floats(-1e30, 0.0, exclude_max=True)),
    st.tuples(st.just("--wsn_lr_patience"), st.integers(max_value=0)),
    st.tuples(st.sampled_from(["--wsn_capacity", "--lr", "--wsn_lr_factor", "--wsn_lr_min"]),
              st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", ""])),
)


@settings(max_examples=40, deadline=None, database=None)
@given(case=BAD)
def test_a_bad_setting_is_one_line_and_64(tmp_path_factory, data_root, case):
    name, value = case
    save = tmp_path_factory.mktemp("stage") / "s"
    with mock.patch.object(Method, "runner", _refuse_to_run):
        code, lines, printed = _outcome(["--method", "wsn", "--mode", "finetune", "--dataset", TASKS[0], "--data_root",
                                         str(data_root), "--device", "cpu", "--save_folder", str(save),
                                         f"{name}={value if isinstance(value, str) else repr(value)}"])
    assert (code, len(lines)) == (64, 1), printed[-2000:]
    assert "Traceback" not in printed and name in lines[0]
    assert not save.exists()


def test_a_capacity_of_one_is_accepted(tmp_path, data_root):
    with mock.patch.object(Method, "runner", _refuse_to_run), pytest.raises(Accepted):
        main_normal.main(["--method", "wsn", "--mode", "finetune", "--dataset", TASKS[0], "--data_root",
                          str(data_root), "--device", "cpu", "--save_folder", str(tmp_path / "s"),
                          "--wsn_capacity", "1.0"])


def test_a_checkpoint_of_another_method_is_refused(tmp_path, data_root):
    assert main_normal.main(["--method", "piggyback", "--mode", "finetune", "--dataset", TASKS[0], "--data_root",
                             str(data_root), "--device", "cpu", "--epochs", "1", "--save_folder",
                             str(tmp_path / "p")]) == 0
    code, lines, printed = _outcome(["--method", "wsn", "--mode", "finetune", "--dataset", TASKS[1], "--data_root",
                                     str(data_root), "--device", "cpu", "--load_folder", str(tmp_path / "p"),
                                     "--save_folder", str(tmp_path / "w")])
    assert (code, len(lines)) == (64, 1) and "cannot continue a cpg checkpoint" in lines[0], printed[-2000:]
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_driver_reports_no_forgetting_and_resumes(tmp_path, data_root):
    env = dict(DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path), NUM_TASKS="3", EPOCHS="2", BATCH_SIZE="16")
    result = run_driver("wsn.sh", **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "WSN/split_digits/default_seed1/digits_convnet"
    metrics = json.loads((root / "metrics.json").read_text())
    assert _column_constant(metrics["accuracy_matrix"]) and metrics["metrics"]["backward_transfer"] == 0.0
    summary = json.loads((root / "summary.json").read_text())
    assert [row["accuracy_final"] for row in summary["tasks"]] == [row["accuracy_after_learning"]
                                                                  for row in summary["tasks"]]
    assert json.loads((root / "run.json").read_text())["method"] == "wsn"
    assert png_is_drawn(root / "accuracy_matrix.png")
    again = run_driver("wsn.sh", **env)
    assert again.returncode == 0 and again.stdout.count("skipped") == 3, again.stdout[-3000:]

"""The chooser tools: which checkpoint becomes the task's, idempotence, accuracy-based retrain choice."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers import REPO, environment
from unforget.tools import choose_pruning_ratio, choose_retrain, random_task_id
from unforget.tools.choose_pruning_ratio import choose


@pytest.mark.parametrize("record, goal, at_cap, expected", [
    ({"0.0": 0.9, "0.1": 0.9, "0.5": 0.85, "0.9": 0.7}, 0.85, False, "0.5"),
    ({"0.0": 0.9, "0.1": 0.8}, 0.85, False, "0.0"),
    ({"0.0": 0.8, "0.1": 0.7, "0.3": 0.6}, 0.85, True, "0.3"),
    ({"0.0": 0.8, "0.1": 0.7}, 0.85, False, "0.0"),
    ({"0.0": 0.8}, 0.85, True, "0.0"),
])
def test_choice_rule(record, goal, at_cap, expected):
    assert choose(record, goal, 0.0, at_cap)[0] == expected


def _checkpoint(folder, accuracy, label):
    folder.mkdir(parents=True)
    (folder / "checkpoint.pth").write_text(label)
    (folder / "meta.json").write_text(json.dumps({"accuracy": accuracy, "width": 1.0}))


def test_choose_pruning_ratio_copies_the_choice_and_is_idempotent(tmp_path):
    task = tmp_path / "digits_01"
    _checkpoint(task / "scratch", 0.99, "unpruned")
    for key, accuracy in (("0.1", 0.99), ("0.2", 0.98), ("0.3", 0.90)):
        _checkpoint(task / "gradual_prune" / key, accuracy, key)
    (task / "gradual_prune/record.txt").write_text('{"0.0": 0.99, "0.1": 0.99, "0.2": 0.98, "0.3": 0.9}')
    goals = tmp_path / "goals.json"
    goals.write_text('{"digits_01": 0.97}')
    args = ["--task_folder", str(task), "--dataset", "digits_01", "--baseline_acc_file", str(goals),
            "--max_allowed_network_width_multiplier", "1.5"]
    for _ in range(2):
        assert choose_pruning_ratio.main(args) == 0
        assert (task / "gradual_prune/checkpoint.pth").read_text() == "0.2"
        assert json.loads((task / "gradual_prune/chosen.json").read_text())["sparsity"] == "0.2"
        assert sorted(p.name for p in (task / "gradual_prune").iterdir() if p.is_dir()) == ["0.1", "0.2", "0.3"]


@pytest.mark.parametrize("retrained, kept", [(0.95, "retrain"), (0.90, "prune"), (0.91, "prune")])
def test_choose_retrain_keeps_the_more_accurate_model(tmp_path, retrained, kept):
    _checkpoint(tmp_path / "gradual_prune", 0.91, "prune")
    (tmp_path / "gradual_prune/chosen.json").write_text('{"sparsity": "0.5", "accuracy": 0.91, "retrained": false}')
    _checkpoint(tmp_path / "retrain", retrained, "retrain")
    args = ["--save_folder", str(tmp_path / "gradual_prune"), "--load_folder", str(tmp_path / "retrain"),
            "--dataset", "t"]
    for _ in range(2):
        assert choose_retrain.main(args) == 0
        assert (tmp_path / "gradual_prune/checkpoint.pth").read_text() == kept


def test_choose_retrain_killed_between_its_copy_and_its_record_chooses_the_same_on_rerun(tmp_path):
    """The state a kill leaves after the retrained checkpoint was copied and before chosen.json says so."""
    _checkpoint(tmp_path / "retrain", 0.95, "retrain")
    _checkpoint(tmp_path / "gradual_prune", 0.95, "retrain")
    chosen = tmp_path / "gradual_prune/chosen.json"
    chosen.write_text('{"sparsity": "0.5", "accuracy": 0.91, "retrained": false}')
    assert choose_retrain.main(["--save_folder", str(tmp_path / "gradual_prune"), "--load_folder",
                                str(tmp_path / "retrain"), "--dataset", "t"]) == 0
    assert json.loads(chosen.read_text()) == {"sparsity": "0.5", "accuracy": 0.95, "retrained": True}
    assert (tmp_path / "gradual_prune/checkpoint.pth").read_text() == "retrain"


@pytest.mark.parametrize("content", ["{not json", "[]", '{"sparsity": "0.5", "accuracy": "high"}'])
def test_choose_retrain_on_a_corrupt_chosen_file_is_a_bad_checkpoint(tmp_path, capsys, content):
    _checkpoint(tmp_path / "gradual_prune", 0.91, "prune")
    (tmp_path / "gradual_prune/chosen.json").write_text(content)
    _checkpoint(tmp_path / "retrain", 0.95, "retrain")
    with pytest.raises(SystemExit) as stop:
        choose_retrain.main(["--save_folder", str(tmp_path / "gradual_prune"), "--load_folder",
                             str(tmp_path / "retrain"), "--dataset", "t"])
    assert stop.value.code == 65 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert (tmp_path / "gradual_prune/checkpoint.pth").read_text() == "prune"


def test_random_task_id_is_an_earlier_task_and_seeded(capsys):
    seen = set()
    for seed in range(30):
        random_task_id.main(["--curr_task_id", "5", "--seed", str(seed)])
        seen.add(int(capsys.readouterr().out))
    assert seen == {1, 2, 3, 4}
    with pytest.raises(SystemExit) as error:
        random_task_id.main(["--curr_task_id", "1"])
    assert error.value.code == 64


@pytest.mark.parametrize("arch", ["lenet_300_100", "digits_convnet"])
def test_capacity_is_the_real_ratio_of_shared_weights(capsys, arch):
    from unforget.models import build_network
    from unforget.models.layers.cpg import cpg_layers
    from unforget.tools import capacity

    assert capacity.main(["--arch", arch, "--width", "1.5"]) == 0
    ratio = float(capsys.readouterr().out)
    weights = [sum(layer.weight.numel() for layer in cpg_layers(build_network(arch, width))) for width in (1.0, 1.5)]
    assert ratio == pytest.approx(weights[1] / weights[0], abs=1e-4)
    assert ratio < 1.3 if arch == "lenet_300_100" else ratio > 1.45  # LeNet's 784 inputs do not scale


TOOLS = sorted(path.stem for path in (REPO / "tools").glob("*.py") if 'if __name__ == "__main__"' in path.read_text())
# the one the README names runs in the fast tier; each of the others starts a torch import of its own (2 s)
AS_FILES = [pytest.param(tool, marks=() if tool == "choose_pruning_ratio" else pytest.mark.slow) for tool in TOOLS]


@pytest.mark.parametrize("tool", AS_FILES)
def test_every_tool_runs_as_a_file_as_the_readme_names_it(tool, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), "--help"], capture_output=True,
                          text=True, cwd=tmp_path, env={**environment(), "PYTHONPATH": ""}, timeout=60)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-500:]


BLOCK_TORCH = "import sys; sys.modules['torch'] = None; import runpy; sys.argv = sys.argv[1:]; " \
              "runpy.run_path(sys.argv[0], run_name='__main__')"


def test_the_decision_tools_run_without_torch(tmp_path):
    """The drivers call them twice a task, outside the warm start: importing torch (about 1.5 s) would cost
    more than their work. With torch made unimportable both still choose and log."""
    task = tmp_path / "digits_01"
    _checkpoint(task / "scratch", 0.99, "unpruned")
    _checkpoint(task / "gradual_prune" / "0.2", 0.98, "0.2")
    (task / "gradual_prune/record.txt").write_text('{"0.0": 0.99, "0.2": 0.98}')
    (tmp_path / "goals.json").write_text('{"digits_01": 0.97}')
    _checkpoint(task / "retrain", 0.985, "retrain")
    log = ["--log_path", str(task / "train.log")]
    runs = [["tools/choose_pruning_ratio.py", "--task_folder", str(task), "--dataset", "digits_01",
             "--baseline_acc_file", str(tmp_path / "goals.json"), "--max_allowed_network_width_multiplier", "1.5"],
            ["tools/choose_retrain.py", "--save_folder", str(task / "gradual_prune"), "--load_folder",
             str(task / "retrain"), "--dataset", "digits_01"]]
    for run in runs:
        done = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *run, *log], cwd=REPO, env=environment(),
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert (task / "gradual_prune/checkpoint.pth").read_text() == "retrain"
    assert "stage=" in (task / "train.log").read_text()


def _with_closed_output(*args: str) -> subprocess.CompletedProcess:
    """`python -m ARGS` writing to a pipe nobody reads any more (its driver was killed mid-read)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", *args], stdout=write, stderr=subprocess.PIPE, text=True,
                              cwd=REPO, env=environment())
    finally:
        os.close(write)


def test_a_tool_whose_reader_is_gone_ends_without_a_word(tmp_path):
    """The drivers read these tools through command substitutions; a kill of the driver closes the pipe."""
    made = subprocess.run([sys.executable, "-m", "tools.run_settings", str(tmp_path), "--driver", "d.sh",
                           "--command", "bash d.sh", "--settings", "EPOCHS=5"], cwd=REPO, env=environment(),
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    for args in (["tools.list_tasks", "split_digits"], ["tools.random_task_id", "--curr_task_id", "3", "--seed", "1"],
                 ["tools.run_settings", "--card", str(tmp_path)]):
        done = _with_closed_output(*args)
        assert (done.returncode, done.stderr) == (-signal.SIGPIPE, ""), (args, done.stderr)

"""No silent starvation: a task whose training accuracy never exceeds --train_accuracy_gate is not pruned and
keeps every weight; every decision line says what happened and why, and the run report marks the tasks left
without free weights and prints one warning naming the cause and the setting that changes it."""

import json
import re

import numpy as np
import pytest

import main_normal
from tests.helpers import QUICK, run_driver
from unforget.tools import choose_pruning_ratio, report
from unforget.tools.report import starvation
from unforget.utils import plots

TASKS = ("digits_01", "digits_23")


def _decisions(log, stage: str) -> list[dict[str, str]]:
    """The key=value fields of a stage's decision lines in train.log, quotes stripped."""
    return [{key: value.strip('"') for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}
            for line in log.read_text().splitlines() if f"stage={stage} " in line and " exit=" in line]


def _decisions_any(log, stage: str) -> dict[str, str]:
    """The last line of a tool's decisions (they carry no exit code)."""
    lines = [line for line in log.read_text().splitlines() if f"stage={stage} " in line]
    return {key: value.strip('"') for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', lines[-1])}


def _stages(data_root, goals, folder, *extra: str) -> list[int]:
    """finetune, prune to 0.1 (unless finetune exits 5) and the chooser for the task `folder` is named after, as
    the driver runs them."""
    task = folder.name
    common = ["--dataset", task, "--data_root", str(data_root), "--device", "cpu", "--baseline_acc_file", str(goals),
              "--max_allowed_network_width_multiplier", "1.0", "--log_path", str(folder / "train.log"),
              "--jsonfile", str(folder / "gradual_prune/record.txt"), *extra]
    codes = [main_normal.main(["--mode", "finetune", *common, "--epochs", "1", "--lr", "0.05",
                               "--save_folder", str(folder / "scratch")])]
    if codes[0] != 5:
        codes.append(main_normal.main(["--mode", "prune", *common, "--epochs", "1", "--lr", "1e-3", "--lr_mask", "0",
                                       "--target_sparsity", "0.1", "--pruning_interval", "1",
                                       "--pruning_frequency", "3", "--load_folder", str(folder / "scratch"),
                                       "--save_folder", str(folder / "gradual_prune/0.1")]))
    codes.append(choose_pruning_ratio.main(["--task_folder", str(folder), "--dataset", task, "--baseline_acc_file",
                                            str(goals), "--max_allowed_network_width_multiplier", "1.0",
                                            "--log_path", str(folder / "train.log")]))
    return codes


@pytest.fixture(scope="module")
def starved_run(data_root, tmp_path_factory):
    """Two tasks at a width cap of 1.0 with goals of 0 and a gate of 1.0, which no training accuracy exceeds:
    the first task is not pruned and keeps every weight, the second finds none free (exit 5)."""
    root = tmp_path_factory.mktemp("starved")
    goals = root / "goals.json"
    goals.write_text(json.dumps(dict.fromkeys(TASKS, 0.0)))
    first = _stages(data_root, goals, root / TASKS[0], "--train_accuracy_gate", "1.0")
    second = _stages(data_root, goals, root / TASKS[1], "--train_accuracy_gate", "1.0", "--load_folder",
                     str(root / TASKS[0] / "gradual_prune"))
    assert (first, second) == ([0, 6, 0], [5, 0])
    return root


def test_the_gate_is_a_setting_in_zero_to_one(data_root, tmp_path, capsys):
    flags = ["--mode", "finetune", "--dataset", TASKS[0], "--data_root", str(data_root), "--save_folder",
             str(tmp_path), "--jsonfile", str(tmp_path / "r.txt")]
    assert main_normal.parse_settings(flags).train_accuracy_gate == 0.95
    assert main_normal.parse_settings([*flags, "--train_accuracy_gate", "1"]).train_accuracy_gate == 1.0
    for value, message in (("1.01", "at most 1.0"), ("-0.1", "at least 0.0"), ("nan", "finite"), ("inf", "finite"),
                           ("high", "invalid float")):
        with pytest.raises(SystemExit) as stop:
            main_normal.parse_settings([*flags, "--train_accuracy_gate", value])
        error = capsys.readouterr().err
        assert stop.value.code == 64 and len(error.strip().splitlines()) == 1, (value, error)
        assert "--train_accuracy_gate" in error and message in error, (value, error)


def test_finetune_below_the_gate_says_the_goal_is_met_and_the_gate_is_not(starved_run):
    finetune = _decisions(starved_run / TASKS[0] / "train.log", "finetune")[-1]
    assert finetune["exit"] == "0" and float(finetune["val_acc"]) >= float(finetune["goal"])
    assert "not above --train_accuracy_gate 1 (the validation accuracy" in finetune["reason"]
    assert "meets the goal 0)" in finetune["reason"] and "goal not met" not in finetune["reason"]
    assert finetune["reason"].endswith("at the width cap: keep it")


def test_a_prune_stage_below_the_gate_says_pruning_was_skipped_with_both_numbers(starved_run):
    prune = _decisions(starved_run / TASKS[0] / "train.log", "prune")[-1]
    assert prune["exit"] == "6"
    assert re.fullmatch(r"pruning skipped: train accuracy (0\.\d{4}|1\.0000) at sparsity 0\.1 not above "
                        r"--train_accuracy_gate 1, so nothing is recorded or saved and the task keeps its unpruned "
                        r"model", prune["reason"]), prune["reason"]
    assert list(json.loads((starved_run / TASKS[0] / "gradual_prune/record.txt").read_text())) == ["0.0"]


def test_the_chooser_says_pruning_was_skipped_and_why(starved_run):
    chooser = _decisions_any(starved_run / TASKS[0] / "train.log", "choose_pruning_ratio")
    assert chooser["reason"].startswith("pruning was skipped: train accuracy ")
    assert chooser["reason"].endswith("not above --train_accuracy_gate 1")
    chosen = json.loads((starved_run / TASKS[0] / "gradual_prune/chosen.json").read_text())
    assert chosen["sparsity"] == "0.0" and chosen["reason"] == chooser["reason"]
    assert chosen["pruning_stopped"]["kind"] == "train_accuracy_gate"
    assert chosen["pruning_stopped"]["train_accuracy_gate"] == 1.0
    starved = _decisions_any(starved_run / TASKS[1] / "train.log", "choose_pruning_ratio")
    assert starved["reason"] == "pruning was skipped: the task owns no free weights (finetune exit 5)"


def test_the_report_marks_the_starved_task_and_warns_once_on_stderr(starved_run, data_root, capsys, monkeypatch):
    titles = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: titles.append(figure.axes[0].get_title()) or path)
    assert report.main(["--root", str(starved_run), "--data_root", str(data_root), "--num_tasks", "2"]) == 0
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1
    assert re.fullmatch(r"warning: task digits_01 kept every free weight: its training accuracy (0\.\d{4}|1\.0000) "
                        r"did not exceed --train_accuracy_gate 1 at sparsity 0\.1, so pruning stopped before saving; "
                        r"task digits_23 had no free weights \(exit 5\)\. Lower TRAIN_ACCURACY_GATE, train longer "
                        r"\(FINETUNE_EPOCHS, PRUNE_EPOCHS\) or allow growth \(a larger max width\)\.", warnings[0])
    summary = json.loads((starved_run / "summary.json").read_text())
    assert summary["warnings"] == warnings
    assert [(row["kept_every_free_weight"], row["starved"]) for row in summary["tasks"]] == [(True, False),
                                                                                            (False, True)]
    capacity_title = titles[-1]
    assert "warning: digits_01 kept every free weight; digits_23 had none left (exit 5)" in capacity_title


def test_a_last_task_at_the_cap_frees_nothing_for_later_tasks(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps({TASKS[0]: "force_growth"}))
    assert _stages(data_root, goals, tmp_path / TASKS[0], "--total_num_tasks", "1") == [0, 6, 0]
    log = tmp_path / TASKS[0] / "train.log"
    prune = _decisions(log, "prune")[-1]["reason"]
    assert prune == ("pruning skipped: at the width cap below the goal, and the last of --total_num_tasks 1, so no "
                     "later task needs its weights")
    assert "freed" not in prune
    chooser = _decisions_any(log, "choose_pruning_ratio")["reason"]
    assert chooser == "pruning was skipped: at the width cap below the goal, and the last of --total_num_tasks 1"


def _rows(*owned_free: tuple[str, int, int]) -> list[dict]:
    return [{"task": task, "owned_weights": owned, "free_weights_after": free} for task, owned, free in owned_free]


def test_starvation_names_each_task_that_left_nothing_and_the_tasks_it_starved():
    last = {"sparsity": 0.1, "kind": "last_task", "cause": "...", "total_num_tasks": 2}
    gate = {"sparsity": 0.5, "kind": "train_accuracy_gate", "cause": "...", "train_accuracy": 0.9,
            "train_accuracy_gate": 0.95}  # after 0.1 to 0.4 were recorded: not why the unpruned model was kept
    chosen = {"a": {"sparsity": "0.5"}, "c": {"sparsity": "0.0"}, "e": {"sparsity": "0.0"},
              "b": {"sparsity": "0.0", "reason": "pruning was skipped: ...", "pruning_stopped": last},
              "d": {"sparsity": "0.0", "reason": "no pruned model meets the goal", "pruning_stopped": gate}}
    starved, kept, warnings = starvation(_rows(("a", 50, 50), ("b", 50, 0), ("c", 0, 0), ("d", 40, 0), ("e", 0, 0)),
                                         chosen)
    assert (starved, kept) == ({"c", "e"}, {"b", "d"})
    assert warnings == [
        "warning: task b kept every free weight: it missed its goal at the width cap as the last of "
        "--total_num_tasks 2, so pruning was skipped; task c had no free weights (exit 5). Set TOTAL_TASKS to the "
        "number of tasks the run learns, or allow growth (a larger max width).",
        "warning: task d kept every free weight: it kept its unpruned model (no pruned model meets the goal); "
        "task e had no free weights (exit 5). Lower its goal (GOALS) or allow growth (a larger max width)."]


def test_starvation_spares_the_last_task_and_a_pretrained_backbone_that_starves_nobody():
    assert starvation(_rows(("imagenet", 100, 0), ("a", 60, 40), ("b", 40, 0)),
                      {"a": {"sparsity": "0.4"}, "b": {"sparsity": "0.0"}}) == (set(), set(), [])
    starved, kept, warnings = starvation(_rows(("a", 100, 0), ("b", 30, 0), ("c", 10, 20)),
                                         {name: {"sparsity": "0.0"} for name in "abc"})
    assert (starved, kept) == (set(), {"a", "b"})
    assert [warning.split("; ")[1].split(".")[0] for warning in warnings] == ["later tasks had to grow the network"] * 2


@pytest.mark.slow
def test_the_driver_warns_when_a_first_task_below_the_gate_leaves_later_tasks_nothing(data_root, tmp_path):
    result = run_driver("cpg.sh", "split_digits", str(data_root), "gated", "1.0", **QUICK, NUM_TASKS="3",
                        TRAIN_ACCURACY_GATE="1.0", CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("warning: task digits_01 kept every free weight: its training accuracy ")
    assert "did not exceed --train_accuracy_gate 1 at sparsity 0.1, so pruning stopped before saving; tasks " \
           "digits_23, digits_45 had no free weights (exit 5). Lower TRAIN_ACCURACY_GATE" in warnings[0]
    root = tmp_path / "ck/CPG/split_digits/gated_seed1/digits_convnet"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["warnings"] == warnings
    assert [row["starved"] for row in summary["tasks"]] == [False, True, True]
    for task in ("digits_23", "digits_45"):
        assert [row["exit"] for row in _decisions(root / task / "train.log", "finetune")] == ["5"]


@pytest.mark.slow
def test_a_spec_whose_first_task_cannot_reach_the_default_gate_warns_and_marks_it(tmp_path):
    """The case users meet: their own small data set whose first task (here pure noise, its labels
    unlearnable in two epochs) stays below the reference's gate of 0.95, so it keeps the whole network."""
    from PIL import Image

    rng = np.random.RandomState(0)
    for task in ("noise", "bands"):
        for split, count in (("train", 16), ("test", 8)):
            for label, name in enumerate(("a", "b")):
                folder = tmp_path / "images" / task / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    image = rng.randint(0, 256, (8, 8))
                    if task == "bands":
                        image[4 * label:4 * label + 4] = 255
                    Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"images": str(tmp_path / "images"), "tasks": ["noise", "bands"], "channels": 1,
                                "arch": "digits_convnet", "goals": {"noise": 0.0, "bands": 0.0}}))
    result = run_driver("cpg.sh", str(spec), str(tmp_path), "own", "1.0", FINETUNE_EPOCHS="2", PRUNE_EPOCHS="1",
                        BATCH_SIZE="16", CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: task noise kept every free weight"), result.stderr
    assert "--train_accuracy_gate 0.95" in warnings[0] and "task bands had no free weights (exit 5)" in warnings[0]
    root = next((tmp_path / "ck/CPG").rglob("own_seed1/digits_convnet"))
    summary = json.loads((root / "summary.json").read_text())
    assert [(row["task"], row["kept_every_free_weight"], row["starved"]) for row in summary["tasks"]] == \
        [("noise", True, False), ("bands", False, True)]

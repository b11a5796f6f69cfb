"""A run folder is its settings (scripts/lib.sh `begin_run`, tools/run_settings.py): a rerun with other
settings is refused before any stage and leaves every file as it was, the same settings resume, a stage
marker carries its command line, and every seed is a run of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, environment, run_driver
from tests.helpers.stand_in import stub_calls, stub_env

QUICK = {"FINETUNE_EPOCHS": "2", "PRUNE_EPOCHS": "1", "RETRAIN_EPOCHS": "1", "BATCH_SIZE": "16",
         "PRUNING_INTERVAL": "1", "PRUNING_FREQUENCY": "3", "SPARSITY_STEPS": "0.5", "NUM_TASKS": "2"}


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _settings_tool(root: Path, *settings: str, goals: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--goals", str(goals)] if goals else []
    return subprocess.run([sys.executable, "-m", "tools.run_settings", str(root), "--driver", "cpg.sh",
                           "--benchmark", "split_digits", *extra, "--settings", *settings],
                          capture_output=True, text=True, cwd=REPO, env=environment())


@pytest.mark.slow
def test_a_finished_run_refuses_other_settings_and_resumes_with_the_same(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps({"digits_01": 0.5, "digits_23": 0.5}))
    common = {**QUICK, "CKPT_ROOT": str(tmp_path / "ck"), "GOALS": str(goals)}
    first = run_driver("cpg.sh", "split_digits", str(data_root), "mine", "1.5", **common)
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "ck/CPG/split_digits/mine_seed1/digits_convnet"
    before = _files(root)
    recorded = json.loads((root / "run_settings.json").read_text())
    assert recorded["settings"]["FINETUNE_EPOCHS"] == "2" and recorded["goals"]["content"]["digits_01"] == 0.5

    for name, value in (("FINETUNE_EPOCHS", "15"), ("LR", "0.05")):
        rerun = run_driver("cpg.sh", "split_digits", str(data_root), "mine", "1.5", **{**common, name: value})
        assert rerun.returncode == 64, rerun.stderr
        assert f"setting {name}: " in rerun.stderr and f"-> '{value}'" in rerun.stderr
        assert "running" not in rerun.stdout and "Traceback" not in rerun.stderr
        assert _files(root) == before

    goals.write_text(json.dumps({"digits_01": "garbage", "digits_23": 0.5}))
    changed_goals = run_driver("cpg.sh", "split_digits", str(data_root), "mine", "1.5", **common)
    assert changed_goals.returncode == 64 and "setting GOALS content sha256" in changed_goals.stderr
    assert _files(root) == before

    goals.write_text(json.dumps({"digits_01": 0.5, "digits_23": 0.5}))
    same = run_driver("cpg.sh", "split_digits", str(data_root), "mine", "1.5", **common)
    assert same.returncode == 0, same.stderr[-3000:]
    assert "running" not in same.stdout and "finetune_w1.0: done before" in same.stdout
    assert json.loads((root / "summary.json").read_bytes()) == json.loads(before["summary.json"])
    resumed = _files(root)

    other_seed = run_driver("cpg.sh", "split_digits", str(data_root), "mine", "1.5", **common, SEED="2")
    assert other_seed.returncode == 0, other_seed.stderr[-3000:]
    assert "finetune_w1.0: running" in other_seed.stdout
    assert json.loads((tmp_path / "ck/CPG/split_digits/mine_seed2/digits_convnet/run.json").read_text())["seed"] == 2
    assert _files(root) == resumed


def _finish_a_stage(root: Path) -> None:
    """A finished stage's marker in ROOT: what makes its recorded settings binding."""
    (root / "task_1" / ".stages").mkdir(parents=True)
    (root / "task_1" / ".stages" / "finetune").write_text("0\n")


@pytest.mark.slow
def test_a_run_whose_first_stage_refused_a_setting_starts_again_with_the_corrected_one(tmp_path):
    common = {"CKPT_ROOT": str(tmp_path), "EPOCHS": "1"}
    refused = run_driver("subspace_lines.sh", **common, VAL_FRACTION="nan")
    assert refused.returncode == 64 and "rejected its input" in refused.stderr, refused.stderr[-2000:]
    fixed = run_driver("subspace_lines.sh", **common, VAL_FRACTION="0.2")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    record = json.loads(next(tmp_path.rglob("run_settings.json")).read_text())
    assert record["settings"]["VAL_FRACTION"] == "0.2"
    other = run_driver("subspace_lines.sh", **common, VAL_FRACTION="0.3")
    assert other.returncode == 64 and "setting VAL_FRACTION: '0.2' -> '0.3'" in other.stderr, other.stderr


def test_the_settings_check_names_each_differing_setting_the_seed_included(tmp_path):
    assert _settings_tool(tmp_path, "SEED=1", "LR=0.1").returncode == 0
    assert _settings_tool(tmp_path, "SEED=1", "LR=0.1").returncode == 0
    _finish_a_stage(tmp_path)
    done = _settings_tool(tmp_path, "SEED=2", "LR=0.1", "EPOCHS=3")
    assert done.returncode == 64
    lines = done.stderr.strip().splitlines()
    assert lines[:2] == ["cpg.sh: error: setting EPOCHS: 'unset' -> '3'", "cpg.sh: error: setting SEED: '1' -> '2'"]
    assert len(lines) == 3 and "Traceback" not in done.stderr


def test_a_folder_where_no_stage_finished_takes_the_new_settings(tmp_path):
    """The first stage refused a bad setting (nothing finished): the corrected rerun starts in the same folder,
    and once a stage has finished there the settings it ran with bind the folder."""
    assert _settings_tool(tmp_path, "SEED=1", "LR=nan").returncode == 0
    (tmp_path / ".stages").mkdir()  # a stage began, and left no marker
    fixed = _settings_tool(tmp_path, "SEED=1", "LR=0.1")
    assert fixed.returncode == 0 and "holds no finished stage" in fixed.stdout, fixed.stderr
    assert json.loads((tmp_path / "run_settings.json").read_text())["settings"]["LR"] == "0.1"
    _finish_a_stage(tmp_path)
    assert _settings_tool(tmp_path, "SEED=1", "LR=0.2").returncode == 64


def test_a_setting_added_to_a_driver_empty_resumes_its_earlier_runs_and_given_is_a_difference(tmp_path):
    assert _settings_tool(tmp_path, "SEED=1").returncode == 0
    _finish_a_stage(tmp_path)
    assert _settings_tool(tmp_path, "SEED=1", "VAL_FRACTION=").returncode == 0
    done = _settings_tool(tmp_path, "SEED=1", "VAL_FRACTION=0.2")
    assert done.returncode == 64 and "setting VAL_FRACTION: 'unset' -> '0.2'" in done.stderr, done.stderr


def test_a_goals_file_is_part_of_the_settings_by_content(tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text('{"digits_01": 0.9}')
    root = tmp_path / "run"
    assert _settings_tool(root, "SEED=1", goals=goals).returncode == 0
    _finish_a_stage(root)
    moved = tmp_path / "moved.json"
    moved.write_bytes(goals.read_bytes())
    assert _settings_tool(root, "SEED=1", goals=moved).returncode == 0
    goals.write_text('{"digits_01": 0.8}')
    assert _settings_tool(root, "SEED=1", goals=goals).returncode == 64


@pytest.mark.parametrize("content", ["{", "[]", '{"settings": {"LR": 1}}', '{"settings": []}'])
def test_an_unreadable_settings_record_is_a_bad_file(tmp_path, content):
    (tmp_path / "run_settings.json").write_text(content)
    done = _settings_tool(tmp_path, "SEED=1")
    assert done.returncode == 65 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


SEED_DRIVERS = {  # the per-seed loops of docs/methods/supsup.md: driver, arguments, settings, run folder of seed S
    "nns": ("supsup_nns_permuted_mnist.sh", [], {"BENCHMARK": "permuted_digits"},
            "SupSup/permuted_digits/nns_seed{}/lenet_300_100"),
    "gnu": ("supsup_gnu.sh", ["permuted_digits", "oneshot", "g"], {"NUM_TASKS": "2"},
            "SupSup/permuted_digits/gnu_seed{}/lenet_300_100"),
    "hopfield": ("supsup_hop_split_mnist.sh", [], {"BENCHMARK": "split_digits", "HIDDEN": "256"},
                 "SupSup/split_digits/hopfield/h256_seed{}"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEED_DRIVERS))
def test_each_seed_of_a_supsup_stream_driver_is_a_run_of_its_own(tmp_path, name):
    script, args, extra, folder = SEED_DRIVERS[name]
    env = {**stub_env(tmp_path), **extra, "DATA_ROOT": str(tmp_path), "CKPT_ROOT": str(tmp_path / "ck")}
    for seed in ("1", "2"):
        subprocess.run(["bash", str(REPO / "scripts" / script), *args], capture_output=True, text=True, cwd=REPO,
                       env=environment(**env, SEED=seed), timeout=120)
    seeds = [call["args"][call["args"].index("--seed") + 1] for call in stub_calls(env)
             if "--mode" in call["args"] and call["args"][call["args"].index("--mode") + 1] == "finetune"]
    assert "1" in seeds and "2" in seeds, seeds
    for seed in (1, 2):
        recorded = json.loads((tmp_path / "ck" / folder.format(seed) / "run_settings.json").read_text())
        assert recorded["settings"]["SEED"] == str(seed)


@pytest.mark.slow
def test_a_stage_asked_with_other_arguments_is_refused_even_without_a_settings_record(tmp_path):
    """The marker's fingerprint backs the settings record up: with run_settings.json gone (a run folder of an
    older version, say), a stage whose command line changed still does not hand back its old result."""
    env = {**stub_env(tmp_path), "DATA_ROOT": str(tmp_path), "CKPT_ROOT": str(tmp_path / "ck"), "NUM_TASKS": "2",
           "EPOCHS": "1"}
    first = subprocess.run(["bash", str(REPO / "scripts/supsup_gnu.sh"), "permuted_digits", "oneshot", "g"],
                           capture_output=True, text=True, cwd=REPO, env=environment(**env), timeout=120)
    root = tmp_path / "ck/SupSup/permuted_digits/gnu_seed1/lenet_300_100"
    assert (root / ".stages/task_1.args").is_file(), first.stderr
    (root / "run_settings.json").unlink()
    calls = len(stub_calls(env))
    env["EPOCHS"] = "3"
    rerun = subprocess.run(["bash", str(REPO / "scripts/supsup_gnu.sh"), "permuted_digits", "oneshot", "g"],
                           capture_output=True, text=True, cwd=REPO, env=environment(**env), timeout=120)
    assert rerun.returncode == 64, rerun.stderr
    assert "stage task_1 ran with other arguments: --epochs: '1' -> '3'" in rerun.stderr
    assert len(stub_calls(env)) == calls

"""Bounded disk: a finished CPG task keeps one checkpoint (its chosen model), its records and logs; the
checkpoints that led to it are dropped unless KEEP_STAGES=1, and a rerun resumes without retraining."""

from __future__ import annotations

import pytest

from tests.helpers import QUICK, run_driver

pytestmark = pytest.mark.slow

TINY = {**QUICK, "NUM_TASKS": "2", "FINETUNE_EPOCHS": "2", "PRUNE_EPOCHS": "1", "RETRAIN_EPOCHS": "1",
        "SPARSITY_STEPS": "0.5 0.9", "TRAIN_ACCURACY_GATE": "0"}


def _checkpoints(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("checkpoint.pth"))


@pytest.mark.parametrize("keep", ["", "1"])
def test_a_finished_task_keeps_only_its_chosen_checkpoint_and_resumes(data_root, tmp_path, keep):
    goals = tmp_path / "goals.json"  # goals every model meets: each task prunes, and none grows
    goals.write_text('{"digits_01": 0.1, "digits_23": 0.1}')
    env = {**TINY, "CKPT_ROOT": str(tmp_path / "ck"), "KEEP_STAGES": keep, "GOALS": str(goals)}
    first = run_driver("cpg.sh", "split_digits", str(data_root), "disk", "1.0", **env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    root = tmp_path / "ck/CPG/split_digits/disk_seed1/digits_convnet"
    kept = _checkpoints(root)
    chosen = ["digits_01/gradual_prune/checkpoint.pth", "digits_23/gradual_prune/checkpoint.pth"]
    if keep:
        assert set(chosen) < set(kept)
        assert "digits_01/scratch/checkpoint.pth" in kept and "digits_23/retrain/checkpoint.pth" in kept
        assert any(path.startswith("digits_01/gradual_prune/0.") for path in kept), kept
    else:
        assert kept == chosen
    for task in ("digits_01", "digits_23"):
        assert (root / task / "gradual_prune/record.txt").is_file()
        assert (root / task / "gradual_prune/chosen.json").is_file()
        assert (root / task / "scratch/meta.json").is_file()
        assert (root / task / "train.log").is_file()
    assert (root / "summary.json").is_file()

    again = run_driver("cpg.sh", "split_digits", str(data_root), "disk", "1.0", **env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert ": running" not in again.stdout, again.stdout  # every stage done before: nothing retrains
    assert _checkpoints(root) == kept

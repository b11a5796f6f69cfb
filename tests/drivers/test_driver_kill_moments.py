"""A driver killed outright (SIGKILL, which runs no trap) at every moment of its first seconds.

Each driver is killed at 0.25 s steps from 0 to 5 s after its start, the driver's PID alone, as a user's
`kill -9` or the OOM killer would: start-up (the settings check, the warm-start server importing torch), its
stages, the evaluation and the report. After each kill no process of the run is left and the run folder's lock
is free; the same command, started again, resumes the folder (the next moment kills that rerun), and once run
to its end it gives the results of a run that was never interrupted.
"""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

import pytest

from tests.helpers.drivers import CRASH_WORDS, Driver, assert_nothing_left, results, run, start, wait_until

pytestmark = pytest.mark.slow

STEP, LAST = 0.25, 5.0
MOMENTS = [k * STEP for k in range(round(LAST / STEP) + 1)]
# what a killed run never says: a lock left behind, or an error (a stage's, when the driver killed is why it ended)
AFTER_A_KILL = ("in use by", "error:")
START_UP = 1.5  # until then every kill lands in the driver's start-up, before any stage could end

GG_SETTINGS = {"BENCHMARK": "permuted_digits", "NUM_TASKS": "3", "EPOCHS": "8"}  # stages long enough to be hit
GG_RESULTS = ("results.csv", "summary.json", "metrics.json", "accuracy_matrix.csv", "run.json")
# SupSup's own GG run (a GPU worker per GPU, the server launched early) and a baseline (tasks in a chain)
GG = Driver("supsup_gg.sh", ("0",), GG_SETTINGS, "SupSup/permuted_digits/gg_er32_seed0/lenet_300_100",
            (*GG_RESULTS, "task_inference.csv"))
GG_BATCHE = Driver("supsup_gg.sh", ("0",), {**GG_SETTINGS, "BASELINE": "batche"},
                   "SupSup/permuted_digits/gg_batche_seed0/lenet_300_100", GG_RESULTS)
# a short stream (3 tasks of 300 batches), so that later moments reach the evaluation and the report
NNS = Driver("supsup_nns_permuted_mnist.sh", (), {"BENCHMARK": "permuted_digits", "NUM_TASKS": "3",
                                                   "TASK_BATCHES": "300", "CHECK_EVERY": "100"},
             "SupSup/permuted_digits/nns_seed1/lenet_300_100", ("results.csv", "summary.json", "model/checks.csv"))
# the moments go to each driver's run folders in turn, each folder's runs resuming one another
RUNS = {"gg": (GG, GG_BATCHE), "nns": (NNS,)}


def _assert_lock_free(root: Path) -> None:
    """No process holds the run folder's lock (a stale holder would block or refuse the rerun)."""
    if not (root / ".lock").exists():
        return
    with (root / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pytest.fail(f"the lock of {root} is held after its driver was killed")
        fcntl.flock(lock, fcntl.LOCK_UN)


def _kill_at(moment: float, driver: Driver, data_root: Path, ckpt: Path, folder: Path) -> bool:
    """Start the driver (a rerun when its folder holds an earlier run), SIGKILL it `moment` s later, unless it
    ended before; check that it leaves nothing behind. Whether the kill found the driver running."""
    process, out, err = start(driver.command(data_root), driver.environment(data_root, ckpt), folder)
    try:
        ended = wait_until(lambda: process.poll() is not None, moment)
        if not ended:
            os.kill(process.pid, signal.SIGKILL)  # the driver alone, not its process group
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    root = ckpt / driver.root
    assert_nothing_left(process.pid, root)
    messages = out.read_text() + err.read_text()  # read once every writer is gone
    assert code == (0 if ended else -signal.SIGKILL), f"at {moment} s: exit {code}\n{messages[-3000:]}"
    assert not [word for word in CRASH_WORDS + AFTER_A_KILL if word in messages], messages[-3000:]
    _assert_lock_free(root)
    return not ended


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_driver_killed_at_every_moment_leaves_nothing_and_resumes_to_the_same_results(name, data_root,
                                                                                       tmp_path):
    drivers = RUNS[name]
    expected = []
    for k, driver in enumerate(drivers):
        ckpt = tmp_path / f"reference{k}"
        code, out, err = run(driver, data_root, ckpt, ckpt / "logs")
        assert code == 0, out[-2000:] + err[-2000:]
        expected.append(results(driver, ckpt))

    ckpt = tmp_path / "ck"
    for k, moment in enumerate(MOMENTS):
        killed = _kill_at(moment, drivers[k % len(drivers)], data_root, ckpt, tmp_path / f"kill_{k:02d}")
        assert killed or moment > START_UP, f"the driver ended within {moment} s: its start-up went untested"

    for k, driver in enumerate(drivers):
        code, out, err = run(driver, data_root, ckpt, tmp_path / f"end{k}")
        assert code == 0, out[-2000:] + err[-2000:]
        assert not [word for word in CRASH_WORDS if word in out + err], out[-2000:] + err[-2000:]
        assert results(driver, ckpt) == expected[k]

"""DistributedDataParallel under torchrun, on the CPU with gloo and two processes: the same decisions
as one process, files and logs written once by rank 0, failures and kills that fail the stage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import main_normal
from tests.helpers import REPO, environment, flag, run_driver
from unforget.utils.data.cifar100_names import TASK_NAMES

ACCURACY_TOLERANCE = 0.08
"""Two processes train on the same batches as one (each on half of every batch), but each computes its
batch-norm statistics on its half and the gradients are summed in another order, so from the first step
on the weights follow another trajectory, as with another seed. An accuracy counts right answers on
about 120 test images; at the lowest accuracy these stages reach in one process (0.95: retraining
restarts the piggymask, and over seeds 1-4 it ends between 0.95 and 1.0) one run's binomial spread is
sqrt(0.95 * 0.05 / 120) = 2.0 points, the difference of two runs sqrt(2) times that, 2.8 points, and
three sigma 8.4 points: 0.08. Exit codes and sparsities do not depend on the trajectory: they must match."""

GOALS = {"digits_01": 0.5, "digits_23": 0.5}  # low goals: no stage gives way, so decisions do not hinge on them
PRUNE = {"lr": 1e-3, "lr_mask": 0.0, "epochs": 3, "target_sparsity": 0.5, "pruning_interval": 1,
         "pruning_frequency": 3}
STAGES = [
    ("finetune", "digits_01", "t1/scratch", None, {"lr": 0.05, "epochs": 8}),
    ("prune", "digits_01", "t1/pruned", "t1/scratch", PRUNE),
    ("finetune", "digits_23", "t2/scratch", "t1/pruned", {"lr": 0.05, "epochs": 8}),
    ("prune", "digits_23", "t2/pruned", "t2/scratch", PRUNE),
    ("retrain", "digits_23", "t2/retrain", "t2/pruned", {"lr": 1e-3, "lr_mask": 1e-4, "epochs": 3}),
]


def _stage_args(data_root: Path, folder: Path, goals: Path, mode: str, task: str, save: str, load: str | None,
                flags: dict) -> list[str]:
    task_folder = folder / save.split("/")[0]
    args = ["--mode", mode, "--dataset", task, "--data_root", str(data_root), "--device", "cpu", "--batch_size", "16",
            "--save_folder", str(folder / save), "--log_path", str(task_folder / "train.log"),
            "--baseline_acc_file", str(goals)]
    args += ["--jsonfile", str(task_folder / ("retrain.txt" if mode == "retrain" else "record.txt"))]
    if load:
        args += ["--load_folder", str(folder / load)]
    for name, value in flags.items():
        args += [f"--{name}", str(value)]
    return args


def torchrun(*args: str, state_file: Path, script: Path = REPO / "main_normal.py",
             timeout: float = 300) -> subprocess.CompletedProcess:
    """`script args` as two gloo ranks on the CPU, with the state code written to `state_file`."""
    env = environment(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", CPG_STATE_FILE=str(state_file))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def _outcome(folder: Path) -> dict:
    """Records and, per checkpoint, its accuracy and sparsity."""
    records = {path.relative_to(folder).as_posix(): json.loads(path.read_text()) for path in folder.rglob("*.txt")}
    metas = {path.parent.relative_to(folder).as_posix(): json.loads(path.read_text())
             for path in folder.rglob("meta.json")}
    return {"records": records, "accuracy": {name: meta["accuracy"] for name, meta in metas.items()},
            "sparsity": {name: meta["sparsity"] for name, meta in metas.items()}}


@pytest.mark.slow
def test_two_ranks_decide_like_one_process_and_write_once(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps(GOALS))
    single, ranked = tmp_path / "single", tmp_path / "ranked"
    single_codes, ranked_codes = [], []
    for mode, task, save, load, flags in STAGES:
        single_codes.append(main_normal.main(_stage_args(data_root, single, goals, mode, task, save, load, flags)))
        state = tmp_path / "state"
        state.unlink(missing_ok=True)
        done = torchrun(*_stage_args(data_root, ranked, goals, mode, task, save, load, flags), state_file=state)
        assert done.returncode == 0, done.stderr[-3000:]
        ranked_codes.append(int(state.read_text()))
        decisions = [line for line in done.stdout.splitlines() if " exit=" in line]
        assert len(decisions) == 1, done.stdout  # rank 0 alone prints its decision
    assert ranked_codes == single_codes == [0] * len(STAGES)

    one, two = _outcome(single), _outcome(ranked)
    assert {name: record.keys() for name, record in two["records"].items()} == \
           {name: record.keys() for name, record in one["records"].items()}
    assert two["sparsity"] == one["sparsity"] and two["sparsity"]["t2/pruned"] == pytest.approx(0.5, abs=0.01)
    for name, accuracy in one["accuracy"].items():
        assert abs(two["accuracy"][name] - accuracy) <= ACCURACY_TOLERANCE, (name, accuracy, two["accuracy"][name])
    for name, record in one["records"].items():
        for key, accuracy in record.items():
            assert abs(two["records"][name][key] - accuracy) <= ACCURACY_TOLERANCE, (name, key)

    def written(root):  # an event file's name holds its time and process id: compare its folder
        return sorted((path.parent if "tensorboard" in path.parts else path).relative_to(root).as_posix()
                      for path in root.rglob("*") if path.is_file())

    files = written(ranked)
    assert files == written(single)
    assert not [name for name in files if name.endswith(".tmp") or "/." in f"/{name}"]  # no rank's leftovers
    for task_folder in ("t1", "t2"):
        lines = (ranked / task_folder / "train.log").read_text().splitlines()
        epochs = [re.search(r"stage=\w+ task=\w+ epoch=\S+", line).group() for line in lines if " epoch=" in line]
        single_lines = (single / task_folder / "train.log").read_text().splitlines()
        assert Counter(epochs) == Counter(re.search(r"stage=\w+ task=\w+ epoch=\S+", line).group()
                                          for line in single_lines if " epoch=" in line)
        assert max(Counter(epochs).values()) == 1  # every epoch line once
        assert len(lines) == len(single_lines)


FAILING_RANK = """
import sys
sys.path.insert(0, {repo!r})
import main_normal
from unforget.utils.methods.cpg import pruner
from unforget.utils.ranks import rank, report_state

if rank() == 1:
    def broken(self, sparsity):
        raise RuntimeError("rank 1 fails while pruning")
    pruner.GradualPruner.prune_to = broken
sys.exit(report_state(main_normal.main))
"""


@pytest.mark.slow
def test_an_exception_on_one_rank_fails_the_stage(data_root, tmp_path):
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps(GOALS))
    for mode, task, save, load, flags in STAGES[:1]:
        assert main_normal.main(_stage_args(data_root, tmp_path, goals, mode, task, save, load, flags)) == 0
    script = tmp_path / "failing_rank.py"
    script.write_text(FAILING_RANK.format(repo=str(REPO)))
    state = tmp_path / "state"
    mode, task, save, load, flags = STAGES[1]
    started = time.time()
    done = torchrun(*_stage_args(data_root, tmp_path, goals, mode, task, save, load, flags), state_file=state,
                    script=script, timeout=120)
    assert done.returncode != 0 and "rank 1 fails while pruning" in done.stderr
    assert time.time() - started < 100  # rank 0 did not wait forever for its peer
    assert not state.exists()
    assert not (tmp_path / save).exists()
    assert set(json.loads((tmp_path / "t1/record.txt").read_text())) == {"0.0"}


DRIVER = {"FINETUNE_EPOCHS": "20", "PRUNE_EPOCHS": "1", "RETRAIN_EPOCHS": "1", "SPARSITY_STEPS": "0.5",
          "NUM_TASKS": "2", "BATCH_SIZE": "16", "PRUNING_INTERVAL": "1", "PRUNING_FREQUENCY": "3",
          "GPUS": "cpu:2", "OMP_NUM_THREADS": "1"}


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, command line) of every live process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[3]), command)
    return table


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_torchrun_stage_is_redone_when_the_driver_reruns(data_root, tmp_path):
    env = {**DRIVER, "CKPT_ROOT": str(tmp_path / "ck")}
    root = tmp_path / "ck/CPG/split_digits/ddp_seed1/digits_convnet"
    log = root / "digits_01/train.log"
    driver = subprocess.Popen(["bash", str(REPO / "scripts/cpg.sh"), "split_digits", str(data_root), "ddp", "1.0"],
                              env=environment(**env), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and driver.poll() is None:
        if log.exists() and "stage=finetune task=digits_01 epoch=1/" in log.read_text():
            break
        time.sleep(0.01)
    processes = _processes()
    launchers = [pid for pid, (_, session, command) in processes.items()
                 if session == driver.pid and "torch.distributed.run" in command]
    assert driver.poll() is None and len(launchers) == 1, "no torchrun stage running to kill"
    ranks = [pid for pid, (parent, _, _) in processes.items() if parent == launchers[0]]
    assert len(ranks) == 2
    os.kill(launchers[0], signal.SIGKILL)
    assert driver.wait(timeout=60) != 0  # an unexpected code stops the driver
    deadline = time.time() + 10
    while time.time() < deadline and set(ranks) & set(_processes()):
        time.sleep(0.05)
    assert not set(ranks) & set(_processes()), "the ranks outlived their torchrun"
    assert not (root / "digits_01/.stages").exists()
    assert "exit=" not in log.read_text()

    resumed = run_driver("cpg.sh", "split_digits", str(data_root), "ddp", "1.0", **env)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "finetune_w1.0: running" in resumed.stdout.split("task 1/2")[1]
    summary = json.loads((root / "summary.json").read_text())
    assert [row["task"] for row in summary["tasks"]] == ["digits_01", "digits_23"]
    for task in ("digits_01", "digits_23"):
        lines = (root / task / "train.log").read_text().splitlines()
        assert len(lines) == len(set(lines))
        assert json.loads((root / task / "gradual_prune/record.txt").read_text()).keys() >= {"0.0", "0.5"}


# A stand-in for PYTHON that logs each call's arguments and GPU environment (STUB_LOG) and exits with
# STUB_CODES[its --dataset]; as torchrun (-m torch.distributed.run) it writes that code to CPG_STATE_FILE
# and exits 0, as rank 0 does, unless the code is 1: then it fails, as torchrun does when a rank crashes.
STUB = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
if args[:2] == ["-m", "utils.warm_run"]:  # a tool handed to the warm start runs as the tool itself
    args = ["-m", *args[2:]]
if args[:2] == ["-m", "tools.choose_pruning_ratio"]:  # what the driver reads of the choice
    chosen = os.path.join(args[args.index("--task_folder") + 1], "gradual_prune")
    os.makedirs(chosen, exist_ok=True)
    for name, value in (("chosen.json", {{"sparsity": "0.0"}}), ("meta.json", {{"accuracy": 1.0, "width": 1.5}})):
        with open(os.path.join(chosen, name), "w") as file:
            json.dump(value, file)
    sys.exit(0)
if args[:2] == ["-m", "tools.report"]:
    sys.exit(0)
if args[:1] == ["-m"] and args[1].startswith("tools."):
    os.execv(sys.executable, [sys.executable, *args])
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "gpus": os.environ.get("GPUS"), "parent": os.getppid(),
                          "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}}) + "\\n")
dataset = args[args.index("--dataset") + 1] if "--dataset" in args else ""
codes = json.loads(os.environ.get("STUB_CODES", "{{}}")).get(dataset, [0])
calls = sum(1 for line in open(os.environ["STUB_LOG"]) if f'"{{dataset}}"' in line)
code = codes[min(calls, len(codes)) - 1]
if args[:2] == ["-m", "torch.distributed.run"] and code != 1:
    with open(os.environ["CPG_STATE_FILE"], "w") as state:
        state.write(f"{{code}}\\n")
    code = 0
sys.exit(code)
"""


def _stub(folder: Path, **codes: list[int]) -> dict[str, str]:
    """The environment that makes a driver call the stand-in; `codes`: each call's code per dataset."""
    stub = folder / "python_stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return {"PYTHON": str(stub), "STUB_LOG": str(folder / "stub.jsonl"), "STUB_CODES": json.dumps(codes),
            "FAST_START": "1"}


def _calls(env: dict[str, str]) -> list[dict]:
    path = Path(env["STUB_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_gpus_run_every_cpg_stage_under_torchrun_and_its_state_codes_reach_the_driver(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = _stub(tmp_path, digits_01=[2, 0, 6])  # expand once, then finetune done; the first prune stops
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = run_driver("cpg.sh", "split_digits", str(data), "s", "1.5", NUM_TASKS="1", GPUS="2,3",
                      SPARSITY_STEPS="0.1 0.2", CKPT_ROOT=str(tmp_path / "ck"), TMPDIR=str(temporary), **env)
    assert done.returncode == 0, done.stderr
    calls = _calls(env)
    assert [flag(call["args"], "--mode") for call in calls] == ["finetune", "finetune", "prune"]
    for call in calls:
        assert call["args"][:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                                    "main_normal.py"]
        assert call["visible"] == "2,3"
    assert [flag(call["args"], "--network_width_multiplier") for call in calls] == ["1.0", "1.5", "1.5"]
    stages = tmp_path / "ck/CPG/split_digits/s_seed1/digits_convnet/digits_01/.stages"
    assert (stages / "finetune_w1.0").read_text() == "2\n" and (stages / "prune_0.1").read_text() == "6\n"
    assert not list(temporary.iterdir())  # no stage server (FAST_START=1 is ignored), no state file left


def test_a_failed_torchrun_is_never_read_as_a_state(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = _stub(tmp_path, digits_01=[1])
    done = run_driver("cpg.sh", "split_digits", str(data), "s", "1.5", NUM_TASKS="1", GPUS="cpu:2",
                      CKPT_ROOT=str(tmp_path / "ck"), **env)
    assert done.returncode == 1 and "stage finetune_w1.0 exited with unexpected code 1" in done.stderr
    assert not (tmp_path / "ck/CPG/split_digits/s_seed1/digits_convnet/digits_01/.stages").exists()
    assert [call["visible"] for call in _calls(env)] == [""]  # cpu:N hides the GPUs from the ranks


def test_baselines_spread_over_the_gpus_one_process_each(tmp_path):
    env = _stub(tmp_path)
    done = run_driver("baseline_cifar100.sh", NUM_TASKS="5", GPUS="cpu:2", DATA_ROOT=str(tmp_path),
                      CKPT_ROOT=str(tmp_path / "ck"), LOGFILE=str(tmp_path / "goals.json"), **env)
    assert done.returncode == 0, done.stderr
    calls = _calls(env)
    assert sorted(flag(call["args"], "--dataset") for call in calls) == sorted(TASK_NAMES[:5])
    assert all(call["args"][0] == "main_normal.py" and call["gpus"] == "cpu:1" and call["visible"] == ""
               for call in calls)
    workers: dict[int, set[str]] = {}
    for call in calls:
        workers.setdefault(call["parent"], set()).add(flag(call["args"], "--dataset"))
    assert sorted(workers.values(), key=len) == [set(TASK_NAMES[1:5:2]), set(TASK_NAMES[0:5:2])]


BAD_LIST = "GPUS must be GPU ids such as 0,1,2,3, or cpu:N for N processes on the CPU; got '{}'"
TWICE = "GPUS must name each GPU once (one process per GPU), got '{}'"  # two ranks on one GPU run no faster


@pytest.mark.parametrize(("gpus", "message"), [("0,,1", BAD_LIST), ("cpu:0", BAD_LIST), ("gpu1", BAD_LIST),
                                               ("0,0", TWICE), ("1,2,01", TWICE)])
def test_a_bad_gpu_list_is_a_usage_error(tmp_path, gpus, message):
    env = _stub(tmp_path)
    done = run_driver("cpg.sh", "split_digits", str(tmp_path), "s", "1.5", GPUS=gpus, CKPT_ROOT=str(tmp_path / "ck"),
                      **env)
    assert done.returncode == 64 and done.stderr.splitlines() == [f"cpg.sh: error: {message.format(gpus)}"]
    assert not _calls(env)


def test_gpu_ids_without_a_gpu_warn_once_and_run_on_the_cpu(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    fake = tmp_path / "bin"  # an nvidia-smi that finds no GPU, whatever this machine has
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 1\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = _stub(tmp_path)
    done = run_driver("cpg.sh", "split_digits", str(data), "s", "1.5", NUM_TASKS="1", GPUS="0,1", DEVICE="",
                      SPARSITY_STEPS="0.1", CKPT_ROOT=str(tmp_path / "ck"), PATH=f"{fake}:{os.environ['PATH']}", **env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "warning: no NVIDIA GPU found; GPUS=0,1 runs on the CPU, which is far slower"]
    calls = _calls(env)
    assert calls and {flag(call["args"], "--device") for call in calls} == {"cpu"}


def test_seeds_spread_over_the_gpus_each_run_on_one(tmp_path):
    """SEEDS with GPUS=0,1: one worker per GPU takes every other seed, and each seed's stages see that GPU
    alone and run in one process (no torchrun), in a run folder of its own."""
    env = {**_stub(tmp_path), "FAST_START": "0"}
    done = run_driver("finetune.sh", "split_digits", SEEDS="1 2 3", GPUS="0,1", NUM_TASKS="2", DATA_ROOT=str(tmp_path),
                      CKPT_ROOT=str(tmp_path / "ck"), LOGFILE=str(tmp_path / "goals.json"), **env)
    assert done.returncode == 0, done.stderr
    calls = [call for call in _calls(env) if call["args"][:1] == ["main_normal.py"]]
    seeds = {(flag(call["args"], "--seed"), call["visible"]) for call in calls}
    assert seeds == {("1", "0"), ("2", "1"), ("3", "0")}
    for call in calls:
        seed = flag(call["args"], "--seed")
        assert f"/finetune_seed{seed}/" in flag(call["args"], "--save_folder")
    cards = sorted((tmp_path / "ck").rglob("run.json"))
    assert [json.loads(card.read_text())["seed"] for card in cards] == [1, 2, 3]

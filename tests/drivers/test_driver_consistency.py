"""The rules every driver shares (docs/running.md, "Rules every driver follows"): one data root, EXPERIMENT,
run folders named without a path, and no GPU id asked on the CPU.

The drivers are found in scripts/ (a new one is covered without an entry here: it runs with the benchmark spec
as its argument and as BENCHMARK) and run with the stand-in PYTHON (tests/helpers/stand_in.py), so their shell
choices are checked while nothing trains. A stage that needs a real stage's files fails after the run folder
and the stages' folders are chosen; what is checked is what the driver created and passed on up to there."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import REPO, environment, flag
from tests.helpers.files import TASKS, write_folders
from tests.helpers.stand_in import stub_calls, stub_env
from unforget.utils.methods import METHODS

SCRIPTS = REPO / "scripts"
NOT_DRIVERS = {
    "test.sh": "runs the checks and the tests, trains nothing",
    "results.sh": "regenerates the docs' results by running other drivers",
}
FIXED_BENCHMARK = {  # drivers that cannot take a spec benchmark at all, and why
    "CPG_cifar100_scratch_mul_1.5.sh": "the CIFAR-100 protocol of the reference (cpg.sh takes any benchmark)",
    "PackNet_cifar100.sh": "the CIFAR-100 protocol of the reference (cpg.sh with METHOD=packnet takes any)",
    "baseline_cifar100.sh": "the CIFAR-100 baselines of the reference (baseline.sh takes any benchmark)",
    "finetune_cifar100.sh": "the reference's CIFAR-100 finetune baseline (finetune.sh takes any benchmark)",
    "inference_CPG_cifar100.sh": "evaluates a finished CIFAR-100 CPG run; trains nothing",
    "lottery_digits.sh": "lottery.sh on the embedded digits10 (lottery.sh takes any benchmark)",
    "quickstart.sh": "makes the venv, then cpg.sh on split_digits",
    "compare_split_digits.sh": "every method on split_digits side by side (each driver takes any benchmark)",
    "extract_digits.sh": "extract_trained.sh on digits10 (extract_trained.sh takes any benchmark)",
    "extract_mnist.sh": "extract_trained.sh on MNIST (extract_trained.sh takes any benchmark)",
    "extract_synthetic.sh": "draws its inputs from a random teacher: no benchmark",
    "gpu_check.sh": "checks a CUDA machine (tests, benchmarks, cpg.sh on synthetic_cifar): no benchmark of its own",
}
SLOW = ("cpg.sh METHOD=packnet", "CPG_fine_grained.sh")
SPEC_STEM = "tiny_spec"
"""The spec's file name without .json: the name the run folders take."""
QUICK = {"NUM_TASKS": "3", "SPARSITY_STEPS": "0.5", "EVAL_AT": "", "TARGETS": "0.5", "SEEDS": "1"}
"""Short runs: every task of the spec, one prune stage, one lottery level, one seed."""
RUNS = {  # how a driver takes the spec when not as its argument and BENCHMARK (the default), and its run label
    "cpg.sh": (("{spec}", "s", "1.5"), {}),
    "cpg.sh METHOD=packnet": (("{spec}", "{data}", "s", "1.0"), {"METHOD": "packnet"}),
    "supsup_gnu.sh": (("{spec}", "oneshot", "g"), {}),
    "supsup_gg.sh": ((), {}),
    "supsup_gg.sh BASELINE=upper_bound": ((), {"BASELINE": "upper_bound"}),
    "supsup_gg.sh BASELINE=transfer": ((), {"BASELINE": "transfer"}),
    "extract_trained.sh": (("{spec}", TASKS[0], "digits_mlp_16"), {}),
    "CPG_fine_grained.sh": ((), {"TASKS": " ".join(TASKS), "METHODS": "cpg packnet piggyback", "ARCH": "resnet18",
                                 "PRETRAINED": "{data}/backbone.pth"}),
}
LABELS = {"extract_trained.sh": "digits_mlp_16", "CPG_fine_grained.sh": "fine_grained"}
"""Run labels that are not the spec's name: extract_trained.sh names its folder by the architecture, and
CPG_fine_grained.sh writes its own spec (by absolute path) and names its runs fine_grained."""
ENVIRONMENT_ONLY = ("supsup_gns_permuted_mnist.sh", "supsup_gnu_permuted_mnist.sh", "supsup_gnu_rotated_mnist.sh",
                    "supsup_hop_split_mnist.sh", "supsup_nns_permuted_mnist.sh")
"""Drivers that take the benchmark as BENCHMARK only (their argument is a GPU id)."""
RUNS.update({name: ((), {}) for name in ENVIRONMENT_ONLY})


def sourced() -> set[str]:
    """The files under scripts/ that other scripts source (lib.sh and the methods' helpers): not drivers."""
    names = set()
    for script in SCRIPTS.glob("*.sh"):
        names.update(re.findall(r'^\s*source .*/([\w.]+\.sh)"$', script.read_text(), re.M))
    return names


def drivers() -> list[str]:
    return sorted(path.name for path in SCRIPTS.glob("*.sh") if path.name not in sourced() | set(NOT_DRIVERS))


def spec_cases() -> list:
    """Every driver that takes a spec, plus the variants RUNS names (a driver's other method or baseline); the
    slowest (a second cpg.sh and CPG_fine_grained.sh, whose cpg.sh imports torch to size the network) in the slow
    tier."""
    cases = sorted({name for name in drivers() if name not in FIXED_BENCHMARK} | set(RUNS))
    return [pytest.param(case, marks=pytest.mark.slow) if case in SLOW else case for case in cases]


def write_spec(folder: Path) -> Path:
    """A tiny folder spec (three 8x8 grey tasks) deep in folders whose names must appear in no run folder."""
    spec = folder / "where_specs_live" / "deeper_still" / f"{SPEC_STEM}.json"
    write_folders(spec.parent / "images")
    spec.write_text(json.dumps({"images": "images", "tasks": list(TASKS), "channels": 1, "arch": "digits_convnet",
                                "goals": dict.fromkeys(TASKS, 0.5)}))
    return spec


def fine_grained_data(data: Path) -> None:
    """CPG_fine_grained.sh's inputs: the spec's task folders under DATA_ROOT/fine_grained and a backbone file."""
    write_folders(data / "fine_grained")
    (data / "backbone.pth").write_bytes(b"stand-in: never read")


def run(script: str, args: tuple[str, ...], tmp: Path, **extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """SCRIPT with the stand-in PYTHON, DATA_ROOT tmp/data and CKPT_ROOT tmp/ck; its output and environment."""
    env = environment(**{**stub_env(tmp), "DATA_ROOT": str(tmp / "data"), "CKPT_ROOT": str(tmp / "ck"), **extra})
    done = subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=300)
    return done, env


def forbidden_parts(path: Path) -> set[str]:
    """The components of an absolute path (the spec's folders and file name) that must name no run folder."""
    return set(path.parts[1:])


def created_and_passed(ckpt: Path, env: dict) -> list[tuple[str, ...]]:
    """Every file and folder the driver created under CKPT_ROOT, and every path under it it passed to a stage, as
    its parts relative to CKPT_ROOT."""
    paths = [path.relative_to(ckpt).parts for path in ckpt.rglob("*")]
    for call in stub_calls(env):
        for arg in call["args"]:
            for item in arg.split(","):
                if item.startswith(f"{ckpt}/"):
                    paths.append(Path(item).relative_to(ckpt).parts)
    return paths


def test_every_driver_is_run_on_a_spec_or_says_why_not():
    """The lists here name only drivers that exist (a renamed driver must not leave a stale reason behind)."""
    names = set(drivers())
    assert set(FIXED_BENCHMARK) <= names and {case.split()[0] for case in RUNS} <= names
    assert set(NOT_DRIVERS) <= {path.name for path in SCRIPTS.glob("*.sh")}
    assert {"plain_models_lib.sh", "subspace_lib.sh", "supsup_gg_baselines.sh", "lib.sh"} <= sourced()
    assert "cpg.sh" in names and "supsup_gg.sh" in names


def start_on_spec(tmp: Path, case: str, **more: str) -> tuple[subprocess.CompletedProcess, dict, Path]:
    """CASE (a driver, or a driver and its variant) on the tiny spec given by its absolute path: its output, its
    environment and the spec."""
    spec = write_spec(tmp)
    data = tmp / "data"
    data.mkdir()
    script = case.split()[0]
    args, extra = RUNS.get(case, (("{spec}",), {}))
    if script == "CPG_fine_grained.sh":
        fine_grained_data(data)
    env = {**QUICK, "BENCHMARK": str(spec), **{key: value.format(data=data) for key, value in extra.items()}, **more}
    done, env = run(script, tuple(arg.format(spec=spec, data=data) for arg in args), tmp, **env)
    return done, env, spec


def run_on_spec(tmp: Path, case: str, **more: str) -> tuple[subprocess.CompletedProcess, dict, Path, list]:
    """start_on_spec, and the run folders it made (those holding run_settings.json) relative to CKPT_ROOT."""
    done, env, spec = start_on_spec(tmp, case, **more)
    ckpt = tmp / "ck"
    runs = [path.parent.relative_to(ckpt).parts for path in ckpt.rglob("run_settings.json")]
    assert runs, f"{case} made no run folder (exit {done.returncode}): {done.stderr[-2000:]}"
    return done, env, spec, runs


@pytest.mark.parametrize("case", spec_cases())
def test_no_run_folder_holds_a_path_of_the_spec_given_by_absolute_path(tmp_path, case):
    """Acceptance of issue 24: a spec given by its absolute path names no folder of the run, and no folder a
    stage is given, by its path's parts; the run folder takes the spec's name. Also: every stage reads the
    DATA_ROOT given."""
    done, env, spec, runs = run_on_spec(tmp_path, case)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    forbidden = forbidden_parts(spec)
    for parts in created_and_passed(tmp_path / "ck", env):
        assert not forbidden & set(parts), f"{case}: {'/'.join(parts)} holds a part of {spec}"
    label = LABELS.get(case.split()[0], SPEC_STEM)
    assert all(label in parts for parts in runs), (label, runs)
    roots = {call["args"][call["args"].index("--data_root") + 1] for call in stub_calls(env)
             if "--data_root" in call["args"]}
    assert roots <= {str(tmp_path / "data")}, roots


def test_a_spec_given_by_a_relative_path_resumes_the_run_of_the_same_spec_by_its_absolute_path(tmp_path):
    """One spec, one run folder (its name) and one identity: the path it was given by changes neither."""
    spec = write_spec(tmp_path)
    (tmp_path / "data").mkdir()
    relative = os.path.relpath(spec, tmp_path)  # from the folder the driver starts in, as DATA_ROOT
    first, _ = run("subspace_lines.sh", (relative,), tmp_path)
    second, _ = run("subspace_lines.sh", (str(spec),), tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr[-2000:] + second.stderr[-2000:]
    record = json.loads(next((tmp_path / "ck").rglob("run_settings.json")).read_text())
    assert record["settings"]["BENCHMARK"] == str(spec)


@pytest.mark.slow
@pytest.mark.parametrize("case", spec_cases())
def test_experiment_names_the_run_folder_of_every_driver(tmp_path, case):
    """EXPERIMENT takes the place of the benchmark's name in every driver's run folder."""
    done, _, _, runs = run_on_spec(tmp_path, case, EXPERIMENT="my.run-1")
    assert all("my.run-1" in parts and SPEC_STEM not in parts for parts in runs), (runs, done.stderr[-2000:])


def methods_taking_val_fraction() -> set[str]:
    return {name for name, entry in METHODS.items() if "--val_fraction" in entry.settings_class().flag_names()}


@pytest.mark.parametrize("case", spec_cases())
def test_val_fraction_reaches_every_stage_whose_method_takes_it(tmp_path, case):
    """VAL_FRACTION is a setting of every driver whose stages can hold training images out, and each such stage
    is given it (those the stand-in reaches before a stage needs a real one's files)."""
    done, env, _ = start_on_spec(tmp_path, case, VAL_FRACTION="0.25")
    takes = methods_taking_val_fraction()
    calls = [call["args"] for call in stub_calls(env) if "--method" in call["args"]]
    assert calls, done.stderr[-2000:]
    missing = [call for call in calls if flag(call, "--method") in takes and "--val_fraction" not in call]
    assert not missing, missing[0]
    assert all(flag(call, "--val_fraction") == "0.25" for call in calls if "--val_fraction" in call)
    settings = [json.loads(path.read_text())["settings"] for path in (tmp_path / "ck").rglob("run_settings.json")]
    assert settings and all(record.get("VAL_FRACTION") == "0.25" for record in settings), settings


SEEDS_IN_ONE_REPORT = {  # drivers that read SEEDS themselves, every seed into one report
    "extract_trained.sh": "a teacher and its extraction per seed, one table",
    "lottery.sh": "every seed's tickets at every target, one report",
}


@pytest.mark.parametrize("case", spec_cases())
def test_seeds_naming_two_seeds_reach_both_or_are_one_line_and_64(tmp_path, case):
    """A driver given SEEDS="3 4" starts both seeds (two workers side by side: a run folder each) or stops with
    one line and exit 64 before it makes anything; never one seed run while the other seems to have run."""
    done, env, _ = start_on_spec(tmp_path, case, SEEDS="3 4", SEED_WORKERS="2")
    if done.returncode == 64 and "SEEDS" in done.stderr:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not stub_calls(env) and not (tmp_path / "ck").exists()
        return
    folders = {part for path in (tmp_path / "ck").rglob("run_settings.json") for part in path.parts}
    staged = {flag(call["args"], "--seed") for call in stub_calls(env) if "--seed" in call["args"]}
    reached = {seed for seed in ("3", "4")
               if seed in staged or any(re.search(rf"(^|_)seed{seed}$", part) for part in folders)}
    wanted = {"3"} if case.split()[0] in SEEDS_IN_ONE_REPORT else {"3", "4"}  # their first seed's stand-in fails
    assert reached >= wanted, (case, folders, staged, done.stderr[-2000:])


@pytest.mark.parametrize("script, refused", [("finetune_cifar100.sh", True), ("inference_CPG_cifar100.sh", True),
                                             ("baseline_cifar100.sh", False)])
def test_seeds_in_the_fixed_benchmark_drivers(tmp_path, script, refused):
    """The reference's CIFAR-100 finetune repeats itself by ITER_ID and refuses SEEDS="3 4", as the evaluation of
    one CPG run does; its baselines sweep."""
    (tmp_path / "data").mkdir()
    done, env = run(script, (), tmp_path, NUM_TASKS="1", SEEDS="3 4", SEED_WORKERS="2")
    if refused:
        assert done.returncode == 64 and "SEEDS names 2" in done.stderr and not stub_calls(env), done.stderr
    else:
        folders = {path.parent.parent.name for path in (tmp_path / "ck").rglob("run_settings.json")}
        assert {"baseline_seed3", "baseline_seed4"} <= folders, (folders, done.stderr[-2000:])


def test_extraction_refuses_a_validation_split_it_cannot_probe_before_the_teacher_trains(tmp_path):
    done, env, _ = start_on_spec(tmp_path, "extract_trained.sh", PROBE="gaussian", VAL_FRACTION="0.2")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 64 and len(lines) == 1 and "only PROBE=data" in lines[0], done.stderr
    assert not stub_calls(env) and not (tmp_path / "ck").exists()


def test_seeds_naming_one_seed_run_it_in_a_one_seed_driver(tmp_path):
    """SEEDS="5" in a driver that runs one seed is SEED=5, as it would be in a driver that sweeps seeds."""
    done, env, _ = start_on_spec(tmp_path, "subspace_lines.sh", SEEDS="5", SEED="1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {flag(call["args"], "--seed") for call in stub_calls(env)} == {"5"}
    assert [path.parent.name for path in (tmp_path / "ck").rglob("run_settings.json")] == ["seed5"]


@pytest.mark.parametrize("script, args", [
    pytest.param("CPG_cifar100_scratch_mul_1.5.sh", (), marks=pytest.mark.slow),
    pytest.param("PackNet_cifar100.sh", (), marks=pytest.mark.slow), ("baseline_cifar100.sh", ()),
    ("finetune_cifar100.sh", ()), ("baseline.sh", ("split_digits",)), ("lottery_digits.sh", ()),
])
def test_experiment_names_the_run_folder_of_the_fixed_benchmark_drivers(tmp_path, script, args):
    (tmp_path / "data").mkdir()
    done, _ = run(script, args, tmp_path, NUM_TASKS="1", TARGETS="0.5", SEEDS="1", EXPERIMENT="mine")
    runs = [path.parent.relative_to(tmp_path / "ck").parts for path in (tmp_path / "ck").rglob("run_settings.json")]
    assert runs and all(parts[1] == "mine" for parts in runs), (runs, done.stderr[-2000:])


@pytest.mark.parametrize("value", ["/abs/path", "a/b", "..", ".hidden", "-x", "two words", "x" * 129])
@pytest.mark.parametrize("script, args", [("cpg.sh", ("split_digits", "s", "1.5")), ("supsup_gg.sh", ()),
                                          ("subspace_lines.sh", ())])
def test_an_experiment_that_is_not_one_folder_name_is_one_line_and_64(tmp_path, script, args, value):
    done, env = run(script, args, tmp_path, EXPERIMENT=value)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 64 and len(lines) == 1 and "EXPERIMENT must be one folder name" in lines[0], done.stderr
    assert not stub_calls(env) and not (tmp_path / "ck").exists()


@pytest.mark.parametrize("script", ["ewc.sh", "lwf.sh", "wsn.sh", "hat.sh"])
def test_a_setting_that_is_not_one_folder_name_stops_a_seed_sweep_before_any_seed(tmp_path, script):
    done, env = run(script, ("split_digits", "a/b"), tmp_path, SEEDS="1 2")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 64 and len(lines) == 1 and "setting must be one folder name" in lines[0], done.stderr
    assert "seeds" not in done.stdout and not stub_calls(env) and not (tmp_path / "ck").exists()


# The data root -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["environment", "argument", pytest.param("both the same", marks=pytest.mark.slow),
                                 pytest.param("both, one through a link", marks=pytest.mark.slow)])
def test_cpg_takes_the_data_root_from_data_root_or_its_argument(tmp_path, how):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    args, extra = {
        "environment": (("split_digits", "s", "1.5"), {"DATA_ROOT": str(data)}),
        "argument": (("split_digits", str(data), "s", "1.5"), {}),
        "both the same": (("split_digits", str(data), "s", "1.5"), {"DATA_ROOT": str(data)}),
        "both, one through a link": (("split_digits", str(tmp_path / "link"), "s", "1.5"), {"DATA_ROOT": str(data)}),
    }[how]
    env = environment(**stub_env(tmp_path, digits_01=64), CKPT_ROOT=str(tmp_path / "ck"), **extra)  # one stage
    if "DATA_ROOT" not in extra:
        env.pop("DATA_ROOT", None)
    done = subprocess.run(["bash", str(SCRIPTS / "cpg.sh"), *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    calls = [call["args"] for call in stub_calls(env)]
    assert calls, done.stderr[-2000:]
    assert {call[call.index("--data_root") + 1] for call in calls} == {str(data)}


@pytest.mark.parametrize("argument_first", [True, False])
def test_two_different_data_roots_are_one_line_and_64_before_anything(tmp_path, argument_first):
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    argument, variable = (first, second) if argument_first else (second, first)
    env = environment(**stub_env(tmp_path), CKPT_ROOT=str(tmp_path / "ck"), DATA_ROOT=str(variable))
    done = subprocess.run(["bash", str(SCRIPTS / "cpg.sh"), "split_digits", str(argument), "s", "1.5"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 64 and len(lines) == 1, done.stderr
    assert "two data roots" in lines[0] and str(argument) in lines[0] and str(variable) in lines[0]
    assert not stub_calls(env) and not (tmp_path / "ck").exists()


def test_cpg_refuses_a_setting_that_is_not_one_folder_name(tmp_path):
    env = environment(**stub_env(tmp_path), CKPT_ROOT=str(tmp_path / "ck"), DATA_ROOT=str(tmp_path))
    done = subprocess.run(["bash", str(SCRIPTS / "cpg.sh"), "split_digits", "/abs/s", "1.5"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 64 and "setting must be one folder name" in done.stderr, done.stderr
    assert not (tmp_path / "ck").exists()


# No GPU id on the CPU ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("script, args, extra", [
    ("CPG_cifar100_scratch_mul_1.5.sh", (), {}), pytest.param("PackNet_cifar100.sh", (), {}, marks=pytest.mark.slow),
    ("baseline_cifar100.sh", (), {}),
    ("finetune_cifar100.sh", (), {}), ("supsup_gg.sh", (), {"BENCHMARK": "split_digits", "ARCH": "lenet_300_100"}),
    ("supsup_gnu.sh", ("permuted_digits", "oneshot", "g"), {}), ("supsup_nns_permuted_mnist.sh", (), {}),
    ("supsup_hop_split_mnist.sh", (), {"BENCHMARK": "split_digits"}),
])
def test_a_cpu_run_needs_no_gpu_id(tmp_path, script, args, extra):
    """Without a GPU id and with DEVICE=cpu, a driver runs its stages on the CPU: it asks for no id and warns of
    no missing GPU, and no stage is pointed at a GPU."""
    (tmp_path / "data").mkdir()
    done, env = run(script, args, tmp_path, **{"NUM_TASKS": "2", **extra}, DEVICE="cpu")
    calls = stub_calls(env)
    assert calls, f"{script} ran no stage (exit {done.returncode}): {done.stderr[-2000:]}"
    assert "gpu id" not in done.stderr.lower() and "warning" not in done.stderr, done.stderr
    assert all(flag(call["args"], "--device") == "cpu" for call in calls if "--device" in call["args"])


# The spec's name ---------------------------------------------------------------------------------------------

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=,-]*")


@settings(max_examples=60, deadline=None)
@given(folders=st.lists(st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1,
                                max_size=8), max_size=4),
       stem=st.text(st.characters(blacklist_characters="/\0\n", blacklist_categories=("Cs",)), max_size=12))
def test_a_specs_label_is_one_folder_name_whatever_its_path(folders, stem):
    """benchmark_label: for any spec path, one folder name (never ., .. or a separator); a stem that is a folder
    name already is kept as it is."""
    path = "/" + "/".join([*folders, stem + ".json"])
    script = f'source "{SCRIPTS}/lib.sh"; benchmark_label "$1"; printf %s "$BENCHMARK_LABEL"'
    done = subprocess.run(["bash", "-c", script, "label", path], capture_output=True, text=True, env=environment(),
                          timeout=30)
    label = done.stdout
    assert done.returncode == 0 and NAME.fullmatch(label), (path, label, done.stderr)
    if NAME.fullmatch(stem):
        assert label == stem

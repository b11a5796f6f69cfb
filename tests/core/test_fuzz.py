"""Fuzzing with Hypothesis: malformed benchmark specs, hostile flag values and corrupted record, result and
checkpoint files, each thrown at the entry a user or a driver calls. Every one must end in exit 64 (65 for a
checkpoint or result file), exactly one line on stderr, no traceback, and no file written outside the stage's
own folder.

The entries run in-process (`main(argv)`), so an example costs milliseconds rather than a torch import. Flag
and spec examples stop where validation ends: a stage that would start is itself the failure (a bad value
accepted). Each property is two tests: a few examples in the fast tier and many in its slow twin.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import tempfile
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import main_normal
from tests.helpers.files import run_folder, write_folders
from unforget.tools import choose_pruning_ratio, choose_retrain, report
from unforget.utils.methods import METHODS, Method
from unforget.utils.settings import _base_type

FAST = settings(max_examples=20, deadline=None, database=None)
SLOW = settings(max_examples=400, deadline=None, database=None)


def twins(*args, **kwargs) -> Callable:
    """A property as a fast test and its slow twin (same strategies, more examples)."""

    def make(prop: Callable) -> tuple[Callable, Callable]:
        return FAST(given(*args, **kwargs)(prop)), pytest.mark.slow(SLOW(given(*args, **kwargs)(prop)))

    return make


class Accepted(Exception):
    """A stage was about to run: validation let the bad input through."""


def _refuse_to_run(self: Method) -> Callable:
    def run(settings, process_start):
        raise Accepted(f"{settings.method} {settings.mode} would run with {settings}")

    return run


def outcome(entry: Callable[[list[str]], int], argv: list[str]) -> tuple[int, list[str], str]:
    """An entry point's exit code, its non-empty stderr lines and all it printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = entry(argv)
        except SystemExit as stop:
            code = stop.code
    return code, [line for line in stderr.getvalue().splitlines() if line.strip()], stdout.getvalue() + \
        stderr.getvalue()


def snapshot(root: Path, stage: Path | None = None) -> dict[str, bytes]:
    """Every file under `root` but those in the stage's own folder."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and not (stage and path.is_relative_to(stage))}


def refused(entry: Callable, argv: list[str], code: int, root: Path, stage: Path | None = None) -> str:
    """Assert the one-line refusal with `code`, and that nothing under `root` changed outside `stage`."""
    before = snapshot(root, stage)
    got, lines, printed = outcome(entry, argv)
    assert (got, len(lines)) == (code, 1), (got, printed[-2000:])
    assert "Traceback" not in printed, printed[-2000:]
    assert snapshot(root, stage) == before
    return lines[0]


def refused_stage(argv: list[str], root: Path, stage: Path) -> str:
    """main_normal refuses `argv` with 64 before any stage runs."""
    with mock.patch.object(Method, "runner", _refuse_to_run):
        return refused(main_normal.main, argv, 64, root, stage)


# --- benchmark specs ---------------------------------------------------------------------------------------

TASKS = ("rows", "cols")
FOLDER_SPEC = {"images": "images", "tasks": list(TASKS), "channels": 1, "image_size": 8, "crop_padding": 1,
               "flip": False, "arch": "digits_convnet", "normalise": {"mean": [0.5], "std": [0.25]},
               "goals": {"rows": 0.5}}
SPLIT_SPEC = {"torchvision": "CIFAR10", "split": {"tasks": 2, "seed": 0, "classes_per_task": 2,
                                                  "names": list(TASKS)}, "arch": "digits_convnet"}
OPTIONAL_NONE = {"arch", "image_size", "large"}
"""Keys whose null means 'not given'."""

UNICODE = st.text(max_size=8).map(lambda text: f"{text}\u00e9\u2603\u200b")
"""Text with accents, a symbol and a zero-width space: no folder, task, class, dataset or architecture has it."""
HOSTILE = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=2**32, max_value=10**18), st.just(0.5), st.floats(-1e6, -1e-9),
    st.just(""), UNICODE, st.booleans(), st.none(), st.lists(st.one_of(st.none(), UNICODE), min_size=1, max_size=3),
    st.dictionaries(UNICODE, st.integers(), min_size=1, max_size=2))
"""Values wrong for every entry of a spec where they replace a whole value (the few exceptions are skipped
by `_still_valid`)."""
BAD_GOAL = st.one_of(st.floats(1.0001, 100), st.floats(max_value=-1e-9), st.just(""), UNICODE, st.booleans(),
                     st.none(), st.lists(st.integers(0, 1), max_size=2))
LITERALS = ("NaN", "Infinity", "-Infinity", "1" * 19, "-" + "9" * 30, "1" * 5000)
"""Numbers the parser refuses wherever they stand: JSON has no NaN or infinity, and no entry is that long."""


def _still_valid(key: str, value) -> bool:
    """The hostile values an entry takes; an "arch" name is checked when the network is built (with torch)."""
    return (value is None and key in OPTIONAL_NONE) or (key == "flip" and isinstance(value, bool)) or (
        key == "arch" and isinstance(value, str) and value != "")


def _entries(spec: dict) -> list[tuple[str, ...]]:
    """Every entry of a spec as a path of keys: the top-level keys and those of its objects."""
    return [(key,) for key in spec] + [(key, inner) for key, value in spec.items() if isinstance(value, dict)
                                       for inner in value]


def _set(spec: dict, path: tuple[str, ...], value) -> dict:
    changed = json.loads(json.dumps(spec))
    (changed if len(path) == 1 else changed[path[0]])[path[-1]] = value
    return changed


@st.composite
def bad_spec_texts(draw) -> str | bytes:
    """A spec text wrong in one way: one entry's value, a key missing or unknown, a refused number literal,
    nesting too deep, no JSON object, a cut, or bytes that are not UTF-8."""
    base = draw(st.sampled_from([FOLDER_SPEC, SPLIT_SPEC]))
    kind = draw(st.sampled_from(["value", "goal", "literal", "missing", "unknown", "deep", "not_object", "cut",
                                 "bytes"]))
    text = json.dumps(base)
    if kind == "value":
        path = draw(st.sampled_from([path for path in _entries(base) if path[0] != "goals"]))
        value = draw(HOSTILE.filter(lambda value: not _still_valid(path[-1], value)))
        return json.dumps(_set(base, path, value))
    if kind == "goal":
        return json.dumps({**base, "goals": {draw(st.sampled_from(TASKS)): draw(BAD_GOAL)}})
    if kind == "literal":
        path = draw(st.sampled_from(_entries(base)))
        return json.dumps(_set(base, path, "@@")).replace('"@@"', draw(st.sampled_from(LITERALS)))
    if kind == "missing":
        gone = draw(st.sampled_from(("tasks", "images") if "images" in base else ("torchvision", "split")))
        return json.dumps({key: value for key, value in base.items() if key != gone})
    if kind == "unknown":
        return json.dumps({**base, draw(UNICODE | st.sampled_from(["task", "Tasks", "seed", "image size"])): 1})
    if kind == "deep":
        depth = draw(st.integers(17, 200_000))
        return json.dumps({**base, "arch": "@@"}).replace('"@@"', "[" * depth + "]" * depth)
    if kind == "not_object":
        return json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), UNICODE,
                                         st.just(list(base.items())))))
    if kind == "cut":
        return text[:draw(st.integers(0, len(text) - 1))]
    cut = draw(st.integers(0, len(text)))
    return text[:cut].encode() + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"])) + \
        text[cut:].encode()


@pytest.fixture(scope="module")
def spec_home(tmp_path_factory) -> Path:
    """Image folders for the folder spec's tasks and an empty data root."""
    home = tmp_path_factory.mktemp("spec_home")
    write_folders(home / "images", TASKS, train=2, test=1)
    (home / "data").mkdir()
    return home


def _spec_argv(spec: Path, home: Path) -> list[str]:
    return ["--mode", "finetune", "--benchmark", str(spec), "--dataset", "rows", "--data_root", str(home / "data"),
            "--save_folder", str(home / "stage" / "s"), "--jsonfile", str(home / "stage" / "record.txt"),
            "--device", "cpu"]


def test_the_unbroken_specs_reach_the_stage(spec_home):
    """The bases the fuzzing breaks are good specs, so each refusal below is the broken entry's."""
    for number, base in enumerate((FOLDER_SPEC, SPLIT_SPEC)):
        spec = spec_home / f"good{number}.json"
        spec.write_text(json.dumps(base))
        with mock.patch.object(Method, "runner", _refuse_to_run), pytest.raises(Accepted):
            main_normal.main(_spec_argv(spec, spec_home))


def _bad_spec_is_refused(spec_home, text):
    spec = spec_home / "spec.json"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = refused_stage(_spec_argv(spec, spec_home), spec_home, spec_home / "stage")
    assert f"{spec}: " in line, line  # the spec parser's line, naming the file


test_a_bad_spec_is_one_line_and_64, test_a_bad_spec_is_one_line_and_64_slow = twins(
    text=bad_spec_texts())(_bad_spec_is_refused)


# --- flag values -----------------------------------------------------------------------------------------

STAGE_BASES = {  # a finetune each method accepts (test_every_method_base_reaches_its_stage)
    "cpg": ["--dataset", "digits_01", "--jsonfile", "{stage}/record.txt"],
    "packnet": ["--dataset", "digits_01", "--jsonfile", "{stage}/record.txt"],
    "baseline": ["--dataset", "digits_01"],
    "piggyback": ["--dataset", "digits_01"],
    "supsup": ["--benchmark", "permuted_digits", "--dataset", "pdigits_00"],
    "gg_baseline": ["--benchmark", "permuted_digits", "--dataset", "pdigits_00"],
    "hat": ["--dataset", "digits_01"],
    "ewc": ["--dataset", "digits_01"],
    "lwf": ["--benchmark", "permuted_digits", "--dataset", "pdigits_00"],
    "lottery": ["--dataset", "digits_01"],
    "subspace": ["--dataset", "digits_01"],
    "extract": ["--benchmark", "gaussian_teacher", "--dataset", "gaussian"],
    "wsn": ["--dataset", "digits_01"],
}
OPEN_TEXT = {"save_folder", "load_folder", "log_path", "pretrained", "baseline_acc_file", "jsonfile", "logfile",
             "ec_report", "gg_task_folders", "gg_results", "gg_summary", "piggyback_summary", "supsup_task_folders",
             "supsup_results", "supsup_adapt_results", "supsup_summary", "supsup_stream", "ec_sizes", "arch",
             "wsn_summary"}
"""Flags whose text any non-empty name may be (paths, lists of them, architectures checked when built):
only their empty value is fuzzed."""


def _stage_argv(method: str, home: Path) -> list[str]:
    stage = home / "stage"
    base = [part.format(stage=stage) for part in STAGE_BASES[method]]
    return ["--method", method, "--mode", "finetune", "--data_root", str(home / "data"), "--device", "cpu",
            "--save_folder", str(stage / "s"), *base]


def _bad_numbers(kind: type, meta: dict, tensors: bool = True) -> st.SearchStrategy[str]:
    """Text a numeric flag must refuse: no number, NaN, infinities, out of its range or (a setting that
    reaches `tensors`) out of int64 or float32."""
    words = st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400"]) | UNICODE
    if kind is int:
        out_of_range = st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1)
        words = words | st.sampled_from(["1.5", "1e3", "0x10"])
    elif tensors:
        out_of_range = st.floats(3.5e38, 1.7e308) | st.floats(-1.7e308, -3.5e38)
    else:
        out_of_range = st.nothing()
    low, high = meta.get("at_least"), meta.get("below", meta.get("at_most"))
    if low is not None:
        out_of_range = out_of_range | (st.integers(max_value=math.ceil(low) - 1) if kind is int else st.floats(
            -1e30, low, exclude_max=True))
    if high is not None:
        out_of_range = out_of_range | (st.integers(min_value=math.ceil(high)) if kind is int else st.floats(
            high, 1e30, exclude_min="below" not in meta))
    return words | out_of_range.map(repr) | st.just("")


@st.composite
def bad_flags(draw) -> tuple[str, str, str]:
    """A method, one of its flags and a value it must refuse."""
    method = draw(st.sampled_from(sorted(STAGE_BASES)))
    klass = METHODS[method].settings_class()
    hints = typing.get_type_hints(klass)
    item = draw(st.sampled_from([item for item in fields(klass) if item.name != "method"]))
    kind, meta = _base_type(hints[item.name]), item.metadata
    if kind is bool:
        value = draw(st.sampled_from(["", "0", "yes"]) | UNICODE)
    elif kind in (int, float):
        value = draw(_bad_numbers(kind, meta))
    elif meta.get("choices") or item.name not in OPEN_TEXT:
        value = draw(st.just("") | UNICODE)
    else:
        value = ""
    return method, f"--{item.name}", value


@pytest.fixture(scope="module")
def flag_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("flag_home")
    (home / "data").mkdir()
    return home


def test_every_registered_method_is_fuzzed():
    """A new method joins the fuzzing by its line in STAGE_BASES: none is left out unnoticed."""
    assert sorted(STAGE_BASES) == sorted(METHODS)


def test_every_free_text_flag_is_fuzzed_as_what_it_names():
    """A text flag without choices is either a path or name any text may be (OPEN_TEXT: only its empty value
    is fuzzed) or one whose every fuzzed text must be refused (a task, a benchmark, a data root, a device): a new
    flag is sorted into one of them, not fuzzed as the wrong kind by chance."""
    refusing = {"dataset", "benchmark", "data_root", "device"}
    unsorted = sorted(f"{method} --{item.name}" for method, entry in METHODS.items()
                      for item, kind in _text_fields(entry.settings_class())
                      if kind is str and not item.metadata.get("choices") and item.name not in OPEN_TEXT | refusing)
    assert unsorted == []


def _text_fields(klass: type) -> list:
    hints = typing.get_type_hints(klass)
    return [(item, _base_type(hints[item.name])) for item in fields(klass) if item.name != "method"]


@pytest.mark.parametrize("method", sorted(STAGE_BASES))
def test_every_method_base_reaches_its_stage(flag_home, method):
    """The fuzzed flags break a command line that is otherwise accepted."""
    with mock.patch.object(Method, "runner", _refuse_to_run), pytest.raises(Accepted):
        main_normal.main(_stage_argv(method, flag_home))


def _bad_flag_is_refused(flag_home, case):
    method, name, value = case
    argv = [*_stage_argv(method, flag_home), f"{name}={value}"]
    refused_stage(argv, flag_home, flag_home / "stage")


test_a_bad_flag_value_is_one_line_and_64, test_a_bad_flag_value_is_one_line_and_64_slow = twins(
    case=bad_flags())(_bad_flag_is_refused)


CHOOSER_FLAGS = {"--max_allowed_network_width_multiplier": 1.0, "--allow_acc_loss": 0.0}


@st.composite
def bad_chooser_flags(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(CHOOSER_FLAGS)))
    return name, draw(_bad_numbers(float, {"at_least": CHOOSER_FLAGS[name],
                                           "at_most": 1.0 if name == "--allow_acc_loss" else None}, tensors=False))


# --- corrupted record, result and checkpoint files ------------------------------------------------------------

RECORD = {"0.0": 0.9, "0.5": 0.85}
GOALS = {"digits_01": 0.8}
SCRATCH_META = {"width": 1.0, "accuracy": 0.9, "owned_fraction": 0.5}
CHOSEN = {"sparsity": "0.5", "accuracy": 0.85, "goal": 0.8, "retrained": False, "reason": "x"}
RETRAIN_META = {"width": 1.0, "accuracy": 0.95}
RUN_CARD = {"method": "cpg", "benchmark": "split_digits", "seed": 1, "command": "bash scripts/cpg.sh",
            "settings": {"FINETUNE_EPOCHS": "5"}}
RUN_METRICS = {"accuracy_matrix": [[0.9]], "capacity": {"model_vs_independent": 0.5},
               "metrics": {"average_accuracy": 0.9, "backward_transfer": -0.01, "forgetting": 0.01}}


def _write(path: Path, content: dict | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())


def _task_folder(root: Path) -> Path:
    """A task after finetune and one prune stage (what choose_pruning_ratio reads) and a retrained model and
    a chosen checkpoint beside it (what choose_retrain reads); checkpoint.pth bytes are only copied."""
    task = root / "digits_01"
    for folder, meta in (("scratch", SCRATCH_META), ("gradual_prune/0.5", {"width": 1.0, "accuracy": 0.85}),
                         ("retrain", RETRAIN_META), ("chosen", {"width": 1.0, "accuracy": 0.85})):
        _write(task / folder / "checkpoint.pth", b"weights")
        _write(task / folder / "meta.json", meta)
    _write(task / "gradual_prune/record.txt", RECORD)
    _write(task / "chosen/chosen.json", CHOSEN)
    _write(root / "goals.json", GOALS)
    return task


def _chooser_argv(root: Path, *extra: str) -> list[str]:
    return ["--task_folder", str(root / "digits_01"), "--dataset", "digits_01", "--baseline_acc_file",
            str(root / "goals.json"), "--max_allowed_network_width_multiplier", "1.0", *extra]


def _retrain_argv(root: Path) -> list[str]:
    task = root / "digits_01"
    return ["--save_folder", str(task / "chosen"), "--load_folder", str(task / "retrain"), "--dataset", "digits_01"]


def _runs_argv(root: Path) -> list[str]:
    return ["--runs", str(root / "run")]


FILES = {  # file -> (its good content, the tool reading it, its argv, the code for a bad one)
    "digits_01/gradual_prune/record.txt": (RECORD, choose_pruning_ratio.main, _chooser_argv, 64),
    "goals.json": (GOALS, choose_pruning_ratio.main, _chooser_argv, 64),
    "digits_01/scratch/meta.json": (SCRATCH_META, choose_pruning_ratio.main, _chooser_argv, 65),
    "digits_01/chosen/chosen.json": (CHOSEN, choose_retrain.main, _retrain_argv, 65),
    "digits_01/retrain/meta.json": (RETRAIN_META, choose_retrain.main, _retrain_argv, 65),
    "run/run.json": (RUN_CARD, report.main, _runs_argv, 65),
    "run/metrics.json": (RUN_METRICS, report.main, _runs_argv, 65),
}


def _work_folder(template: Path) -> Path:
    work = Path(tempfile.mkdtemp(dir=template.parent))
    shutil.copytree(template, work, dirs_exist_ok=True)
    return work


@pytest.fixture(scope="module")
def files_home(tmp_path_factory) -> Path:
    """A task folder for the choosers and a finished run for tools.report --runs."""
    home = tmp_path_factory.mktemp("files_home") / "template"
    _task_folder(home)
    run_folder(home / "run", "cpg", 1, 0.9, -0.01, [2.0])
    _write(home / "run/run.json", RUN_CARD)
    _write(home / "run/metrics.json", RUN_METRICS)
    return home


def test_the_unbroken_files_are_read(files_home):
    """Each tool takes the files the fuzzing breaks, so each refusal below is the broken file's."""
    for entry, make_argv in ((choose_pruning_ratio.main, _chooser_argv), (choose_retrain.main, _retrain_argv),
                             (report.main, _runs_argv)):
        work = _work_folder(files_home)
        assert outcome(entry, make_argv(work))[0] == 0


def _leaves(data, path=()) -> list[tuple]:
    """Paths to every value in nested JSON (keys and list indices)."""
    if isinstance(data, dict):
        return [(*path, key) for key in data] + [leaf for key, value in data.items() for leaf in
                                                 _leaves(value, (*path, key))]
    if isinstance(data, list):
        return [leaf for index, value in enumerate(data) for leaf in _leaves(value, (*path, index))]
    return []


def _replaced(data, path: tuple, value):
    changed = json.loads(json.dumps(data))
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return changed


BAD_VALUE = st.one_of(st.sampled_from([-1, 1.5, 100, -0.5, "", "0.9.1", "high", None, True, [], {}, [0.9]]), UNICODE)
"""A value none of the files' numbers or texts may be (accuracies in [0, 1], widths, sparsities, names)."""


@st.composite
def corrupted_files(draw) -> tuple[str, bytes]:
    """A file of a run corrupted in one way: cut short, bytes that are not UTF-8, a refused literal, deep
    nesting or a number too long for Python, a value of the wrong kind, or a key removed."""
    name = draw(st.sampled_from(sorted(FILES)))
    good = FILES[name][0]
    text = json.dumps(good)
    kind = draw(st.sampled_from(["cut", "bytes", "literal", "deep", "value", "drop"]))
    if kind == "cut":
        return name, text[:draw(st.integers(0, len(text) - 1))].encode()
    if kind == "bytes":
        cut = draw(st.integers(0, len(text)))
        return name, text[:cut].encode() + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x80"])) + text[cut:].encode()
    if kind == "drop" and name in REQUIRED:
        gone = draw(st.sampled_from(REQUIRED[name]))
        return name, json.dumps({key: value for key, value in good.items() if key != gone}).encode()
    path = draw(st.sampled_from([path for path in _leaves(good) if _checked(name, path)]))
    if kind in ("literal", "deep"):
        depth = draw(st.integers(2_000, 100_000))
        literal = "[" * depth + "]" * depth if kind == "deep" else draw(st.sampled_from(
            ["NaN", "Infinity", "-Infinity", "1" * 5000, "1e999"]))
        return name, json.dumps(_replaced(good, path, "@@")).replace('"@@"', literal).encode()
    value = draw(BAD_VALUE.filter(lambda value: _wrong(name, path, value)))
    return name, json.dumps(_replaced(good, path, value)).encode()


CHECKED = {"digits_01/scratch/meta.json": {("width",)}, "digits_01/chosen/chosen.json": {("accuracy",)},
           "digits_01/retrain/meta.json": {("accuracy",)}, "run/run.json": {("method",), ("benchmark",), ("seed",)},
           "run/metrics.json": {("metrics",), ("capacity",)}}
"""Per file, the entries its tool checks (others are read by other tools, or not at all); a file missing
here has every entry checked."""
REQUIRED = {"digits_01/scratch/meta.json": ("width",), "digits_01/chosen/chosen.json": ("sparsity", "accuracy"),
            "digits_01/retrain/meta.json": ("accuracy",), "run/run.json": ("method", "benchmark", "seed"),
            "run/metrics.json": ("metrics", "capacity")}


def _checked(name: str, path: tuple) -> bool:
    return name not in CHECKED or path[:1] in CHECKED[name]


def _wrong(name: str, path: tuple, value) -> bool:
    """Whether `value` at `path` must be refused (some entries take a few of the bad values)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "run/run.json" and path == ("seed",):
        return not isinstance(value, int) or isinstance(value, bool)
    if name == "run/run.json":
        return not (isinstance(value, str) and value.strip() and value.isprintable())
    if path[-1] in ("backward_transfer", "forgetting"):
        return value is not None and not number
    if name.startswith("run/") or path == ("width",):
        return not number
    if name == "goals.json":
        return value != "force_growth"
    return True


def _corrupt_file_is_refused(files_home, case):
    name, content = case
    entry, make_argv, code = FILES[name][1:]
    work = _work_folder(files_home)
    _write(work / name, content)
    refused(entry, make_argv(work), code, work)


test_a_corrupt_file_is_one_line_and_its_code, test_a_corrupt_file_is_one_line_and_its_code_slow = twins(
    case=corrupted_files())(_corrupt_file_is_refused)


def _bad_chooser_flag_is_refused(files_home, case):
    name, value = case
    work = _work_folder(files_home)
    refused(choose_pruning_ratio.main, [*_chooser_argv(work), f"{name}={value}"], 64, work)


test_a_bad_chooser_flag_is_one_line_and_64, test_a_bad_chooser_flag_is_one_line_and_64_slow = twins(
    case=bad_chooser_flags())(_bad_chooser_flag_is_refused)


GARBAGE = st.one_of(st.binary(max_size=64), st.sampled_from([b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95"]).flatmap(
    lambda head: st.binary(max_size=64).map(lambda tail: head + tail)), st.sampled_from(
    [b"\x80\x02K\x01.", b"\x80\x02}q\x00.", b"\x80\x02]q\x00."]))
"""Bytes that are no checkpoint: random, a zip or pickle header with junk behind it, or a pickle of a number, an
empty dict or an empty list."""


def _garbage_checkpoint_is_refused(flag_home, content):
    folder = Path(tempfile.mkdtemp(dir=flag_home))
    _write(folder / "checkpoint.pth", content)
    argv = ["--mode", "inference", "--dataset", "digits_01", "--data_root", str(flag_home / "data"), "--device", "cpu",
            "--load_folder", str(folder)]
    refused(main_normal.main, argv, 65, folder)


test_a_garbage_checkpoint_is_one_line_and_65, test_a_garbage_checkpoint_is_one_line_and_65_slow = twins(
    content=GARBAGE)(_garbage_checkpoint_is_refused)

"""`tools.report --runs` reports honestly: only seeds share a row, rows that differ say in what, one seed
shows no spread, and a run card of the wrong shape is a bad file (exit 65), never a row."""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.helpers import REPO, environment
from tests.helpers.files import png_is_drawn, run_folder, table_row
from unforget.tools import report, runs

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SETTING_NAMES = ("FINETUNE_EPOCHS", "PRUNE_EPOCHS")


def _fails(argv: list[str]) -> tuple[int, list[str]]:
    """report.main's exit code and the non-empty lines it wrote to stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as stop:
        report.main(argv)
    return stop.value.code, [line for line in stderr.getvalue().splitlines() if line.strip()]


def test_runs_that_differ_in_a_setting_are_separate_rows_that_name_it(tmp_path, capsys):
    common = {"goals_sha256": DIGEST, "arguments": "split_digits data compare 1.5"}
    roots = [run_folder(tmp_path / f"long{seed}", "cpg", seed, acc, 0.0, [10.0], settings={
                 **common, "FINETUNE_EPOCHS": "15"}) for seed, acc in ((1, 0.99), (2, 0.97))]
    roots.append(run_folder(tmp_path / "short", "cpg", 1, 0.9445, -0.01, [4.0],
                             settings={**common, "FINETUNE_EPOCHS": "5"}))
    roots.append(run_folder(tmp_path / "other", "packnet", 1, 0.95, 0.0, [3.0], settings=common))
    assert report.main(["--runs", *map(str, roots), "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    long, short = table_row(table, "cpg (FINETUNE_EPOCHS=15)"), table_row(table, "cpg (FINETUNE_EPOCHS=5)")
    assert long[1:3] == ["1 2", f"{statistics.fmean([0.99, 0.97]):.4f} ± {statistics.stdev([0.99, 0.97]):.4f}"]
    assert short[1:4] == ["1", "0.9445", "-0.0100"]  # one seed: the value alone, no "± 0.0000"
    assert table_row(table, "packnet")[1] == "1"  # no sibling: the method alone
    assert "±" not in "".join(short + table_row(table, "packnet"))
    assert "storage: bytes of the tensors a run keeps to answer every task / bytes of one plain width-1.0 " \
           "network of its architecture per task" in table
    assert png_is_drawn(tmp_path / "out/comparison.png")  # rows without spread still plot


def test_a_run_folder_named_twice_counts_once(tmp_path, capsys):
    root = run_folder(tmp_path / "run", "cpg", 3, 0.9, 0.0, [1.0])
    assert report.main(["--runs", str(root), str(tmp_path / "run/../run"), str(root)]) == 0
    assert table_row(capsys.readouterr().out, "cpg")[1:3] == ["3", "0.9000"]


def test_two_folders_of_one_seed_and_setting_are_refused_not_averaged(tmp_path):
    first = run_folder(tmp_path / "a", "cpg", 1, 0.9, 0.0, [1.0], settings={"FINETUNE_EPOCHS": "5"})
    second = run_folder(tmp_path / "b", "cpg", 1, 0.8, 0.0, [1.0], settings={"FINETUNE_EPOCHS": "5"})
    code, lines = _fails(["--runs", str(first), str(second)])
    assert code == 64 and len(lines) == 1
    assert f"{first} and {second} are both seed 1 of cpg" in lines[0]


RUN = st.fixed_dictionaries({
    "method": st.sampled_from(["cpg", "packnet"]),
    "settings": st.dictionaries(st.sampled_from(SETTING_NAMES), st.sampled_from(["5", "15"])),
    "seed": st.integers(1, 3),
    "acc": st.floats(0.0, 1.0)})


@settings(max_examples=25, deadline=None)
@given(st.lists(RUN, min_size=1, max_size=8, unique_by=lambda run: (run["method"], str(sorted(
    run["settings"].items())), run["seed"])))
def test_only_seeds_share_a_row_and_each_row_names_what_sets_it_apart(cards):
    built = [{**card, "benchmark": "split_digits", "root": Path(f"run{k}"), "bwt": None, "forgetting": None,
              "capacity": 0.5, "seconds": 1.0} for k, card in enumerate(cards)]
    rows = runs.aggregate(built)
    groups: dict[tuple, list[dict]] = {}
    for run in built:
        groups.setdefault((run["method"], str(sorted(run["settings"].items()))), []).append(run)
    assert len(rows) == len(groups)
    assert len({row["label"] for row in rows}) == len(rows)  # no two rows read alike
    for row in rows:
        members = groups[(row["method"], str(sorted(row["settings"].items())))]
        accuracies = [run["acc"] for run in members]
        assert row["seeds"] == sorted(run["seed"] for run in members)
        assert row["acc_mean"] == pytest.approx(statistics.fmean(accuracies))
        assert row["acc_std"] == (None if len(members) == 1 else pytest.approx(statistics.stdev(accuracies)))
        family = [run for run in built if run["method"] == row["method"]]
        differing = {name for name in SETTING_NAMES if len({run["settings"].get(name) for run in family}) > 1}
        if not differing:
            assert row["label"] == row["method"]
        elif not row["settings"]:
            assert row["label"] == f"{row['method']} (settings not recorded)"
        else:
            named = {name for name in SETTING_NAMES if f"{name}=" in row["label"] or f"{name} unset" in row["label"]}
            assert named == differing and row["label"].startswith(f"{row['method']} (")


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_any_setting_value_stays_inside_its_cell(value):
    rows = runs.aggregate([{"method": "cpg", "benchmark": "b", "seed": 1, "settings": {"ARGS": text},
                            "root": Path(text), "acc": 0.5, "bwt": None, "forgetting": None, "capacity": 0.5,
                            "seconds": 1.0} for text in (value, value + "x")])
    body = runs.markdown(rows).split("\n\n")[0].splitlines()[2:]
    assert len(body) == 2
    for line in body:
        assert len(line.replace(r"\|", "").split("|")) == len(runs.markdown(rows).splitlines()[0].split("|"))


BAD_CARDS = [
    ([1, 2], "is not what this toolkit wrote (expected a JSON object)"),
    ({"method": "cpg", "seed": 1}, "not a run card: it lacks benchmark"),
    ({"method": 5, "benchmark": "split_digits", "seed": 1}, "method is 5"),
    ({"method": "", "benchmark": "split_digits", "seed": 1}, "method is ''"),
    ({"method": "cpg", "benchmark": None, "seed": 1}, "benchmark is None"),
    ({"method": "cpg", "benchmark": "split_digits", "seed": "abc"}, "seed is 'abc', not a whole number"),
    ({"method": "cpg", "benchmark": "split_digits", "seed": True}, "seed is True, not a whole number"),
    ({"method": "cpg", "benchmark": "split_digits", "seed": 1.0}, "seed is 1.0, not a whole number"),
    ({"method": "cpg", "benchmark": "split_digits", "seed": 1, "command": ["bash"]}, "command is ['bash']"),
    ({"method": "cpg", "benchmark": "split_digits", "seed": 1, "settings": ["A=1"]}, "settings is ['A=1']"),
    ({"method": "cpg", "benchmark": "split_digits", "seed": 1, "settings": {"EPOCHS": 5}},
     "settings['EPOCHS'] is 5, not a string"),
]


@pytest.mark.parametrize("card, text", BAD_CARDS)
def test_a_run_card_of_the_wrong_shape_is_a_bad_file(tmp_path, card, text):
    root = run_folder(tmp_path / "run", "cpg", 1, 0.9, 0.0, [1.0])
    (root / "run.json").write_text(json.dumps(card))
    code, lines = _fails(["--runs", str(root)])
    assert code == 65 and len(lines) == 1
    assert str(root / "run.json") in lines[0] and text in lines[0]


WRONG = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["method", "benchmark", "seed", "command", "settings"]), WRONG)
def test_any_card_field_of_the_wrong_type_is_named(field, value):
    assume(not (field == "settings" and value == {}))  # no settings at all is a valid card
    with tempfile.TemporaryDirectory() as folder:
        root = run_folder(Path(folder) / "run", "cpg", 1, 0.9, 0.0, [1.0], settings={"FINETUNE_EPOCHS": "5"})
        card = json.loads((root / "run.json").read_text())
        (root / "run.json").write_text(json.dumps({**card, field: value}))
        code, lines = _fails(["--runs", str(root)])
    assert code == 65 and len(lines) == 1 and f"not a run card: {field}" in lines[0]


@pytest.mark.parametrize("metrics, text", [
    ([], "expected the objects metrics, capacity"),
    ({"average_accuracy": "0.9"}, "average_accuracy is '0.9', not a number"),
    ({"average_accuracy": 0.9, "backward_transfer": [0]}, "backward_transfer is [0], not a number"),
])
def test_a_report_of_the_wrong_shape_is_a_bad_file(tmp_path, metrics, text):
    root = run_folder(tmp_path / "run", "cpg", 1, 0.9, 0.0, [1.0])
    report_file = json.loads((root / "metrics.json").read_text())
    (root / "metrics.json").write_text(json.dumps({**report_file, "metrics": metrics}))
    code, lines = _fails(["--runs", str(root)])
    assert code == 65 and len(lines) == 1 and text in lines[0]


def test_the_command_line_says_which_card_is_bad_in_one_line(tmp_path):
    root = run_folder(tmp_path / "run", "cpg", 1, 0.9, 0.0, [1.0])
    (root / "run.json").write_text('{"method": 5, "benchmark": null, "seed": "abc"}')
    result = subprocess.run([sys.executable, "-m", "tools.report", "--runs", str(root)], capture_output=True,
                            text=True, env=environment(), cwd=REPO, timeout=120)
    assert result.returncode == 65 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"report.py: error: {root / 'run.json'} is not a run card: method is 5, "
                                          "not a non-empty one-line string"]


def test_an_out_that_is_a_file_is_one_line_and_64(tmp_path):
    root = run_folder(tmp_path / "run", "cpg", 1, 0.9, 0.0, [1.0])
    (tmp_path / "table").write_text("mine")
    code, lines = _fails(["--runs", str(root), "--out", str(tmp_path / "table")])
    assert code == 64 and len(lines) == 1 and "is a file" in lines[0]
    assert (tmp_path / "table").read_text() == "mine"

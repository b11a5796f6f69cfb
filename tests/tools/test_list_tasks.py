"""tools.list_tasks: the names the drivers read (unchanged), and --table / --json, each task's classes, images
per split (as the stages split them), image size, channels and normalisation, checked against the data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, environment
from tests.helpers.files import TASKS, write_folders
from unforget.tools import list_tasks
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import hold_out


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.list_tasks", *args], capture_output=True, text=True,
                          env=environment(), cwd=REPO, timeout=120)


@pytest.fixture
def spec(tmp_path) -> Path:
    """A folder spec of three tiny tasks (12 training, 6 test images a class)."""
    write_folders(tmp_path / "images")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"images": "images", "tasks": list(TASKS), "channels": 1, "arch": "digits_convnet",
                                "crop_padding": 1}))
    return path


def _described(benchmark: str, data_root: Path, capsys) -> dict:
    assert list_tasks.main([benchmark, "--json", "--data_root", str(data_root)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["split_digits", "digits10", "spec"])
def test_json_describes_each_task_as_its_data_is(name, data_root, spec, tmp_path, capsys):
    benchmark_name = str(spec) if name == "spec" else name
    root = tmp_path / "data" if name == "spec" else data_root
    root.mkdir(exist_ok=True)
    benchmark = get_benchmark(benchmark_name)
    described = _described(benchmark_name, root, capsys)
    assert described["benchmark"] == benchmark.name and described["val_fraction"] == benchmark.val_fraction
    assert [row["task"] for row in described["tasks"]] == list(benchmark.task_names)
    for row in described["tasks"]:
        task = benchmark.load_task(root, row["task"])
        split = hold_out(task, benchmark.val_fraction)  # what a stage trains and validates on
        assert row["classes"] == list(task.classes)
        assert (row["train"], row["validation"], row["test"]) == (
            split.train_labels.numel(), split.test_labels.numel(), task.test_labels.numel())
        assert [row["channels"], *row["image_size"]] == list(task.train_images.shape[1:])
        for key in ("mean", "std"):
            assert row[key] == pytest.approx(list(getattr(task, key)), abs=0.5e-4 + 1e-9)


def test_the_table_shows_the_json_in_aligned_columns(data_root, capsys):
    described = _described("split_digits", data_root, capsys)
    assert list_tasks.main(["split_digits", "--table", "--data_root", str(data_root)]) == 0
    title, header, *lines = capsys.readouterr().out.splitlines()
    assert "split_digits" in title and "0.2" in title
    assert header.split() == list(list_tasks.COLUMNS)
    assert len(lines) == len(described["tasks"])
    for line, row in zip(lines, described["tasks"], strict=True):
        for column in ("train", "validation", "test", "channels"):  # right-aligned under their heading
            end, value = header.index(column) + len(column), str(row[column])
            assert line[:end].split()[-1] == value and line[end - len(value):end] == value, (column, line)
        for column in ("task", "size", "mean", "std"):  # left-aligned from their heading
            start = header.index(column)
            expected = {"task": row["task"], "size": "x".join(map(str, row["image_size"])),
                        "mean": ",".join(f"{value:.4f}" for value in row["mean"]),
                        "std": ",".join(f"{value:.4f}" for value in row["std"])}[column]
            assert line[start:].split()[0] == expected, (column, line)
        assert line[header.index("classes"):] == f"{len(row['classes'])}: {', '.join(row['classes'])}"


def test_a_benchmark_without_images_is_listed_without_numbers(capsys):
    assert list_tasks.main(["gaussian_teacher", "--table"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["gaussian", *["-"] * (len(list_tasks.COLUMNS) - 1)]


def test_the_drivers_listing_is_unchanged(data_root):
    """The drivers read the bare listing (scripts/lib/environment.sh): one name a line, and --arch."""
    assert _run("split_digits").stdout.splitlines() == list(get_benchmark("split_digits").task_names)
    assert _run("split_digits", "--arch").stdout == "digits_convnet\n"


@pytest.mark.parametrize("args, text", [
    (["no_such_benchmark", "--table"], "unknown benchmark 'no_such_benchmark'"),
    (["split_digits", "--table", "--json"], "not allowed with argument"),
    (["BROKEN", "--json"], "is not a PNG or JPEG image"),
])
def test_bad_input_is_one_line_and_exit_64(args, text, spec, tmp_path):
    (tmp_path / "images/rows/train/a/005.png").write_bytes(b"this is no image")
    (tmp_path / "data").mkdir()
    args = [str(spec) if arg == "BROKEN" else arg for arg in args]
    result = _run(*args, "--data_root", str(tmp_path / "data"))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 64 and len(lines) == 1 and text in lines[0], result.stderr
    assert result.stdout == ""

"""The subspace drivers end to end on the embedded digits10, and their bad-input paths (exit 64)."""

import csv
import json

import pytest
import torch

from tests.helpers import run_driver, run_main
from unforget.utils.data.registry import get_benchmark

SHORT = {"EPOCHS": "3"}
FOLDERS = {"subspace_lines.sh": "line", "subspace_curves.sh": "curve", "subspace_simplex.sh": "simplex3"}


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    """Each driver run once on digits10 (short training): its process result and output folder."""
    cache = {}

    def run(script: str):
        if script not in cache:
            ckpt = tmp_path_factory.mktemp("ckpt")
            done = run_driver(script, DATA_ROOT=str(data_root), CKPT_ROOT=str(ckpt), **SHORT)
            cache[script] = done, ckpt / "subspace" / FOLDERS[script] / "digits10" / "digits10" / "seed1", ckpt
        return cache[script]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(FOLDERS))
def test_driver_writes_the_sweep_csv_plot_and_summary(script, runs):
    done, root, _ = runs(script)
    assert done.returncode == 0, done.stderr
    with (root / "sweep.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [float(row["alpha"]) for row in rows] == pytest.approx([k / 20 for k in range(21)])
    assert all(float(row["paired_alpha"]) == pytest.approx(1 - float(row["alpha"])) for row in rows)
    assert (root / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["midpoint_acc"] == float(rows[10]["accuracy"]) and summary["centre_acc"] > 0.5
    assert summary["endpoint_ensemble_acc"] == float(rows[0]["ensemble_accuracy"])
    assert summary["endpoint_cos2"] < 0.1 and 0 <= summary["centre_ece"] <= 1
    assert "stage=finetune" in (root / "train.log").read_text()


@pytest.mark.slow
def test_a_rerun_skips_finished_stages(runs, data_root):
    _, _, ckpt = runs("subspace_lines.sh")
    again = run_driver("subspace_lines.sh", DATA_ROOT=str(data_root), CKPT_ROOT=str(ckpt), **SHORT)
    assert again.returncode == 0 and again.stdout.count("done before") == 2


@pytest.mark.parametrize("flags, message", [
    (["--subspace", "simplex", "--subspace_vertices", "1"], "--subspace_vertices"),
    (["--subspace_label_noise", "1.5"], "--subspace_label_noise"),
    (["--mode", "prune"], "no prune stage"),
])
def test_bad_flags_exit_64_with_one_line(flags, message, data_root, tmp_path):
    args = ["--method", "subspace", "--mode", "finetune", "--benchmark", "digits10", "--dataset", "digits10",
            "--data_root", str(data_root), "--save_folder", str(tmp_path / "m"), "--epochs", "1", *flags]
    done = run_main(*args)
    assert done.returncode == 64 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_cifar10_names_the_folder(tmp_path):
    done = run_main("--method", "subspace", "--mode", "finetune", "--benchmark", "cifar10", "--dataset", "cifar10",
                    "--data_root", str(tmp_path), "--save_folder", str(tmp_path / "m"))
    assert done.returncode == 64 and str(tmp_path / "cifar-10-batches-py") in done.stderr


def test_unknown_benchmark_stops_the_driver_with_64(tmp_path):
    done = run_driver("subspace_curves.sh", "nope", CKPT_ROOT=str(tmp_path))
    assert done.returncode == 64


def test_digits10_keeps_the_split_digits_split(data_root):
    ten = get_benchmark("digits10").load_task(data_root, "digits10")
    pair = get_benchmark("split_digits").load_task(data_root, "digits_23")
    chosen = (ten.test_labels == 2) | (ten.test_labels == 3)
    assert torch.equal(ten.test_images[chosen], pair.test_images)
    assert torch.equal(ten.test_labels[chosen] - 2, pair.test_labels)
    assert ten.num_classes == 10 and ten.train_labels.unique().numel() == 10

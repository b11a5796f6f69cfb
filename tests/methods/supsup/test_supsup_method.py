"""SupSup through main_normal.py on the embedded digits: GG exactness, GNu task inference, data, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import main_normal
from unforget.models.layers.supsup import store_masks
from unforget.models.lenet import LeNet300100
from unforget.utils.data.mnist import permutation, rotate
from unforget.utils.data.registry import get_benchmark
from unforget.utils.methods.supsup.infer import alpha_gradient, infer_tasks, per_image_alpha_gradients

GNU = ["--supsup_masks", "threshold", "--supsup_optimizer", "rmsprop", "--supsup_weight_decay", "0",
       "--supsup_schedule", "constant", "--lr", "1e-3", "--batch_size", "64", "--epochs", "4"]


def _main(*argv: str) -> int:
    return main_normal.main([*argv, "--device", "cpu"])


def _learn(benchmark: str, names, data_root: Path, folder: Path, *flags: str) -> None:
    for index, name in enumerate(names):
        load = ["--load_folder", str(folder)] if index else []
        code = _main("--method", "supsup", "--mode", "finetune", "--benchmark", benchmark, "--dataset", name,
                     "--arch", "lenet_300_100", "--data_root", str(data_root), "--save_folder", str(folder),
                     *load, *flags)
        assert code == 0


def _infer(benchmark: str, data_root: Path, folder: Path, summary: Path, *flags: str) -> dict:
    code = _main("--method", "supsup", "--mode", "inference", "--benchmark", benchmark,
                 "--dataset", get_benchmark(benchmark).task_names[0], "--data_root", str(data_root),
                 "--load_folder", str(folder), "--supsup_summary", str(summary), *flags)
    assert code == 0
    return json.loads(summary.read_text())


@pytest.mark.slow
def test_gg_split_digits_old_tasks_keep_their_accuracy_exactly(tmp_path, data_root):
    names = get_benchmark("split_digits").task_names
    _learn("split_digits", names, data_root, tmp_path / "m", "--epochs", "1", "--lr", "1e-2", "--supsup_er", "8")
    summary = _infer("split_digits", data_root, tmp_path / "m", tmp_path / "s.json", "--supsup_adaptor", "gt")
    assert [row["task"] for row in summary["tasks"]] == list(names)
    for row in summary["tasks"]:
        assert row["accuracy_final"] == row["accuracy_after_learning"]
    assert summary["average_accuracy_final"] > 0.8


@pytest.fixture(scope="module")
def permuted_model(tmp_path_factory, data_root) -> Path:
    folder = tmp_path_factory.mktemp("pdigits") / "model"
    names = get_benchmark("permuted_digits").task_names[:5]
    _learn("permuted_digits", names, data_root, folder, "--supsup_output_size", "100", *GNU)
    return folder


@pytest.mark.slow
def test_gnu_oneshot_g_infers_the_task_from_single_images(tmp_path, data_root, permuted_model):
    results = {}
    for objective in ("g", "h"):
        summary = _infer("permuted_digits", data_root, permuted_model, tmp_path / f"{objective}.json",
                         "--supsup_adaptor", "oneshot", "--supsup_objective", objective,
                         "--supsup_results", str(tmp_path / f"{objective}.csv"))
        results[objective] = summary["average_task_inference_accuracy"]
    print(f"one-shot single-image task inference on 5 permuted-digit tasks: G {results['g']}, H {results['h']}")
    assert results["g"] >= 0.95
    assert summary["num_tasks_learned"] == 5
    for objective in ("g", "h"):
        rows = (tmp_path / f"{objective}.csv").read_text().splitlines()
        assert rows[0].startswith("num_tasks_learned,task") and len(rows) == 1 + 6


@pytest.mark.slow
def test_per_image_gradients_equal_one_image_at_a_time_and_binary_search_agrees(data_root, permuted_model):
    from unforget.utils.methods.supsup.stages import load

    network, _ = load(permuted_model)
    benchmark = get_benchmark("permuted_digits")
    from unforget.utils.data.tasks import DeviceTaskData

    data = DeviceTaskData(benchmark.load_task(data_root, benchmark.task_names[3]), torch.device("cpu"), 0, False)
    images = next(data.test_batches(6))[0]
    batched = per_image_alpha_gradients(network, images, "g", 10)
    single = torch.stack([alpha_gradient(network, image[None], "g", 10) for image in images])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-6)
    full = next(data.test_batches(64))[0]
    assert infer_tasks(network, full, "binary", "g", 10, 64).unique().tolist() == [3]


def test_data_transforms_follow_the_reference():
    image = torch.zeros(1, 1, 5, 5, dtype=torch.uint8)
    image[0, 0, 0, 2] = 255
    assert rotate(image, 90)[0, 0, 2, 0] == 255  # counter-clockwise, like PIL
    assert torch.equal(rotate(image, 0), image)
    assert not torch.equal(permutation(0, 64), torch.arange(64))
    assert torch.equal(permutation(3, 64), permutation(3, 64)) and not torch.equal(permutation(3, 64),
                                                                                  permutation(4, 64))


def test_rand_split_cifar100_is_a_seeded_partition_of_the_classes():
    from unforget.utils.data.rand_cifar100 import task_classes

    classes = [c for index in range(20) for c in task_classes(index).tolist()]
    assert sorted(classes) == list(range(100)) and classes != list(range(100))


def test_missing_mnist_exits_64_naming_the_folder(tmp_path, capsys):
    root = tmp_path / "empty"
    root.mkdir()
    code = _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_mnist",
                 "--dataset", "pmnist_0000", "--data_root", str(root), "--save_folder", str(tmp_path / "m"))
    assert code == 64
    err = capsys.readouterr().err
    assert "MNIST/raw" in err and len(err.strip().splitlines()) == 1
    assert not (root / "MNIST").exists()  # no empty folder left behind to look like data


def _idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-style IDX file: magic (0, 0, uint8 type 8, number of dimensions), the sizes, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_files_of_another_image_size_exit_64_naming_the_size(tmp_path, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, count in (("train", 6), ("t10k", 4)):
        _idx(raw / f"{split}-images-idx3-ubyte", np.zeros((count, 20, 20)))
        _idx(raw / f"{split}-labels-idx1-ubyte", np.arange(count) % 10)
    code = _main("--method", "supsup", "--mode", "finetune", "--benchmark", "permuted_mnist",
                 "--dataset", "pmnist_0000", "--data_root", str(tmp_path), "--save_folder", str(tmp_path / "m"))
    err = capsys.readouterr().err
    assert code == 64 and "(20, 20)" in err and len(err.strip().splitlines()) == 1, err


def test_prune_is_not_a_supsup_stage(tmp_path, data_root, capsys):
    with pytest.raises(SystemExit) as stop:
        _main("--method", "supsup", "--mode", "prune", "--dataset", "digits_01", "--data_root", str(data_root))
    assert stop.value.code == 64 and "no prune stage" in capsys.readouterr().err


def test_store_masks_drops_the_scores():
    network = LeNet300100(input_shape=(1, 8, 8), outputs=10)
    network.add_task("a", 10)
    assert sum(p.numel() for p in network.parameters()) > 0
    store_masks(network)
    assert sum(p.numel() for p in network.parameters()) == 0


def test_merging_reads_each_checkpoint_once(tmp_path, data_root, monkeypatch):
    from unforget.utils.methods.supsup import checkpoints

    names = get_benchmark("split_digits").task_names[:2]
    for name in names:
        _learn("split_digits", [name], data_root, tmp_path / name, "--epochs", "1", "--supsup_er", "8")
    reads = []
    real = checkpoints.load_checkpoint
    monkeypatch.setattr(checkpoints, "load_checkpoint", lambda folder: reads.append(folder) or real(folder))
    network, meta = checkpoints.merge([tmp_path / name for name in names])
    assert reads == [tmp_path / name for name in names]
    assert [spec.name for spec in network.tasks] == list(names)
    assert set(meta["accuracy_after_learning"]) == set(names)

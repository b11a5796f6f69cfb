"""Benchmark specs: task sequences from a JSON file over image folders or a torchvision dataset, bad specs
as one line and exit 64, the memory-mapped large-image path, and the drivers end to end on a spec."""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import QUICK, REPO, environment, run_driver, run_main
from tests.helpers.files import SIDE, TASKS, write_folders
from unforget.utils.data.registry import DataError, get_benchmark
from unforget.utils.data.tasks import hold_out


def write_spec(path: Path, **entries) -> Path:
    path.write_text(json.dumps(entries, indent=2))
    return path


FOLDER_SPEC = {"images": "images", "tasks": list(TASKS), "channels": 1, "arch": "digits_convnet", "crop_padding": 1,
               "goals": dict.fromkeys(TASKS, 0.6)}


@pytest.fixture
def folder_spec(tmp_path) -> Path:
    write_folders(tmp_path / "images")
    (tmp_path / "data").mkdir()
    return write_spec(tmp_path / "spec.json", **FOLDER_SPEC)


def list_tasks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.list_tasks", *args], capture_output=True, text=True,
                          env=environment(), cwd=REPO, timeout=60)


def one_line_64(result: subprocess.CompletedProcess, *texts: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 64 and len(lines) == 1, (result.returncode, result.stderr)
    assert all(text in lines[0] for text in texts), (texts, lines[0])


# --- image folders -------------------------------------------------------------------------------------------


def test_folder_spec_lists_its_tasks_and_architecture(folder_spec):
    listed = list_tasks(str(folder_spec))
    assert listed.returncode == 0 and listed.stdout.split() == list(TASKS)
    assert list_tasks(str(folder_spec), "--arch").stdout.strip() == "digits_convnet"
    benchmark = get_benchmark(str(folder_spec))
    assert (benchmark.crop_padding, benchmark.flip, benchmark.default_goals) == (1, False, dict.fromkeys(TASKS, 0.6))


def test_folder_task_decodes_once_in_class_order_with_its_own_statistics(folder_spec, tmp_path):
    benchmark = get_benchmark(str(folder_spec))
    task = benchmark.load_task(tmp_path / "data", "cols")
    assert task.classes == ("a", "b") and task.train_images.dtype == torch.uint8
    assert task.train_images.shape == (24, 1, SIDE, SIDE) and task.test_images.shape == (12, 1, SIDE, SIDE)
    assert task.train_labels.tolist() == [0] * 12 + [1] * 12
    first = np.array(Image.open(tmp_path / "images/cols/train/b/000.png"))
    assert torch.equal(task.train_images[12, 0], torch.from_numpy(first))
    pixels = task.train_images.double() / 255
    assert task.mean == pytest.approx((pixels.mean().item(),)) and task.std == pytest.approx((pixels.std().item(),))
    caches = list((tmp_path / "data/spec_cache").rglob("cols.v*.pt"))
    assert len(caches) == 1
    for path in (tmp_path / "images/cols").rglob("*.png"):  # decoded once: the cache serves it from now on
        path.unlink()
    assert torch.equal(benchmark.load_task(tmp_path / "data", "cols").train_images, task.train_images)


def test_an_edited_spec_decodes_again_with_its_new_settings(folder_spec, tmp_path):
    get_benchmark(str(folder_spec)).load_task(tmp_path / "data", "rows")
    write_spec(folder_spec, **{**FOLDER_SPEC, "channels": 3, "image_size": 12,
                               "normalise": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}})
    task = get_benchmark(str(folder_spec)).load_task(tmp_path / "data", "rows")
    assert task.train_images.shape[1:] == (3, 12, 12) and (task.mean, task.std) == ((0.5,) * 3, (0.25,) * 3)
    assert torch.equal(task.train_images[:, 0], task.train_images[:, 2])  # grey PNGs in RGB
    assert len(list((tmp_path / "data/spec_cache").iterdir())) == 2


# --- bad specs ------------------------------------------------------------------------------------------------


def _break_folder(root: Path, case: str) -> None:
    if case == "empty_class":
        for path in (root / "cols/test/b").iterdir():
            path.unlink()
    elif case == "garbage_png":
        (root / "diag/train/a/005.png").write_bytes(b"this is no image")
    elif case == "one_class":
        for path in (root / "rows/train/b", root / "rows/test/b"):
            for file in path.iterdir():
                file.unlink()
            path.rmdir()


BAD_SPECS = {  # case: (spec entries or raw text, what the one line must say)
    "not_json": ("{\"images\": \"images\", tasks: [}", "not JSON"),
    "not_an_object": ("[1, 2]", "not a JSON object"),
    "no_source": ({"tasks": ["rows"]}, "exactly one source"),
    "no_tasks": ({"images": "images"}, '"tasks"'),
    "unknown_key": ({**FOLDER_SPEC, "epochs": 3}, "'epochs': unknown key"),
    "bad_channels": ({**FOLDER_SPEC, "channels": 2}, '"channels"'),
    "missing_folder": ({**FOLDER_SPEC, "tasks": ["rows", "nope"]}, "tasks[1] 'nope': no folder"),
    "missing_root": ({**FOLDER_SPEC, "images": "elsewhere"}, '"images": no folder'),
    "empty_class": (FOLDER_SPEC, "tasks[1] 'cols'", "holds no images"),
    "garbage_png": (FOLDER_SPEC, "tasks[2] 'diag'", "005.png is not a PNG or JPEG image"),
    "one_class": (FOLDER_SPEC, "tasks[0] 'rows'", "at least 2"),
    "duplicate_task": ({**FOLDER_SPEC, "tasks": ["rows", "cols", "rows"]}, "tasks[2]", "duplicate task name 'rows'"),
    "goal_of_no_task": ({**FOLDER_SPEC, "goals": {"nope": 0.5}}, "'nope'", "not a task"),
    "goal_in_percent": ({**FOLDER_SPEC, "goals": {"rows": 97}}, "above 1"),
    "unknown_torchvision": ({"torchvision": "ImageNet21k", "split": {"tasks": 2, "seed": 0}},
                            '"torchvision"', "unknown dataset class 'ImageNet21k'"),
    "unknown_class": ({"torchvision": "MNIST", "tasks": [{"name": "t", "classes": [3, 10]}]},
                      "tasks[0] 't'", "unknown class 10"),
    "class_in_two_tasks": ({"torchvision": "MNIST", "tasks": [{"name": "t1", "classes": [0, 1]},
                                                              {"name": "t2", "classes": ["1", 2]}]},
                           "tasks[1] 't2'", "class '1' is already in task 't1'"),
    "bad_partition": ({"torchvision": "CIFAR10", "split": {"tasks": 6, "seed": 0}}, "'tasks'", "from 1 to 5, got 6"),
    "billion_tasks": ({"torchvision": "MNIST", "split": {"tasks": 10**9, "seed": 0}}, "from 1 to 5, got 1000000000"),
    "huge_seed": ({"torchvision": "MNIST", "split": {"tasks": 2, "seed": 2**40}}, "'seed'", "from 0 to"),
    "null_tasks": ({"torchvision": "CIFAR10", "split": {"tasks": None, "seed": 0, "classes_per_task": 2}}, "'tasks'",
                   "got None"),
    "null_crop": ({**FOLDER_SPEC, "large": {"short_side": 8, "crop": None}}, "'crop'", "got None"),
    "huge_image_size": ({**FOLDER_SPEC, "image_size": 10**12}, "'image_size'", "from 1 to 4096"),
    "huge_crop_padding": ({**FOLDER_SPEC, "crop_padding": 10**9}, "'crop_padding'", "from 0 to 256"),
    "padding_past_size": ({**FOLDER_SPEC, "image_size": 8, "crop_padding": 9}, "'crop_padding'", "from 0 to 8"),
    "huge_large": ({**FOLDER_SPEC, "large": {"short_side": 10**9, "crop": 6}}, "'short_side'", "from 1 to"),
    "nan_mean": ('{"images": "images", "tasks": ["rows", "cols"], "channels": 1, '
                 '"normalise": {"mean": [NaN], "std": [1]}}', "NaN is not allowed"),
    "infinite_std": ('{"images": "images", "tasks": ["rows"], "normalise": {"mean": [0], "std": [-Infinity]}}',
                     "-Infinity is not allowed"),
    "endless_digits": ('{"images": "images", "tasks": ["rows"], "image_size": 1' + "0" * 5000 + "}", "too large"),
    "deep_nesting": ("[" * 100000 + "]" * 100000, "nested deeper than 16"),
    "large_and_size": ({**FOLDER_SPEC, "image_size": 8, "large": {"short_side": 8, "crop": 6}}, '"image_size"'),
}


def _bad_spec(tmp_path: Path, case: str) -> tuple[Path, tuple[str, ...]]:
    entries, *texts = BAD_SPECS[case]
    write_folders(tmp_path / "images")
    _break_folder(tmp_path / "images", case)
    path = tmp_path / "spec.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path, (str(path), *texts)


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_one_line_and_exit_64_from_list_tasks(tmp_path, case):
    path, texts = _bad_spec(tmp_path, case)
    one_line_64(list_tasks(str(path)), *texts)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_one_line_and_exit_64_from_main_normal(tmp_path, case):
    path, texts = _bad_spec(tmp_path, case)
    (tmp_path / "data").mkdir()
    one_line_64(run_main("--mode", "finetune", "--benchmark", str(path), "--dataset", "rows", "--data_root",
                         str(tmp_path / "data"), "--save_folder", str(tmp_path / "s"), "--jsonfile",
                         str(tmp_path / "r.txt"), "--epochs", "1", "--device", "cpu"), *texts)


def _finetune(spec: Path, data_root: Path, task: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return run_main("--mode", "finetune", "--benchmark", str(spec), "--dataset", task, "--data_root", str(data_root),
                    "--save_folder", str(tmp_path / "s"), "--jsonfile", str(tmp_path / "r.txt"), "--epochs", "1",
                    "--device", "cpu")


def test_an_image_that_fails_to_decode_is_one_line_and_exit_64(folder_spec, tmp_path):
    broken = tmp_path / "images/cols/test/a/002.png"
    broken.write_bytes(broken.read_bytes()[:40])  # a PNG signature, then the file ends
    one_line_64(_finetune(folder_spec, tmp_path / "data", "cols", tmp_path), str(folder_spec), "'cols'",
                f"cannot decode {broken}")


def test_missing_torchvision_files_say_where_to_put_them(tmp_path):
    spec = write_spec(tmp_path / "mnist.json", torchvision="MNIST", split={"tasks": 5, "seed": 0},
                      arch="lenet_300_100", goals={"task_1": 0.5})
    (tmp_path / "data").mkdir()
    one_line_64(_finetune(spec, tmp_path / "data", "task_1", tmp_path), str(spec),
                f"put its files at {tmp_path / 'data'}/MNIST/raw/ (train-images-idx3-ubyte")


def test_tools_and_drivers_pass_a_bad_spec_on_as_one_line(tmp_path):
    path, texts = _bad_spec(tmp_path, "missing_folder")
    (tmp_path / "data").mkdir()
    report = subprocess.run([sys.executable, "-m", "tools.report", "--root", str(tmp_path), "--benchmark", str(path),
                             "--data_root", str(tmp_path / "data")], capture_output=True, text=True,
                            env=environment(), cwd=REPO, timeout=60)
    one_line_64(report, *texts)
    one_line_64(run_driver("cpg.sh", str(path), str(tmp_path / "data"), "s", "1.5"), *texts)
    one_line_64(run_driver("subspace_lines.sh", str(path), DATA_ROOT=str(tmp_path / "data")), *texts)


# --- torchvision classes --------------------------------------------------------------------------------------


def _idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships them: 0, 0, 8 (uint8), the number of dimensions, big-endian sizes, data."""
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, train: int = 50, test: int = 20) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A fake MNIST in torchvision's raw layout; returns {split: (images, labels)}."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.RandomState(1)
    splits = {}
    for split, prefix, count in (("train", "train", train), ("test", "t10k", test)):
        labels = rng.permutation(np.arange(count) % 10)
        images = rng.randint(0, 256, (count, 28, 28))
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        splits[split] = images, labels
    return splits


def test_torchvision_class_lists_pick_those_rows_with_labels_in_list_order(tmp_path):
    files = write_mnist(tmp_path / "data")
    spec = write_spec(tmp_path / "mnist.json", torchvision="MNIST", arch="lenet_300_100",
                      tasks=[{"name": "sevens_and_twos", "classes": [7, "2"]}, {"name": "zero_one", "classes": [0, 1]}])
    benchmark = get_benchmark(str(spec))
    assert benchmark.task_names == ("sevens_and_twos", "zero_one") and benchmark.arch == "lenet_300_100"
    task = benchmark.load_task(tmp_path / "data", "sevens_and_twos")
    assert task.classes == ("7", "2") and task.train_images.shape[1:] == (1, 28, 28)
    for split, images, labels in (("train", task.train_images, task.train_labels),
                                  ("test", task.test_images, task.test_labels)):
        source_images, source_labels = files[split]
        rows = np.flatnonzero(np.isin(source_labels, [7, 2]))
        assert torch.equal(images[:, 0], torch.from_numpy(source_images[rows].astype(np.uint8)))
        assert labels.tolist() == [0 if label == 7 else 1 for label in source_labels[rows]]


def test_a_seeded_partition_is_the_same_for_the_same_seed(tmp_path):
    write_mnist(tmp_path / "data")

    def partition(name: str, **split) -> tuple[tuple[str, ...], ...]:
        benchmark = get_benchmark(str(write_spec(tmp_path / name, torchvision="MNIST", split=split)))
        return benchmark.task_names, tuple(task.classes for task in benchmark.spec.tasks)

    names, classes = partition("a.json", tasks=5, seed=3)
    assert names == tuple(f"task_{i}" for i in range(1, 6)) and all(len(c) == 2 for c in classes)
    assert sorted(c for task in classes for c in task) == [str(d) for d in range(10)]
    assert partition("b.json", tasks=5, seed=3) == (names, classes)
    assert partition("c.json", tasks=5, seed=4)[1] != classes
    order = [name for task in classes for name in task]  # the seed's permutation of the classes
    named = partition("d.json", tasks=3, seed=3, classes_per_task=3, names=["x", "y", "z"])
    assert named == (("x", "y", "z"), (tuple(order[:3]), tuple(order[3:6]), tuple(order[6:9])))
    task = get_benchmark(str(tmp_path / "a.json")).load_task(tmp_path / "data", "task_2")
    assert task.classes == classes[1] and set(task.train_labels.tolist()) == {0, 1}


# --- large images ---------------------------------------------------------------------------------------------


LARGE = {"short_side": 16, "crop": 12}


@pytest.fixture
def large_task(tmp_path):
    """Two tasks of 40x30 RGB images (PNG and JPEG) cached memory-mapped at short side 16, crops of 12."""
    rng = np.random.RandomState(2)
    for task in ("t1", "t2"):
        for split, count in (("train", 6), ("test", 4)):
            for name in ("x", "y"):
                folder = tmp_path / "images" / task / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    image = Image.fromarray(rng.randint(0, 256, (30, 40, 3)).astype(np.uint8))
                    image.save(folder / (f"{i}.png" if i % 2 else f"{i}.jpg"))
    spec = write_spec(tmp_path / "large.json", images="images", tasks=["t1", "t2"], large=LARGE, flip=True,
                      arch="subspace_convnet_rgb")
    (tmp_path / "data").mkdir()
    return get_benchmark(str(spec)).load_task(tmp_path / "data", "t1")


def test_large_images_are_decoded_once_into_a_memory_map_at_the_short_side(large_task, tmp_path):
    maps = {path.name: path.stat().st_size for path in (tmp_path / "data/spec_cache").rglob("*.u8")}
    assert maps == {"train.u8": 12 * 3 * 16 * 16, "test.u8": 8 * 3 * 16 * 16}
    assert large_task.train_images.shape == (12, 3, 16, 16) and large_task.image_shape == (3, 12, 12)
    source = Image.open(tmp_path / "images/t1/train/x/1.png").resize((21, 16), Image.BILINEAR).crop((2, 0, 18, 16))
    assert torch.equal(large_task.train_images[1], torch.from_numpy(np.asarray(source).transpose(2, 0, 1).copy()))
    pixels = large_task.train_images.double() / 255
    assert large_task.mean == pytest.approx(tuple(pixels.mean((0, 2, 3)).tolist()))
    assert large_task.std == pytest.approx(tuple(pixels.transpose(0, 1).reshape(3, -1).std(1).tolist()))


@pytest.mark.parametrize("resident", [True, False])
def test_large_batches_are_crops_and_test_batches_the_centre(large_task, resident):
    data = large_task.on_device(torch.device("cpu"), 0, True, resident=resident)
    assert (data.train_rows is None) == resident
    seen = []
    for images, labels in data.train_batches(5, data.generator(0)):
        assert images.shape == (len(labels), 3, 12, 12) and images.dtype == torch.float32
        seen += labels.tolist()
    assert sorted(seen) == sorted(large_task.train_labels.tolist()) and data.steps_per_epoch(5) == 3
    expected = data.normalise(large_task.test_images[:, :, 2:14, 2:14])
    tested = list(data.test_batches(3))
    assert torch.equal(torch.cat([images for images, _ in tested]), expected)
    assert torch.equal(torch.cat([labels for _, labels in tested]), large_task.test_labels)


def test_random_resized_crops_vary_and_flip(large_task):
    data = large_task.on_device(torch.device("cpu"), 0, True)
    image = large_task.train_images[:1].repeat(64, 1, 1, 1)
    crops = data.augment(image, data.generator(0))
    assert crops.shape == (64, 3, 12, 12) and len({crop.sum().item() for crop in crops}) > 32
    assert 0 <= crops.min() and crops.max() <= 255
    again = data.augment(image, data.generator(0))
    assert torch.equal(crops, again)


def test_streaming_gives_the_same_test_logits_as_loading_it_all(large_task):
    from unforget.models import build_network
    from unforget.utils.engine import predict

    torch.manual_seed(0)
    network = build_network("subspace_convnet_rgb", 1.0)
    network.add_task("t1", 2)
    network.eval()
    resident = large_task.on_device(torch.device("cpu"), 0, True, resident=True)
    streamed = large_task.on_device(torch.device("cpu"), 0, True, resident=False)
    assert torch.equal(predict(network, resident, batch_size=3), predict(network, streamed, batch_size=3))


def test_a_reader_left_early_stops_its_thread(large_task):
    data = large_task.on_device(torch.device("cpu"), 0, True, resident=False)
    before = threading.active_count()
    batches = data.train_batches(2, data.generator(0))
    next(batches)
    batches.close()
    assert threading.active_count() == before


def test_a_hold_out_of_large_images_moves_rows_not_pixels(large_task):
    held = hold_out(large_task, 0.25)
    assert held.test_images is large_task.train_images and held.train_images is large_task.train_images
    assert sorted(held.train_rows.tolist() + held.test_rows.tolist()) == list(range(12))
    assert held.test_labels.tolist() == large_task.train_labels[held.test_rows].tolist()
    data = held.on_device(torch.device("cpu"), 0, True, resident=False)
    assert sum(len(labels) for _, labels in data.test_batches(2)) == 3


def test_a_spec_with_no_such_task_is_a_data_error(folder_spec, tmp_path):
    with pytest.raises(DataError, match="has no task 'nope'"):
        get_benchmark(str(folder_spec)).load_task(tmp_path / "data", "nope")


# --- drivers end to end ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cpg_driver_on_a_spec_keeps_every_old_task_unchanged(folder_spec, tmp_path):
    result = run_driver("cpg.sh", str(folder_spec), str(tmp_path / "data"), "s", "1.5", **QUICK,
                        CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "ck" / "CPG" / "spec" / "s_seed1" / "digits_convnet"
    summary = json.loads((root / "summary.json").read_text())
    assert [row["task"] for row in summary["tasks"]] == list(TASKS) and summary["benchmark"] == str(folder_spec)
    for row in summary["tasks"]:
        assert row["accuracy_final"] == row["accuracy_after_learning"], row
    assert summary["average_accuracy_final"] > 0.6


@pytest.mark.slow
def test_supsup_gg_driver_on_a_spec_keeps_every_task_unchanged(folder_spec, tmp_path):
    result = run_driver("supsup_gg.sh", "0", BENCHMARK=str(folder_spec), ARCH="lenet_300_100", NUM_TASKS="3",
                        EPOCHS="1", BATCH_SIZE="8", DATA_ROOT=str(tmp_path / "data"), CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "ck" / "SupSup" / "spec" / "gg_er32_seed0" / "lenet_300_100"
    with (root / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["task"] for row in rows] == [*TASKS, "average"]
    for row in rows:
        assert row["accuracy_final"] == row["accuracy_after_learning"], row


@pytest.mark.slow
def test_subspace_line_driver_on_a_spec_task(folder_spec, tmp_path):
    result = run_driver("subspace_lines.sh", str(folder_spec), "diag", EPOCHS="2", DATA_ROOT=str(tmp_path / "data"),
                        CKPT_ROOT=str(tmp_path / "ck"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "ck" / "subspace" / "line" / "spec" / "diag" / "seed1"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["task"] == "diag" and 0.0 <= summary["midpoint_acc"] <= 1.0
    with (root / "sweep.csv").open() as file:
        assert len(list(csv.DictReader(file))) == 21


@pytest.mark.slow
def test_a_large_spec_trains_through_main_normal_with_a_hold_out(large_task, tmp_path):
    spec, goals = tmp_path / "large.json", write_spec(tmp_path / "goals.json", t1=0.0)
    for index, args in enumerate((["--val_fraction", "0.25"], ["--plain"])):
        result = run_main("--mode", "finetune", "--benchmark", str(spec), "--dataset", "t1", "--data_root",
                          str(tmp_path / "data"), "--save_folder", str(tmp_path / f"s{index}"), "--jsonfile",
                          str(tmp_path / f"r{index}.txt"), "--epochs", "1", "--batch_size", "4", "--device", "cpu",
                          "--baseline_acc_file", str(goals), *args)
        assert result.returncode == 0, result.stderr[-3000:]

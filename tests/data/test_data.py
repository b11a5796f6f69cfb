"""split_digits: a fixed split of real digits, cached; device augmentation crops and flips."""

import pytest
import torch

from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData, TaskData


def test_split_digits_tasks_are_fixed_disjoint_and_cached(data_root):
    benchmark = get_benchmark("split_digits")
    assert benchmark.task_names == ("digits_01", "digits_23", "digits_45", "digits_67", "digits_89")
    task = benchmark.load_task(data_root, "digits_23")
    assert task.classes == ("2", "3") and task.num_classes == 2
    assert task.train_images.dtype == torch.uint8 and task.train_images.shape[1:] == (1, 8, 8)
    assert set(task.train_labels.tolist()) == {0, 1} and set(task.test_labels.tolist()) == {0, 1}
    assert 0.3 < task.test_labels.numel() / (task.train_labels.numel() + task.test_labels.numel()) < 0.36
    train_rows = {bytes(image.flatten().tolist()) for image in task.train_images}
    assert not any(bytes(image.flatten().tolist()) in train_rows for image in task.test_images)
    again = benchmark.load_task(data_root, "digits_23")
    assert torch.equal(again.train_images, task.train_images) and again.mean == task.mean


def _toy_task(images: torch.Tensor) -> TaskData:
    labels = torch.zeros(len(images), dtype=torch.long)
    return TaskData("toy", ("a",), images, labels, images, labels, (0.0,), (1.0 / 255,))


def test_crop_shifts_the_image_within_the_padding():
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    data = DeviceTaskData(_toy_task(image), torch.device("cpu"), crop_padding=1, flip=False)
    out = data.augment(image, torch.Generator().manual_seed(0))
    assert out.shape == image.shape
    shifts = set()
    for sample in out:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                padded = torch.nn.functional.pad(image[0], (1, 1, 1, 1))
                if torch.equal(padded[:, 1 + dy:5 + dy, 1 + dx:5 + dx], sample):
                    shifts.add((dy, dx))
    assert len(shifts) == 9


def test_flip_mirrors_about_half_of_the_images():
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(200, 1, 1, 1)
    data = DeviceTaskData(_toy_task(image), torch.device("cpu"), crop_padding=0, flip=True)
    out = data.augment(image, torch.Generator().manual_seed(0))
    flipped = sum(torch.equal(sample, image[0].flip(2)) for sample in out)
    assert 60 < flipped < 140 and all(torch.equal(s, image[0]) or torch.equal(s, image[0].flip(2)) for s in out)
    assert torch.allclose(data.normalise(image[:1]), image[:1].float())


def test_every_benchmark_names_a_real_architecture_or_none():
    from unforget.models import ARCHITECTURES
    from unforget.utils.data.registry import BENCHMARKS

    for benchmark in BENCHMARKS.values():
        assert benchmark.arch is None or benchmark.arch in ARCHITECTURES, benchmark.name


def test_a_bug_while_reading_the_cache_keeps_the_cache_and_surfaces(data_root, monkeypatch):
    """Only a stale or truncated cache is rebuilt; any other error must not silently delete it."""
    from unforget.utils.data import cache

    path = next(data_root.rglob("*.pt"))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise AttributeError("a bug in the toolkit")

    monkeypatch.setattr(cache.torch, "load", broken)
    with pytest.raises(AttributeError):
        cache.cached_task(path, lambda: pytest.fail("decoded again"))
    assert path.read_bytes() == before


def test_a_truncated_cache_is_rebuilt(tmp_path):
    from unforget.utils.data import cache

    path = tmp_path / "task.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    task = TaskData("t", ("a", "b"), torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]),
                    torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]), (0.5,), (0.25,))
    assert cache.cached_task(path, lambda: task).name == "t"
    assert cache.cached_task(path, lambda: pytest.fail("decoded twice")).classes == ("a", "b")


def test_hold_out_moves_a_fixed_share_of_training_images_to_validation(data_root):
    from unforget.utils.data.tasks import hold_out

    task = get_benchmark("split_digits").load_task(data_root, "digits_01")
    first, again = hold_out(task, 0.2), hold_out(task, 0.2)
    total = task.train_labels.numel()
    assert first.test_labels.numel() == round(0.2 * total) and first.train_labels.numel() == total - round(0.2 * total)
    assert torch.equal(first.test_images, again.test_images)  # every stage of a task holds out the same images
    train = {bytes(image.flatten().tolist()) for image in task.train_images}
    held = {bytes(image.flatten().tolist()) for image in first.test_images}
    kept = {bytes(image.flatten().tolist()) for image in first.train_images}
    assert held <= train and not held & kept


def test_choices_use_validation_and_test_accuracy_is_reported_apart(data_root, tmp_path):
    import json

    import main_normal

    flags = ["--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root), "--device", "cpu",
             "--epochs", "2", "--lr", "0.05", "--max_allowed_network_width_multiplier", "1.0"]
    for name, extra in (("val", ["--val_fraction", "0.3"]), ("test", ["--val_fraction", "0"])):
        assert main_normal.main([*flags, *extra, "--save_folder", str(tmp_path / name),
                                 "--jsonfile", str(tmp_path / f"{name}.txt")]) in (0, 5)
    meta, record = (json.loads((tmp_path / "val/meta.json").read_text()),
                    json.loads((tmp_path / "val.txt").read_text()))
    assert record["0.0"] == meta["accuracy"] and "test_accuracy" in meta
    assert "test_accuracy" not in json.loads((tmp_path / "test/meta.json").read_text())

"""cifar100: the superclass table, both file layouts, the missing-data message and the task cache."""

import json
import shutil

import pytest
import torch

from tests.helpers import REPO
from tests.helpers.cifar import write_cifar100_pickle, write_cifar100_png
from unforget.utils.data.cifar100 import load_task
from unforget.utils.data.cifar100_names import FINE_NAMES, SUPERCLASSES, TASK_NAMES, baseline_goals
from unforget.utils.data.registry import DataError, get_benchmark

# The official coarse -> fine mapping (CIFAR-100 dataset page), written out independently of the table.
OFFICIAL = """
aquatic_mammals: beaver dolphin otter seal whale
fish: aquarium_fish flatfish ray shark trout
flowers: orchid poppy rose sunflower tulip
food_containers: bottle bowl can cup plate
fruit_and_vegetables: apple mushroom orange pear sweet_pepper
household_electrical_devices: clock keyboard lamp telephone television
household_furniture: bed chair couch table wardrobe
insects: bee beetle butterfly caterpillar cockroach
large_carnivores: bear leopard lion tiger wolf
large_man-made_outdoor_things: bridge castle house road skyscraper
large_natural_outdoor_scenes: cloud forest mountain plain sea
large_omnivores_and_herbivores: camel cattle chimpanzee elephant kangaroo
medium_mammals: fox porcupine possum raccoon skunk
non-insect_invertebrates: crab lobster snail spider worm
people: baby boy girl man woman
reptiles: crocodile dinosaur lizard snake turtle
small_mammals: hamster mouse rabbit shrew squirrel
trees: maple_tree oak_tree palm_tree pine_tree willow_tree
vehicles_1: bicycle bus motorcycle pickup_truck train
vehicles_2: lawn_mower rocket streetcar tank tractor
"""


def _official() -> dict[str, tuple[str, ...]]:
    rows = (line.split(":") for line in OFFICIAL.strip().splitlines())
    return {coarse: tuple(fine.split()) for coarse, fine in rows}


def test_table_matches_the_official_mapping_and_the_baseline_order():
    assert SUPERCLASSES == _official() and list(SUPERCLASSES) == list(_official())
    baseline = json.loads((REPO / "baseline_acc.json").read_text())
    assert TASK_NAMES == tuple(baseline) and len(TASK_NAMES) == 20
    assert all(names == tuple(sorted(names)) and len(names) == 5 for names in SUPERCLASSES.values())
    assert len(FINE_NAMES) == 100 and FINE_NAMES == tuple(sorted(FINE_NAMES))
    assert (FINE_NAMES[0], FINE_NAMES[1], FINE_NAMES[99]) == ("apple", "aquarium_fish", "worm")
    benchmark = get_benchmark("cifar100")
    assert benchmark.task_names == TASK_NAMES and benchmark.default_goals == baseline == baseline_goals()
    assert (benchmark.arch, benchmark.crop_padding, benchmark.flip) == ("custom_vgg_cifar100", 4, True)


def test_pickle_and_png_layouts_decode_the_same_task(tmp_path):
    write_cifar100_pickle(tmp_path / "pickle", per_class_train=4, per_class_test=2, seed=3)
    write_cifar100_png(tmp_path / "png", per_class_train=4, per_class_test=2, seed=3)
    from_pickle = get_benchmark("cifar100").load_task(tmp_path / "pickle", "vehicles_2")
    from_png = load_task(tmp_path / "png", "vehicles_2")
    assert from_pickle.classes == from_png.classes == ("lawn_mower", "rocket", "streetcar", "tank", "tractor")
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(from_pickle, field), getattr(from_png, field)), field
    assert from_pickle.train_images.dtype == torch.uint8 and from_pickle.train_images.shape == (20, 3, 32, 32)
    assert from_pickle.test_images.shape == (10, 3, 32, 32) and from_pickle.train_labels.dtype == torch.int64
    assert from_pickle.train_labels.tolist() == [label for label in range(5) for _ in range(4)]
    assert from_pickle.mean == pytest.approx(from_png.mean) and len(from_pickle.std) == 3


def test_labels_follow_alphabetical_fine_names(tmp_path):
    """Each image must come from the fine class its task label names: check against the raw pickle rows."""
    import pickle

    folder = write_cifar100_pickle(tmp_path, per_class_train=3, per_class_test=1, seed=5)
    raw = pickle.loads((folder / "train").read_bytes())
    task = load_task(tmp_path, "people")
    for image, label in zip(task.train_images, task.train_labels, strict=True):
        row = next(i for i, data in enumerate(raw[b"data"]) if bytes(data) == bytes(image.flatten().tolist()))
        assert FINE_NAMES[raw[b"fine_labels"][row]] == ("baby", "boy", "girl", "man", "woman")[label]


def test_meta_with_other_names_is_refused(tmp_path):
    import pickle

    folder = write_cifar100_pickle(tmp_path)
    meta = pickle.loads((folder / "meta").read_bytes())
    meta[b"coarse_label_names"] = list(reversed(meta[b"coarse_label_names"]))
    (folder / "meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DataError, match="other CIFAR-100 names"):
        load_task(tmp_path, "fish")


def test_missing_dataset_names_both_layouts_on_one_line(tmp_path):
    with pytest.raises(DataError) as caught:
        load_task(tmp_path, "fish")
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "cifar-100-python") in message and str(tmp_path / "cifar100_org") in message


def test_missing_dataset_exits_64_with_one_line(tmp_path, capsys):
    import main_normal

    (tmp_path / "data").mkdir()
    (tmp_path / "load").mkdir()
    code = main_normal.main(["--mode", "inference", "--benchmark", "cifar100", "--dataset", "fish",
                             "--data_root", str(tmp_path / "data"), "--load_folder", str(tmp_path / "load")])
    stderr = capsys.readouterr().err
    assert code == 64, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and "cifar-100-python" in lines[0]


def test_cache_is_reused_without_the_source(tmp_path):
    write_cifar100_png(tmp_path, per_class_train=2, per_class_test=1)
    first = load_task(tmp_path, "trees")
    assert (tmp_path / "cifar100_cache" / "trees.v1.pt").is_file()
    shutil.rmtree(tmp_path / "cifar100_org")
    again = load_task(tmp_path, "trees")
    assert torch.equal(again.train_images, first.train_images) and torch.equal(again.test_labels, first.test_labels)
    assert (again.classes, again.mean, again.std) == (first.classes, first.mean, first.std)

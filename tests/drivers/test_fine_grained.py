"""scripts/CPG_fine_grained.sh end to end on tiny stand-ins: two image-folder tasks of 40x30 RGB images
(decoded to a 16-pixel short side, 12-pixel crops), a ResNet-18 with random weights saved in torchvision's
format as the pretrained backbone; CPG and Piggyback each finish with old tasks unchanged."""

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from tests.helpers import run_driver

pytestmark = pytest.mark.slow
TASKS = ("birds", "cars")


def _images(root, seed: int = 0) -> None:
    rng = np.random.RandomState(seed)
    for task in TASKS:
        for split, count in (("train", 8), ("test", 4)):
            for label, name in enumerate(("a", "b")):
                folder = root / "fine_grained" / task / split / name
                folder.mkdir(parents=True)
                for index in range(count):
                    image = rng.randint(0, 80, (30, 40, 3))
                    image[:, :, label] += 150  # the class is the colour
                    Image.fromarray(image.astype(np.uint8)).save(folder / f"{index}.png")


def test_cpg_and_piggyback_run_the_protocol_and_keep_old_tasks(tmp_path):
    data = tmp_path / "data"
    _images(data)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), data / "resnet18.pth")
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps(dict.fromkeys(TASKS, 0.0)))
    result = run_driver("CPG_fine_grained.sh", "0", DATA_ROOT=str(data), CKPT_ROOT=str(tmp_path / "ck"),
                        PRETRAINED=str(data / "resnet18.pth"), ARCH="resnet18", TASKS=" ".join(TASKS),
                        METHODS="cpg piggyback", SHORT_SIDE="16", CROP="12", GOALS=str(goals), BATCH_SIZE="4",
                        FINETUNE_EPOCHS="1", PRUNE_EPOCHS="1", RETRAIN_EPOCHS="1", SPARSITY_STEPS="0.5",
                        PIGGYBACK_EPOCHS="1", FAST_START="0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summaries = {path.parts[len((tmp_path / "ck").parts)]: json.loads(path.read_text())
                 for path in (tmp_path / "ck").rglob("summary.json")}
    assert set(summaries) == {"CPG", "Piggyback"}
    for summary in summaries.values():
        assert [row["task"] for row in summary["tasks"]] == list(TASKS)
        for row in summary["tasks"]:
            assert row["accuracy_final"] == row["accuracy_after_learning"]


def test_missing_images_or_backbone_exit_64_with_one_line(tmp_path):
    (tmp_path / "data").mkdir()
    result = run_driver("CPG_fine_grained.sh", "0", DATA_ROOT=str(tmp_path / "data"), CKPT_ROOT=str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 64 and len(lines) == 1 and "cubs_cropped" in lines[0], result.stderr
    _images(tmp_path / "data")
    result = run_driver("CPG_fine_grained.sh", "0", DATA_ROOT=str(tmp_path / "data"), CKPT_ROOT=str(tmp_path),
                        TASKS=" ".join(TASKS))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 64 and len(lines) == 1 and "resnet50-0676ba61.pth" in lines[0], result.stderr

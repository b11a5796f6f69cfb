"""Lottery tickets: rewinding restores the saved weights under the mask, pruned weights stay zero through
training (weight decay and momentum on), each level prunes its share by magnitude, the controls keep
their promised masks, bad inputs exit 64 with one line, and the report tool reads the run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import main_normal
from tests.helpers import run_driver
from unforget.models import build_network
from unforget.tools import lottery_report
from unforget.utils.methods.lottery import stages
from unforget.utils.methods.lottery.pruning import magnitude_masks, random_masks

ARCH = "lenet_300_100"  # two prunable layers, so global and layerwise ranking differ
REWIND = 5
FRACTION = 0.3


def flags(root: Path, data_root: Path, *extra: str) -> list[str]:
    return ["--method", "lottery", "--benchmark", "digits10", "--dataset", "digits10", "--arch", ARCH,
            "--data_root", str(data_root), "--device", "cpu", "--epochs", "2", "--lr", "0.02", "--momentum", "0.9",
            "--weight_decay", "0.05", "--prune_fraction", str(FRACTION), "--save_folder", str(root), *extra]


def state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in network.state_dict().items()}


def stored(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pth", weights_only=True)["model"]


def masks_of(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "mask.pth", weights_only=True)


def weight_key(layer: str) -> str:
    return f"{layer}.weight"


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    """Levels 0-2 (rewind step 5) and both controls of level 2; also each stage's network as its training
    started (the stages' `train`, spied on)."""
    root = tmp_path_factory.mktemp("lottery")
    starts: dict[str, dict[str, torch.Tensor]] = {}
    original = stages.train

    def spy(stage, network, *args, **kwargs):
        starts[stage.head["stage"]] = state(network)
        return original(stage, network, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "train", spy)
        common = flags(root, data_root, "--rewind_step", str(REWIND))
        assert main_normal.main([*common, "--mode", "finetune"]) == 0
        for level in (1, 2):
            assert main_normal.main([*common, "--mode", "prune", "--level", str(level)]) == 0
        for control in ("reinit", "random_mask"):
            assert main_normal.main([*common, "--mode", "retrain", "--level", "2", "--control", control]) == 0
    return root, starts


def test_rewinding_restores_exactly_the_saved_weights_under_the_mask(run):
    root, starts = run
    rewind = stored(root / "level_0" / "rewind")
    assert json.loads((root / "level_0" / "rewind" / "meta.json").read_text())["step"] == REWIND
    for level in (1, 2):
        masks, start = masks_of(root / f"level_{level}"), starts[f"level_{level}"]
        assert set(start) == set(rewind)
        for name, value in rewind.items():
            layer = name.rsplit(".", 1)[0]
            if layer in masks and name == weight_key(layer):
                assert torch.equal(start[name], value * masks[layer]), name
            elif layer in masks and name.endswith("owner"):
                assert torch.equal(start[name].bool(), masks[layer]), name
            else:  # biases, the head: exactly the rewind point's
                assert torch.equal(start[name], value), name
    assert not torch.equal(rewind["features.1.weights.weight"], stored(root / "level_0")["features.1.weights.weight"])


@pytest.mark.parametrize("control", ["", "reinit", "random_mask"])
def test_pruned_weights_stay_zero_through_training(run, control):
    root, _ = run
    folder = root / "level_2" / control
    masks = masks_of(root / "level_2")
    trained = stored(folder)
    for layer, mask in masks.items():
        weight = trained[weight_key(layer)]
        kept = trained[f"{layer}.owner"].bool()
        if control != "random_mask":
            assert torch.equal(kept, mask)
        assert kept.sum() == mask.sum()
        assert torch.all(weight[~kept] == 0), "a pruned weight moved under weight decay or momentum"
        assert torch.count_nonzero(weight[kept]) == kept.sum()  # the kept ones trained


def test_each_level_prunes_its_share_of_the_remaining_weights_by_magnitude(run):
    root, _ = run
    reports = [json.loads((root / f"level_{k}" / "sparsity_report.json").read_text()) for k in range(3)]
    assert reports[0]["unpruned"] == reports[0]["total"]
    for before, after in zip(reports, reports[1:], strict=False):
        assert after["unpruned"] == before["unpruned"] - math.ceil(FRACTION * before["unpruned"])
    first, second = masks_of(root / "level_1"), masks_of(root / "level_2")
    trained = stored(root / "level_1")
    dropped, kept = [], []
    for layer, mask in second.items():
        assert not torch.any(mask & ~first[layer]), "a pruned weight came back"
        magnitude = trained[weight_key(layer)].abs()
        dropped.append(magnitude[first[layer] & ~mask])
        kept.append(magnitude[mask])
    assert torch.cat(dropped).max() <= torch.cat(kept).min()  # global: across both layers


def test_controls_keep_the_level_sparsity_and_differ_where_they_should(run):
    root, starts = run
    ticket = json.loads((root / "level_2" / "sparsity_report.json").read_text())["layers"]
    masks = masks_of(root / "level_2")
    rewind = stored(root / "level_0" / "rewind")
    for control in ("reinit", "random_mask"):
        assert json.loads((root / "level_2" / control / "sparsity_report.json").read_text())["layers"] == ticket
    start = starts["level_2_random_mask"]
    for layer, mask in masks.items():
        random = start[f"{layer}.owner"].bool()
        assert not torch.equal(random, mask)
        assert torch.equal(start[weight_key(layer)], rewind[weight_key(layer)] * random)
        reinit = starts["level_2_reinit"]
        assert torch.equal(reinit[f"{layer}.owner"].bool(), mask)
        assert not torch.equal(reinit[weight_key(layer)], rewind[weight_key(layer)] * mask)


def test_layerwise_pruning_ranks_within_each_layer():
    network = build_network(ARCH, 1.0, mode="packnet", input_shape=(1, 8, 8))
    network.add_task("digits10", 10)
    with torch.no_grad():  # every weight of the first layer outweighs the second's: global ranking spares it
        network.features[1].weights.weight.abs_().add_(1.0)
    global_masks = magnitude_masks(network, 0.2, "global")
    layerwise = magnitude_masks(network, 0.2, "layerwise")
    assert torch.all(global_masks["features.1.weights"])
    for mask in layerwise.values():
        assert int(mask.sum()) == mask.numel() - math.ceil(0.2 * mask.numel())
    shuffled = random_masks(layerwise, torch.Generator().manual_seed(0))
    assert {name: int(m.sum()) for name, m in shuffled.items()} == {name: int(m.sum()) for name, m in layerwise.items()}


def one_line_64(capsys, code: int, text: str) -> None:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 64 and len(err) == 1 and text in err[0], err


def test_a_level_without_its_predecessor_is_a_usage_error(run, data_root, capsys):
    root, _ = run
    code = main_normal.main([*flags(root, data_root, "--rewind_step", str(REWIND)), "--mode", "prune", "--level", "4"])
    one_line_64(capsys, code, "make level 3 first")
    assert not (root / "level_4").exists()
    code = main_normal.main([*flags(root, data_root, "--rewind_step", str(REWIND)), "--mode", "retrain",
                             "--level", "3", "--control", "reinit"])
    one_line_64(capsys, code, "make level 3 first")
    code = main_normal.main([*flags(root, data_root, "--rewind_step", "0"), "--mode", "prune", "--level", "3"])
    one_line_64(capsys, code, "--rewind_step 5, this level 0")


def test_a_rewind_step_past_training_is_a_usage_error(tmp_path, data_root, capsys):
    steps = 2 * math.ceil(1198 / 32)  # two epochs of the 1198 training digits
    code = main_normal.main([*flags(tmp_path, data_root, "--rewind_step", str(steps + 1)), "--mode", "finetune"])
    one_line_64(capsys, code, "is past training")
    assert not (tmp_path / "level_0").exists()


def test_the_report_tool_tables_and_plots_the_run(run, capsys, tmp_path):
    root, _ = run
    assert lottery_report.main([str(root), "--targets", "0.3,0.5"]) == 0
    table = (root / "report.md").read_text()
    assert (root / "accuracy.png").stat().st_size > 0
    accuracy = json.loads((root / "level_2" / "reinit" / "meta.json").read_text())["accuracy"]
    assert "| 50% | 2 | 51.0% |" in table and f"{accuracy:.4f} (1)" in table
    assert "| 30% | 1 | 30.0% |" in table
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        lottery_report.main([str(tmp_path)])
    one_line_64(capsys, stop.value.code, "no lottery run under")


@pytest.mark.slow
def test_the_driver_runs_levels_and_controls_over_seeds_and_reports(data_root, tmp_path):
    env = {"DATA_ROOT": str(data_root), "CKPT_ROOT": str(tmp_path), "EPOCHS": "1", "SEEDS": "1 2",
           "TARGETS": "0.2 0.4", "ARCH": "digits_mlp_16"}
    done = run_driver("lottery_digits.sh", **env)
    assert done.returncode == 0, done.stderr[-2000:]
    root = next((tmp_path / "lottery" / "digits10" / "digits10" / "digits_mlp_16").iterdir())
    for seed in (1, 2):
        run = root / f"seed{seed}"
        assert sorted(path.name for path in run.glob("level_*")) == ["level_0", "level_1", "level_2"]
        for level in (1, 2):
            assert all((run / f"level_{level}" / c / "checkpoint.pth").is_file() for c in ("reinit", "random_mask"))
    assert "| 40% | 2 | 36.0% |" in (root / "report.md").read_text() and (root / "accuracy.png").is_file()
    again = run_driver("lottery_digits.sh", **env)
    assert again.returncode == 0 and again.stdout.count("done before") == 2 * 7


@pytest.mark.slow
@pytest.mark.parametrize("env, message", [
    ({"TARGETS": "0.5 1.2"}, "TARGETS must be sparsities between 0 and 1"),
    ({"PRUNE_FRACTION": "0"}, "PRUNE_FRACTION must be a number between 0 and 1"),
    ({"SEEDS": "one"}, "SEEDS must be whole numbers"),
])
def test_bad_driver_settings_exit_64_with_one_line(env, message, tmp_path):
    done = run_driver("lottery_digits.sh", CKPT_ROOT=str(tmp_path), **env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 64 and len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.slow
def test_cifar10_without_its_files_stops_naming_where_they_go(tmp_path):
    done = run_driver("lottery.sh", "cifar10", DATA_ROOT=str(tmp_path), CKPT_ROOT=str(tmp_path / "ck"), FAST_START="0")
    assert done.returncode == 64, done.stderr
    assert "cifar-10-batches-py" in done.stderr and "Traceback" not in done.stderr

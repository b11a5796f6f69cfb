"""HAT on split_digits: weights between units that earlier tasks fully use (cumulative attention 1 at both
ends; the bias of such a unit) never move while a later task trains, which is what the gradient
conditioning does and all it promises (HAT is near forget-free, not exactly); the embedding gradient
compensation undoes the annealing; bad settings are refused with 64 and one line."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import main_normal
from tests.helpers import run_driver, run_main
from tests.helpers.files import png_is_drawn
from unforget.models.layers.base import Geometry, TaskSpec
from unforget.models.layers.hat import HATWeights, hat_layers
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.methods.hat import stages
from unforget.utils.methods.hat.settings import HATSettings
from unforget.utils.methods.hat.training import Annealing, Conditioning, conditioning_factors, sparsity
from unforget.utils.methods.stage import open_stage

TASKS = get_benchmark("split_digits").task_names[:3]
FULL, FREE = 6.0, -6.0
"""embeddings whose gate at s_max = 400 is exactly 1 or exactly 0 in float32"""


def _stage(data_root, arch: str, **changes):
    values = dict(mode="finetune", dataset=TASKS[1], data_root=str(data_root), save_folder="unused", arch=arch,
                  epochs=2, batch_size=16, lr=0.5, val_fraction=0.2, **changes)
    return open_stage(HATSettings(**values), seed=True)


def _protected(network) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Per HAT layer, which weights and biases the earlier tasks fully use (conditioning factor 0)."""
    return [(weight == 0, None if bias is None else bias == 0) for weight, bias in conditioning_factors(
        hat_layers(network))]


def _trained_second_task(data_root, arch: str, pattern: list[float], seed: int, conditioned: bool = True):
    """A network whose first task's embeddings are `pattern`-drawn values, then two epochs of a second task
    through the stage's own training (`stages.learn`); returns (weights before, after, protected masks)."""
    stage = _stage(data_root, arch, seed=seed)
    data = stage.on_device(get_benchmark("split_digits").load_task(data_root, TASKS[1]))
    options = {"input_shape": (1, 8, 8)} if arch == "lenet_300_100" else {}
    network = stages.new_network(stage.settings, options)
    network.add_task(TASKS[0], 2)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in hat_layers(network):
            choice = torch.randint(len(pattern), (layer.weight.shape[0],), generator=generator)
            layer.embeddings[0].copy_(torch.tensor(pattern)[choice])
    task = network.add_task(TASKS[1], 2)
    protected = _protected(network)
    before = [(layer.weight.detach().clone(), None if layer.bias is None else layer.bias.detach().clone())
              for layer in hat_layers(network)]
    if not conditioned:
        stage_conditioning = Conditioning.before_step
        Conditioning.before_step = lambda self: None  # the hook removed: what the property depends on
        try:
            stages.learn(stage, network, task, data)
        finally:
            Conditioning.before_step = stage_conditioning
    else:
        stages.learn(stage, network, task, data)
    after = [(layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
             for layer in hat_layers(network)]
    return before, after, protected


@settings(max_examples=6, deadline=None, database=None)
@given(seed=st.integers(0, 2**31 - 1), arch=st.sampled_from(["digits_convnet", "lenet_300_100"]),
       pattern=st.lists(st.sampled_from([FULL, FREE, 0.0, 0.004]), min_size=2, max_size=4, unique=True).filter(
           lambda values: FULL in values))
def test_weights_between_fully_used_units_never_move(data_root, seed, arch, pattern):
    before, after, protected = _trained_second_task(data_root, arch, pattern, seed)
    assert any(mask.any() for mask, _ in protected)  # the first task fully uses some units
    moved = False
    for (weight, bias), (new_weight, new_bias), (held, held_bias) in zip(before, after, protected, strict=True):
        assert torch.equal(new_weight[held], weight[held])
        if bias is not None:
            assert torch.equal(new_bias[held_bias], bias[held_bias])
        moved = moved or not torch.equal(new_weight[~held], weight[~held])
    assert moved  # the second task did train the rest


def test_without_the_conditioning_the_same_weights_move(data_root):
    before, after, protected = _trained_second_task(data_root, "lenet_300_100", [FULL, FREE], 3, conditioned=False)
    assert any(not torch.equal(new[held], old[held])
               for (old, _), (new, _), (held, _) in zip(before, after, protected, strict=True))


@settings(max_examples=30, deadline=None, database=None)
@given(values=st.lists(st.floats(-1.5, 1.5), min_size=1, max_size=6), batches=st.lists(st.integers(0, 40), min_size=2,
       max_size=2, unique=True), s_max=st.sampled_from([25.0, 100.0, 400.0]))
def test_compensation_gives_the_embedding_the_same_gradient_at_every_scale(values, batches, s_max):
    """sigmoid(s e)'s slope falls with the annealing; compensated, d loss / d e is s_max * sigmoid'(e) * d loss / d a
    whatever s. In double precision: sigmoid's backward, y (1 - y), loses the digits of 1 - y as s e grows, which
    the compensation then multiplies back (float32 keeps about 3 of them at s e = 10)."""
    layer = HATWeights(Geometry(2, len(values)), 1.0, True).double()
    layer.add_task(TaskSpec("t", 2, 1.0))
    layer.set_task(1)
    with torch.no_grad():
        layer.embeddings[0].copy_(torch.tensor(values, dtype=torch.float64))
    upstream = torch.linspace(-1.0, 1.0, len(values), dtype=torch.float64)
    annealing = Annealing([layer], s_max, batch_size=1, images=1000)
    hooks = Conditioning([layer], 1, annealing, clip=1e30, thres_cosh=50.0, thres_emb=6.0,
                         parameters=[layer.embeddings[0]])
    gate = torch.sigmoid(layer.embeddings[0].detach())
    expected = upstream * s_max * gate * (1 - gate)
    for batch in batches:
        annealing.batch = batch
        layer.embeddings[0].grad = None
        (layer.gate(1, annealing.scale) * upstream).sum().backward()
        hooks.before_step()
        torch.testing.assert_close(layer.embeddings[0].grad, expected, rtol=1e-6, atol=1e-9)


def test_annealing_rises_from_one_over_s_max_and_evaluation_gates_at_s_max():
    layer = HATWeights(Geometry(2, 3), 1.0, True)
    layer.add_task(TaskSpec("t", 2, 1.0))
    layer.set_task(1)
    annealing = Annealing([layer], 400.0, batch_size=16, images=40)
    annealing.start_epoch()
    scales = [layer.scale]
    for _ in range(2):
        annealing.next_batch()
        scales.append(layer.scale)
    assert scales[0] == pytest.approx(1 / 400) and scales == sorted(scales) and scales[-1] < 400.0
    layer.eval()
    layer()
    assert torch.equal(layer.attention, layer.gate(1))


@settings(max_examples=30, deadline=None, database=None)
@given(used=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8), attention=st.floats(0.0, 1.0))
def test_the_regulariser_counts_attention_on_the_units_left_free(used, attention):
    layer = HATWeights(Geometry(2, len(used)), 1.0, True)
    layer.cumulative.copy_(torch.tensor(used))
    layer.attention = torch.full((len(used),), attention)
    value = float(sparsity([layer]))
    assert 0.0 <= value <= attention + 1e-6
    if all(unit == 1.0 for unit in used):
        assert value == 0.0
    elif all(unit == 0.0 for unit in used):
        assert value == pytest.approx(attention)


def test_three_tasks_keep_the_first_tasks_fully_used_weights(tmp_path, data_root):
    """Through main_normal, as the driver runs it: the first task's fully used weights, its embeddings and its
    head are the same bits after two more tasks."""
    for index, name in enumerate(TASKS):
        load = ["--load_folder", str(tmp_path / TASKS[index - 1])] if index else []
        code = main_normal.main(["--method", "hat", "--mode", "finetune", "--dataset", name, "--data_root",
                                 str(data_root), "--device", "cpu", "--epochs", "4", "--batch_size", "16",
                                 "--save_folder", str(tmp_path / name), *load])
        assert code == 0
    first, last = (network_from_checkpoint(load_checkpoint(tmp_path / name)) for name in (TASKS[0], TASKS[-1]))
    first.add_task("probe", 2)  # the cumulative attention of the first task alone
    held_any = False
    for old, new, (held, held_bias) in zip(hat_layers(first), hat_layers(last), _protected(first), strict=True):
        held_any = held_any or bool(held.any())
        assert torch.equal(new.weight[held], old.weight[held])
        assert torch.equal(new.bias[held_bias], old.bias[held_bias]) if old.bias is not None else True
        assert torch.equal(new.embeddings[0], old.embeddings[0])
    assert held_any
    first_head, last_head = (dict(net.heads.per_task[0].named_parameters()) for net in (first, last))
    assert all(torch.equal(first_head[key], last_head[key]) for key in first_head)
    meta = json.loads((tmp_path / TASKS[-1] / "meta.json").read_text())
    assert meta["settings"]["hat_smax"] == 400.0 and set(meta["attention_used"]) == {f"layer_{i}" for i in range(1, 6)}


@pytest.mark.parametrize("flags, text", [
    (["--hat_c", "-0.5"], "--hat_c must be at least 0"),
    (["--hat_c", "nan"], "--hat_c must be a finite number"),
    (["--hat_smax", "0"], "--hat_smax must be above 0"),
    (["--hat_smax", "-400"], "--hat_smax must be at least 0"),
    (["--hat_smax", "nan"], "--hat_smax must be a finite number"),
    (["--hat_smax", "inf"], "--hat_smax must be a finite number"),
    (["--hat_thres_emb", "0"], "--hat_thres_emb must be above 0"),
    (["--hat_lr_factor", "1"], "--hat_lr_factor must be above 1"),
    (["--hat_thres_cosh", "100"], "--hat_thres_cosh must be at most 88"),
    (["--arch", "gem_resnet18"], "layers form one chain"),
])
def test_bad_settings_exit_64_with_one_line(tmp_path, data_root, flags, text):
    result = run_main("--method", "hat", "--mode", "finetune", "--dataset", TASKS[0], "--data_root", str(data_root),
                      "--save_folder", str(tmp_path / "s"), *flags)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 64 and len(lines) == 1 and text in lines[0], result.stderr
    assert not (tmp_path / "s").exists()


def test_a_checkpoint_of_another_method_or_s_max_is_refused(tmp_path, data_root, capsys):
    base = ["--mode", "finetune", "--data_root", str(data_root), "--device", "cpu", "--epochs", "1"]
    assert main_normal.main(["--method", "hat", "--dataset", TASKS[0], *base, "--save_folder",
                             str(tmp_path / "a")]) == 0
    assert main_normal.main(["--method", "baseline", "--dataset", TASKS[0], *base, "--save_folder",
                             str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    for folder, flags, text in ((tmp_path / "plain", [], "in layer mode plain"),
                                (tmp_path / "a", ["--hat_smax", "100"], "learned with --hat_smax 400"),
                                (tmp_path / "a", ["--dataset", TASKS[0]], "has learned digits_01 already")):
        argv = ["--method", "hat", "--dataset", TASKS[1], *base, "--load_folder", str(folder), "--save_folder",
                str(tmp_path / "b"), *flags]
        assert main_normal.main(argv) == 64
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and text in lines[0], lines
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_driver_reports_the_matrix_and_resumes(tmp_path, data_root):
    env = dict(DATA_ROOT=str(data_root), CKPT_ROOT=str(tmp_path), NUM_TASKS="2", EPOCHS="3")
    result = run_driver("hat.sh", **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "HAT/split_digits/default_seed1/digits_convnet"
    summary = json.loads((root / "summary.json").read_text())
    metrics = json.loads((root / "metrics.json").read_text())
    assert summary["accuracy_matrix"] == metrics["accuracy_matrix"] and len(summary["tasks"]) == 2
    assert [row["accuracy_after_learning"] for row in summary["tasks"]] == [metrics["accuracy_matrix"][i][i]
                                                                           for i in range(2)]
    assert summary["capacity"]["model_vs_independent"] < 1.0
    assert json.loads((root / "run.json").read_text())["method"] == "hat"
    assert png_is_drawn(root / "accuracy_matrix.png")
    again = run_driver("hat.sh", **env)
    assert again.returncode == 0 and again.stdout.count("done before") == 2
    refused = run_driver("hat.sh", **{**env, "SMAX": "100"})
    assert refused.returncode == 64

"""The fast paths agree with the plain fp32 path: the exact ones bit for bit, bf16 and channels-last
within the README's tolerance; the pieces a CUDA graph relies on are checked on the CPU."""

import json

import pytest
import torch

import main_normal
from models import build_network
from models.layers.cpg import cpg_layers
from utils import engine
from utils.checkpoint import load_checkpoint
from utils.data.registry import get_benchmark
from utils.data.tasks import DeviceTaskData
from utils.exit_codes import ExitCode
from utils.methods.cpg.pruner import GradualPruner
from utils.optim import SGD, Adam
from utils.speed import EXACT_PATHS, Speed

ACCURACY_TOLERANCE = 0.03  # bf16 and channels-last: every recorded accuracy within 3 points of fp32
STAGES = [
    ("finetune", "digits_01", "t1", None, {"lr": 0.05, "epochs": 8}),
    ("prune", "digits_01", "t1p", "t1", {"lr": 1e-3, "lr_mask": 0.0, "epochs": 3, "target_sparsity": 0.5,
                                         "pruning_interval": 1, "pruning_frequency": 3}),
    ("finetune", "digits_23", "t2", "t1p", {"lr": 0.05, "epochs": 8}),
    ("retrain", "digits_23", "t2r", "t2", {"lr": 1e-3, "lr_mask": 1e-4, "epochs": 3}),
]


def _run_sequence(data_root, folder, *speed_flags):
    """Two tasks through finetune, prune, finetune and retrain; returns exit codes, records, the
    stored accuracies and the final checkpoint's tensors."""
    codes = []
    for mode, task, save, load, flags in STAGES:
        args = ["--mode", mode, "--dataset", task, "--data_root", str(data_root), "--device", "cpu",
                "--batch_size", "16", "--save_folder", str(folder / save), "--jsonfile", str(folder / f"{task}.txt"),
                *speed_flags]
        if load:
            args += ["--load_folder", str(folder / load)]
        for name, value in flags.items():
            args += [f"--{name}", str(value)]
        codes.append(main_normal.main(args))
    records = {task: json.loads((folder / f"{task}.txt").read_text()) for task in ("digits_01", "digits_23")}
    accuracies = [json.loads((folder / save / "meta.json").read_text())["accuracy"] for _, _, save, _, _ in STAGES]
    return codes, records, accuracies, load_checkpoint(folder / "t2r")["model"]


@pytest.fixture(scope="module")
def plain_run(data_root, tmp_path_factory):
    return _run_sequence(data_root, tmp_path_factory.mktemp("plain"), "--plain")


@pytest.mark.parametrize("flag", ["default", *(f"--no_{name}" for name in EXACT_PATHS)])
def test_exact_paths_are_bit_identical_to_the_plain_path(plain_run, data_root, tmp_path, flag):
    codes, records, accuracies, weights = _run_sequence(data_root, tmp_path, *([] if flag == "default" else [flag]))
    plain_codes, plain_records, plain_accuracies, plain_weights = plain_run
    assert codes == plain_codes == [ExitCode.OK] * 4
    assert records == plain_records and accuracies == plain_accuracies
    assert weights.keys() == plain_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, plain_weights[name]), name


@pytest.mark.parametrize("flag", ["--bf16", "--channels_last"])
def test_arithmetic_paths_keep_decisions_and_accuracies_within_tolerance(plain_run, data_root, tmp_path, flag):
    codes, records, accuracies, weights = _run_sequence(data_root, tmp_path, flag)
    plain_codes, plain_records, plain_accuracies, _ = plain_run
    assert codes == plain_codes
    assert all(tensor.is_contiguous() for tensor in weights.values())  # checkpoints keep the standard layout
    assert [sorted(record) for record in records.values()] == [sorted(record) for record in plain_records.values()]
    for got, want in zip(accuracies, plain_accuracies, strict=True):
        assert abs(got - want) <= ACCURACY_TOLERANCE, (flag, accuracies, plain_accuracies)


def _digits_network(seed: int = 0):
    torch.manual_seed(seed)
    network = build_network("digits_convnet", 1.0, mode="cpg")
    network.add_task("a", 2)
    return network


def test_bf16_logits_stay_close_to_fp32():
    network = _digits_network().eval()
    images = torch.randn(64, 1, 8, 8)
    with torch.no_grad():
        exact = network(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = network(images).float()
    assert (low - exact).abs().max() <= 0.02 * exact.abs().max() + 1e-3
    assert not torch.equal(low, exact)  # autocast did change the arithmetic


def test_capturable_optimizers_follow_the_eager_ones_and_see_new_learning_rates():
    """A CUDA graph replays the update with the learning rate (and Adam's step) read from device
    tensors; the eager and tensor forms must agree while a schedule changes the rate."""
    torch.manual_seed(0)
    start, target, curvature = torch.randn(50), torch.randn(50), torch.rand(50) + 0.1
    runs = []
    for capturable in (False, True):
        sgd_param, adam_param = start.clone().requires_grad_(), start.clone().requires_grad_()
        sgd = SGD([sgd_param], lr=0.1, momentum=0.9, nesterov=True)
        adam = Adam([adam_param], lr=0.01)
        if capturable:
            sgd.make_capturable()
            adam.make_capturable()
            lr_tensors = (sgd.lr_tensor, adam.lr_tensor)
        for step in range(30):
            if step == 15:
                sgd.lr, adam.lr = 0.01, 0.002
            for optimizer, param in ((sgd, sgd_param), (adam, adam_param)):
                optimizer.zero_grad()
                (curvature * (param - target) ** 2).sum().backward()
                optimizer.step()
        if capturable:
            assert (sgd.lr_tensor, adam.lr_tensor) == lr_tensors  # updated in place, not replaced
            assert sgd.lr_tensor.item() == pytest.approx(0.01) and adam.step_tensor.item() == 30
        runs.append((sgd_param.detach(), adam_param.detach()))
    for eager, captured in zip(*runs, strict=True):
        torch.testing.assert_close(captured, eager, rtol=1e-5, atol=1e-5)
        assert not torch.equal(eager, start)


def test_pruning_updates_the_cached_multipliers_in_place():
    """A captured step holds the multiplier tensors it saw at capture; pruning must refresh those."""
    network = _digits_network()
    layers = cpg_layers(network)
    cached = [layer.multipliers()[0] for layer in layers]
    GradualPruner(layers, 1, 0.0, 0.5, 1, 0, 1).prune_to(0.5)
    for layer, own in zip(layers, cached, strict=True):
        assert layer.multipliers()[0] is own
        assert torch.equal(own, (layer.owner == 1).float())
        assert 0.45 <= 1 - own.mean().item() <= 0.55


def test_plain_masks_are_rebuilt_every_forward():
    layer = cpg_layers(_digits_network())[0]
    layer.cache_multipliers = False
    assert layer.multipliers()[0] is not layer.multipliers()[0]
    layer.cache_multipliers = True
    assert layer.multipliers()[0] is layer.multipliers()[0]


def _second_task_loop(data_root, speed):
    """A second digits task, on a grown network, learning its weights and picks while it is pruned: every
    piece a step touches. The optimizers keep their rates in tensors (as a graph needs) on every path."""
    torch.manual_seed(0)
    network = build_network("digits_convnet", 1.5, mode="cpg")
    network.add_task("a", 2, width=1.0)
    network.add_task("b", 2)
    layers = cpg_layers(network)
    masks = [layer.start_picking() for layer in layers]
    sgd = SGD(network.task_parameters(2), lr=0.05, momentum=0.9, nesterov=True)
    adam = Adam(masks, lr=1e-3)
    for optimizer in (sgd, adam):
        optimizer.make_capturable()
    pruner = GradualPruner(layers, 2, 0.0, 0.5, 4, 0, 20, sgd.momentum_buffers.get)
    loop = engine.TrainLoop(network, [sgd, adam], torch.device("cpu"), speed, after_step=pruner.step)
    data = DeviceTaskData(get_benchmark("split_digits").load_task(data_root, "digits_23"), torch.device("cpu"), 1,
                          False)
    generator = data.generator(1)
    results = []
    for epoch in range(2):
        sgd.lr, adam.lr = (0.05, 1e-3) if epoch == 0 else (0.005, 2e-4)
        results.append(loop.epoch(data, 32, generator))
    return results, {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}


def test_graph_step_protocol_emulated_on_the_cpu(data_root, monkeypatch):
    """The CUDA-graph loop with capture and replay emulated (recording runs nothing, a replay runs the step
    on the static buffers) trains bit for bit like the eager loop, replaying every full batch after the
    warm-up, with pruning reaching the captured masks and new rates reaching the captured optimizers."""
    replays = []

    def capture(step):
        def replay():
            replays.append(1)
            step()
        return replay

    monkeypatch.setattr(engine, "capture_cuda_graph", capture)
    monkeypatch.setattr(engine, "on_side_stream", lambda step, device: step())
    graph_results, graph_weights = _second_task_loop(data_root, Speed(cuda_graph=True))
    eager_results, eager_weights = _second_task_loop(data_root, Speed())
    train_images = get_benchmark("split_digits").load_task(data_root, "digits_23").train_labels.numel()
    assert train_images % 32, "the run must end each epoch with a smaller, eager batch"
    assert len(replays) == 2 * (train_images // 32) - engine.GRAPH_WARMUP_STEPS
    assert graph_results == eager_results
    assert graph_weights.keys() == eager_weights.keys()
    for name, tensor in eager_weights.items():
        assert torch.equal(graph_weights[name], tensor), name
    owner = graph_weights["features.0.weights.owner"]
    assert (owner == 2).any() and (owner == 0).any()  # the task owned weights and pruning freed some


@pytest.mark.parametrize(("flags", "message"), [
    (["--cuda_graph", "--plain"], "cannot be combined"),
    (["--method", "supsup", "--bf16"], "apply to cpg, packnet and baseline"),
])
def test_bad_speed_combinations_are_usage_errors(data_root, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main_normal.main(["--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root),
                          "--save_folder", str(tmp_path / "s"), "--jsonfile", str(tmp_path / "r.txt"), *flags])
    assert exit_info.value.code == ExitCode.USAGE
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_cuda_graph_needs_a_gpu(data_root, tmp_path, capsys):
    code = main_normal.main(["--mode", "finetune", "--dataset", "digits_01", "--data_root", str(data_root),
                             "--save_folder", str(tmp_path / "s"), "--jsonfile", str(tmp_path / "r.txt"),
                             "--device", "cpu", "--cuda_graph"])
    assert code == ExitCode.USAGE
    assert "--cuda_graph needs a CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_agrees_with_the_eager_path(data_root, tmp_path):
    def on_cuda(folder, *flags):
        return _run_sequence(data_root, folder, "--device", "cuda", *flags)

    eager_codes, eager_records, eager_accuracies, eager_weights = on_cuda(tmp_path / "eager")
    codes, records, accuracies, weights = on_cuda(tmp_path / "graph", "--cuda_graph")
    assert codes == eager_codes
    assert [sorted(record) for record in records.values()] == [sorted(r) for r in eager_records.values()]
    for got, want in zip(accuracies, eager_accuracies, strict=True):
        assert abs(got - want) <= ACCURACY_TOLERANCE
    assert weights.keys() == eager_weights.keys()

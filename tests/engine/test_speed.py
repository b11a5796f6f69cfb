"""The fast paths agree with the plain fp32 path: the exact ones bit for bit; bf16 and channels-last
within tolerances derived from their arithmetic on one training step, and with the same decisions on a
run whose decisions have margin; the pieces a CUDA graph relies on are checked on the CPU."""

import json

import pytest
import torch

import main_normal
from unforget.models import build_network
from unforget.models.layers.cpg import cpg_layers
from unforget.utils import engine
from unforget.utils.checkpoint import load_checkpoint
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.cpg.pruner import GradualPruner
from unforget.utils.methods.cpg.settings import TRAIN_ACCURACY_GATE
from unforget.utils.optim import SGD, Adam
from unforget.utils.speed import EXACT_PATHS, Speed

STAGES = [
    ("finetune", "digits_01", "t1", None, {"lr": 0.05, "epochs": 8}),
    ("prune", "digits_01", "t1p", "t1", {"lr": 1e-3, "lr_mask": 0.0, "epochs": 3, "target_sparsity": 0.5,
                                         "pruning_interval": 1, "pruning_frequency": 3}),
    ("finetune", "digits_23", "t2", "t1p", {"lr": 0.05, "epochs": 8}),
    ("retrain", "digits_23", "t2r", "t2", {"lr": 1e-3, "lr_mask": 1e-4, "epochs": 3}),
]
# Where the sequence's decisions could depend on arithmetic, they have margin: the goals are 0 (always
# met) and the width cap is the width (finetune never asks to grow), which leaves prune's train-accuracy
# gate. On digits_01 (zeros against ones) pruning trains at about 0.99; the plain run must clear the gate by
# GATE_MARGIN (6 of the 192 training images the validation split leaves), far more than bf16 or another
# layout moves.
GOALS = {"digits_01": 0.0, "digits_23": 0.0}
GATE_MARGIN = 6 / 192
# On a CPU device the data already lives on the host and pruning already finds its cutoffs there, so these
# two flags run the plain computation itself: only a GPU can tell them apart.
SAME_COMPUTATION_ON_THE_CPU = {"resident_data", "device_pruning"}


def _run_sequence(data_root, folder, device, *speed_flags):
    """Two tasks through finetune, prune, finetune and retrain on `device`; returns exit codes, records,
    each stage's meta.json and the final checkpoint's tensors."""
    goals = folder / "goals.json"
    goals.write_text(json.dumps(GOALS))
    codes = []
    for mode, task, save, load, flags in STAGES:
        args = ["--mode", mode, "--dataset", task, "--data_root", str(data_root), "--device", device,
                "--batch_size", "16", "--save_folder", str(folder / save), "--jsonfile", str(folder / f"{task}.txt"),
                "--baseline_acc_file", str(goals), *speed_flags]
        if load:
            args += ["--load_folder", str(folder / load)]
        for name, value in flags.items():
            args += [f"--{name}", str(value)]
        codes.append(main_normal.main(args))
    records = {task: json.loads((folder / f"{task}.txt").read_text()) for task in GOALS}
    metas = [json.loads((folder / save / "meta.json").read_text()) for _, _, save, _, _ in STAGES]
    return codes, records, metas, load_checkpoint(folder / "t2r")["model"]


@pytest.fixture(scope="module")
def plain_run(data_root, tmp_path_factory):
    """The plain path's run on a device, run once per device the module asks for."""
    runs = {}

    def on(device):
        if device not in runs:
            runs[device] = _run_sequence(data_root, tmp_path_factory.mktemp(f"plain-{device}"), device, "--plain")
        return runs[device]
    return on


def _exact_case(name):
    flag = f"--no_{name}"
    if name in SAME_COMPUTATION_ON_THE_CPU:
        return pytest.param(flag, "cuda", id=f"{flag}-cuda", marks=pytest.mark.gpu)
    return pytest.param(flag, "cpu", id=flag)


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "device"), [
    pytest.param("default", "cpu", id="default"),
    pytest.param("default", "cuda", id="default-cuda", marks=pytest.mark.gpu),
    *(_exact_case(name) for name in EXACT_PATHS),
])
def test_exact_paths_are_bit_identical_to_the_plain_path(plain_run, data_root, tmp_path, flag, device):
    codes, records, metas, weights = _run_sequence(data_root, tmp_path, device,
                                                   *([] if flag == "default" else [flag]))
    plain_codes, plain_records, plain_metas, plain_weights = plain_run(device)
    assert codes == plain_codes == [ExitCode.OK] * 4
    assert records == plain_records
    assert [meta["accuracy"] for meta in metas] == [meta["accuracy"] for meta in plain_metas]
    assert weights.keys() == plain_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, plain_weights[name]), name


def _assert_same_decisions(run, reference):
    """Same exit codes and record keys, with the reference's pruning train accuracy clear of the gate."""
    codes, records, _, weights = run
    reference_codes, reference_records, reference_metas, reference_weights = reference
    assert reference_metas[1]["stage"] == "prune"
    assert reference_metas[1]["train_accuracy"] >= TRAIN_ACCURACY_GATE + GATE_MARGIN
    assert codes == reference_codes == [ExitCode.OK] * 4
    assert {task: sorted(record) for task, record in records.items()} == \
        {task: sorted(record) for task, record in reference_records.items()}
    assert weights.keys() == reference_weights.keys()


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--bf16", "--channels_last"])
def test_arithmetic_paths_take_the_plain_paths_decisions(plain_run, data_root, tmp_path, flag):
    run = _run_sequence(data_root, tmp_path, "cpu", flag)
    _assert_same_decisions(run, plain_run("cpu"))
    assert all(tensor.is_contiguous() for tensor in run[3].values())  # checkpoints keep the standard layout


# One training step, bf16 against fp32 on the same weights and batch. bf16 keeps 8 significant bits, so
# rounding to it errs by at most U_BF16 = 2^-8 relative; autocast rounds the operands and the result of
# every convolution and linear layer (at most 3 roundings; the products are summed in fp32) and the
# output of every batch-norm (1). To first order the errors add along the longest path, and batch-norm
# keeps each layer at unit scale, so an error relative to a layer's largest value stays that size in the
# next.
#   logits: 6 weighted layers (4 convs, hidden, head) and 4 batch-norms: 6*3 + 4 = 22 roundings,
#           relative to the largest logit.
#   gradients: the forward's 22, the same 22 back along the path, 3 for the weight gradient's own
#           product: 47. Each gradient is a sum over the batch (240 images, times positions for a conv)
#           that cancels to less than its terms while the errors stay the terms' size; allowing it to
#           cancel to half doubles that: 94 roundings, relative to each tensor's largest entry.
# Measured here: 3.9 U_BF16 (logits), 24 to 27 (gradients) on AVX-512-BF16, AVX2 and SSE4.1 kernels, 1 or 2 threads.
U_BF16 = 2.0 ** -8
BF16_LOGITS = 22 * U_BF16
BF16_GRADIENTS = 2 * 47 * U_BF16
# Channels-last changes no rounding, only the order in which convolutions and batch-norm sum. In fp32
# (U_FP32 = 2^-24) a sum of n terms errs by at most (n - 1) * U_FP32 times the sum of their magnitudes in
# any order, so two orders differ by at most twice that. The sums on a logit's path at the picking task's
# width: the convs' 3x3 windows over 1, 39, 39 and 78 channels (9 + 351 + 351 + 702 terms), the hidden
# layer's 78 and the head's 156 inputs (1647 in all), and batch-norm's mean and variance, each over 240
# images times 64, 64, 16 and 4 positions (2 * 35520): fewer than 72687 terms in all, relative to the largest
# logit as above. Gradients are left to the decisions test: a near-tie in a max-pool, which another
# summation order may break the other way, sends one position's gradient elsewhere, a jump no rounding
# bound covers.
U_FP32 = 2.0 ** -24
CHANNELS_LAST_LOGITS = 2 * 72687 * U_FP32


def _picking_network():
    """A task learning its own weights and a piggymask over the first task's (width 1 inside 1.5)."""
    torch.manual_seed(0)
    network = build_network("digits_convnet", 1.5, mode="cpg")
    network.add_task("a", 2, width=1.0)
    network.add_task("b", 2)
    for layer in cpg_layers(network):
        layer.start_picking()
    return network


def _one_step(data_root, speed):
    """The logits and every gradient of one training step of the picking task on `speed`'s path, the
    whole digits_23 training set as its batch."""
    network = _picking_network()
    if speed.channels_last:
        network.to(memory_format=torch.channels_last)
    data = DeviceTaskData(get_benchmark("split_digits").load_task(data_root, "digits_23"), torch.device("cpu"), 1,
                          False, channels_last=speed.channels_last)
    logits = []
    network.register_forward_hook(lambda module, inputs, output: logits.append(output.detach().float()))
    loop = engine.TrainLoop(network, [], torch.device("cpu"), speed)  # no optimizer: the gradients stay
    loop.epoch(data, data.train_labels.numel(), data.generator(1))
    assert len(logits) == 1
    gradients = {name: param.grad for name, param in network.named_parameters() if param.grad is not None}
    return logits[0], gradients, network


def _relative_error(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def test_a_bf16_step_stays_within_bf16_rounding_of_fp32(data_root):
    exact_logits, exact_gradients, network = _one_step(data_root, Speed())
    logits, gradients, _ = _one_step(data_root, Speed(bf16=True))
    assert not torch.equal(logits, exact_logits)  # autocast did change the arithmetic
    assert _relative_error(logits, exact_logits) <= BF16_LOGITS
    assert gradients.keys() == exact_gradients.keys()
    assert sum("piggymask" in name for name in gradients) == len(cpg_layers(network))
    for name, gradient in gradients.items():
        assert _relative_error(gradient, exact_gradients[name]) <= BF16_GRADIENTS, name


def test_a_channels_last_step_stays_within_fp32_reordering_of_the_standard_layout(data_root):
    exact_logits, _, _ = _one_step(data_root, Speed())
    logits, _, network = _one_step(data_root, Speed(channels_last=True))
    weight = cpg_layers(network)[1].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert _relative_error(logits, exact_logits) <= CHANNELS_LAST_LOGITS


def _digits_network(seed: int = 0):
    torch.manual_seed(seed)
    network = build_network("digits_convnet", 1.0, mode="cpg")
    network.add_task("a", 2)
    return network


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
    (["--method", "supsup", "--bf16"], "is a flag of --method cpg"),
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


@pytest.mark.slow
@pytest.mark.gpu
def test_cuda_graph_takes_the_eager_paths_decisions(data_root, tmp_path):
    eager = _run_sequence(data_root, tmp_path / "eager", "cuda")
    _assert_same_decisions(_run_sequence(data_root, tmp_path / "graph", "cuda", "--cuda_graph"), eager)

"""Checkpoints written before the restructuring (format 1, kept in tests/fixtures/format1 with the
logits they gave then) still load: every stored tensor comes back bit for bit, and the logits agree with
the stored ones to within fp32 rounding (they were computed on another CPU, whose kernels may sum in
another order). Old tasks keeping their logits bit for bit through growth is checked within this process."""


import pytest
import torch

from tests.helpers import REPO
from unforget.utils.checkpoint import CheckpointError, load_checkpoint, network_from_checkpoint
from unforget.utils.methods.supsup.stages import load as load_supsup

FIXTURES = REPO / "tests" / "fixtures" / "format1"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "expected_logits.pt", weights_only=True)


def _stored(method: str) -> dict[str, torch.Tensor]:
    """The state tensors as the fixture's file holds them, read without the toolkit's loader."""
    return torch.load(FIXTURES / method / "checkpoint.pth", weights_only=True)["model"]


def _network(method: str, width: float | None = None):
    if method == "supsup":
        return load_supsup(FIXTURES / "supsup")[0]
    return network_from_checkpoint(load_checkpoint(FIXTURES / "cpg"), width=width)


def _logits(network, inputs: torch.Tensor, task: int) -> torch.Tensor:
    network.eval()
    network.set_task(task)
    with torch.no_grad():
        return network(inputs)


def rounding_tolerance(state: dict[str, torch.Tensor], logits: torch.Tensor) -> float:
    """How far two correct fp32 evaluations of the network may differ when their kernels order the sums
    differently (vector width, blocking, FMA). A sum of n products rounded in any order is within n*u of the
    exact sum relative to the products' magnitudes (u = eps/2, Higham's gamma_n), so two orders differ by
    at most n*eps of it. Each weight layer adds such an error relative to its outputs, and to first order
    each carries through to the logits at their own scale: L layers whose widest sum has n terms give
    L * n * eps * max|logit|. For the CPG fixture (7 weight matrices, widest sum 78*3*3 = 702 terms,
    logits up to 6) that is 3.5e-3; the two CPUs seen differ by 1e-6, while a wrong mask moves logits by
    4 or more and dropping one picked weight of an early layer by 0.02 to 0.2."""
    weights = [tensor for tensor in state.values() if tensor.is_floating_point() and tensor.dim() > 1]
    widest = max(weight[0].numel() for weight in weights)
    return len(weights) * widest * torch.finfo(torch.float32).eps * logits.abs().max().item()


@pytest.mark.parametrize("method, width", [("cpg", None), ("cpg", 2.0), ("supsup", None)])
def test_old_checkpoint_loads_every_stored_tensor_bit_for_bit(method, width):
    """Also restored at a wider width (as finetune does before a new task): the stored tensors fill the
    corner of the wider ones exactly."""
    state, stored = _network(method, width).state_dict(), _stored(method)
    assert set(state) == set(stored)
    for name, tensor in stored.items():
        corner = state[name][tuple(slice(0, size) for size in tensor.shape)]
        assert corner.dtype == tensor.dtype and torch.equal(corner, tensor), name


@pytest.mark.parametrize("method, task", [("cpg", 1), ("cpg", 2), ("supsup", 1), ("supsup", 2)])
def test_old_checkpoint_gives_the_stored_logits_within_fp32_rounding(expected, method, task):
    logits, stored = _logits(_network(method), expected["inputs"], task), expected[f"{method}_task{task}"]
    tolerance = rounding_tolerance(_stored(method), stored)
    assert logits.shape == stored.shape
    assert (logits - stored).abs().max().item() <= tolerance


def test_the_tolerance_is_far_below_what_a_wrong_mask_does(expected):
    """Task 2 of the CPG fixture computed with every old weight picked, or with none, is a real bug: its
    logits must miss the stored ones by far more than the rounding tolerance lets through."""
    tolerance = rounding_tolerance(_stored("cpg"), expected["cpg_task2"])
    for picks in (255, 0):
        payload = load_checkpoint(FIXTURES / "cpg")
        for name, tensor in payload["model"].items():
            if name.endswith(".pick_2"):
                tensor.fill_(picks)
        logits = _logits(network_from_checkpoint(payload), expected["inputs"], 2)
        assert (logits - expected["cpg_task2"]).abs().max().item() > 100 * tolerance, picks


def test_old_checkpoint_grows_without_changing_old_tasks(expected):
    """Restored at a wider width (as finetune does before a new task), old tasks keep their logits bit for
    bit: both computed here, by the same kernels."""
    before = [_logits(_network("cpg"), expected["inputs"], task) for task in (1, 2)]
    wider = _network("cpg", width=2.0)
    assert wider.width == 2.0
    for task, logits in zip((1, 2), before, strict=True):
        assert torch.equal(_logits(wider, expected["inputs"], task), logits), task


def test_a_checkpoint_rebuilt_for_other_data_is_refused_not_loaded_into_a_corner():
    """The SupSup fixture's network reads 8x8 images; rebuilt without its recorded input shape (28x28 by
    default) at the same width, its first layer would not fit: that is a bad checkpoint, not a growth."""
    from unforget.utils.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=r"\(300, 64\) does not fit the lenet_300_100 rebuilt from it \(300, 784"):
        network_from_checkpoint(load_checkpoint(FIXTURES / "supsup"))


def test_format_1_has_no_normalisation_so_the_api_asks_for_it(expected):
    """A format-1 checkpoint records no task data: the API refuses to guess, and with the mean and std given
    (what a run's data supplies) computes the network's logits on the normalised images."""
    from unforget.ready import load

    with pytest.raises(CheckpointError, match="records no normalisation"):
        load(FIXTURES / "cpg", 2)
    shape = (4, *expected["inputs"].shape[1:])
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = load(FIXTURES / "cpg", 2, normalisation=((0.3,), (0.4,)))
    mean, std = torch.tensor([0.3]).view(1, -1, 1, 1), torch.tensor([0.4]).view(1, -1, 1, 1)
    logits = _logits(_network("cpg"), images.float() * (1.0 / (255.0 * std)) + (-mean / std), 2)
    with torch.no_grad():
        assert torch.equal(model(images), logits)


def test_a_saved_checkpoint_records_what_using_it_needs_and_loads_alone(tmp_path):
    """Format 2: build options, image shape, the benchmark's identity (a spec by name and hash, no path) and the
    task records travel in checkpoint.pth; a format this toolkit does not know is refused."""
    from unforget.models import build_network
    from unforget.utils.checkpoint import save_checkpoint, task_record
    from unforget.utils.data.tasks import TaskData
    from unforget.utils.entry import parse_settings

    spec = tmp_path / "my_digits.json"
    spec.write_text('{"torchvision": "MNIST", "tasks": [{"name": "a", "classes": [0, 1]}]}')
    images = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    task = TaskData("a", ("x", "y"), images, torch.zeros(6, dtype=torch.long), images[:2],
                    torch.zeros(2, dtype=torch.long), (0.25,), (0.5,))
    network = build_network("lenet_300_100", 1.0, mode="plain", input_shape=(1, 8, 8), outputs=2)
    network.add_task("a", 2)
    settings = parse_settings(["--method", "supsup", "--mode", "finetune", "--benchmark", str(spec.resolve()),
                               "--arch", "lenet_300_100", "--dataset", "a", "--save_folder", str(tmp_path),
                               "--data_root", str(tmp_path)])
    save_checkpoint(tmp_path, network, "lenet_300_100", settings, {"input_shape": [1, 8, 8], "outputs": 2},
                    {"a": task_record(task, validation=1)})
    (tmp_path / "meta.json").unlink()
    payload = load_checkpoint(tmp_path)
    assert payload["format"] == 2 and payload["arch_options"] == {"input_shape": [1, 8, 8], "outputs": 2}
    assert payload["benchmark_identity"]["name"] == "my_digits" and str(tmp_path) not in str(
        {key: value for key, value in payload.items() if key != "model"})
    assert payload["task_data"]["a"] == {"classes": ["x", "y"], "image_shape": [1, 8, 8], "train": 6,
                                         "validation": 1, "test": 2, "mean": [0.25], "std": [0.5]}
    rebuilt = network_from_checkpoint(payload).state_dict()
    assert all(torch.equal(rebuilt[name], tensor) for name, tensor in network.state_dict().items())
    raw = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    torch.save({**raw, "format": 3}, tmp_path / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="unknown format 3"):
        load_checkpoint(tmp_path)

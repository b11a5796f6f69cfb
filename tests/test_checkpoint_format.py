"""Checkpoints written before the restructuring (format 1, kept in tests/fixtures/format1 with the
logits they gave then) still load and give the same logits, bit for bit."""

from pathlib import Path

import pytest
import torch

from utils.checkpoint import load_checkpoint, network_from_checkpoint
from utils.methods.supsup.stages import load as load_supsup

FIXTURES = Path(__file__).parent / "fixtures" / "format1"


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "expected_logits.pt", weights_only=True)


def _logits(network, inputs: torch.Tensor, task: int) -> torch.Tensor:
    network.eval()
    network.set_task(task)
    with torch.no_grad():
        return network(inputs)


@pytest.mark.parametrize("task", [1, 2])
def test_cpg_checkpoint_of_the_old_layout_gives_the_same_logits(expected, task):
    network = network_from_checkpoint(load_checkpoint(FIXTURES / "cpg"))
    assert torch.equal(_logits(network, expected["inputs"], task), expected[f"cpg_task{task}"])


@pytest.mark.parametrize("task", [1, 2])
def test_supsup_checkpoint_of_the_old_layout_gives_the_same_logits(expected, task):
    network, _ = load_supsup(FIXTURES / "supsup")
    assert torch.equal(_logits(network, expected["inputs"], task), expected[f"supsup_task{task}"])


def test_old_checkpoint_grows_without_changing_old_tasks(expected):
    """Restored at a wider width (as finetune does before a new task), old tasks keep their logits."""
    network = network_from_checkpoint(load_checkpoint(FIXTURES / "cpg"), width=2.0)
    for task in (1, 2):
        assert torch.equal(_logits(network, expected["inputs"], task), expected[f"cpg_task{task}"])


def test_a_checkpoint_rebuilt_for_other_data_is_refused_not_loaded_into_a_corner():
    """The SupSup fixture's network reads 8x8 images; rebuilt without its recorded input shape (28x28 by
    default) at the same width, its first layer would not fit: that is a bad checkpoint, not a growth."""
    from utils.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=r"\(300, 64\) does not fit the lenet_300_100 rebuilt from it \(300, 784"):
        network_from_checkpoint(load_checkpoint(FIXTURES / "supsup"))

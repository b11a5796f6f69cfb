"""Gradual pruning: the cubic schedule, exact per-layer sparsity, zeroed weights, other tasks untouched."""

import pytest
import torch

from unforget.models.layers.base import Geometry, TaskSpec
from unforget.models.layers.cpg import CPGWeights
from unforget.utils.methods.cpg.pruner import GradualPruner, cubic_sparsity, task_sparsity

TASK = TaskSpec("t", 2, 1.0)  # a task at width 1.0


def test_cubic_schedule_endpoints_and_midpoint():
    assert cubic_sparsity(0, 0, 100, 0.1, 0.5) == pytest.approx(0.1)
    assert cubic_sparsity(50, 0, 100, 0.1, 0.5) == pytest.approx(0.5 + (0.1 - 0.5) * 0.125)
    assert cubic_sparsity(500, 0, 100, 0.1, 0.5) == pytest.approx(0.5)


def _two_task_layer() -> CPGWeights:
    torch.manual_seed(0)
    layer = CPGWeights(Geometry(50, 40), 1.0, bias=False)
    torch.nn.init.normal_(layer.weight)
    layer.add_task(TASK)
    with torch.no_grad():
        layer.owner[10:] = 0  # task 1 keeps rows 0-9 ...
    layer.add_task(TASK)  # ... and task 2 takes the rest
    return layer


def test_prune_to_frees_the_share_of_the_pool_and_zeroes_it():
    layer = _two_task_layer()
    original = layer.weight.detach().clone()
    old = original[:10].clone()
    momentum = torch.ones_like(layer.weight)
    pruner = GradualPruner([layer], task=2, initial=0.0, target=0.5, frequency=1, begin=0, end=10,
                           momentum_of=lambda weight: momentum)
    pruner.prune_to(0.5)
    assert task_sparsity([layer], 2) == pytest.approx(0.5)
    freed = layer.owner == 0
    assert torch.all(layer.weight[freed] == 0) and torch.all(momentum[freed] == 0)
    assert torch.equal(layer.weight[:10], old) and torch.all(layer.owner[:10] == 1)
    survivors = layer.weight[layer.owner == 2].abs()
    assert original[freed].abs().max() <= survivors.min()


def test_steps_follow_frequency_within_the_interval():
    layer = _two_task_layer()
    pruner = GradualPruner([layer], task=2, initial=0.0, target=0.4, frequency=10, begin=0, end=31)
    updates = []
    for _ in range(60):
        before = pruner.last_update
        pruner.step()
        if pruner.last_update != before:
            updates.append(pruner.step_count)
    assert updates == [10, 20, 30, 31]
    assert task_sparsity([layer], 2) == pytest.approx(0.4)


def test_finish_reaches_the_target_when_the_stage_is_shorter_than_the_ramp():
    layer = _two_task_layer()
    pruner = GradualPruner([layer], task=2, initial=0.0, target=0.3, frequency=10, begin=0, end=100)
    for _ in range(5):
        pruner.step()
    assert task_sparsity([layer], 2) == 0.0
    pruner.finish()
    assert task_sparsity([layer], 2) == pytest.approx(0.3)

"""SupSup layer mode: straight-through gradients, exact top-k density, superposition over the bit stack."""

from __future__ import annotations

import pytest
import torch

from unforget.models.layers.base import Geometry, TaskSpec
from unforget.models.layers.per_task import TaskNonAffineBatchNorm2d
from unforget.models.layers.supsup import SupSupMask, SupSupWeights, set_alphas, store_masks, supsup_layers
from unforget.models.lenet import LeNet300100

TASK = TaskSpec("t", 2, 1.0)  # a task at width 1.0


def _layer(tasks: int, density: float | None = 0.3, shape=(6, 5, 3, 3)) -> SupSupWeights:
    torch.manual_seed(0)
    layer = SupSupWeights(Geometry(shape[1], shape[0], tuple(shape[2:])), 1.0, bias=False)
    layer.density = density
    for _ in range(tasks):
        layer.add_task(TASK)
        layer.store_masks()
    return layer


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.77])
def test_topk_mask_keeps_exactly_the_density(density):
    scores = torch.randn(37, 23)
    mask = SupSupMask.apply(scores, density)
    kept = scores.numel() - int((1 - density) * scores.numel())
    assert mask.sum().item() == kept
    assert scores.abs()[mask.bool()].min() >= scores.abs()[~mask.bool()].max()


@pytest.mark.parametrize("density", [0.3, None])
def test_straight_through_gradient_reaches_the_scores(density):
    layer = _layer(0, density)
    layer.add_task(TASK)
    scores = layer.scores["1"]
    upstream = torch.randn_like(layer.weight)
    (layer()[0] * upstream).sum().backward()
    expected = layer.weight * upstream
    if density is not None:
        expected = expected * scores.detach().sign()
    torch.testing.assert_close(scores.grad, expected)
    threshold_mask = (scores >= 0).float() if density is None else SupSupMask.apply(scores.detach(), density)
    torch.testing.assert_close(layer()[0].detach(), layer.weight * threshold_mask)


def test_stack_is_one_bit_per_weight_and_matches_the_masks():
    layer = _layer(0)
    layer.add_task(TASK)
    mask = layer.mask(1).detach().clone()
    layer.store_masks()
    assert layer.stack.dtype == torch.uint8 and layer.stack.shape == (1, -(-layer.weight.numel() // 8))
    assert len(layer.scores) == 0
    torch.testing.assert_close(layer.mask(1), mask)


@pytest.mark.parametrize("chunk", [SupSupWeights.CHUNK_ELEMENTS, 8 * 57])
def test_superposition_equals_the_explicit_weighted_sum_and_its_gradient(monkeypatch, chunk):
    monkeypatch.setattr(SupSupWeights, "CHUNK_ELEMENTS", chunk)  # a small chunk forces several passes
    layer = _layer(5)
    alphas = torch.rand(5, requires_grad=True)
    layer.alphas = alphas
    upstream = torch.randn_like(layer.weight)
    superposed = layer()[0]
    (superposed * upstream).sum().backward()
    explicit_alphas = alphas.detach().clone().requires_grad_()
    masks = torch.stack([layer.mask(t) for t in range(1, 6)])
    explicit = layer.weight * (explicit_alphas.view(-1, 1, 1, 1, 1) * masks).sum(0)
    (explicit * upstream).sum().backward()
    torch.testing.assert_close(superposed.detach(), explicit.detach())
    torch.testing.assert_close(alphas.grad, explicit_alphas.grad)


def test_weights_are_signed_constants_and_new_tasks_get_fresh_scores():
    layer = _layer(2, shape=(8, 4, 3, 3))
    assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, (2 / 36) ** 0.5))
    assert not layer.weight.requires_grad and "weight" in dict(layer.named_buffers())
    layer.add_task(TASK)
    assert list(layer.scores) == ["3"] and layer.num_tasks == 3


def test_per_task_batch_norm_keeps_each_tasks_statistics():
    norm = TaskNonAffineBatchNorm2d(3)
    norm.add_task(TASK)
    norm(torch.randn(16, 3, 4, 4) + 5.0)
    first = norm.per_task[0].running_mean.clone()
    norm.add_task(TASK)
    norm(torch.randn(16, 3, 4, 4) - 5.0)
    norm.set_task(1)
    assert torch.equal(norm.per_task[0].running_mean, first)
    assert not norm.per_task[0].affine


def test_lenet_2500_tasks_of_500_outputs_fit_in_100_mb_of_mask_stack():
    network = LeNet300100(input_shape=(1, 28, 28), outputs=500)
    network.add_task("a", 10)
    network.add_task("b", 10)
    store_masks(network)
    layers = supsup_layers(network)
    per_task = sum(layer.stack[0].numel() * layer.stack.element_size() for layer in layers)
    weights = sum(layer.weight.numel() for layer in layers)
    assert weights == 784 * 300 + 300 * 100 + 100 * 500
    assert all(layer.stack.shape[0] == 2 for layer in layers)
    assert per_task * 2500 <= 100e6, per_task * 2500


def test_network_superposition_with_one_hot_alphas_equals_the_task():
    network = LeNet300100(input_shape=(1, 8, 8), outputs=12)
    for name in "abc":
        network.add_task(name, 10)
    store_masks(network)
    images = torch.randn(4, 1, 8, 8)
    network.set_task(2)
    expected = network(images)
    set_alphas(network, torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(network(images), expected)

"""EWC's penalty, Fisher and consolidation, and LwF's distillation, as properties of the functions the stage
trains with."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from unforget.models import build_network
from unforget.models.layers.per_task import PerTask
from unforget.utils.methods.regularised import ewc, lwf

CHECKS = settings(max_examples=30, deadline=None, database=None)
SHAPES = {"a": (3, 2), "b": (4,)}


def _tensors(seed: int, scale: float = 1.0, positive: bool = False) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    drawn = {name: torch.randn(shape, generator=generator) * scale for name, shape in SHAPES.items()}
    return {name: value.abs() for name, value in drawn.items()} if positive else drawn


def _at(values: dict[str, torch.Tensor]) -> dict[str, nn.Parameter]:
    return {name: nn.Parameter(value.clone()) for name, value in values.items()}


@CHECKS
@given(seed=st.integers(0, 2**31), strength=st.floats(0.0, 1e4))
def test_the_penalty_is_zero_at_the_anchor(seed, strength):
    anchor = _tensors(seed)
    term = ewc.Term(anchor, _tensors(seed + 1, positive=True))
    assert ewc.penalty(_at(anchor), [term], strength).item() == 0.0


@CHECKS
@given(seed=st.integers(0, 2**31), step=st.floats(1e-3, 10.0), stretch=st.floats(1.01, 10.0))
def test_the_penalty_grows_with_the_distance_as_its_square(seed, step, stretch):
    anchor, direction = _tensors(seed), _tensors(seed + 1)
    term = ewc.Term(anchor, _tensors(seed + 2, positive=True))

    def along(t: float) -> float:
        moved = {name: anchor[name] + t * direction[name] for name in anchor}
        return ewc.penalty(_at(moved), [term], 3.0).item()

    near, far = along(step), along(step * stretch)
    assert 0 < near < far
    assert far == pytest.approx(near * stretch**2, rel=1e-4)


@CHECKS
@given(seed=st.integers(0, 2**31), step=st.floats(1e-2, 10.0), weight=st.floats(1e-3, 1e3))
def test_the_penalty_weighs_each_weight_by_its_fisher(seed, step, weight):
    """A move costs in proportion to the moved weight's Fisher: nothing where it is 0, and `weight` times more
    where the Fisher is `weight` times larger."""
    anchor = _tensors(seed)
    fisher = {name: torch.zeros(shape) for name, shape in SHAPES.items()}
    fisher["a"][0, 0], fisher["a"][1, 1] = 1.0, weight
    term = ewc.Term(anchor, fisher)

    def moving(index: tuple[int, int]) -> float:
        moved = {name: value.clone() for name, value in anchor.items()}
        moved["a"][index] += step
        return ewc.penalty(_at(moved), [term], 2.0).item()

    assert moving((2, 0)) == 0.0
    assert moving((0, 0)) == pytest.approx(step**2, rel=1e-3)  # float32 weights near 1 moved by 0.01
    assert moving((1, 1)) == pytest.approx(weight * step**2, rel=1e-3)


def test_every_old_term_holds_its_own_anchor():
    """Standard EWC sums a term per old task: the penalty is the sum of the terms' penalties."""
    anchors, fishers = [_tensors(1), _tensors(2)], [_tensors(3, positive=True), _tensors(4, positive=True)]
    terms = [ewc.Term(a, f) for a, f in zip(anchors, fishers, strict=True)]
    here = _at(_tensors(5))
    separate = sum(ewc.penalty(here, [term], 7.0).item() for term in terms)
    assert ewc.penalty(here, terms, 7.0).item() == pytest.approx(separate, rel=1e-6)


@CHECKS
@given(gamma=st.floats(1e-3, 1.0))
def test_online_ewc_keeps_one_decayed_term_at_the_latest_weights(gamma):
    first, second, third = (ewc.Term(_tensors(s), _tensors(s + 10, positive=True)) for s in (1, 2, 3))
    terms: list[ewc.Term] = []
    for term in (first, second, third):
        terms = ewc.consolidated(terms, term, online=True, gamma=gamma)
    (kept,) = terms
    assert all(torch.equal(kept.anchor[name], third.anchor[name]) for name in SHAPES)
    for name in SHAPES:
        expected = gamma * (gamma * first.fisher[name] + second.fisher[name]) + third.fisher[name]
        assert torch.allclose(kept.fisher[name], expected)
    assert len(ewc.consolidated([first, second], third, online=False, gamma=gamma)) == 3


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))


def test_the_fisher_is_the_mean_of_each_images_squared_gradient():
    """Per image, not per batch: the Fisher of a batch is the mean of its images' Fishers, and at least the
    square of the batch's mean gradient (what a batched estimate would hold instead)."""
    network = _tiny_net()
    parameters = dict(network.named_parameters())
    images, labels = torch.randn(6, 4), torch.tensor([0, 1, 1, 0, 1, 0])
    whole = ewc.diagonal_fisher(network, parameters, images, labels)
    parts = [ewc.diagonal_fisher(network, parameters, images[i:i + 1], labels[i:i + 1]) for i in range(6)]
    loss = F.cross_entropy(network(images), labels)
    batch_gradients = dict(zip(parameters, torch.autograd.grad(loss, list(parameters.values())), strict=True))
    for name in parameters:
        assert torch.allclose(whole[name], torch.stack([part[name] for part in parts]).mean(0), atol=1e-7)
        assert (whole[name] >= batch_gradients[name].square() - 1e-7).all()
    assert any((whole[name] > batch_gradients[name].square() + 1e-6).any() for name in parameters)


@CHECKS
@given(seed=st.integers(0, 2**31), temperature=st.floats(0.05, 20.0), scale=st.floats(0.0, 30.0))
def test_distillation_is_zero_when_the_outputs_are_the_recorded_ones(seed, temperature, scale):
    recorded = torch.randn(5, 3, generator=torch.Generator().manual_seed(seed)) * scale
    assert lwf.distillation(recorded.clone(), recorded, temperature).item() == 0.0


@CHECKS
@given(seed=st.integers(0, 2**31), temperature=st.floats(0.5, 5.0))
def test_distillation_is_positive_otherwise_with_the_papers_gradient(seed, temperature):
    """Any other outputs cost more than nothing, and the gradient is that of the paper's cross-entropy with
    the recorded softened outputs (the two losses differ by a constant)."""
    generator = torch.Generator().manual_seed(seed)
    recorded, logits = torch.randn(5, 3, generator=generator) * 3, torch.randn(5, 3, generator=generator) * 3
    ours = logits.clone().requires_grad_(True)
    papers = logits.clone().requires_grad_(True)
    loss = lwf.distillation(ours, recorded, temperature)
    target = F.softmax(recorded / temperature, 1)
    cross_entropy = -(target * F.log_softmax(papers / temperature, 1)).sum(1).mean()
    loss.backward()
    cross_entropy.backward()
    assert loss.item() > 0
    assert ours.grad is not None and papers.grad is not None
    assert torch.allclose(ours.grad, papers.grad, atol=1e-6)
    assert math.isclose(loss.item(), cross_entropy.item() + (target * target.log()).sum(1).mean().item(),
                        rel_tol=1e-4, abs_tol=1e-6)


def test_old_task_logits_leave_old_statistics_and_the_active_task_alone():
    network = build_network("digits_convnet", 1.0, mode="plain")
    for name in ("a", "b", "c"):
        network.add_task(name, 2)
    network.train()
    norms = [m for m in network.modules() if isinstance(m, PerTask) and m is not network.heads]
    before = [[bn.running_mean.clone() for bn in module.per_task] for module in norms]
    images = torch.randn(8, 1, 8, 8)
    outputs = lwf.old_task_logits(network, images, [1, 2])
    assert network.active_task == 3 and [tuple(o.shape) for o in outputs] == [(8, 2), (8, 2)]
    after = [[bn.running_mean for bn in module.per_task] for module in norms]
    for old, new in zip(before, after, strict=True):
        assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])
    network.eval()
    for task, output in zip((1, 2), outputs, strict=True):
        network.set_task(task)
        assert torch.equal(network(images), output)

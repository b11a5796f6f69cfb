"""The WSN layer mode: over any sequence of tasks (architecture, capacities, class counts, data), every old task's
logits stay bit-identical while later tasks train, its mask keeps exactly the top-c share of each layer, and the
masks survive a checkpoint as 1 bit per weight per task."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unforget.models import build_network
from unforget.models.layers.wsn import set_capacity, store_masks, wsn_layers
from unforget.utils.engine import cross_entropy
from unforget.utils.methods.wsn.costs import entropy_bits, huffman_bits, mask_cost
from unforget.utils.optim import Adam

ARCHS = {"digits_convnet": ({}, (1, 8, 8)), "lenet_300_100": ({"input_shape": (1, 4, 4)}, (1, 4, 4))}
PROPERTY = settings(max_examples=8, deadline=None, database=None)


def _learn(network, task: int, classes: int, images: torch.Tensor, generator: torch.Generator, steps: int) -> None:
    """A few Adam steps on random labels, as the finetune stage trains (the task's parameters only)."""
    optimizer = Adam(network.task_parameters(task), lr=1e-2)
    network.train()
    for _ in range(steps):
        labels = torch.randint(0, classes, (images.shape[0],), generator=generator)
        loss = cross_entropy(network(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    store_masks(network)


def _logits(network, task: int, images: torch.Tensor) -> torch.Tensor:
    network.set_task(task)
    network.eval()
    with torch.no_grad():
        return network(images)


tasks = st.lists(st.tuples(st.floats(0.05, 1.0), st.integers(2, 5)), min_size=2, max_size=4)


@PROPERTY
@given(arch=st.sampled_from(sorted(ARCHS)), sequence=tasks, seed=st.integers(0, 2**16))
def test_old_tasks_stay_bit_identical_and_masks_keep_the_top_share(arch, sequence, seed):
    torch.manual_seed(seed)
    options, shape = ARCHS[arch]
    network = build_network(arch, 1.0, mode="wsn", **options)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(16, *shape, generator=generator)
    learned = {}
    for index, (capacity, classes) in enumerate(sequence, start=1):
        task = network.add_task(f"t{index}", classes)
        set_capacity(network, capacity)
        _learn(network, task, classes, images, generator, steps=3)
        for layer in wsn_layers(network):
            kept = int(layer.mask(task).sum())
            assert kept == layer.weight.numel() - int((1.0 - capacity) * layer.weight.numel())
        learned[task] = _logits(network, task, images)
        for old in range(1, task):
            assert torch.equal(_logits(network, old, images), learned[old]), (old, task)
    copy = build_network(arch, 1.0, network.tasks, mode="wsn", **options)
    copy.load_state_dict(network.state_dict())
    for task, logits in learned.items():
        assert torch.equal(_logits(copy, task, images), logits)


def test_masks_are_stored_as_one_bit_per_weight_per_task():
    network = build_network("lenet_300_100", 1.0, mode="wsn", input_shape=(1, 4, 4))
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, 1, 4, 4, generator=generator)
    for index in range(1, 4):
        network.add_task(f"t{index}", 2)
        _learn(network, index, 2, images, generator, steps=1)
    state = network.state_dict()
    for name, layer in zip([n for n in state if n.endswith(".weights.masks")], wsn_layers(network), strict=True):
        assert state[name].dtype == torch.uint8
        assert tuple(state[name].shape) == (3, math.ceil(layer.weight.numel() / 8))
    assert mask_cost(network)["mask_bits_per_weight_per_task"] == 1.0


def test_a_used_weight_gets_no_gradient_and_a_free_one_in_the_mask_does():
    """The new task starts from the last task's scores, hence its mask; scores drawn afresh here make its mask
    hold free weights too."""
    network = build_network("lenet_300_100", 1.0, mode="wsn", input_shape=(1, 4, 4))
    images = torch.randn(8, 1, 4, 4)
    network.add_task("t1", 2)
    _learn(network, 1, 2, images, torch.Generator().manual_seed(0), steps=1)
    network.add_task("t2", 2)
    layer = wsn_layers(network)[0]
    with torch.no_grad():
        layer.scores.uniform_(-1.0, 1.0)
    network.zero_grad(set_to_none=True)
    network.train()
    cross_entropy(network(images), torch.zeros(8, dtype=torch.long)).backward()
    used, live = layer.mask(1), layer.live_mask().bool()
    assert (layer.weight.grad[used] == 0).all()
    assert (layer.weight.grad[live & ~used] != 0).any()


@given(counts=st.lists(st.integers(1, 10**6), min_size=1, max_size=64))
def test_the_huffman_length_lies_within_one_bit_per_symbol_of_the_entropy(counts):
    total, bound, coded = sum(counts), entropy_bits(counts), huffman_bits(counts)
    assert bound - 1e-6 * total <= coded <= bound + total

"""The shared layers' CPG mode: effective weight, frozen old weights, picking, growth."""

import pytest
import torch

from unforget.models import build_network
from unforget.models.layers.base import Geometry, SharedConv2d, TaskSpec, copy_into_corner, pack_bits, unpack_bits
from unforget.models.layers.cpg import Binarizer, CPGWeights
from unforget.utils.checkpoint import network_from_checkpoint

TASK = TaskSpec("t", 2, 1.0)  # a task at width 1.0


def test_binarizer_thresholds_and_passes_gradient_straight_through():
    mask = torch.tensor([0.0, 0.004, 0.006, 1.0], requires_grad=True)
    out = Binarizer.apply(mask, 5e-3)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]
    out.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mask.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def _layer_with_two_tasks() -> CPGWeights:
    layer = CPGWeights(Geometry(3, 4), 1.0, bias=True)
    torch.nn.init.normal_(layer.weight)
    layer.add_task(TASK)
    with torch.no_grad():
        layer.owner[:2] = 0  # task 1 pruned its first two rows
    layer.add_task(TASK)
    layer.start_picking()
    return layer


def test_effective_weight_is_own_plus_picked_old_weights():
    layer = _layer_with_two_tasks()
    with torch.no_grad():
        layer.piggymask[2:, :2] = 0.0  # task 2 drops some of task 1's weights
    weight, bias = layer()
    picked = (layer.owner == 1) & (layer.piggymask > 5e-3)
    expected = torch.where((layer.owner == 2) | picked, layer.weight, torch.zeros(()))
    assert torch.equal(weight, expected)
    assert bias.shape == (4,)


def test_old_weights_get_no_gradient_but_the_piggymask_does():
    layer = _layer_with_two_tasks()
    weight, _ = layer()
    weight.sum().backward()
    assert torch.all(layer.weight.grad[layer.owner == 1] == 0)
    assert torch.all(layer.weight.grad[layer.owner == 2] == 1)
    assert torch.all(layer.piggymask.grad[layer.owner == 2] == 0)
    assert torch.equal(layer.piggymask.grad[layer.owner == 1], layer.weight[layer.owner == 1].detach())


def test_learned_picks_are_stored_as_bits_and_give_the_same_weight():
    layer = _layer_with_two_tasks()
    with torch.no_grad():
        layer.piggymask[3] = 0.0
    before, _ = layer()
    layer.add_task(TASK)
    assert layer.pick_2.dtype == torch.uint8 and layer.pick_2.numel() == (4 * 3 + 7) // 8
    layer.set_task(2)
    after, _ = layer()
    assert torch.equal(before, after)


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (3, 5, 2)])
def test_bit_packing_round_trips(shape):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(1)) > 0.5
    assert torch.equal(unpack_bits(pack_bits(mask), shape), mask)


def test_copy_into_corner_keeps_the_rest():
    wide = torch.full((3, 4), 7.0)
    copy_into_corner(wide, torch.ones(2, 2))
    assert wide[:2, :2].eq(1).all() and wide[2:].eq(7).all() and wide[:, 2:].eq(7).all()


def test_conv_widths_follow_the_square_root_of_the_multiplier():
    conv = SharedConv2d(64, 64, 3, width=1.5)
    assert conv.weights.weight.shape == (78, 78, 3, 3)
    first = SharedConv2d(3, 64, 3, width=1.5, scale_in=False)
    assert first.weights.weight.shape == (78, 3, 3, 3)


def test_each_task_runs_at_its_own_width_after_growth():
    torch.manual_seed(0)
    narrow = build_network("digits_convnet", 1.0)
    narrow.add_task("a", 2)
    narrow.eval()
    x = torch.randn(5, 1, 8, 8)
    before = narrow(x)
    payload = {"arch": "digits_convnet", "mode": "cpg", "width": 1.0, "tasks": narrow.tasks,
               "model": narrow.state_dict()}
    wide = network_from_checkpoint(payload, 1.5)
    assert wide.features[0].weights.weight.shape[0] > narrow.features[0].weights.weight.shape[0]
    wide.add_task("b", 2)
    wide.set_task(1)
    wide.eval()
    assert torch.equal(wide(x), before)


def test_ownership_holds_more_than_255_tasks():
    """uint8 owners overflowed at task 256; they widen once a network holds that many tasks."""
    layer = CPGWeights(Geometry(20, 20), 1.0, bias=False, learn_picks=False)
    torch.nn.init.normal_(layer.weight)
    tasks = 300
    for task in range(1, tasks + 1):
        layer.add_task(TASK)
        with torch.no_grad():  # every task keeps one weight and frees the rest for the next
            mine = layer.owner.flatten() == task
            mine[task - 1] = False
            layer.owner.view(-1)[mine] = 0
    assert layer.owner.flatten()[:tasks].tolist() == list(range(1, tasks + 1))
    layer.set_task(tasks)
    own, old = layer.multipliers()
    assert own.sum() == 1 and old.sum() == tasks - 1

"""Subspace layers and their math: mixing at given coefficients, the regulariser, BN recalibration, ECE."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.layers.base import SharedConv2d, SharedLinear
from unforget.models.layers.subspace import SubspaceBatchNorm2d
from unforget.utils.methods.subspace.points import (
    PointSampler,
    expected_calibration_error,
    mean_squared_cosine,
    point_coefficients,
    recalibrate_bn,
    sample_coefficients,
    squared_cosine,
    vertex_gram,
)


def conv(mode: str) -> SharedConv2d:
    torch.manual_seed(0)
    return SharedConv2d(2, 3, 3, padding=1, mode=mode)


def mixed(layer: SharedConv2d, coeffs: torch.Tensor) -> torch.Tensor:
    layer.weights.coeffs = coeffs
    return layer.weights()[0]


def test_line_weight_is_the_hand_combination():
    layer = conv("line")
    w0, w1 = layer.weights.weight
    alpha = 0.3
    expected = 0.7 * w0 + 0.3 * w1
    torch.testing.assert_close(mixed(layer, point_coefficients("line", 2, torch.tensor(alpha))), expected)
    x = torch.randn(4, 2, 5, 5)
    torch.testing.assert_close(layer(x), F.conv2d(x, expected, None, 1, 1))


def test_curve_weight_is_the_quadratic_bezier_with_control_point_at_index_2():
    layer = conv("curve")
    start, end, control = layer.weights.weight
    alpha = 0.2
    expected = 0.8 ** 2 * start + 2 * 0.2 * 0.8 * control + 0.2 ** 2 * end
    torch.testing.assert_close(mixed(layer, point_coefficients("curve", 3, torch.tensor(alpha))), expected)
    midpoint = mixed(layer, point_coefficients("curve", 3, torch.tensor(0.5)))
    torch.testing.assert_close(midpoint, 0.25 * start + 0.5 * control + 0.25 * end)
    torch.testing.assert_close(mixed(layer, point_coefficients("curve", 3, torch.tensor(1.0))), end)


def test_simplex_weight_is_the_barycentric_combination():
    layer = conv("simplex4")
    w = layer.weights.weight
    t = torch.tensor([0.1, 0.2, 0.3])
    expected = (1 - t.sum()) * w[0] + t[0] * w[1] + t[1] * w[2] + t[2] * w[3]
    torch.testing.assert_close(mixed(layer, torch.cat([1 - t.sum().view(1), t])), expected)
    edge = mixed(layer, point_coefficients("simplex", 4, torch.tensor(0.25)))
    torch.testing.assert_close(edge, 0.75 * w[0] + 0.25 * w[1])


def test_vertices_are_independent_draws_and_coefficients_stay_out_of_the_state_dict():
    layer = SharedLinear(6, 5, mode="line", bias=True)
    w0, w1 = layer.weights.weight
    assert not torch.equal(w0, w1)
    assert set(layer.state_dict()) == {"weights.weight", "weights.bias"}
    assert "coeffs" not in SubspaceBatchNorm2d(4, 2).state_dict()


def test_batch_norm_interpolates_the_affine_parameters_only():
    norm = SubspaceBatchNorm2d(3, 2).eval()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
        norm.bias.copy_(torch.tensor([[0.0, 1.0, 0.0], [2.0, -1.0, 4.0]]))
        norm.running_mean.copy_(torch.tensor([0.5, -0.5, 1.0]))
        norm.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    norm.coeffs = torch.tensor([0.75, 0.25])
    x = torch.randn(2, 3, 4, 4)
    gamma = torch.tensor([1.5, 2.0, 2.5]).view(1, 3, 1, 1)
    beta = torch.tensor([0.5, 0.5, 1.0]).view(1, 3, 1, 1)
    mean, var = norm.running_mean.view(1, 3, 1, 1), norm.running_var.view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + 1e-5) * gamma + beta)


def test_regulariser_is_the_squared_cosine_over_all_layers_together():
    torch.manual_seed(1)
    layers = [SharedConv2d(2, 3, 3, mode="simplex3").weights, SharedLinear(4, 5, mode="simplex3").weights]
    for i, j in ((0, 1), (0, 2), (1, 2)):
        dot = sum((layer.weight[i] * layer.weight[j]).sum() for layer in layers)
        norm_i = sum((layer.weight[i] ** 2).sum() for layer in layers)
        norm_j = sum((layer.weight[j] ** 2).sum() for layer in layers)
        expected = dot ** 2 / (norm_i * norm_j)
        torch.testing.assert_close(squared_cosine(vertex_gram(layers), i, j), expected)
    gram = vertex_gram(layers)
    pairs = [squared_cosine(gram, i, j) for i, j in ((0, 1), (0, 2), (1, 2))]
    torch.testing.assert_close(mean_squared_cosine(gram), torch.stack(pairs).mean())
    with torch.no_grad():
        for layer in layers:
            layer.weight[1].copy_(-2 * layer.weight[0])
    torch.testing.assert_close(squared_cosine(vertex_gram(layers), 0, 1), torch.tensor(1.0))


def batch_stats(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = net[0](images)
    return out.mean((0, 2, 3)), out.var((0, 2, 3), unbiased=True)


def test_bn_recalibration_resets_and_recomputes_statistics_at_the_point():
    torch.manual_seed(2)
    net = nn.Sequential(SharedConv2d(1, 4, 3, mode="line"), SubspaceBatchNorm2d(4, 2))
    norm = net[1]
    batches = [(torch.randn(8, 1, 6, 6), None), (torch.randn(5, 1, 6, 6) + 1.0, None)]

    def calibrate_at(alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        coeffs = point_coefficients("line", 2, torch.tensor(alpha))
        net[0].weights.coeffs = norm.coeffs = coeffs
        with torch.no_grad():
            norm.running_mean.fill_(7.0)
            norm.running_var.fill_(9.0)
            norm.num_batches_tracked.fill_(99)
        recalibrate_bn(net, [norm], batches)
        with torch.no_grad():
            stats = [batch_stats(net, images) for images, _ in batches]
        expected_mean = (stats[0][0] + stats[1][0]) / 2
        expected_var = (stats[0][1] + stats[1][1]) / 2
        torch.testing.assert_close(norm.running_mean, expected_mean)
        torch.testing.assert_close(norm.running_var, expected_var)
        assert int(norm.num_batches_tracked) == 2 and norm.momentum == 0.1 and not net.training
        return norm.running_mean.clone(), norm.running_var.clone()

    (start_mean, _), (end_mean, _) = calibrate_at(0.1), calibrate_at(0.9)
    assert not torch.allclose(start_mean, end_mean, atol=1e-3)


def test_sampled_points_are_valid_and_layerwise_points_differ():
    generator = torch.Generator().manual_seed(0)
    simplex = sample_coefficients("simplex", 5, 1000, generator, torch.device("cpu"))
    assert (simplex >= 0).all()
    torch.testing.assert_close(simplex.sum(1), torch.ones(1000))
    torch.testing.assert_close(simplex.mean(0), torch.full((5,), 0.2), atol=0.02, rtol=0)
    from unforget.models import build_network

    network = build_network("subspace_convnet", 1.0, mode="curve")
    network.add_task("digits10", 10)
    for layerwise in (False, True):
        sampler = PointSampler(network, layerwise, generator)
        sampler(torch.randn(2, 1, 8, 8))
        rows = torch.stack([module.coeffs for module in sampler.subspace.modules])
        assert rows.shape == (10, 3)
        torch.testing.assert_close(rows.sum(1), torch.ones(10))
        assert torch.allclose(rows, rows[0]) != layerwise


def test_ece_with_20_bins_matches_a_hand_count():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.92, 0.08]]))
    labels = torch.tensor([0, 0, 1])
    # bin (0.85, 0.9]: |1 - 0.9|; bin (0.65, 0.7]: |0 - 0.7|; bin (0.9, 0.95]: |0 - 0.92|
    assert expected_calibration_error(logits, labels) == pytest.approx((0.1 + 0.7 + 0.92) / 3, abs=1e-6)


def test_label_noise_relabels_a_fixed_fraction():
    from unforget.utils.data.tasks import TaskData
    from unforget.utils.methods.subspace.stages import with_label_noise

    labels = torch.arange(200) % 10
    task = TaskData("t", tuple("abcdefghij"), torch.zeros(200, 1, 2, 2, dtype=torch.uint8), labels, labels[:0],
                    labels[:0], (0.0,), (1.0,))
    noisy = with_label_noise(task, 0.5, seed=3)
    changed = (noisy.train_labels != labels).sum().item()
    assert 70 <= changed <= 100  # 100 relabelled, about 1 in 10 keeps its label by chance
    assert torch.equal(noisy.train_labels, with_label_noise(task, 0.5, seed=3).train_labels)
    assert torch.equal(task.train_labels, labels)

"""Points of a subspace of networks: mixing coefficients, sampling, the vertex regulariser, BN recalibration.

A point is a coefficient vector over the S stacked vertices of every subspace
layer (`models.layers.subspace`). Lines and curves
are indexed by alpha in [0, 1]; a simplex by barycentric coordinates, and its
alpha sweep runs along the edge from vertex 0 to vertex 1.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.layers.subspace import SUBSPACE_MODES, SubspaceBatchNorm2d, SubspaceWeights
from unforget.models.network import TaskNetwork

BN_MOMENTUM = 0.1


def kind_of(mode: str) -> str:
    """line, curve or simplex, from a weight mode such as simplex4."""
    if mode not in SUBSPACE_MODES:
        raise ValueError(f"{mode!r} is not a subspace mode")
    return "simplex" if mode.startswith("simplex") else mode


def point_coefficients(kind: str, vertices: int, alpha: torch.Tensor) -> torch.Tensor:
    """Coefficients [..., S] at `alpha`: line (1-a, a); quadratic Bezier ((1-a)^2, a^2, 2a(1-a)) with the
    endpoint at index 1 and the control point at index 2; simplex: the edge (1-a, a, 0, ...)."""
    if kind == "line":
        return torch.stack([1 - alpha, alpha], -1)
    if kind == "curve":
        return torch.stack([(1 - alpha) ** 2, alpha ** 2, 2 * alpha * (1 - alpha)], -1)
    edge = torch.stack([1 - alpha, alpha], -1)
    return F.pad(edge, (0, vertices - 2))


def centre_coefficients(kind: str, vertices: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The midpoint of a line or curve (alpha 0.5), the centroid of a simplex."""
    if kind == "simplex":
        return torch.full((vertices,), 1.0 / vertices, device=device)
    return point_coefficients(kind, vertices, torch.tensor(0.5, device=device))


def sample_coefficients(kind: str, vertices: int, count: int, generator: torch.Generator,
                        device: torch.device) -> torch.Tensor:
    """`count` random points [count, S]: alpha ~ U(0, 1), or a uniform Dirichlet for a simplex."""
    if kind == "simplex":
        draws = torch.empty(count, vertices, device=device).exponential_(generator=generator)
        return draws / draws.sum(1, keepdim=True)
    return point_coefficients(kind, vertices, torch.rand(count, generator=generator, device=device))


def vertex_gram(layers: Iterable[SubspaceWeights]) -> torch.Tensor:
    """Inner products [S, S] between the vertices' conv/linear weights, all layers concatenated."""
    return reduce(operator.add, (flat @ flat.T for flat in (layer.weight.flatten(1) for layer in layers)))


def squared_cosine(gram: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """cos^2 between vertices i and j: <w_i, w_j>^2 / (|w_i|^2 |w_j|^2) (the paper's Eq. 3 regulariser)."""
    return gram[i, j] ** 2 / (gram[i, i] * gram[j, j])


def mean_squared_cosine(gram: torch.Tensor) -> torch.Tensor:
    """cos^2 averaged over all vertex pairs."""
    norms = gram.diagonal()
    cos2 = gram ** 2 / (norms[:, None] * norms[None, :])
    upper = torch.triu_indices(gram.shape[0], gram.shape[1], offset=1)
    return cos2[upper[0], upper[1]].mean()


@dataclass
class Subspace:
    """The subspace layers of one network and its shape (kind, vertex count)."""

    kind: str
    vertices: int
    weights: list[SubspaceWeights]
    norms: list[SubspaceBatchNorm2d]

    @classmethod
    def of(cls, network: TaskNetwork) -> Subspace:
        return cls(kind_of(network.mode), SUBSPACE_MODES[network.mode],
                   [m for m in network.modules() if isinstance(m, SubspaceWeights)],
                   [m for m in network.modules() if isinstance(m, SubspaceBatchNorm2d)])

    @property
    def modules(self) -> list[nn.Module]:
        return [*self.weights, *self.norms]

    def set_point(self, coeffs: torch.Tensor) -> None:
        """Put every layer at the point `coeffs` [S], or each layer at its own row of [layers, S]."""
        rows = coeffs.expand(len(self.modules), -1) if coeffs.dim() == 1 else coeffs
        for module, row in zip(self.modules, rows, strict=True):
            module.coeffs = row

    def at_alpha(self, alpha: float, device: torch.device) -> torch.Tensor:
        return point_coefficients(self.kind, self.vertices, torch.tensor(alpha, device=device))


class PointSampler(nn.Module):
    """Wraps the network for training: each forward first moves it to a random point of the subspace,
    one for the whole network or, `layerwise`, one per layer."""

    def __init__(self, network: TaskNetwork, layerwise: bool, generator: torch.Generator):
        super().__init__()
        self.network = network
        self.subspace = Subspace.of(network)
        self.layerwise, self.generator = layerwise, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = len(self.subspace.modules) if self.layerwise else 1
        coeffs = sample_coefficients(self.subspace.kind, self.subspace.vertices, count, self.generator, x.device)
        self.subspace.set_point(coeffs if self.layerwise else coeffs[0])
        return self.network(x)


@torch.no_grad()
def recalibrate_bn(network: nn.Module, norms: list[SubspaceBatchNorm2d],
                   batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Reset the shared running statistics and recompute them at the network's current point as the
    equal-weight average over `batches` (SWA's update_bn), then leave the network in eval mode."""
    for norm in norms:
        norm.reset_running_stats()
    network.train()
    for seen, (images, _) in enumerate(batches):
        for norm in norms:
            norm.momentum = 1.0 / (seen + 1)
        network(images)
    for norm in norms:
        norm.momentum = BN_MOMENTUM
    network.eval()


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 20) -> float:
    """ECE over `bins` equal-width confidence bins: sum over bins of |correct - confidence| / N."""
    confidence, predicted = logits.float().softmax(1).max(1)
    correct = (predicted == labels).float()
    index = (confidence * bins).ceil().long().clamp_(1, bins) - 1
    gap = torch.zeros(bins, device=logits.device).index_add_(0, index, correct - confidence)
    return gap.abs().sum().item() / labels.numel()

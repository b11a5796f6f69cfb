"""Rebuilding the teacher layer by layer from clustered students, then fine-tuning it.

Hidden layer l is clustered from students trained on top of layers 0..l-1 as already rebuilt
(one shared copy that trains with them), so every layer is clustered from students that see the
same inputs (the published code clustered a stale copy of the first students for every layer, so
only one hidden layer worked). Each cluster becomes one neuron: the mean of its members in the best-ranked student
that has any (winner takes all), with their outgoing weights summed. The output layer comes
from those outgoing weights; for ReLU a linear skip theta, fitted by least squares, absorbs
the linear terms of neurons recovered with flipped sign. Then everything is fine-tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.students import StudentsMLP
from utils.methods.extract.clustering import cluster_neurons
from utils.methods.extract.symmetry import SYMMETRIES, Canonical, canonicalise
from utils.methods.extract.training import TrainSettings, train_students

TOP_STUDENTS = 5  # clusters take their neuron from the best of the five lowest-loss students


class ExtractionFailed(Exception):
    """No cluster survived in some layer: the students disagree (train longer, or lower gamma)."""


@dataclass
class RebuiltLayer:
    """One rebuilt hidden layer: weight [K, in], bias [K], merged outgoing weights [K, next]."""

    weight: torch.Tensor
    bias: torch.Tensor
    outgoing: torch.Tensor

    @property
    def size(self) -> int:
        return self.weight.shape[0]


def neuron_table(students: StudentsMLP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hidden layer of every student, pooled student-major: incoming [w; b] [N*h, in+1],
    outgoing [N*h, next] and the student of each row."""
    weight, bias = (t.detach().cpu().double() for t in students.weights(0))
    after = students.weights(1)[0].detach().cpu().double()
    n, h, _ = weight.shape
    vectors = torch.cat([weight, bias.unsqueeze(-1)], -1).reshape(n * h, -1).numpy()
    outgoing = after.transpose(1, 2).reshape(n * h, -1).numpy()
    return vectors, outgoing, np.repeat(np.arange(n), h)


def collapse(clusters: list[np.ndarray], canonical: Canonical, student_of: np.ndarray, losses: np.ndarray,
             activation: str) -> RebuiltLayer:
    """One neuron per cluster from the best-ranked of the top students that has members in it; for
    ReLU only the members with the cluster's majority sign count (w and -w would cancel)."""
    ranked = np.argsort(losses)[:TOP_STUDENTS]
    rows, outs = [], []
    for members in clusters:
        orientation = 1.0
        if SYMMETRIES[activation] == "even_linear_positive_scaling":
            orientation = 1.0 if canonical.signs[members].sum() >= 0 else -1.0
            members = members[canonical.signs[members] == orientation]
        chosen = next((s for s in ranked if np.any(student_of[members] == s)), None)
        if chosen is None:
            continue
        own = members[student_of[members] == chosen]
        rows.append(canonical.vectors[own].mean(0) * orientation)
        outs.append(canonical.outgoing[own].sum(0))
    if not rows:
        raise ExtractionFailed("no cluster has a member among the best students")
    rows_t = torch.tensor(np.array(rows), dtype=torch.float32)
    return RebuiltLayer(rows_t[:, :-1], rows_t[:, -1], torch.tensor(np.array(outs), dtype=torch.float32))


def rebuild_layer(students: StudentsMLP, losses: torch.Tensor, activation: str, gamma: float,
                  beta: float) -> RebuiltLayer:
    """Cluster the students' first hidden layer and collapse the clusters into one layer."""
    vectors, outgoing, student_of = neuron_table(students)
    canonical = canonicalise(vectors, outgoing, activation)
    clusters = cluster_neurons(canonical.vectors, students.students, gamma, beta)
    if not clusters:
        raise ExtractionFailed("no cluster of at least gamma*N students survived the filters")
    return collapse(clusters, canonical, student_of, losses.detach().cpu().numpy(), activation)


def assemble(layers: list[RebuiltLayer], output_bias: torch.Tensor, activation: str, x: torch.Tensor,
             y: torch.Tensor) -> StudentsMLP:
    """The rebuilt network (N = 1): hidden layers, output weights from the last layer's merged
    outgoing weights, then theta (ReLU) or the output bias (tanh) fitted to the residual."""
    sizes = [layers[0].weight.shape[1], *(layer.size for layer in layers), layers[-1].outgoing.shape[1]]
    skip = SYMMETRIES[activation] == "even_linear_positive_scaling"
    network = StudentsMLP(sizes, 1, activation, skip=skip).to(x.device)
    with torch.no_grad():
        for index, layer in enumerate(layers):
            network.weights(index)[0].copy_(layer.weight.unsqueeze(0))
            network.weights(index)[1].copy_(layer.bias.unsqueeze(0))
        network.weights(len(layers))[0].copy_(layers[-1].outgoing.T.unsqueeze(0))
        network.weights(len(layers))[1].copy_(output_bias.reshape(1, -1))
        residual = y - network(x)[0]
        if skip:
            design = torch.cat([x, torch.ones(len(x), 1, device=x.device)], 1).double()
            network.theta.copy_(torch.linalg.lstsq(design, residual.double()).solution.float().unsqueeze(0))
        else:
            network.weights(len(layers))[1].add_(residual.mean(0))
    return network


class OnRebuilt(nn.Module):
    """Students on top of the layers rebuilt so far. Those layers are one copy shared by every student
    and train with them: each student needs exactly the teacher's activity there to fit, so the shared
    copy is pulled towards it, while every student sees the same inputs and their next layer can be
    clustered coherently. Output [N, B, out] like the students'."""

    def __init__(self, layers: list[RebuiltLayer], students: StudentsMLP):
        super().__init__()
        self.students = students
        self.weights = nn.ParameterList([nn.Parameter(layer.weight.clone()) for layer in layers])
        self.biases = nn.ParameterList([nn.Parameter(layer.bias.clone()) for layer in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for weight, bias in zip(self.weights, self.biases, strict=True):
            x = self.students.act(x @ weight.T + bias)
        return self.students(x)

    def rebuilt(self, layers: list[RebuiltLayer]) -> list[RebuiltLayer]:
        """`layers` with the trained weights and biases (outgoing weights unchanged)."""
        return [RebuiltLayer(weight.detach().clone(), bias.detach().clone(), layer.outgoing)
                for weight, bias, layer in zip(self.weights, self.biases, layers, strict=True)]


def extract(first: StudentsMLP, first_losses: torch.Tensor, student_widths: list[int], x: torch.Tensor,
            y: torch.Tensor, activation: str, gamma: float, beta: float,
            later_students: Callable[[int, OnRebuilt], tuple[OnRebuilt, torch.Tensor]],
            ) -> tuple[list[RebuiltLayer], StudentsMLP]:
    """Rebuild every hidden layer in turn; `later_students(l, model)` trains (or reloads) the students of
    layer l > 0 on top of the layers rebuilt below (see `OnRebuilt`). Returns the layers and the
    assembled, not yet fine-tuned, network."""
    layers: list[RebuiltLayer] = []
    students, losses = first, first_losses
    for index in range(len(student_widths)):
        if index > 0:
            fresh = StudentsMLP([layers[-1].size, *student_widths[index:], y.shape[1]], first.students, activation)
            model, losses = later_students(index, OnRebuilt(layers, fresh).to(x.device))
            layers, students = model.rebuilt(layers), model.students
        layers.append(rebuild_layer(students, losses, activation, gamma, beta))
    best = int(torch.argmin(losses))
    output_bias = students.weights(len(students.layers) - 1)[1][best].detach()
    return layers, assemble(layers, output_bias, activation, x, y)


def fine_tune(network: StudentsMLP, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
              report: Callable[..., None] | None = None) -> float:
    """Train every parameter of the rebuilt network (theta included); returns its final training loss."""
    return float(train_students(network, x, y, settings, report)[0])

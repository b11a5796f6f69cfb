"""Rebuilding the teacher layer by layer from clustered students, then fine-tuning it.

Hidden layer l is clustered from students trained on top of layers 0..l-1 as already rebuilt
and kept fixed, so every layer is clustered from students that see the
same inputs (the published code clustered a stale copy of the first students for every layer, so
only one hidden layer worked). Each cluster becomes one neuron: the mean direction of its members in the best students.
The output layer is fitted by least squares on the rebuilt hidden layers, for ReLU together with a
linear skip theta that absorbs the linear terms of neurons recovered with flipped sign. Then
everything is fine-tuned, with a recovery check that keeps the fine-tune from losing neurons.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unforget.models.students import StudentsMLP
from unforget.utils.board import Board
from unforget.utils.methods.extract.clustering import cluster_neurons
from unforget.utils.methods.extract.inputs import InputMask
from unforget.utils.methods.extract.symmetry import SYMMETRIES, Canonical, canonicalise
from unforget.utils.methods.extract.training import TrainSettings, evaluate, train_students

TOP_STUDENTS = 5  # clusters take their neuron from the best of the five lowest-loss students


class ExtractionFailed(Exception):
    """No cluster survived in some layer: the students disagree (train longer, or lower gamma)."""


@dataclass
class RebuiltLayer:
    """One rebuilt hidden layer: weight [K, in] and bias [K]."""

    weight: torch.Tensor
    bias: torch.Tensor

    @property
    def size(self) -> int:
        return self.weight.shape[0]


def neuron_table(students: StudentsMLP, mask: InputMask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hidden layer of every student, pooled student-major: incoming [w; b] folded by `mask`
    [N*h, varying inputs + 1], outgoing [N*h, next] and the student of each row."""
    weight, bias = (t.detach().cpu().double().numpy() for t in students.weights(0))
    after = students.weights(1)[0].detach().cpu().double()
    n, h, _ = weight.shape
    vectors = mask.fold(weight, bias).reshape(n * h, -1)
    outgoing = after.transpose(1, 2).reshape(n * h, -1).numpy()
    return vectors, outgoing, np.repeat(np.arange(n), h)


def collapse(clusters: list[np.ndarray], canonical: Canonical, student_of: np.ndarray, losses: np.ndarray,
             activation: str, mask: InputMask | None = None) -> RebuiltLayer:
    """One neuron per cluster: the mean direction of its members in the top (lowest-loss) students
    (their errors are independent, so averaging cancels them, where one student's copy can be off;
    for ReLU it takes the sign most members have); a cluster without such members is dropped. Rows
    are in `mask`'s folded form (see `InputMask`), unfolded into the layer's weight and bias."""
    ranked = np.argsort(losses)[:TOP_STUDENTS]
    rows = []
    for members in clusters:
        best = members[np.isin(student_of[members], ranked)]
        if len(best) == 0:
            continue
        orientation = 1.0
        if SYMMETRIES[activation] == "even_linear_positive_scaling":
            orientation = 1.0 if canonical.signs[members].sum() >= 0 else -1.0
        direction = canonical.vectors[best].mean(0)
        rows.append(direction / np.linalg.norm(direction) * orientation)
    if not rows:
        raise ExtractionFailed("no cluster has a member among the best students")
    mask = mask or InputMask.everything(len(rows[0]) - 1)
    weight, bias = (torch.tensor(t, dtype=torch.float32) for t in mask.unfold(np.array(rows)))
    return RebuiltLayer(weight, bias)


def rebuild_layer(students: StudentsMLP, losses: torch.Tensor, activation: str, gamma: float,
                  beta: float, mask: InputMask) -> RebuiltLayer:
    """Cluster the students' first hidden layer (inputs folded by `mask`) and collapse the clusters
    into one layer."""
    vectors, outgoing, student_of = neuron_table(students, mask)
    canonical = canonicalise(vectors, outgoing, activation)
    clusters = cluster_neurons(canonical.vectors, students.students, gamma, beta)
    if not clusters:
        raise ExtractionFailed("no cluster of at least gamma*N students survived the filters")
    return collapse(clusters, canonical, student_of, losses.detach().cpu().numpy(), activation, mask)


def assemble(layers: list[RebuiltLayer], outputs: int, activation: str, x: torch.Tensor,
             y: torch.Tensor) -> StudentsMLP:
    """The rebuilt network (N = 1): the hidden layers, then the output layer that fits `y` best by least
    squares on the last hidden layer's activity, for ReLU together with theta (the skip from that
    layer's input, which also carries the output bias)."""
    sizes = [layers[0].weight.shape[1], *(layer.size for layer in layers), outputs]
    skip = SYMMETRIES[activation] == "even_linear_positive_scaling"
    network = StudentsMLP(sizes, 1, activation, skip=skip).to(x.device)
    with torch.no_grad():
        for index, layer in enumerate(layers):
            network.weights(index)[0].copy_(layer.weight.unsqueeze(0))
            network.weights(index)[1].copy_(layer.bias.unsqueeze(0))
        below = network.below_last(x).reshape(len(x), -1)
        last = network.act(network.layers[-2](below)).reshape(len(x), -1)
        ones = torch.ones(len(x), 1, device=x.device)
        design = torch.cat([last, below, ones] if skip else [last, ones], 1).double()
        solution = torch.linalg.lstsq(design, y.double(), driver="gelsd").solution.float()
        network.weights(len(layers))[0].copy_(solution[:layers[-1].size].T.unsqueeze(0))
        if network.theta is not None:  # skip
            network.weights(len(layers))[1].zero_()
            network.theta.copy_(solution[layers[-1].size:].unsqueeze(0))
        else:
            network.weights(len(layers))[1].copy_(solution[-1:])
    return network


class OnRebuilt(nn.Module):
    """Students on top of the layers rebuilt so far, which stay fixed (buffers, one copy shared by every
    student): each student sees the same inputs, so their next layer can be clustered coherently, and
    what was recovered below cannot drift while it is found. Output [N, B, out] like the students'."""

    def __init__(self, layers: list[RebuiltLayer], students: StudentsMLP):
        super().__init__()
        self.students = students
        self.depth = len(layers)
        for index, layer in enumerate(layers):
            self.register_buffer(f"weight_{index}", layer.weight.clone())
            self.register_buffer(f"bias_{index}", layer.bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.depth):
            x = self.students.act(x @ getattr(self, f"weight_{index}").T + getattr(self, f"bias_{index}"))
        return self.students(x)


def extract(first: StudentsMLP, first_losses: torch.Tensor, student_widths: list[int], x: torch.Tensor,
            y: torch.Tensor, activation: str, gamma: float, beta: float, mask: InputMask,
            later_students: Callable[[int, OnRebuilt], tuple[OnRebuilt, torch.Tensor]],
            ) -> tuple[list[RebuiltLayer], StudentsMLP]:
    """Rebuild every hidden layer in turn, the first compared on `mask`'s inputs; `later_students(l,
    model)` trains (or reloads) the students of layer l > 0 on top of the layers rebuilt below, kept
    fixed (see `OnRebuilt`). Returns the layers and the assembled, not yet fine-tuned, network."""
    layers: list[RebuiltLayer] = []
    students, losses = first, first_losses
    for index in range(len(student_widths)):
        if index > 0:
            fresh = StudentsMLP([layers[-1].size, *student_widths[index:], y.shape[1]], first.students, activation)
            model, losses = later_students(index, OnRebuilt(layers, fresh).to(x.device))
            students = model.students
        layer_mask = mask if index == 0 else InputMask.everything(layers[-1].size)
        layers.append(rebuild_layer(students, losses, activation, gamma, beta, layer_mask))
    return layers, assemble(layers, y.shape[1], activation, x, y)


@dataclass
class Tuned:
    """The fine-tune's outcome: final training loss, the epoch whose weights were kept (the last one
    unless the recovery check reverted) and the recovered count there."""

    loss: float
    kept_epoch: int
    recovered: int | None


def fine_tune(network: StudentsMLP, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
              report: Callable[..., object] | None = None, recovered: Callable[[StudentsMLP], int] | None = None,
              check_every: int = 100, board: Board | None = None) -> Tuned:
    """Train every parameter of the rebuilt network (theta included). With `recovered` (how many teacher
    neurons a network has recovered), check every `check_every` epochs and keep the latest weights
    with the most recovered neurons: fine-tuning lowers the loss, but where a neuron is missing it can
    pull recovered ones away to compensate, and then it is reverted."""
    if recovered is None:
        return Tuned(float(train_students(network, x, y, settings, report, board=board)[0]), settings.epochs, None)
    best_count, best_epoch, best_state = recovered(network), 0, copy.deepcopy(network.state_dict())
    last_epoch = [0]

    def check(epoch: int) -> None:
        nonlocal best_count, best_epoch, best_state
        last_epoch[0] = epoch
        if epoch % check_every == 0:
            count = recovered(network)
            if count >= best_count:
                best_count, best_epoch, best_state = count, epoch, copy.deepcopy(network.state_dict())

    trained = train_students(network, x, y, settings, report, on_epoch=check, board=board)
    last = recovered(network)
    if last >= best_count:
        return Tuned(float(trained[0]), last_epoch[0], last)
    network.load_state_dict(best_state)
    return Tuned(float(evaluate(network, x, y)[0]), best_epoch, best_count)

"""HAT mode (Serra et al. 2018, Hard Attention to the Task): one weight and bias every task trains, and per
task a unit embedding e_t whose gate a_t = sigmoid(s * e_t) scales the layer's output units.

The gate multiplies the rows of the weight and the bias, a * (W x + b): after a ReLU (and max-pooling) that
is the paper's masked activation a * relu(W x + b), since a >= 0; the gradients to W, b and e are the same.
Training anneals s per batch (the method sets `scale`); evaluation, and every checkpoint read later, gates
at `s_max` (a buffer, so a checkpoint carries it). `cumulative` holds the union (elementwise max) of the
gates at s_max of every task but the newest: the attention of the tasks learned before the one that
trains, which the method's gradient conditioning and sparsity regulariser read. HAT's networks have no
batch-norm (the paper's AlexNet and MLP have none): a normalisation after the gate would undo it.
"""

from __future__ import annotations

import torch
from torch import nn

from unforget.models.layers.base import Geometry, LayerMode, TaskSpec, WeightMode, register, weight_modes
from unforget.models.layers.per_task import head_per_task

S_MAX = 400.0
"""the paper's s_max (chosen by grid search over 25..800); the method sets its --hat_smax on a new network"""


class HATWeights(WeightMode):
    """A trainable weight and bias gated per output unit by the active task's attention."""

    embeddings: nn.ParameterList
    cumulative: torch.Tensor
    s_max: torch.Tensor

    def __init__(self, geometry: Geometry, width: float, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(geometry.shape(width)))
        self.bias = nn.Parameter(torch.zeros(self.weight.shape[0])) if bias else None
        self.embeddings = nn.ParameterList()
        self.register_buffer("cumulative", torch.zeros(self.weight.shape[0]))
        self.register_buffer("s_max", torch.tensor(S_MAX))
        self.positions = geometry.positions
        self.scale: float | None = None
        """the annealed s of the training step (None: s_max); evaluation always gates at s_max"""
        self.attention: torch.Tensor | None = None
        """the gate of the last forward, which the sparsity regulariser reads"""
        self.active_task = 0

    def gate(self, task: int, scale: float | None = None) -> torch.Tensor:
        """a_t = sigmoid(s e_t) over the output units (s_max unless `scale`)."""
        s = self.s_max if scale is None else scale
        return torch.sigmoid(s * self.embeddings[task - 1])

    @torch.no_grad()
    def add_task(self, spec: TaskSpec) -> None:
        """Fold every stored task's gate into `cumulative`, then draw the new task's embedding from N(0, 1)
        (torch.nn.Embedding's initialisation, as the reference), on the CPU so it is the same everywhere."""
        union = torch.zeros_like(self.cumulative)
        for task in range(1, len(self.embeddings) + 1):
            union = torch.maximum(union, self.gate(task))
        self.cumulative.copy_(union)
        self.embeddings.append(nn.Parameter(torch.randn(self.weight.shape[0]).to(self.weight)))

    def restore_task(self, spec: TaskSpec) -> None:
        """Room for a stored task's embedding (the checkpoint fills it in, and `cumulative`)."""
        self.embeddings.append(nn.Parameter(self.weight.new_empty(self.weight.shape[0])))

    def set_task(self, task: int) -> None:
        self.active_task = task

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """The shared weight and bias (the method's gradient conditioning protects what earlier tasks use)
        and the task's own embedding, never another task's."""
        shared = [self.weight] if self.bias is None else [self.weight, self.bias]
        return [*shared, self.embeddings[task - 1]]

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        scale = self.scale if self.training else None
        attention = self.gate(self.active_task, scale)
        self.attention = attention
        rows = attention.view(-1, *(1,) * (self.weight.dim() - 1))
        return self.weight * rows, None if self.bias is None else self.bias * attention


def hat_layers(network: nn.Module) -> list[HATWeights]:
    """Every HAT layer of `network`, in module order (the body's layers in the order they compute)."""
    return weight_modes(network, HATWeights)


def no_batch_norm(channels: int, width: float) -> nn.Module:
    """HAT's `LayerMode.norm`: nothing, so that the gate is not normalised away."""
    return nn.Identity()


register(LayerMode("hat", HATWeights, no_batch_norm, head_per_task))

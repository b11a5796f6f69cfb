"""HAT's training hooks around the shared engine: the annealed gate scale, the sparsity regulariser in the
loss, then between backward and the step the gradient conditioning (weights that earlier tasks use), the
embedding gradient compensation and the norm clip, and after the step the embedding clamp.

The conditioning factors depend only on the earlier tasks' cumulative attention, which is fixed while a
task trains, so they are computed once per task (`Conditioning`), not every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from unforget.models.layers.hat import HATWeights

CLIP_EPSILON = 1e-6
"""added to the gradient norm before dividing (torch.nn.utils.clip_grad_norm_'s)"""


@dataclass
class Annealing:
    """The gate's scale s for each training batch: from 1/s_max at an epoch's first batch up towards s_max,
    linear in the share of the epoch's images seen before the batch (the reference's schedule)."""

    layers: list[HATWeights]
    s_max: float
    batch_size: int
    images: int
    """training images per epoch"""
    batch: int = 0

    @property
    def scale(self) -> float:
        seen = min(self.batch * self.batch_size, self.images)
        return (self.s_max - 1.0 / self.s_max) * seen / self.images + 1.0 / self.s_max

    def start_epoch(self) -> None:
        self.batch = 0
        self._apply()

    def next_batch(self) -> None:
        self.batch += 1
        self._apply()

    def _apply(self) -> None:
        for layer in self.layers:
            layer.scale = self.scale

    def finish(self) -> None:
        """Gate at s_max from now on (the layers do so in eval mode anyway)."""
        for layer in self.layers:
            layer.scale = None


def conditioning_factors(layers: list[HATWeights]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Per layer, what its weight's and bias's gradients are multiplied by: 1 - min(a_out, a_in) for the weight
    from input unit j to output unit i, with a the cumulative attention of the earlier tasks (the first layer
    reads the image, whose inputs have no attention: 1 - a_out), and 1 - a_out for the bias. A weight between
    two units that earlier tasks fully use gets no gradient at all; one from an input unit they leave unused
    may change, since those tasks never see that input."""
    factors: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    previous: HATWeights | None = None
    for layer in layers:
        trailing = (1,) * (layer.weight.dim() - 2)
        post = layer.cumulative.view(-1, 1, *trailing)
        used = post.expand_as(layer.weight)
        if previous is not None:
            pre = previous.cumulative.repeat_interleave(layer.positions)  # a flattened map: each channel's positions
            if pre.numel() != layer.weight.shape[1]:
                raise ValueError(f"a HAT layer reads {layer.weight.shape[1]} inputs but follows one of "
                                 f"{pre.numel()} units x {layer.positions} positions: not a chain")
            used = torch.minimum(used, pre.view(1, -1, *trailing))
        factors.append((1.0 - used, None if layer.bias is None else 1.0 - layer.cumulative))
        previous = layer
    return factors


@dataclass
class Conditioning:
    """HAT's steps between backward and the optimizer (the engine's `before_step`) and after it (`after_step`)."""

    layers: list[HATWeights]
    task: int
    annealing: Annealing
    clip: float
    thres_cosh: float
    thres_emb: float
    parameters: list[torch.nn.Parameter]
    """every parameter the task trains (the norm clip's)"""
    factors: list[tuple[torch.Tensor, torch.Tensor | None]] = field(init=False)

    def __post_init__(self) -> None:
        self.factors = conditioning_factors(self.layers)

    @torch.no_grad()
    def before_step(self) -> None:
        for layer, (weight_factor, bias_factor) in zip(self.layers, self.factors, strict=True):
            if layer.weight.grad is not None:
                layer.weight.grad.mul_(weight_factor)
            if layer.bias is not None and layer.bias.grad is not None and bias_factor is not None:
                layer.bias.grad.mul_(bias_factor)
            self._compensate(layer.embeddings[self.task - 1])
        self._clip()

    def _compensate(self, embedding: torch.nn.Parameter) -> None:
        """The annealing shrinks the gate's gradient at small s and the clamp flattens it at large s: scaling it
        by s_max [cosh(s e) + 1] / (s [cosh(e) + 1]) gives the embedding the gradient it would get at s_max
        with the sigmoid's slope at s = 1 (the paper's compensation, with s e clamped to +-thres_cosh)."""
        if embedding.grad is None:
            return
        s, s_max = self.annealing.scale, self.annealing.s_max
        numerator = torch.cosh(torch.clamp(s * embedding, -self.thres_cosh, self.thres_cosh)) + 1.0
        embedding.grad.mul_(s_max / s * numerator / (torch.cosh(embedding) + 1.0))

    def _clip(self) -> None:
        grads = [param.grad for param in self.parameters if param.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grad) for grad in grads]))
        coefficient = torch.clamp(self.clip / (norm + CLIP_EPSILON), max=1.0)
        for grad in grads:
            grad.mul_(coefficient)

    @torch.no_grad()
    def after_step(self) -> None:
        for layer in self.layers:
            layer.embeddings[self.task - 1].clamp_(-self.thres_emb, self.thres_emb)
        self.annealing.next_batch()


def sparsity(layers: list[HATWeights]) -> torch.Tensor:
    """The attention-sparsity regulariser: the summed attention of the last forward on the units earlier
    tasks left free (weighted by 1 - their cumulative attention), per such unit. With every unit taken it
    is 0."""
    zero = layers[0].cumulative.new_zeros(())
    used = sum(((layer.attention * (1.0 - layer.cumulative)).sum() for layer in layers if layer.attention is not None),
               start=zero)
    free = sum(((1.0 - layer.cumulative).sum() for layer in layers), start=zero)
    return torch.where(free > 0, used / free.clamp(min=torch.finfo(free.dtype).tiny), zero)


def hat_loss(layers: list[HATWeights], c: float):
    """The engine's `loss`: cross-entropy plus c times the sparsity regulariser of the same forward."""
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels) + c * sparsity(layers)
    return loss

"""Gradual magnitude pruning of the current task's weights (Zhu & Gupta's cubic schedule).

The candidates of a layer are the weights the current task owns plus the free
ones (so sparsity is the free share of the task's pool). Their count does not
change while a task is pruned, so it is read once; every cutoff is a
`kthvalue` on the device over |w| with non-candidates set to +inf (on a host copy
in the plain path, as the reference did), and pruned weights (and their momentum)
are zeroed at once. Under torchrun rank 0's choice is broadcast, so every rank prunes alike.
"""

from __future__ import annotations

import torch

from unforget.models.layers.cpg import CPGWeights
from unforget.utils.distributed import agree


def cubic_sparsity(step: int, begin: int, end: int, initial: float, target: float) -> float:
    """s = s_t + (s_i - s_t) * (1 - p)^3 with p the clipped progress from `begin` to `end`."""
    progress = min(max((step - begin) / max(end - begin, 1), 0.0), 1.0)
    return target + (initial - target) * (1.0 - progress) ** 3


class GradualPruner:
    """Prunes every `frequency` steps between `begin` and `end` (steps counted after each update),
    and at `end` itself, so the stage ends at its target sparsity (the reference's last update fell
    short of `end`); `finish` prunes to the target when a stage is shorter than its ramp."""

    def __init__(self, layers: list[CPGWeights], task: int, initial: float, target: float, frequency: int,
                 begin: int, end: int, momentum_of=None, on_device: bool = True):
        self.layers, self.task = layers, task
        self.on_device = on_device
        self.initial, self.target = initial, target
        self.frequency, self.begin, self.end = frequency, begin, end
        self.momentum_of = momentum_of
        self.step_count = 0
        self.last_update = begin
        self.applied = initial
        self.candidates = [self._candidate_mask(layer) for layer in layers]
        self.pool_sizes = [int(mask.sum().item()) for mask in self.candidates]

    def _candidate_mask(self, layer: CPGWeights) -> torch.Tensor:
        return (layer.owner == self.task) | (layer.owner == 0)

    def step(self) -> None:
        """Call after every optimizer step."""
        self.step_count += 1
        step = self.step_count
        if self.begin <= step <= self.end and (step >= self.last_update + self.frequency or step == self.end):
            self.last_update = step
            self.prune_to(cubic_sparsity(step, self.begin, self.end, self.initial, self.target))

    def finish(self) -> None:
        """Reach the target if the stage ended before the ramp did."""
        if self.applied < self.target:
            self.prune_to(self.target)

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Free the smallest weights of each layer's pool up to `sparsity`; under torchrun every rank
        prunes the weights rank 0 chose."""
        self.applied = sparsity
        layers, chosen = [], []
        for layer, candidates, pool in zip(self.layers, self.candidates, self.pool_sizes, strict=True):
            rank = round(sparsity * pool)
            if rank < 1:
                continue
            magnitude = torch.where(candidates, layer.weight.abs(), torch.full_like(layer.weight, float("inf")))
            flat = magnitude.flatten() if self.on_device else magnitude.flatten().cpu()
            cutoff = flat.kthvalue(rank).values.to(magnitude.device)
            layers.append(layer)
            chosen.append((layer.owner == self.task) & (magnitude <= cutoff))
        for layer, pruned in zip(layers, agree(chosen), strict=True):
            layer.owner.masked_fill_(pruned, 0)
            layer.weight.masked_fill_(pruned, 0.0)
            momentum = self.momentum_of(layer.weight) if self.momentum_of else None
            if momentum is not None:
                momentum.masked_fill_(pruned, 0.0)
            layer.masks_changed()


def task_sparsity(layers: list[CPGWeights], task: int) -> float:
    """Free share of the task's pool: #free / #(owned by task or free)."""
    free = sum(int((layer.owner == 0).sum()) for layer in layers)
    pool = free + sum(int((layer.owner == task).sum()) for layer in layers)
    return free / pool if pool else 0.0


def owned_fraction(layers: list[CPGWeights], task: int) -> float:
    """Share of all shared weights owned by `task`."""
    total = sum(layer.owner.numel() for layer in layers)
    return sum(int((layer.owner == task).sum()) for layer in layers) / total if total else 0.0

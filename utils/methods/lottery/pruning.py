"""Masks of the lottery method: the prunable layers, magnitude pruning (global or layerwise), the
random-mask control and the sparsity report.

The network is built in the packnet layer mode with one task: a weight computes where its `owner`
is 1 (task 1 owns it) and is pruned where it is 0. So the forward pass multiplies by the mask, no
gradient reaches a pruned weight, and its stored value is kept at zero. Only the body's conv and
linear weights are pruned; biases, batch-norm and the task head stay dense.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unforget.models.layers.cpg import CPGWeights

KEPT = 1
"""the owner value of a kept weight: the one task's id"""


def prunable_layers(network: nn.Module) -> dict[str, CPGWeights]:
    """The masked weight modes by module name (stable across checkpoints of the same architecture)."""
    return {name: module for name, module in network.named_modules() if isinstance(module, CPGWeights)}


def read_masks(network: nn.Module) -> dict[str, torch.Tensor]:
    """Each prunable layer's mask (True: kept)."""
    return {name: layer.owner == KEPT for name, layer in prunable_layers(network).items()}


@torch.no_grad()
def apply_masks(network: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Keep exactly the weights `masks` marks, and set every other weight to zero."""
    layers = prunable_layers(network)
    if set(layers) != set(masks):
        raise ValueError(f"masks name {sorted(masks)[:3]}..., the network's layers are {sorted(layers)[:3]}...")
    for name, layer in layers.items():
        mask = masks[name].to(layer.weight.device)
        if mask.shape != layer.weight.shape:
            raise ValueError(f"mask of {name} has shape {tuple(mask.shape)}, the weight {tuple(layer.weight.shape)}")
        layer.owner.copy_(mask.to(layer.owner.dtype) * KEPT)
        layer.weight.masked_fill_(~mask, 0.0)
        layer.invalidate()


def _prune_group(weights: list[torch.Tensor], masks: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Drop ceil(fraction * remaining) of the remaining weights of the group, smallest magnitude first
    (ties in the order of the flattened weights), as OpenLTH counts."""
    scores = torch.cat([torch.where(mask, weight.abs(), torch.inf).flatten()
                        for weight, mask in zip(weights, masks, strict=True)])
    kept = torch.cat([mask.flatten() for mask in masks])
    count = math.ceil(fraction * int(kept.sum()))
    kept[torch.sort(scores, stable=True).indices[:count]] = False
    return [part.view_as(mask) for part, mask in zip(kept.split([m.numel() for m in masks]), masks, strict=True)]


@torch.no_grad()
def magnitude_masks(network: nn.Module, fraction: float, scope: str) -> dict[str, torch.Tensor]:
    """The next level's masks: the network's current masks less `fraction` of their remaining weights
    by magnitude, ranked over all prunable layers together (global) or within each layer (layerwise)."""
    layers, masks = prunable_layers(network), read_masks(network)
    names = list(layers)
    if scope == "global":
        pruned = _prune_group([layers[name].weight for name in names], [masks[name] for name in names], fraction)
        return dict(zip(names, pruned, strict=True))
    if scope == "layerwise":
        return {name: _prune_group([layers[name].weight], [masks[name]], fraction)[0] for name in names}
    raise ValueError(f"unknown pruning scope {scope!r}")


def random_masks(masks: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Masks keeping as many weights per layer as `masks`, at uniformly random places."""
    chosen = {}
    for name, mask in masks.items():
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[torch.randperm(mask.numel(), generator=generator)[: int(mask.sum())]] = True
        chosen[name] = flat.view(mask.shape).to(mask.device)
    return chosen


def sparsity_report(masks: dict[str, torch.Tensor]) -> dict:
    """OpenLTH's {total, unpruned} over the prunable weights, with the sparsity and each layer's counts."""
    layers = {name: {"total": mask.numel(), "unpruned": int(mask.sum())} for name, mask in masks.items()}
    total = sum(layer["total"] for layer in layers.values())
    unpruned = sum(layer["unpruned"] for layer in layers.values())
    return {"total": total, "unpruned": unpruned, "sparsity": round(1 - unpruned / total, 6), "layers": layers}

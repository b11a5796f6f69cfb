"""SupSup task inference: which learned mask fits an input, from the gradient of an objective with
respect to the mixing weights alpha of the superposed masks (paper section 3).

One-shot takes argmin_i dObj/dalpha_i at uniform alpha (one Frank-Wolfe step); binary search
halves the candidates per step, keeping the half with the smallest gradients. Objectives: H, the
output entropy, and G, the logsumexp of the superfluous neurons (the first `real` logits detached).
Candidates are the learned tasks only. Per-image one-shot on fully connected nets computes every
image's gradient in one batched pass (d obj_n / d alpha_i = delta_n^T (W * M_i) x_n per layer).
"""

from __future__ import annotations

import torch

from unforget.models.layers.base import SharedLinear
from unforget.models.layers.supsup import SupSupWeights, set_alphas, supsup_layers
from unforget.models.network import TaskNetwork

IMAGES_PER_PASS = 256


def objective(logits: torch.Tensor, kind: str, real: int) -> torch.Tensor:
    """Per-image objective [N]: 'h' softmax entropy, 'g' logsumexp with the real logits detached."""
    if kind == "h":
        log_p = logits.log_softmax(1)
        return -(log_p.exp() * log_p).sum(1)
    return torch.cat([logits[:, :real].detach(), logits[:, real:]], 1).logsumexp(1)


def _num_tasks(network: TaskNetwork) -> int:
    return supsup_layers(network)[0].num_tasks


def alpha_gradient(network: TaskNetwork, images: torch.Tensor, kind: str, real: int,
                   alive: torch.Tensor | None = None) -> torch.Tensor:
    """dObj/dalpha [T] of the batch's mean objective, alpha uniform over `alive` (default all)."""
    count = _num_tasks(network)
    alive = torch.ones(count, dtype=torch.bool, device=images.device) if alive is None else alive
    alphas = (alive.float() / alive.sum()).requires_grad_()
    set_alphas(network, alphas)
    try:
        (grad,) = torch.autograd.grad(objective(network(images), kind, real).mean(), alphas)
    finally:
        set_alphas(network, None)
    return grad


def per_image_alpha_gradients(network: TaskNetwork, images: torch.Tensor, kind: str, real: int) -> torch.Tensor:
    """dObj_n/dalpha [N, T] for every image alone, at uniform alpha, from one forward and backward."""
    layers = [m for m in network.modules() if isinstance(m, SharedLinear) and isinstance(m.weights, SupSupWeights)]
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, inputs, output: captured.append((inputs[0], output)))
             for m in layers]
    count = _num_tasks(network)
    set_alphas(network, torch.full((count,), 1.0 / count, device=images.device, requires_grad=True))
    try:
        obj = objective(network(images), kind, real).sum()
        deltas = torch.autograd.grad(obj, [output for _, output in captured])
    finally:
        set_alphas(network, None)
        for hook in hooks:
            hook.remove()
    grads = images.new_zeros(len(images), count)
    for (inputs, _), delta, module in zip(captured, deltas, layers, strict=True):
        weights = module.weights
        if not isinstance(weights, SupSupWeights):  # never: `layers` holds SupSup layers alone
            raise TypeError(f"{type(weights).__name__} is not a SupSup layer's weights")
        for start, masks in weights.mask_chunks(inputs.dtype):
            outputs = torch.einsum("nk,cok->cno", inputs.detach(), masks * weights.weight)
            grads[:, start:start + len(masks)] += (outputs * delta).sum(-1).T
    return grads


def binary_search(network: TaskNetwork, images: torch.Tensor, kind: str, real: int) -> torch.Tensor:
    """The task the batch belongs to: keep the ceil(half) smallest gradients until one is left."""
    count = _num_tasks(network)
    alive = torch.ones(count, dtype=torch.bool, device=images.device)
    while count > 1:
        grad = alpha_gradient(network, images, kind, real, alive)
        count = -(-count // 2)
        keep = torch.where(alive, grad, torch.inf).topk(count, largest=False).indices
        alive = torch.zeros_like(alive).index_fill_(0, keep, True)
    return alive.int().argmax()


def _all_linear(network: TaskNetwork) -> bool:
    return all(any(m.weights is layer for m in network.modules() if isinstance(m, SharedLinear))
               for layer in supsup_layers(network))


def infer_tasks(network: TaskNetwork, images: torch.Tensor, adaptor: str, kind: str, real: int,
                group: int) -> torch.Tensor:
    """0-based inferred task of every image; images are judged in groups of `group` (1: alone)."""
    network.eval()
    if adaptor == "oneshot" and group == 1 and _all_linear(network):
        parts = [per_image_alpha_gradients(network, chunk, kind, real).argmin(1)
                 for chunk in images.split(IMAGES_PER_PASS)]
        return torch.cat(parts)
    predictions = []
    for chunk in images.split(group):
        if adaptor == "oneshot":
            task = alpha_gradient(network, chunk, kind, real).argmin()
        else:
            task = binary_search(network, chunk, kind, real)
        predictions.append(task.expand(len(chunk)))
    return torch.cat(predictions)

"""EWC's parts: the body's parameters it holds, the diagonal empirical Fisher of a task, the quadratic
penalty, how a new task's term joins the old ones (one per task, or online one running term), and the file
`ewc.pth` that carries them from a task's checkpoint folder to the next task's stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.network import TaskNetwork
from unforget.utils.atomic import UnreadableFile, atomic_torch_save, read_torch_file
from unforget.utils.checkpoint import CheckpointError
from unforget.utils.cli import UsageError

STATE = "ewc.pth"
FORMAT = "ewc/1"

Tensors = dict[str, torch.Tensor]


def body_parameters(network: TaskNetwork) -> dict[str, nn.Parameter]:
    """The shared body's weights and biases by name: what every task computes with, so what EWC holds (the
    heads and the plain mode's per-task batch-norm are each task's own, and no later task moves them)."""
    body = {id(p) for module in network.body_weights() for p in module.parameters(recurse=False)}
    return {name: p for name, p in network.named_parameters() if id(p) in body}


@dataclass
class Term:
    """One quadratic term: the weights it pulls towards and each weight's Fisher information."""

    anchor: Tensors
    fisher: Tensors

    def to(self, device: torch.device) -> Term:
        return Term({k: v.to(device) for k, v in self.anchor.items()},
                    {k: v.to(device) for k, v in self.fisher.items()})


def diagonal_fisher(network: nn.Module, parameters: dict[str, nn.Parameter], images: torch.Tensor,
                    labels: torch.Tensor) -> Tensors:
    """The diagonal of the empirical Fisher: the mean over the images of each parameter's squared gradient of
    log p(label | image), one image at a time (the square of a batch's mean gradient would be another, smaller
    quantity), in eval mode so batch-norm uses the task's running statistics."""
    network.eval()
    names, tensors = list(parameters), list(parameters.values())
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in tensors]
    for image, label in zip(images.split(1), labels.split(1), strict=True):
        loss = F.cross_entropy(network(image).float(), label)
        for total, grad in zip(fisher, torch.autograd.grad(loss, tensors), strict=True):
            total.add_(grad.float().square())
    return {name: total / labels.numel() for name, total in zip(names, fisher, strict=True)}


def penalty(parameters: dict[str, nn.Parameter], terms: list[Term], strength: float) -> torch.Tensor:
    """(strength / 2) sum over terms and weights of F (theta - anchor)^2."""
    total = next(iter(parameters.values())).new_zeros(())
    for term in terms:
        for name, parameter in parameters.items():
            total = total + (term.fisher[name] * (parameter - term.anchor[name]).square()).sum()
    return 0.5 * strength * total


def consolidated(terms: list[Term], new: Term, online: bool, gamma: float) -> list[Term]:
    """The terms after a task: EWC adds the task's own; online EWC keeps one, anchored at the latest weights,
    whose Fisher is gamma times the old one plus the task's."""
    if not online:
        return [*terms, new]
    if not terms:
        return [new]
    (old,) = terms
    return [Term(new.anchor, {name: gamma * old.fisher[name] + new.fisher[name] for name in new.fisher})]


def save_terms(folder: Path, terms: list[Term], online: bool, tasks: list[str]) -> None:
    """ewc.pth beside the checkpoint, written whole or not at all."""
    atomic_torch_save({"format": FORMAT, "online": online, "tasks": tasks,
                       "terms": [{"anchor": {k: v.cpu() for k, v in term.anchor.items()},
                                  "fisher": {k: v.cpu() for k, v in term.fisher.items()}} for term in terms]},
                      Path(folder) / STATE)


def _read_state(path: Path) -> dict:
    """An ewc.pth's payload; CheckpointError for a file that is unreadable or not an EWC state of this toolkit."""
    try:
        payload = read_torch_file(path)
    except UnreadableFile as error:
        raise CheckpointError(f"EWC state {error.reason}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("terms"), list):
        raise CheckpointError(f"{path} is not an EWC state of this toolkit")
    return payload


def load_terms(folder: Path, parameters: dict[str, nn.Parameter], online: bool) -> list[Term]:
    """The terms a previous EWC stage left in `folder`, checked against the body they will hold."""
    path = Path(folder) / STATE
    if not path.is_file():
        raise CheckpointError(f"no EWC state at {path}: the folder is not an EWC stage's")
    payload = _read_state(path)
    if payload.get("online") is not online:
        raise UsageError(f"{folder} holds {'online ' if payload.get('online') else ''}EWC terms: continue it with "
                         f"{'--ewc_online' if payload.get('online') else 'no --ewc_online'}")
    terms = []
    for entry in payload["terms"]:
        term = Term(entry.get("anchor", {}), entry.get("fisher", {})) if isinstance(entry, dict) else Term({}, {})
        for part in (term.anchor, term.fisher):
            shapes = {name: tuple(value.shape) for name, value in part.items() if isinstance(value, torch.Tensor)}
            if shapes != {name: tuple(p.shape) for name, p in parameters.items()}:
                raise CheckpointError(f"{path} does not fit the body of the network in {folder}")
            if not all(torch.isfinite(value).all() for value in part.values()):
                raise CheckpointError(f"{path} holds values that are not finite")
        terms.append(term)
    return terms


def state_bytes(folder: Path) -> int:
    """Bytes of the tensors in `folder`'s ewc.pth (0 without one): what EWC keeps beside the network."""
    path = Path(folder) / STATE
    if not path.is_file():
        return 0
    return sum(value.numel() * value.element_size() for term in _read_state(path)["terms"]
               for part in (term["anchor"], term["fisher"]) for value in part.values())

"""The collectives a CPG-family stage needs under torchrun; in a single process each is the identity.

Every rank builds the same network from the same checkpoint and seed, trains on its slice of every
batch inside DistributedDataParallel (which averages the gradients, so the weights stay identical),
and takes rank 0's word for whatever is decided: pruning masks, accuracies, the exit code. Only rank 0
evaluates and writes files.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from unforget.utils.ranks import LAUNCHER, is_main, world_size

COLLECTIVE_TIMEOUT = timedelta(minutes=10)
"""The longest a rank waits in one collective: ample for rank 0 to evaluate and save while the others
wait, and the bound on a hang when a rank on another machine dies (torchrun stops a machine's own ranks
as soon as one of them fails)."""
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_device: torch.device | None = None
"""Where the collectives' tensors live: this rank's GPU (NCCL needs CUDA tensors) or the CPU."""


def _die_with_launcher() -> None:
    """torchrun starts each rank in a session of its own and cannot stop them when it is killed outright
    (SIGKILL): have the kernel kill this rank when its parent dies, so a killed stage leaves nothing
    running that could write after it (Linux; elsewhere the ranks end when a collective times out)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != LAUNCHER:  # it died before we asked
        os._exit(1)


def join(device: torch.device) -> None:
    """Join the stage's process group once (NCCL between GPUs, gloo on the CPU); nothing in one process."""
    global _device
    if world_size() == 1 or dist.is_initialized():
        return
    _die_with_launcher()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    _device = device


def data_parallel(network: nn.Module, trained: Iterable[torch.Tensor]) -> nn.Module:
    """`network` wrapped to train across the ranks; the network itself in one process.

    DistributedDataParallel averages the gradients of the parameters that require them and expects
    every one of them in each step's graph. Other tasks' batch-norms, biases and heads never are, so
    only `trained` (what the optimizers step) keeps requiring gradients and find_unused_parameters
    (a graph search every step) stays off. There is no gradient accumulation, so no `no_sync`.
    Buffers (batch-norm statistics, ownership and pick masks) are broadcast from rank 0 before each
    forward, DDP's default: the masks agree anyway (`agree`), training normalises with each rank's
    batch statistics, and the running statistics evaluated and saved are rank 0's.
    """
    if world_size() == 1:
        return network
    kept = {id(parameter) for parameter in trained}
    for parameter in network.parameters():
        if id(parameter) not in kept:
            parameter.requires_grad_(False)
    if _device is None:
        raise AttributeError("data_parallel needs the rank's device: join the process group first")
    device_ids = [_device] if _device.type == "cuda" else None
    return DistributedDataParallel(network, device_ids=device_ids)


def from_main(value: float) -> float:
    """Rank 0's `value` on every rank (sent as float64, so an accuracy or an exit code arrives exact)."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_device)
    dist.broadcast(tensor, src=0)
    return tensor.item()


def on_main(compute: Callable[[], float]) -> float:
    """`compute()` (an evaluation) on rank 0 alone, its result on every rank."""
    return from_main(compute() if is_main() else 0.0)


def summed(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (an epoch's loss, correct answers and images)."""
    if world_size() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_device)
    dist.all_reduce(tensor)
    return tuple(tensor.tolist())


def agree(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Rank 0's boolean masks on every rank (in one broadcast): the weights are identical, but a decision
    taken from floating-point values is rank 0's alone, so no rank can ever prune other weights."""
    if world_size() == 1 or not masks:
        return masks
    flat = torch.cat([mask.flatten() for mask in masks]).to(torch.uint8)
    dist.broadcast(flat, src=0)
    parts = flat.split([mask.numel() for mask in masks])
    return [part.view(mask.shape).bool() for part, mask in zip(parts, masks, strict=True)]

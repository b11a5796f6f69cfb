"""Device facts in one place: which device a stage runs on."""

import torch

from unforget.utils.cli import UsageError
from unforget.utils.ranks import local_rank, world_size


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; asking for CUDA without one is a usage error.
    Under torchrun each rank takes its own GPU, cuda:LOCAL_RANK."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if world_size() > 1 and device.type == "cuda":
        if device.index is not None:
            raise UsageError(f"--device {name}: under torchrun every rank takes cuda:LOCAL_RANK; give --device "
                             "cuda (or auto) and choose the GPUs with CUDA_VISIBLE_DEVICES")
        device = torch.device("cuda", local_rank())
    return device

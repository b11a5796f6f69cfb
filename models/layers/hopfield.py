"""HopSupSup's per-task batch-norm masks and the Hopfield network that stores them (SupSup section 3.7).

A task's mask gates the output channels of a batch-norm (batch statistics, no affine): the mask is
(score >= 0) with a straight-through gradient, scores starting at 0 (every channel on). Storing a task
packs its mask as bits (kept to check the recovery against) and adds x = 2 mask - 1 to the Hopfield
weights with Storkey's rule, W += (x x^T - I - x h^T - h x^T) / d with h = W x, so W and the running
sum of the stored x are all that recovering a mask needs. A recovery descends from the mean stored x on
the energy -s^T W s / (2 d) of s = 2 (score >= 0) - 1 (see utils/methods/supsup/hopfield.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.layers.base import TaskSpec, TaskState, pack_bits, packed_size, unpack_bits
from unforget.models.layers.supsup import SupSupMask


class HopfieldMaskedNorm(TaskState):
    """Batch-norm over `channels` whose outputs the active task's binary mask (or a recovery's) gates."""

    stack: torch.Tensor
    memory: torch.Tensor
    pattern_sum: torch.Tensor

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.scores = nn.ParameterDict()
        self.register_buffer("stack", torch.zeros(0, packed_size((channels,)), dtype=torch.uint8))
        self.register_buffer("memory", torch.zeros(channels, channels))
        self.register_buffer("pattern_sum", torch.zeros(channels))
        self.recovery: nn.Parameter | None = None
        self.active_task = 0

    @property
    def num_tasks(self) -> int:
        return self.stack.shape[0]

    def _grow_stack(self) -> None:
        self.stack = torch.cat([self.stack, self.stack.new_zeros(1, self.stack.shape[1])])

    def add_task(self, spec: TaskSpec) -> None:
        self.scores[str(self.num_tasks + 1)] = nn.Parameter(torch.zeros(self.channels, device=self.memory.device))
        self._grow_stack()

    def restore_task(self, spec: TaskSpec) -> None:
        self._grow_stack()

    def set_task(self, task: int) -> None:
        self.active_task = task

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        return [self.scores[str(task)]] if str(task) in self.scores else []

    def mask(self, task: int) -> torch.Tensor:
        """Task `task`'s 0/1 channel mask (from its live scores, or its stored bits)."""
        if str(task) in self.scores:
            return SupSupMask.apply(self.scores[str(task)], None)
        return unpack_bits(self.stack[task - 1], (self.channels,)).to(self.memory.dtype)

    @torch.no_grad()
    def store(self) -> None:
        """Freeze every live task's mask into the bit stack and the Hopfield weights; free its scores."""
        eye = torch.eye(self.channels, device=self.memory.device)
        for key in list(self.scores):
            bits = self.scores[key] >= 0
            self.stack[int(key) - 1] = pack_bits(bits)
            pattern = bits.to(self.memory.dtype) * 2 - 1
            field = self.memory @ pattern
            cross = torch.outer(pattern, field)
            self.memory += (torch.outer(pattern, pattern) - eye - cross - cross.T) / self.channels
            self.pattern_sum += pattern
            del self.scores[key]

    def start_recovery(self) -> nn.Parameter:
        """A fresh recovery score at the mean stored pattern; the layer gates with it until `end_recovery`."""
        self.recovery = nn.Parameter(self.pattern_sum / self.num_tasks)
        return self.recovery

    def end_recovery(self) -> None:
        self.recovery = None

    def recovered(self) -> torch.Tensor:
        """The recovery's current mask as bits."""
        if self.recovery is None:
            raise AttributeError("no recovery in progress (start_recovery first)")
        return self.recovery.detach() >= 0

    def energy(self) -> torch.Tensor:
        """Hopfield energy per channel, -s^T W s / (2 d), of the recovery's current signs (straight-through to
        its score). Per channel it is about -1/2 at a stored pattern whatever the width d, as the entropy it is
        blended with does not grow with d either, so the blend's weight means the same at every width."""
        signs = SupSupMask.apply(self.recovery, None) * 2 - 1
        return -0.5 * signs @ self.memory @ signs / self.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = SupSupMask.apply(self.recovery, None) if self.recovery is not None else self.mask(self.active_task)
        return F.batch_norm(x, None, None, training=True) * gate


def hopfield_norms(network: nn.Module) -> list[HopfieldMaskedNorm]:
    return [m for m in network.modules() if isinstance(m, HopfieldMaskedNorm)]

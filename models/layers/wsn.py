"""WSN mode (Winning SubNetworks, Kang et al. 2022): trained weights shared by every task, one learned binary
mask per task over them, and the weights an earlier task uses frozen."""

from __future__ import annotations

import math

import torch
from torch import nn

from unforget.models.layers.base import (
    Geometry,
    LayerMode,
    TaskSpec,
    WeightMode,
    pack_bits,
    packed_size,
    register,
    unpack_bits,
    weight_modes,
)
from unforget.models.layers.per_task import affine_norm, head_per_task
from unforget.models.layers.supsup import SupSupMask

DEFAULT_CAPACITY = 0.5
"""c, the share of a layer's weights each task's mask keeps (the reference's default sparsity 0.5)"""


class WSNWeights(WeightMode):
    """One weight tensor, one real-valued score per weight and one packed binary mask per task.

    The task being learned computes with W * m, m the top-c share of |scores| in this layer (exact count,
    `SupSupMask`), the gradient passing straight through to the scores. Its weights train where no earlier
    task's mask uses them; the weights that an earlier task uses (the union of the stored masks, `used`) get a
    zero gradient, so every stored task's W * M_t stays bit-identical. `store_mask` packs the task's mask into
    row t-1 of `masks` [T, ceil(P/8)] (1 bit per weight per task); a stored task runs with W * M_t.

    The scores are one tensor that every task continues from (the paper's single s; the reference never
    re-draws them), so a new task starts from the last task's mask and reuses its weights unless learning
    moves it away. They are training state: the checkpoint keeps them for the next task, but answering a task
    needs only the weights and that task's mask bits.
    """

    weight: nn.Parameter
    masks: torch.Tensor
    used: torch.Tensor

    def __init__(self, geometry: Geometry, width: float, bias: bool):
        super().__init__()
        if bias:
            raise ValueError("wsn layers have no bias (the reference's layers have none; a bias would be shared "
                             "by every task and change old tasks)")
        self.geometry = geometry
        shape = geometry.shape(width)
        self.weight = nn.Parameter(torch.empty(shape))
        bound = 1.0 / math.sqrt(math.prod(shape[1:]))  # kaiming-uniform with a = sqrt(5), as the reference
        self.scores = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.register_buffer("masks", torch.zeros(0, packed_size(shape), dtype=torch.uint8))
        self.register_buffer("used", torch.zeros(shape, dtype=torch.bool), persistent=False)
        self.capacity = DEFAULT_CAPACITY
        self.learning: int | None = None
        """the task whose mask the scores give (added, not yet stored), else None"""
        self.active_task = 0
        self._mask: torch.Tensor | None = None

    @property
    def num_tasks(self) -> int:
        return self.masks.shape[0]

    def _rows(self, count: int) -> None:
        rows = self.masks.new_zeros(count, self.masks.shape[1])
        rows[: self.num_tasks] = self.masks
        self.masks = rows

    def add_task(self, spec: TaskSpec) -> None:
        """A new task to learn: it gets a mask row, filled when it is stored; the weights earlier masks use
        are frozen from now on."""
        if self.learning is not None:
            self.store_mask()
        self._check_width(spec)
        self.refresh_used()
        self._rows(self.num_tasks + 1)
        self.learning = self.num_tasks
        self.set_task(self.num_tasks)

    def restore_tasks(self, specs: list[TaskSpec]) -> None:
        """Rows for stored tasks whose bits a checkpoint fills in next."""
        for spec in specs:
            self._check_width(spec)
        self._rows(self.num_tasks + len(specs))
        self.set_task(self.num_tasks)

    def restore_task(self, spec: TaskSpec) -> None:
        self.restore_tasks([spec])

    def _check_width(self, spec: TaskSpec) -> None:
        if tuple(self.geometry.shape(spec.width)) != tuple(self.weight.shape):
            raise ValueError(f"wsn layers do not grow: task {spec.name!r} at width {spec.width} does not fit "
                             f"the layer {tuple(self.weight.shape)}")

    @torch.no_grad()
    def refresh_used(self) -> None:
        """`used` = the union of every stored task's mask (the learning task's row is not stored yet)."""
        used = torch.zeros(self.weight.numel(), dtype=torch.bool, device=self.weight.device)
        for row in range(self.num_tasks):
            if row + 1 != self.learning:
                used |= unpack_bits(self.masks[row], (self.weight.numel(),))
        self.used = used.view_as(self.weight)

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """The weight (its used entries get no gradient) and the scores, while task `task` is learned."""
        return [self.weight, self.scores] if task == self.learning else []

    def live_mask(self) -> torch.Tensor:
        """The learning task's mask from the scores (float, differentiable to the scores)."""
        return SupSupMask.apply(self.scores, self.capacity)

    @torch.no_grad()
    def store_mask(self) -> None:
        """Freeze the learning task's mask into its row (1 bit per weight); its weights are used from now on."""
        if self.learning is None:
            return
        mask = self.live_mask() > 0
        self.masks[self.learning - 1] = pack_bits(mask)
        self.learning = None
        self.used |= mask
        self._mask = None

    def mask(self, task: int) -> torch.Tensor:
        """Task `task`'s stored mask as a bool tensor."""
        return unpack_bits(self.masks[task - 1], tuple(self.weight.shape))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """A checkpoint taken while a task learns holds that task's current mask bits in its row."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.learning is not None:
            rows = destination[prefix + "masks"].clone()
            with torch.no_grad():
                rows[self.learning - 1] = pack_bits(self.live_mask() > 0)
            destination[prefix + "masks"] = rows

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.refresh_used()
        self._mask = None

    def set_task(self, task: int) -> None:
        self.active_task = task
        self._mask = None

    def _apply(self, fn, *args, **kwargs):
        self._mask = None
        return super()._apply(fn, *args, **kwargs)

    def forward(self) -> tuple[torch.Tensor, None]:
        if self.active_task == self.learning:
            free = ~self.used
            trained = torch.where(free, self.weight, self.weight.detach())  # used weights: zero gradient
            return trained * self.live_mask(), None
        if self._mask is None:
            self._mask = self.mask(self.active_task).to(self.weight.dtype)
        return self.weight * self._mask, None


def wsn_layers(network: nn.Module) -> list[WSNWeights]:
    return weight_modes(network, WSNWeights)


def set_capacity(network: nn.Module, capacity: float) -> None:
    """c of every layer: the share of its weights each new task's mask keeps."""
    if not 0.0 < capacity <= 1.0:
        raise ValueError(f"capacity must be in (0, 1], got {capacity}")
    for layer in wsn_layers(network):
        layer.capacity = capacity


def store_masks(network: nn.Module) -> None:
    """Freeze the learning task's mask in every layer."""
    for layer in wsn_layers(network):
        layer.store_mask()


register(LayerMode("wsn", WSNWeights, affine_norm, head_per_task, bias=False))

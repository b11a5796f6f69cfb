"""CPG mode (also PackNet's and Piggyback's): per-weight task ownership plus per-task picking."""

from __future__ import annotations

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
    slice_to,
    unpack_bits,
    weight_modes,
)
from unforget.models.layers.per_task import affine_norm, head_per_task

PIGGYMASK_THRESHOLD = 5e-3
PIGGYMASK_INIT = 1e-2
NARROW_OWNER_TASKS = 255  # uint8 owners hold tasks 1..255; a network with more tasks widens them to int16


class Binarizer(torch.autograd.Function):
    """1 where the real mask exceeds the threshold, else 0; gradient passes straight through."""

    @staticmethod
    def forward(ctx, mask: torch.Tensor, threshold: float) -> torch.Tensor:
        return (mask > threshold).to(mask.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class CPGWeights(WeightMode):
    """Per-weight task ownership plus per-task picking.

    `owner` holds, per weight, 0 (free or pruned) or the 1-based task that owns it.
    Task t computes with  W*[owner==t] + W*[0<owner<t]*pick_t : its own weights
    train, earlier tasks' weights are frozen (no gradient reaches them) and only
    used where task t picks them. Picks are stored as 1 bit per weight
    (`pick_<t>`, tasks after the first). While a stage learns them, a real-valued
    `piggymask` (binarised at 5e-3, straight-through gradient) stands in for the
    latest task's bits; the state dict carries its bits, never the piggymask. Biases
    are per task. In PackNet mode (`learn_picks=False`) every old weight is used.
    The float multipliers are built once per mask change (`cache_multipliers`; the plain
    path rebuilds them in every forward) and refreshed in place after pruning, so a
    captured CUDA graph keeps reading the current masks.
    """

    cache_multipliers = True
    owner: torch.Tensor

    def __init__(self, geometry: Geometry, width: float, bias: bool, learn_picks: bool = True):
        super().__init__()
        self.geometry = geometry
        self.learn_picks = learn_picks
        shape = geometry.shape(width)
        self.weight = nn.Parameter(torch.empty(shape))
        self.register_buffer("owner", torch.zeros(shape, dtype=torch.uint8))
        self.biases = nn.ParameterList() if bias else None
        self.piggymask: nn.Parameter | None = None
        self.task_shapes: list[tuple[int, ...]] = []
        self.active_task = 0
        self._multipliers: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.task_shapes)

    def _open_task(self, spec: TaskSpec) -> tuple[int, tuple[int, ...]]:
        shape = self.geometry.shape(spec.width)
        if any(n > m for n, m in zip(shape, self.weight.shape, strict=True)):
            raise ValueError(f"task width {spec.width} is wider than the layer {tuple(self.weight.shape)}")
        if self.piggymask is not None:  # the latest task's picks are final now
            getattr(self, f"pick_{self.num_tasks}").copy_(self._learned_picks(self.piggymask))
            self.piggymask = None
        self.task_shapes.append(shape)
        if self.num_tasks > NARROW_OWNER_TASKS and self.owner.dtype == torch.uint8:
            self.owner = self.owner.to(torch.int16)
        return self.num_tasks, shape

    def add_task(self, spec: TaskSpec) -> None:
        """Open a new task at its width: free weights become its own and every old weight is picked."""
        task, shape = self._open_task(spec)
        with torch.no_grad():
            corner = slice_to(self.owner, shape)
            corner.masked_fill_(corner == 0, task)
        if task > 1 and self.learn_picks:
            self.register_buffer(f"pick_{task}", pack_bits(torch.ones(shape, dtype=torch.bool,
                                                                      device=self.weight.device)))
        if self.biases is not None:
            new_bias = torch.zeros(shape[0], device=self.weight.device)
            if task > 1:
                previous = self.biases[task - 2].detach()
                new_bias[: previous.numel()] = previous
            self.biases.append(nn.Parameter(new_bias))
        self.set_task(task)

    def restore_task(self, spec: TaskSpec) -> None:
        """Room for a stored task (its ownership, picks and bias come from the checkpoint)."""
        task, shape = self._open_task(spec)
        if task > 1 and self.learn_picks:
            self.register_buffer(f"pick_{task}", torch.zeros(packed_size(shape), dtype=torch.uint8,
                                                             device=self.weight.device))
        if self.biases is not None:
            self.biases.append(nn.Parameter(torch.zeros(shape[0], device=self.weight.device)))
        self.set_task(task)

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """The weight (old tasks' entries get no gradient) and the task's bias; never a piggymask."""
        return [self.weight, *([self.biases[task - 1]] if self.biases is not None else [])]

    def start_picking(self) -> nn.Parameter | None:
        """Give the latest task a fresh real-valued piggymask (all old weights picked) to learn."""
        if not self.learn_picks or self.num_tasks < 2:
            return None
        shape = self.task_shapes[-1]
        self.piggymask = nn.Parameter(torch.full(shape, PIGGYMASK_INIT, device=self.weight.device))
        self.invalidate()
        return self.piggymask

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """The learned piggymask is saved as the latest task's pick bits, never as floats."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination.pop(prefix + "piggymask", None)
        if self.piggymask is not None:
            destination[prefix + f"pick_{self.num_tasks}"] = self._learned_picks(self.piggymask)

    @torch.no_grad()
    def _learned_picks(self, piggymask: torch.Tensor) -> torch.Tensor:
        """The latest task's picks from its live `piggymask` as bits."""
        return pack_bits(piggymask > PIGGYMASK_THRESHOLD)

    def set_task(self, task: int) -> None:
        self.active_task = task
        self.invalidate()

    def invalidate(self) -> None:
        """Forget cached multipliers; call after the ownership mask changes."""
        self._multipliers = None

    def _apply(self, fn, *args, **kwargs):
        self.invalidate()
        return super()._apply(fn, *args, **kwargs)

    def _learning_picks(self) -> bool:
        return self.piggymask is not None and self.active_task == self.num_tasks

    @torch.no_grad()
    def masks_changed(self) -> None:
        """Rebuild the cached multipliers in place after the ownership mask changed (pruning)."""
        if self._multipliers is not None:
            for cached, fresh in zip(self._multipliers, self._build_multipliers(), strict=True):
                cached.copy_(fresh)

    def _build_multipliers(self) -> tuple[torch.Tensor, torch.Tensor]:
        shape = self.task_shapes[self.active_task - 1]
        owner = slice_to(self.owner, shape)
        own = (owner == self.active_task).to(self.weight.dtype)
        old = (owner > 0) & (owner < self.active_task)
        packed = getattr(self, f"pick_{self.active_task}", None)
        if packed is not None and not self._learning_picks():
            old &= unpack_bits(packed, shape)
        return own, old.to(self.weight.dtype)

    def multipliers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Float multipliers [owner==t] and [0<owner<t]*pick_t at task t's shape (without the pick
        while a piggymask is being learned)."""
        if not self.cache_multipliers:
            return self._build_multipliers()
        if self._multipliers is None:
            self._multipliers = self._build_multipliers()
        return self._multipliers

    @torch.no_grad()
    def add_weight_decay(self, decay: float) -> None:
        """Decay only the weights the active task owns (as the reference)."""
        if self.weight.grad is not None:
            own, _ = self.multipliers()
            self.weight.grad.addcmul_(self.weight, own, value=decay)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        task = self.active_task
        weight = slice_to(self.weight, self.task_shapes[task - 1])
        own, old = self.multipliers()
        if self._learning_picks():
            old = old * Binarizer.apply(self.piggymask, PIGGYMASK_THRESHOLD)
        effective = weight * own + weight.detach() * old
        bias = self.biases[task - 1] if self.biases is not None else None
        return effective, bias


def cpg_layers(network: nn.Module) -> list[CPGWeights]:
    return weight_modes(network, CPGWeights)


register(LayerMode("cpg", CPGWeights, affine_norm, head_per_task))
register(LayerMode("packnet", lambda geometry, width, bias: CPGWeights(geometry, width, bias, learn_picks=False),
                   affine_norm, head_per_task))

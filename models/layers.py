"""The shared layer module.

Every method in the toolkit uses the same two layer classes, `SharedConv2d` and
`SharedLinear`. A layer owns only its geometry (sizes, stride, padding); the
weights live in a *weight mode* object that turns the layer's state into one
effective weight (and bias) per forward. Adding a method means adding a mode to
`WEIGHT_MODES`, not a new layer class or a new training loop.

Widths: a layer is declared with its base sizes; at a width multiplier `w` a
scaled dimension has `int(base * sqrt(w))` channels, so the parameter count grows
by about `w`. Each task remembers the width it was learned at and always runs at
that width, which keeps old tasks' outputs bit-identical after growth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PIGGYMASK_THRESHOLD = 5e-3
PIGGYMASK_INIT = 1e-2
DEFAULT_STUDENTS = 10  # Expand-and-Cluster's N


def scaled(channels: int, width: float) -> int:
    """Channels of a scaled dimension at parameter multiplier `width`."""
    return int(channels * math.sqrt(width))


class Binarizer(torch.autograd.Function):
    """1 where the real mask exceeds the threshold, else 0; gradient passes straight through."""

    @staticmethod
    def forward(ctx, mask: torch.Tensor, threshold: float) -> torch.Tensor:
        return (mask > threshold).to(mask.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class Ternarizer(torch.autograd.Function):
    """+1 above the threshold, -1 below its negative, else 0; straight-through gradient."""

    @staticmethod
    def forward(ctx, mask: torch.Tensor, threshold: float) -> torch.Tensor:
        return (mask > threshold).to(mask.dtype) - (mask < -threshold).to(mask.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


@dataclass(frozen=True)
class Geometry:
    """Base sizes of a layer and which of its dimensions follow the width multiplier."""

    in_features: int
    out_features: int
    kernel: tuple[int, ...] = ()
    scale_in: bool = True
    scale_out: bool = True

    def shape(self, width: float) -> tuple[int, ...]:
        out = scaled(self.out_features, width) if self.scale_out else self.out_features
        inp = scaled(self.in_features, width) if self.scale_in else self.in_features
        return (out, inp, *self.kernel)


def _slice_to(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Top-left corner of `tensor` with the given shape (a view, no copy)."""
    if tuple(tensor.shape) == tuple(shape):
        return tensor
    return tensor[tuple(slice(0, n) for n in shape)]


def copy_into_corner(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy a narrower tensor into the top-left corner of a wider one (growth)."""
    if src.dim() != dst.dim() or any(s > d for s, d in zip(src.shape, dst.shape, strict=True)):
        raise ValueError(f"cannot grow a tensor of shape {tuple(src.shape)} into {tuple(dst.shape)}")
    _slice_to(dst, tuple(src.shape)).copy_(src)


class PlainWeights(nn.Module):
    """An ordinary trainable weight and bias (task heads, baselines)."""

    def __init__(self, geometry: Geometry, width: float, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(geometry.shape(width)))
        self.bias = nn.Parameter(torch.zeros(self.weight.shape[0])) if bias else None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight, self.bias


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor as 1 bit per element (uint8, little-endian bit order, zero-padded)."""
    flat = mask.flatten().to(torch.uint8)
    flat = torch.nn.functional.pad(flat, (0, -flat.numel() % 8)).view(-1, 8)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=mask.device)
    return (flat * weights).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `pack_bits`."""
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    bits = (packed.view(-1, 1) >> shifts) & 1
    return bits.flatten()[: math.prod(shape)].view(shape).bool()


class CPGWeights(nn.Module):
    """CPG / PackNet / piggyback mode: per-weight task ownership plus per-task picking.

    `owner` holds, per weight, 0 (free or pruned) or the 1-based task that owns it.
    Task t computes with  W*[owner==t] + W*[0<owner<t]*pick_t : its own weights
    train, earlier tasks' weights are frozen (no gradient reaches them) and only
    used where task t picks them. Picks are stored as 1 bit per weight
    (`pick_<t>`, tasks after the first). While a stage learns them, a real-valued
    `piggymask` (binarised at 5e-3, straight-through gradient) stands in for the
    latest task's bits and is folded back into them by `store_picks`. Biases are
    per task. In PackNet mode (`learn_picks=False`) every old weight is used.
    The float multipliers are built once per mask change (`cache_multipliers`; the plain
    path rebuilds them in every forward) and refreshed in place after pruning, so a
    captured CUDA graph keeps reading the current masks.
    """

    cache_multipliers = True

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

    def add_task(self, width: float) -> None:
        """Open a new task at `width`: free weights become its own and every old weight is picked."""
        shape = self.geometry.shape(width)
        if any(n > m for n, m in zip(shape, self.weight.shape, strict=True)):
            raise ValueError(f"task width {width} is wider than the layer {tuple(self.weight.shape)}")
        self.store_picks()
        self.piggymask = None
        self.task_shapes.append(shape)
        task = self.num_tasks
        with torch.no_grad():
            _slice_to(self.owner, shape).masked_fill_(_slice_to(self.owner, shape) == 0, task)
        if task > 1 and self.learn_picks:
            everything = torch.ones(shape, dtype=torch.bool, device=self.weight.device)
            self.register_buffer(f"pick_{task}", pack_bits(everything))
        if self.biases is not None:
            new_bias = torch.zeros(shape[0], device=self.weight.device)
            if task > 1:
                previous = self.biases[task - 2].detach()
                new_bias[: previous.numel()] = previous
            self.biases.append(nn.Parameter(new_bias))
        self.set_task(task)

    def start_picking(self) -> nn.Parameter | None:
        """Give the latest task a fresh real-valued piggymask (all old weights picked) to learn."""
        if not self.learn_picks or self.num_tasks < 2:
            return None
        shape = self.task_shapes[-1]
        self.piggymask = nn.Parameter(torch.full(shape, PIGGYMASK_INIT, device=self.weight.device))
        self.invalidate()
        return self.piggymask

    @torch.no_grad()
    def store_picks(self) -> None:
        """Fold the learned piggymask into the latest task's pick bits (before saving or a new task)."""
        if self.piggymask is not None:
            getattr(self, f"pick_{self.num_tasks}").copy_(pack_bits(self.piggymask > PIGGYMASK_THRESHOLD))

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
        owner = _slice_to(self.owner, shape)
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

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        task = self.active_task
        weight = _slice_to(self.weight, self.task_shapes[task - 1])
        own, old = self.multipliers()
        if self._learning_picks():
            old = old * Binarizer.apply(self.piggymask, PIGGYMASK_THRESHOLD)
        effective = weight * own + weight.detach() * old
        bias = self.biases[task - 1] if self.biases is not None else None
        return effective, bias


class SubspaceWeights(nn.Module):
    """Subspace mode (lines, curves, simplexes): S vertex weights stacked in one tensor [S, *shape].

    The effective weight is the contraction of the stack with `coeffs` [S], a plain
    attribute (not in the state dict) that the trainer sets before each forward, so
    one fused op mixes any number of vertices. Every vertex has its own
    kaiming-normal draw (fan-in, gain sqrt 2), as in the reference.
    """

    def __init__(self, geometry: Geometry, width: float, bias: bool, vertices: int):
        super().__init__()
        shape = geometry.shape(width)
        self.weight = nn.Parameter(torch.empty(vertices, *shape))
        with torch.no_grad():
            for vertex in self.weight:
                nn.init.kaiming_normal_(vertex, mode="fan_in", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(vertices, shape[0])) if bias else None
        self.coeffs = torch.full((vertices,), 1.0 / vertices)

    @staticmethod
    def with_vertices(vertices: int) -> Callable[..., nn.Module]:
        return lambda geometry, width, bias: SubspaceWeights(geometry, width, bias, vertices)

    def _apply(self, fn, *args, **kwargs):
        self.coeffs = fn(self.coeffs)
        return super()._apply(fn, *args, **kwargs)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = torch.tensordot(self.coeffs, self.weight, dims=1)
        bias = self.coeffs @ self.bias if self.bias is not None else None
        return weight, bias


SUBSPACE_MODES: dict[str, int] = {"line": 2, "curve": 3, **{f"simplex{n}": n for n in range(2, 10)}}
"""Subspace weight modes and their vertex counts; a curve's index 2 is the control point."""

class SupSupMask(torch.autograd.Function):
    """Binary supermask from scores, either the `density` share of largest |scores| (top-k, exact
    count) or scores >= 0 (`density` None); the gradient passes straight through to the scores
    (through |.| for top-k, i.e. times sign(score), as in the reference)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, density: float | None) -> torch.Tensor:
        if density is None:
            return (scores >= 0).to(scores.dtype)
        ctx.save_for_backward(scores)
        flat = scores.abs().flatten()
        keep = flat.numel() - int((1.0 - density) * flat.numel())
        mask = torch.zeros_like(flat).index_fill_(0, flat.topk(keep, sorted=False).indices, 1.0)
        return mask.view_as(scores)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.saved_tensors:
            return grad, None
        (scores,) = ctx.saved_tensors
        return grad * scores.sign(), None


class Superpose(torch.autograd.Function):
    """W * sum_i alpha_i M_i over a bit-packed mask stack, and d/d alpha_i = <grad * W, M_i>:
    both are contractions over the stack in row chunks, never a float copy of all of it."""

    @staticmethod
    def forward(ctx, alphas: torch.Tensor, weight: torch.Tensor, layer: SupSupWeights) -> torch.Tensor:
        mix = torch.zeros(weight.numel(), dtype=weight.dtype, device=weight.device)
        for start, masks in layer.mask_chunks(weight.dtype):
            mix += alphas[start:start + len(masks)] @ masks.flatten(1)
        ctx.layer = layer
        ctx.save_for_backward(weight)
        return weight * mix.view_as(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        signal = (grad * weight).flatten()
        parts = [masks.flatten(1) @ signal for _, masks in ctx.layer.mask_chunks(weight.dtype)]
        return torch.cat(parts), None, None


class SupSupWeights(nn.Module):
    """SupSup mode: frozen signed-constant weights, one learned binary supermask per task.

    The weight (a buffer, +-sqrt(2/fan_in) with random signs from the global seed) never
    trains. `add_task` gives the new task its scores (kaiming-uniform); while they live the
    task's mask is computed from them (see `SupSupMask`). `store_masks` packs every live
    task's mask as 1 bit per weight into row t-1 of `stack` [T, ceil(P/8)] and drops the
    scores. Stored task t runs with W * M_t (unpacked once per task switch); with
    `alphas` [T] set, the layer runs in superposition, W * sum_i alpha_i M_i.
    """

    CHUNK_ELEMENTS = 1 << 24

    def __init__(self, geometry: Geometry, width: float, bias: bool):
        super().__init__()
        if bias:
            raise ValueError("supsup layers have no bias (masks over fixed weights only)")
        shape = geometry.shape(width)
        fan_in = math.prod(shape[1:])
        signs = torch.randint(0, 2, shape).mul_(2).sub_(1).to(torch.float32)
        self.register_buffer("weight", signs * math.sqrt(2.0 / fan_in))
        self.register_buffer("stack", torch.zeros(0, -(-math.prod(shape) // 8), dtype=torch.uint8))
        self.scores = nn.ParameterDict()
        self.density: float | None = 0.5
        self.alphas: torch.Tensor | None = None
        self.active_task = 0
        self._mask: torch.Tensor | None = None

    @property
    def num_tasks(self) -> int:
        return self.stack.shape[0]

    def add_task(self, width: float = 1.0) -> None:
        bound = 1.0 / math.sqrt(math.prod(self.weight.shape[1:]))
        scores = torch.empty_like(self.weight).uniform_(-bound, bound)
        self.scores[str(self.num_tasks + 1)] = nn.Parameter(scores)
        self.stack = torch.cat([self.stack, self.stack.new_zeros(1, self.stack.shape[1])])
        self.set_task(self.num_tasks)

    @torch.no_grad()
    def store_masks(self) -> None:
        """Freeze every live task's mask into the stack (1 bit per weight) and free its scores."""
        for key in list(self.scores):
            self.stack[int(key) - 1] = pack_bits(SupSupMask.apply(self.scores[key], self.density) > 0)
            del self.scores[key]
        self._mask = None

    def mask(self, task: int) -> torch.Tensor:
        """Task `task`'s binary mask as floats (from its scores while they live)."""
        scores = self.scores[str(task)] if str(task) in self.scores else None
        if scores is not None:
            return SupSupMask.apply(scores, self.density)
        return unpack_bits(self.stack[task - 1], tuple(self.weight.shape)).to(self.weight.dtype)

    def mask_chunks(self, dtype: torch.dtype):
        """(first row, float masks [c, *shape]) over the stack, c rows at a time."""
        rows = max(1, self.CHUNK_ELEMENTS // (8 * self.stack.shape[1]))
        shifts = torch.arange(8, dtype=torch.uint8, device=self.stack.device)
        for start in range(0, self.num_tasks, rows):
            packed = self.stack[start:start + rows]
            bits = (packed.unsqueeze(-1) >> shifts) & 1
            yield start, bits.flatten(1)[:, :self.weight.numel()].view(-1, *self.weight.shape).to(dtype)

    def set_task(self, task: int) -> None:
        self.active_task = task
        self._mask = None

    def _apply(self, fn, *args, **kwargs):
        self._mask = None
        if self.alphas is not None:
            self.alphas = fn(self.alphas)
        return super()._apply(fn, *args, **kwargs)

    def forward(self) -> tuple[torch.Tensor, None]:
        if self.alphas is not None:
            return Superpose.apply(self.alphas, self.weight, self), None
        if str(self.active_task) in self.scores:
            return self.weight * self.mask(self.active_task), None
        if self._mask is None:
            self._mask = self.mask(self.active_task)
        return self.weight * self._mask, None


class StudentsWeights(nn.Module):
    """Students mode (Expand-and-Cluster): N independent students stacked as a batch dimension,
    weight [N, out, in] and bias [N, out], so one batched matmul runs them all (no contraction).

    Each student's weight is a kaiming-normal draw over its own fan-in (the reference drew over
    the whole 3-D tensor, which shrank the scale by sqrt(out * N)); biases start at zero.
    """

    def __init__(self, geometry: Geometry, width: float, bias: bool, students: int = DEFAULT_STUDENTS):
        super().__init__()
        out_features, in_features = geometry.shape(width)
        self.weight = nn.Parameter(torch.randn(students, out_features, in_features) * math.sqrt(2.0 / in_features))
        self.bias = nn.Parameter(torch.zeros(students, out_features)) if bias else None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.weight, self.bias


WEIGHT_MODES: dict[str, Callable[..., nn.Module]] = {
    "plain": PlainWeights,
    "cpg": CPGWeights,
    "packnet": lambda geometry, width, bias: CPGWeights(geometry, width, bias, learn_picks=False),
    "supsup": SupSupWeights,
    **{mode: SubspaceWeights.with_vertices(n) for mode, n in SUBSPACE_MODES.items()},
    "students": StudentsWeights,
}


class SharedConv2d(nn.Module):
    """A 2-D convolution whose weight comes from the chosen weight mode."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, width: float = 1.0,
                 stride: int = 1, padding: int = 0, bias: bool = False, mode: str = "cpg",
                 scale_in: bool = True, scale_out: bool = True):
        super().__init__()
        self.geometry = Geometry(in_channels, out_channels, (kernel_size, kernel_size), scale_in, scale_out)
        self.stride, self.padding = stride, padding
        self.weights = WEIGHT_MODES[mode](self.geometry, width, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weights()
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class SharedLinear(nn.Module):
    """A fully connected layer whose weight comes from the chosen weight mode."""

    def __init__(self, in_features: int, out_features: int, *, width: float = 1.0, bias: bool = True,
                 mode: str = "cpg", scale_in: bool = True, scale_out: bool = True):
        super().__init__()
        self.geometry = Geometry(in_features, out_features, (), scale_in, scale_out)
        self.weights = WEIGHT_MODES[mode](self.geometry, width, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weights()
        if weight.dim() == 3:  # students [N, out, in]: x is [N, B, in], or [B, in] shared by all students
            x = x.expand(weight.shape[0], *x.shape[-2:])
            if bias is None:
                return torch.bmm(x, weight.transpose(1, 2))
            return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        return F.linear(x, weight, bias)


class PerTask(nn.Module):
    """One module per task in `per_task`; only the active task's one runs. Subclasses add tasks."""

    def __init__(self):
        super().__init__()
        self.per_task = nn.ModuleList()
        self.active_task = 0

    def append_task(self, module: nn.Module) -> None:
        self.per_task.append(module)
        self.set_task(len(self.per_task))

    def set_task(self, task: int) -> None:
        self.active_task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_task[self.active_task - 1](x)


class TaskBatchNorm2d(PerTask):
    """One BatchNorm2d per task, each at its task's width.

    A new task starts from the previous task's statistics and affine parameters
    (new channels from the defaults) and then trains its own copy, so evaluating
    an old task never sees statistics of a later one.
    """

    def __init__(self, channels: int, scale: bool = True):
        super().__init__()
        self.channels, self.scale = channels, scale

    def add_task(self, width: float) -> None:
        size = scaled(self.channels, width) if self.scale else self.channels
        device = self.per_task[-1].weight.device if len(self.per_task) else None
        norm = nn.BatchNorm2d(size, device=device)
        if len(self.per_task):
            with torch.no_grad():
                for name, value in self.per_task[-1].state_dict().items():
                    target = norm.state_dict()[name]
                    if value.dim() == 0:
                        target.copy_(value)
                    else:
                        copy_into_corner(target, value)
        self.append_task(norm)


class TaskHeads(PerTask):
    """One linear classifier per task, reading the features at that task's width."""

    def __init__(self, in_features: int, scale_in: bool = True):
        super().__init__()
        self.in_features, self.scale_in = in_features, scale_in

    def add_task(self, width: float, num_classes: int) -> None:
        head = SharedLinear(self.in_features, num_classes, width=width, mode="plain", scale_in=self.scale_in,
                            scale_out=False)
        nn.init.normal_(head.weights.weight, 0.0, 0.01)
        if len(self.per_task):
            head.to(self.per_task[-1].weights.weight.device)
        self.append_task(head)


class SubspaceBatchNorm2d(nn.Module):
    """Batch-norm of a subspace: S stacked affine sets mixed by `coeffs`, one shared set of
    running statistics (recalibrated at the evaluated point before evaluation)."""

    def __init__(self, channels: int, vertices: int, width: float = 1.0, scale: bool = True):
        super().__init__()
        size = scaled(channels, width) if scale else channels
        self.weight = nn.Parameter(torch.ones(vertices, size))
        self.bias = nn.Parameter(torch.zeros(vertices, size))
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self.eps, self.momentum = 1e-5, 0.1
        self.coeffs = torch.full((vertices,), 1.0 / vertices)

    def _apply(self, fn, *args, **kwargs):
        self.coeffs = fn(self.coeffs)
        return super()._apply(fn, *args, **kwargs)

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.coeffs @ self.weight,
                            self.coeffs @ self.bias, self.training, self.momentum, self.eps)

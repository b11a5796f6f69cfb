"""The optimizers the methods use, with PyTorch's update formulas.

`torch.optim` imports the compiler stack (torch._dynamo) the first time an
optimizer is built, about 1.8 s on a 2-core CPU; every stage is its own process
and a task takes about 14 of them, so these small equivalents keep start-up
short. tests/engine/test_optim.py checks each against torch.optim step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class Optimizer:
    """The parameters, a learning rate the schedules set directly, and zero_grad.

    `make_capturable` moves the learning rate (and Adam's step count) into device
    tensors that a CUDA graph reads at replay, so a schedule's new rate reaches a
    captured step; the update then takes a separate multiply, which may differ from
    the fused eager update in the last bit.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float):
        self.params = list(params)
        self._lr = lr
        self.lr_tensor: torch.Tensor | None = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = value
        if self.lr_tensor is not None:
            self.lr_tensor.fill_(value)

    step: Callable[[], None]
    """one update of the parameters from their gradients (each optimizer's own)"""

    def make_capturable(self) -> None:
        self.lr_tensor = torch.tensor(self._lr, device=self.params[0].device)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None


class SGD(Optimizer):
    """torch.optim.SGD with momentum, optional Nesterov and L2 weight decay (no dampening): CPG's
    optimizer (Nesterov, decay applied by the method on owned weights only) and the subspaces'."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.momentum_buffers: dict[torch.Tensor, torch.Tensor] = {}

    @torch.no_grad()
    def step(self) -> None:
        for param in self.params:
            if param.grad is None:
                continue
            grad = param.grad.add(param, alpha=self.weight_decay) if self.weight_decay else param.grad
            buffer = self.momentum_buffers.get(param)
            if buffer is None:
                buffer = self.momentum_buffers[param] = grad.clone()
            else:
                buffer.mul_(self.momentum).add_(grad)
            update = grad.add(buffer, alpha=self.momentum) if self.nesterov else buffer
            if self.lr_tensor is None:
                param.add_(update, alpha=-self._lr)
            else:
                param.sub_(update * self.lr_tensor)


class Adam(Optimizer):
    """Adam without weight decay (torch.optim.Adam's defaults): CPG's piggymasks, SupSup's scores."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps
        self.steps = 0
        self.step_tensor: torch.Tensor | None = None
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]

    def make_capturable(self) -> None:
        super().make_capturable()
        self.step_tensor = torch.tensor(float(self.steps), device=self.params[0].device)

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        step_size: float | torch.Tensor
        correction2_sqrt: float | torch.Tensor
        if self.step_tensor is None:
            self.steps += 1
            step_size = self._lr / (1 - beta1 ** self.steps)
            correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        else:
            if self.lr_tensor is None:
                raise TypeError("Adam's step count is a tensor but not its learning rate (make_capturable sets both)")
            self.step_tensor += 1
            step_size = self.lr_tensor / (1 - beta1 ** self.step_tensor)
            correction2_sqrt = (1 - beta2 ** self.step_tensor).sqrt()
        for param, (mean, square) in zip(self.params, self.moments, strict=True):
            if param.grad is None:
                continue
            mean.lerp_(param.grad, 1 - beta1)
            square.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
            denominator = (square.sqrt() / correction2_sqrt).add_(self.eps)
            if isinstance(step_size, torch.Tensor):  # captured: the step count and rate are tensors
                param.sub_(mean * step_size / denominator)
            else:
                param.addcdiv_(mean, denominator, value=-step_size)


class RMSprop(Optimizer):
    """RMSprop without momentum, centering or decay (torch.optim.RMSprop's defaults): the optimizer of
    SupSup's MNIST experiments."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(params, lr)
        self.alpha, self.eps = alpha, eps
        self.squares = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        for param, square in zip(self.params, self.squares, strict=True):
            if param.grad is not None:
                square.mul_(self.alpha).addcmul_(param.grad, param.grad, value=1 - self.alpha)
                param.addcdiv_(param.grad, square.sqrt().add_(self.eps), value=-self.lr)

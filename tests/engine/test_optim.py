"""Our optimizers follow torch.optim's formulas step by step."""

import pytest
import torch

from unforget.utils.optim import SGD, Adam, RMSprop

PAIRS = {
    "nesterov": (lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, foreach=False)),
    "momentum_decay": (lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
                       lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2, foreach=False)),
    "adam": (lambda p: Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False)),
    "rmsprop": (lambda p: RMSprop(p, lr=1e-2), lambda p: torch.optim.RMSprop(p, lr=1e-2, foreach=False)),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_matches_torch_optim(name):
    ours, theirs = PAIRS[name]
    torch.manual_seed(0)
    start = torch.randn(10)
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    opt_a, opt_b = ours([a]), theirs([b])
    for step in range(20):
        target = torch.randn(10, generator=torch.Generator().manual_seed(step))
        for param, optimizer in ((a, opt_a), (b, opt_b)):
            optimizer.zero_grad()
            ((param - target) ** 2).sum().backward()
            optimizer.step()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

"""A small conv net whose every conv/linear layer (the classifier too) and batch-norm is a subspace layer."""

from __future__ import annotations

import torch
from torch import nn

from models.digits import CHANNELS, HIDDEN, conv_features
from models.layers import SUBSPACE_MODES, SharedLinear, SubspaceBatchNorm2d
from models.network import TaskNetwork


class SubspaceHead(nn.Module):
    """The classifier of a single-task subspace network, itself a subspace layer (created with the task)."""

    def __init__(self, in_features: int, mode: str):
        super().__init__()
        self.in_features, self.mode = in_features, mode
        self.layer: SharedLinear | None = None

    def add_task(self, width: float, num_classes: int) -> None:
        if self.layer is not None:
            raise ValueError("a subspace network holds exactly one task")
        self.layer = SharedLinear(self.in_features, num_classes, width=width, bias=False, mode=self.mode,
                                  scale_out=False)

    def set_task(self, task: int) -> None:
        """One task only: nothing to switch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class SubspaceConvNet(TaskNetwork):
    """The digits conv net's topology (four 3x3 convs, pooled to 1x1, one hidden layer) as a subspace:
    `mode` is a subspace weight mode (line, curve, simplexN) naming the vertex count."""

    def __init__(self, width: float = 1.0, mode: str = "line", in_channels: int = 1):
        if mode not in SUBSPACE_MODES:
            raise ValueError(f"mode {mode!r} is not a subspace mode ({', '.join(SUBSPACE_MODES)})")
        super().__init__(width, mode)
        vertices = SUBSPACE_MODES[mode]
        self.features = conv_features(in_channels, width, mode,
                                      lambda channels: SubspaceBatchNorm2d(channels, vertices, width))
        self.classifier = nn.Sequential(SharedLinear(CHANNELS[-1], HIDDEN, width=width, bias=False, mode=mode),
                                        nn.ReLU(inplace=True))
        self.heads = SubspaceHead(HIDDEN, mode)


class SubspaceConvNetRGB(SubspaceConvNet):
    """The same net for three-channel images (CIFAR)."""

    def __init__(self, width: float = 1.0, mode: str = "line"):
        super().__init__(width, mode, in_channels=3)


SUBSPACE_ARCHS = {1: "subspace_convnet", 3: "subspace_convnet_rgb"}
"""The subspace architecture for images with this many channels."""

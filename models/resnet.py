"""GEMResNet18 (the reduced ResNet-18 of GEM and SupSup's SplitCIFAR100), from the shared layers.

BasicBlocks [2, 2, 2, 2] at nf = 20 channels (20/40/80/160), a 3x3 stride-1 stem for 32x32 inputs,
4x4 average pooling and one last layer. Batch-norm and head come from the layer mode (in SupSup
mode non-affine batch-norm per task and one masked head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.digits import init_weights
from unforget.models.layers.base import LayerMode, SharedConv2d
from unforget.models.network import TaskNetwork

NF = 20
BLOCKS = (2, 2, 2, 2)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, layers: LayerMode):
        super().__init__()
        mode = layers.name
        self.conv1 = SharedConv2d(in_channels, channels, 3, stride=stride, padding=1, mode=mode)
        self.bn1 = layers.norm(channels, 1.0)
        self.conv2 = SharedConv2d(channels, channels, 3, padding=1, mode=mode)
        self.bn2 = layers.norm(channels, 1.0)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(SharedConv2d(in_channels, channels, 1, stride=stride, mode=mode),
                                          layers.norm(channels, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class GEMResNet18(TaskNetwork):
    def __init__(self, width: float = 1.0, mode: str = "supsup", input_shape: tuple[int, ...] = (3, 32, 32),
                 outputs: int = 5):
        super().__init__(width, mode)
        if width != 1.0:
            raise ValueError("gem_resnet18 does not grow; use width 1.0")
        layers: list[nn.Module] = [SharedConv2d(input_shape[0], NF, 3, padding=1, mode=mode),
                                   self.layers.norm(NF, width), nn.ReLU()]
        previous = NF
        for stage, count in enumerate(BLOCKS):
            channels = NF * 2 ** stage
            for index in range(count):
                layers.append(BasicBlock(previous, channels, 2 if stage and not index else 1, self.layers))
                previous = channels
        layers += [nn.AvgPool2d(4), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Identity()
        self.heads = self.layers.head(previous * (input_shape[1] // 32) * (input_shape[2] // 32), outputs, width)
        init_weights(self)

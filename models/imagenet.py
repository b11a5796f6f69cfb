"""torchvision's ImageNet networks from the shared layers: ResNet-18, -34, -50 and VGG16 with batch-norm.

They exist so a task sequence can start from ImageNet weights (`models/pretrained.py`); every layer
mode works on them as on the CIFAR nets. The topologies are torchvision's: a 7x7 stride-2 stem and
a 3x3 max-pool, stages of BasicBlocks or Bottlenecks (v1.5: a bottleneck strides on its 3x3 conv),
adaptive average pooling; VGG's 13 convs with batch-norm, pooling to 7x7 and two 4096-wide layers
with ReLU and dropout. The last layer is the layer mode's head.

Module names mirror torchvision's (our `features.layer1.0.downsample.0` is its
`layer1.0.downsample.0`; VGG keeps its `features.N` and `classifier.N`), so mapping a torchvision
state dict is a matter of renaming the head. Channels scale by the square root of the width
multiplier, except the images' own channels.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from unforget.models.digits import init_weights
from unforget.models.layers.base import LayerMode, SharedConv2d, SharedLinear
from unforget.models.network import TaskNetwork
from unforget.models.vgg import CONFIG_D, HIDDEN

STAGE_CHANNELS = (64, 128, 256, 512)
IMAGENET_CLASSES = 1000
VGG_POOLED = 7
"""VGG pools its last feature map to 7x7 whatever the image size, so its first linear layer reads 512x7x7."""


def _downsample(in_channels: int, out_channels: int, stride: int, width: float, layers: LayerMode) -> nn.Module:
    """The shortcut: identity, or a strided 1x1 conv with batch-norm where the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(SharedConv2d(in_channels, out_channels, 1, width=width, stride=stride, mode=layers.name),
                         layers.norm(out_channels, width))


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first strides) with batch-norm, plus the shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, width: float, layers: LayerMode):
        super().__init__()
        mode = layers.name
        self.conv1 = SharedConv2d(in_channels, channels, 3, width=width, stride=stride, padding=1, mode=mode)
        self.bn1 = layers.norm(channels, width)
        self.conv2 = SharedConv2d(channels, channels, 3, width=width, padding=1, mode=mode)
        self.bn2 = layers.norm(channels, width)
        self.downsample = _downsample(in_channels, channels, stride, width, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 down to `channels`, 3x3 (strided, as torchvision v1.5), 1x1 up to 4x `channels`, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, width: float, layers: LayerMode):
        super().__init__()
        mode, out_channels = layers.name, channels * self.expansion
        self.conv1 = SharedConv2d(in_channels, channels, 1, width=width, mode=mode)
        self.bn1 = layers.norm(channels, width)
        self.conv2 = SharedConv2d(channels, channels, 3, width=width, stride=stride, padding=1, mode=mode)
        self.bn2 = layers.norm(channels, width)
        self.conv3 = SharedConv2d(channels, out_channels, 1, width=width, mode=mode)
        self.bn3 = layers.norm(out_channels, width)
        self.downsample = _downsample(in_channels, out_channels, stride, width, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.downsample(x))


class ImageNetResNet(TaskNetwork):
    """torchvision's ResNet topology; `torchvision_arch` names the torchvision model whose weights fit."""

    def __init__(self, torchvision_arch: str, block: type[BasicBlock | Bottleneck], blocks: tuple[int, ...],
                 width: float = 1.0, mode: str = "cpg", input_shape: tuple[int, ...] = (3, 224, 224),
                 outputs: int = IMAGENET_CLASSES):
        super().__init__(width, mode)
        self.torchvision_arch = torchvision_arch
        parts: list[tuple[str, nn.Module]] = [
            ("conv1", SharedConv2d(input_shape[0], STAGE_CHANNELS[0], 7, width=width, stride=2, padding=3, mode=mode,
                                   scale_in=False)),
            ("bn1", self.layers.norm(STAGE_CHANNELS[0], width)), ("relu", nn.ReLU(inplace=True)),
            ("maxpool", nn.MaxPool2d(3, stride=2, padding=1))]
        previous = STAGE_CHANNELS[0]
        for stage, (channels, count) in enumerate(zip(STAGE_CHANNELS, blocks, strict=True)):
            stage_blocks = []
            for index in range(count):
                stage_blocks.append(block(previous, channels, 2 if stage and not index else 1, width, self.layers))
                previous = channels * block.expansion
            parts.append((f"layer{stage + 1}", nn.Sequential(*stage_blocks)))
        parts += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        self.features = nn.Sequential(OrderedDict(parts))
        self.classifier = nn.Identity()
        self.heads = self.layers.head(previous, outputs, width)
        init_weights(self)


def ResNet18(**options) -> ImageNetResNet:  # noqa: N802 (an architecture name)
    return ImageNetResNet("resnet18", BasicBlock, (2, 2, 2, 2), **options)


def ResNet34(**options) -> ImageNetResNet:  # noqa: N802 (an architecture name)
    return ImageNetResNet("resnet34", BasicBlock, (3, 4, 6, 3), **options)


def ResNet50(**options) -> ImageNetResNet:  # noqa: N802 (an architecture name)
    return ImageNetResNet("resnet50", Bottleneck, (3, 4, 6, 3), **options)


class VGG16BN(TaskNetwork):
    """torchvision's vgg16_bn: `features` in its order (conv with bias, batch-norm, ReLU; max-pools), then
    7x7 adaptive pooling and `classifier` (512x7x7 -> 4096 -> 4096, ReLU and dropout 0.5 after each)."""

    torchvision_arch = "vgg16_bn"

    def __init__(self, width: float = 1.0, mode: str = "cpg", input_shape: tuple[int, ...] = (3, 224, 224),
                 outputs: int = IMAGENET_CLASSES):
        super().__init__(width, mode)
        layers: list[nn.Module] = []
        previous, first, bias = input_shape[0], True, self.layers.bias
        for item in CONFIG_D:
            if isinstance(item, str):  # "M"
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [SharedConv2d(previous, item, 3, width=width, padding=1, bias=bias, mode=mode,
                                    scale_in=not first),
                       self.layers.norm(item, width), nn.ReLU(inplace=True)]
            previous, first = item, False
        layers += [nn.AdaptiveAvgPool2d(VGG_POOLED), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            SharedLinear(previous, HIDDEN, width=width, bias=bias, mode=mode, positions=VGG_POOLED ** 2),
            nn.ReLU(inplace=True), nn.Dropout(0.5),
            SharedLinear(HIDDEN, HIDDEN, width=width, bias=bias, mode=mode), nn.ReLU(inplace=True), nn.Dropout(0.5))
        self.heads = self.layers.head(HIDDEN, outputs, width)
        init_weights(self)

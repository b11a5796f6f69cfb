"""A small conv net for 8x8 digits (and its three-channel twin), built from the shared layers."""

from torch import nn

from unforget.models.layers.base import SharedConv2d, SharedLinear
from unforget.models.network import TaskNetwork

CHANNELS = (32, 32, 64, 64)
POOL_AFTER = {1, 2}
HIDDEN = 128


class DigitsConvNet(TaskNetwork):
    """Four 3x3 convs (batch-norm, ReLU; pooled 8->4->2->1), one shared hidden layer, then the head.

    In a subspace mode every layer, batch-norm and the head are subspace layers (the subspace nets)."""

    def __init__(self, width: float = 1.0, mode: str = "cpg", in_channels: int = 1):
        super().__init__(width, mode)
        layers: list[nn.Module] = []
        previous = in_channels
        for index, channels in enumerate(CHANNELS):
            layers += [SharedConv2d(previous, channels, 3, width=width, padding=1, mode=mode, scale_in=index > 0),
                       self.layers.norm(channels, width), nn.ReLU(inplace=True)]
            if index in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            previous = channels
        self.features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(SharedLinear(CHANNELS[-1], HIDDEN, width=width, bias=self.layers.bias,
                                                     mode=mode), nn.ReLU(inplace=True))
        self.heads = self.layers.head(HIDDEN, 0, width)
        init_weights(self)


class DigitsConvNetRGB(DigitsConvNet):
    """The same net for three-channel images (CIFAR)."""

    def __init__(self, width: float = 1.0, mode: str = "cpg"):
        super().__init__(width, mode, in_channels=3)


def init_weights(model: nn.Module) -> None:
    """The reference initialisation: conv kaiming-normal (fan_out), linear N(0, 0.01), zero biases;
    modes that draw their own weights (supsup, subspace, students) keep them."""
    for module in model.modules():
        if isinstance(module, (SharedConv2d, SharedLinear)) and module.weights.initialises_itself:
            continue
        if isinstance(module, SharedConv2d):
            nn.init.kaiming_normal_(module.weights.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, SharedLinear):
            nn.init.normal_(module.weights.weight, 0.0, 0.01)

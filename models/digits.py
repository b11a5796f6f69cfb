"""A small conv net for 8x8 digits, built from the shared layers."""

from collections.abc import Callable

from torch import nn

from models.layers import SharedConv2d, SharedLinear, TaskBatchNorm2d, TaskHeads
from models.network import TaskNetwork

CHANNELS = (32, 32, 64, 64)
POOL_AFTER = {1, 2}
HIDDEN = 128


class DigitsConvNet(TaskNetwork):
    """Four 3x3 convs (batch-norm, ReLU; pooled 8->4->2->1), one shared hidden layer, one head per task."""

    def __init__(self, width: float = 1.0, mode: str = "cpg", in_channels: int = 1):
        super().__init__(width, mode)
        self.features = conv_features(in_channels, width, mode, TaskBatchNorm2d)
        self.classifier = nn.Sequential(SharedLinear(CHANNELS[-1], HIDDEN, width=width, mode=mode),
                                        nn.ReLU(inplace=True))
        self.heads = TaskHeads(HIDDEN)
        init_weights(self)


def conv_features(in_channels: int, width: float, mode: str, norm: Callable[[int], nn.Module]) -> nn.Sequential:
    """The four 3x3 convs with `norm` and ReLU, pooled 8 -> 4 -> 2 -> 1 and flattened."""
    layers: list[nn.Module] = []
    previous = in_channels
    for index, channels in enumerate(CHANNELS):
        layers += [SharedConv2d(previous, channels, 3, width=width, padding=1, mode=mode, scale_in=index > 0),
                   norm(channels), nn.ReLU(inplace=True)]
        if index in POOL_AFTER:
            layers.append(nn.MaxPool2d(2))
        previous = channels
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())


def init_weights(model: nn.Module) -> None:
    """The reference initialisation: conv kaiming-normal (fan_out), linear N(0, 0.01), zero biases."""
    for module in model.modules():
        if isinstance(module, SharedConv2d):
            nn.init.kaiming_normal_(module.weights.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, SharedLinear):
            nn.init.normal_(module.weights.weight, 0.0, 0.01)

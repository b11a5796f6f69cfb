"""VGG16 with batch-norm for 32x32 inputs (CIFAR), built from the shared layers.

13 3x3 convs with batch-norm and ReLU, five max-pools (32 -> 1), two 4096-wide
linear layers with ReLU and one head per task; no dropout. Every width is
`int(v * sqrt(multiplier))`, so the parameter count follows the multiplier.
"""

from torch import nn

from unforget.models.digits import init_weights
from unforget.models.layers.base import SharedConv2d, SharedLinear
from unforget.models.network import TaskNetwork

CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
HIDDEN = 4096


class VGG16CIFAR(TaskNetwork):
    def __init__(self, width: float = 1.0, mode: str = "cpg", in_channels: int = 3):
        super().__init__(width, mode)
        layers: list[nn.Module] = []
        previous, first = in_channels, True
        for item in CONFIG_D:
            if isinstance(item, str):  # "M"
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [SharedConv2d(previous, item, 3, width=width, padding=1, mode=mode, scale_in=not first),
                       self.layers.norm(item, width), nn.ReLU(inplace=True)]
            previous, first = item, False
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            SharedLinear(previous, HIDDEN, width=width, mode=mode), nn.ReLU(inplace=True),
            SharedLinear(HIDDEN, HIDDEN, width=width, mode=mode), nn.ReLU(inplace=True),
        )
        self.heads = self.layers.head(HIDDEN, 0, width)
        init_weights(self)

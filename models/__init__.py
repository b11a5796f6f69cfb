"""Architectures by name, and rebuilding a network from a checkpoint's task list."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from unforget.models.bn_mask_net import BNMaskNet
from unforget.models.digits import DigitsConvNet, DigitsConvNetRGB
from unforget.models.imagenet import VGG16BN, ResNet18, ResNet34, ResNet50
from unforget.models.lenet import FC10241024, LeNet300100
from unforget.models.network import TaskNetwork, TaskSpec
from unforget.models.resnet import GEMResNet18
from unforget.models.students import DigitsTeacherMLP, MnistDeepTeacherMLP, MnistTeacherMLP
from unforget.models.vgg import VGG16CIFAR

ARCHITECTURES: dict[str, Callable[..., TaskNetwork]] = {
    "digits_convnet": DigitsConvNet,
    "custom_vgg_cifar100": VGG16CIFAR,
    "vgg16_bn_cifar100": VGG16CIFAR,
    "lenet_300_100": LeNet300100,
    "fc_1024_1024": FC10241024,
    "gem_resnet18": GEMResNet18,
    "subspace_convnet": DigitsConvNet,
    "subspace_convnet_rgb": DigitsConvNetRGB,
    "digits_mlp_16": DigitsTeacherMLP,
    "mnist_mlp_32": MnistTeacherMLP,
    "mnist_mlp_32_16": MnistDeepTeacherMLP,
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
    "vgg16_bn": VGG16BN,
    "bn_mask_net": BNMaskNet,
}


FLATTENING = ("lenet_300_100", "fc_1024_1024")
"""Fully connected architectures: their first layer takes the flattened image, so its size is the data's."""


def input_options(arch: str, image_shape: tuple[int, ...]) -> dict:
    """The build options that fit `arch` to images of `image_shape` (conv nets need none)."""
    return {"input_shape": tuple(image_shape)} if arch in FLATTENING else {}


class UnknownArchitecture(ValueError):
    """An architecture name no entry of ARCHITECTURES has."""


def build_network(arch: str, width: float, tasks: Sequence[TaskSpec] = (), mode: str = "cpg", **options) -> TaskNetwork:
    """A network of `arch` at `width` in layer `mode` (architecture `options` such as SupSup's input
    shape and outputs) with room for the stored `tasks`, each at its own width, for a checkpoint to fill.

    `custom_vgg_cifar100` and `vgg16_bn_cifar100` are the same topology; the reference used the
    first for CPG and the second for plain baselines and PackNet, and both names are kept."""
    if arch not in ARCHITECTURES:
        raise UnknownArchitecture(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    network = ARCHITECTURES[arch](width=width, mode=mode, **options)
    network.restore_tasks(tasks)
    return network

"""ImageNet weights from torchvision's checkpoints, copied into a network of the shared layers.

A task sequence can start from a pretrained backbone: `add_pretrained_task` gives a fresh network
the task "imagenet" (1000 classes, width 1.0) holding torchvision's weights, batch-norm and
classifier. In CPG mode that task owns every weight at width 1.0, as if trained and not pruned, so
later tasks pick from it and never change its outputs; weights of a wider network stay free for them.

The mapping is by name: our ImageNet networks (`models/imagenet.py`) name their modules as
torchvision does, so a torchvision name is ours with the body's prefix, except the classifier's last
layer, which is our per-task head. Every mismatch (a missing file, not a state dict, another
architecture's keys or shapes) is a `PretrainedError` with one line saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from unforget.models.imagenet import IMAGENET_CLASSES
from unforget.models.layers.base import SharedConv2d, SharedLinear, slice_to
from unforget.models.layers.cpg import CPGWeights
from unforget.models.layers.per_task import TaskBatchNorm2d, TaskHeads
from unforget.models.layers.plain import PlainWeights
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import UnreadableFile, read_torch_file

PRETRAINED_TASK = "imagenet"
LOADABLE_MODES = ("plain", "cpg", "packnet")
"""Layer modes whose weights are trained values (supsup's are fixed random signs, subspaces' vertices)."""
BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
OPTIONAL = "num_batches_tracked"
"""Older torchvision files lack it, and evaluation never reads it."""


class PretrainedError(ValueError):
    """Pretrained weights that cannot go into the network; the message is one line."""


@dataclass(frozen=True)
class Source:
    """Where a torchvision architecture's ImageNet weights come from and how its names differ from ours."""

    file: str
    """the file torchvision downloads (to ~/.cache/torch/hub/checkpoints/)"""
    weights: str
    """the torchvision.models weights entry that names it"""
    head: str
    """torchvision's name of the classifier's last layer (our `heads`)"""
    body: str
    """what our network puts before torchvision's other module names"""

    def torchvision_name(self, ours: str) -> str:
        """torchvision's module name for our module path."""
        return self.head if ours == "heads" else ours.removeprefix(self.body)


SOURCES: dict[str, Source] = {
    "resnet18": Source("resnet18-f37072fd.pth", "ResNet18_Weights.IMAGENET1K_V1", "fc", "features."),
    "resnet34": Source("resnet34-b627a593.pth", "ResNet34_Weights.IMAGENET1K_V1", "fc", "features."),
    "resnet50": Source("resnet50-0676ba61.pth", "ResNet50_Weights.IMAGENET1K_V1", "fc", "features."),
    "vgg16_bn": Source("vgg16_bn-6c64b313.pth", "VGG16_BN_Weights.IMAGENET1K_V1", "classifier.6", ""),
}


def source_of(network: TaskNetwork) -> Source:
    """The torchvision source of `network`'s weights, or a PretrainedError naming the ones that exist."""
    if network.torchvision_arch not in SOURCES:
        raise PretrainedError(f"{type(network).__name__} has no torchvision counterpart; pretrained weights fit "
                              f"{', '.join(SOURCES)}")
    if network.mode not in LOADABLE_MODES:
        raise PretrainedError(f"layer mode {network.mode} cannot start from pretrained weights "
                              f"(only {', '.join(LOADABLE_MODES)} can)")
    return SOURCES[network.torchvision_arch]


def _body_targets(path: str, layer: SharedConv2d | SharedLinear, task: int, width: float) -> dict[str, tuple]:
    """Our state-dict names and tensors (at the task's width) of one conv or linear layer."""
    weights = layer.weights
    shape = layer.geometry.shape(width)
    targets = {"weight": (f"{path}.weights.weight", slice_to(weights.weight.detach(), shape))}
    if isinstance(weights, PlainWeights) and weights.bias is not None:
        targets["bias"] = (f"{path}.weights.bias", slice_to(weights.bias.detach(), shape[:1]))
    elif isinstance(weights, CPGWeights) and weights.biases is not None:
        targets["bias"] = (f"{path}.weights.biases.{task - 1}", weights.biases[task - 1].detach())
    return targets


def _targets(network: TaskNetwork, task: int) -> dict[str, tuple[str, torch.Tensor]]:
    """torchvision state-dict name -> (our state-dict name, the tensor it fills) for task `task`."""
    source, width = source_of(network), network.tasks[task - 1].width
    targets: dict[str, tuple[str, torch.Tensor]] = {}
    for path, module in network.named_modules():
        entries: dict[str, tuple] = {}
        if isinstance(module, (SharedConv2d, SharedLinear)) and not path.startswith("heads"):
            entries = _body_targets(path, module, task, width)
        elif isinstance(module, TaskBatchNorm2d):
            norm = module.per_task[task - 1]
            entries = {name: (f"{path}.per_task.{task - 1}.{name}", getattr(norm, name).detach())
                       for name in BATCH_NORM}
        elif isinstance(module, TaskHeads):
            head = module.per_task[task - 1].weights
            entries = {"weight": (f"{path}.per_task.{task - 1}.weights.weight", head.weight.detach()),
                       "bias": (f"{path}.per_task.{task - 1}.weights.bias", head.bias.detach())}
        for name, target in entries.items():
            targets[f"{source.torchvision_name(path)}.{name}"] = target
    return targets


def torchvision_names(network: TaskNetwork, task: int = 1) -> dict[str, str]:
    """torchvision's state-dict names -> ours for task `task` (e.g. `layer1.0.conv1.weight` ->
    `features.layer1.0.conv1.weights.weight`, `fc.bias` -> `heads.per_task.0.weights.bias`)."""
    return {theirs: ours for theirs, (ours, _) in _targets(network, task).items()}


def _listed(names: set[str]) -> str:
    shown = sorted(names)[:3]
    return ", ".join(shown) + (f" and {len(names) - len(shown)} more" if len(names) > len(shown) else "")


def read_state_dict(path: str | Path, source: Source) -> dict[str, torch.Tensor]:
    """A torchvision state dict from `path` (tensors only: weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"no pretrained weights at {path}: put torchvision's {source.file} "
                              f"(from torchvision.models.{source.weights}) at {path}")
    try:
        state = read_torch_file(path)
    except UnreadableFile as error:
        advice = "" if error.os_error else f" (truncated, or another format); get torchvision's {source.file} again"
        raise PretrainedError(f"{error}{advice}") from error
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise PretrainedError(f"{path} holds a {type(state).__name__}, not a state dict (names -> tensors) such as "
                              f"torchvision's {source.file}")
    return dict(state)


def _check_ownership(network: TaskNetwork, task: int) -> None:
    """In CPG modes the task must own its whole corner: pretrained values never overwrite another task's."""
    width = network.tasks[task - 1].width
    for weights in network.body_weights():
        if isinstance(weights, CPGWeights) and not bool((slice_to(weights.owner, weights.geometry.shape(width))
                                                         == task).all()):
            raise PretrainedError(f"task {task} does not own all its weights; pretrained weights go into a fresh "
                                  "network's first task")


def load_pretrained(network: TaskNetwork, source: str | Path | Mapping[str, torch.Tensor], task: int = 1) -> None:
    """Copy a torchvision state dict (a file or the dict) into the body, task `task`'s batch-norm and, if
    its class count matches, its head. The keys and shapes must be exactly torchvision's for this
    architecture at the task's width; anything else is a PretrainedError and nothing is copied."""
    origin = source_of(network)
    where = "the state dict" if isinstance(source, Mapping) else str(source)
    state = dict(source) if isinstance(source, Mapping) else read_state_dict(source, origin)
    targets = _targets(network, task)
    missing = {name for name in targets if name not in state and not name.endswith(OPTIONAL)}
    unexpected = set(state) - set(targets)
    name = f"{network.torchvision_arch} (torchvision's {origin.file})"
    if missing or unexpected:
        found = [f"missing {_listed(missing)}" if missing else "", f"unexpected {_listed(unexpected)}" if unexpected
                 else ""]
        raise PretrainedError(f"{where} does not fit {name}: {'; '.join(part for part in found if part)}")
    head_fits = state[f"{origin.head}.weight"].shape[0] == network.tasks[task - 1].num_classes
    copies = [(theirs, target) for theirs, (_, target) in targets.items()
              if theirs in state and (head_fits or not theirs.startswith(f"{origin.head}."))]
    for theirs, target in copies:
        if state[theirs].shape != target.shape:
            raise PretrainedError(f"{where} does not fit {name} at width {network.tasks[task - 1].width}: "
                                  f"{theirs} is {tuple(state[theirs].shape)}, expected {tuple(target.shape)}")
    _check_ownership(network, task)
    with torch.no_grad():
        for theirs, target in copies:
            target.copy_(state[theirs])


def add_pretrained_task(network: TaskNetwork, source: str | Path | Mapping[str, torch.Tensor]) -> int:
    """Make task 1 of a fresh network the ImageNet task (1000 classes, width 1.0) with `source`'s
    weights; in CPG modes it then owns every weight at width 1.0. Returns its id."""
    if network.tasks:
        raise PretrainedError("pretrained weights become the first task of a fresh network, which this one is not")
    source_of(network)
    task = network.add_task(PRETRAINED_TASK, IMAGENET_CLASSES, width=1.0)
    load_pretrained(network, source, task)
    return task


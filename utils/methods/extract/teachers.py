"""Teachers to extract, and the inputs they are probed with.

A teacher is a list of (weight [out, in], bias [out]) per layer plus its activation. It is either
a random synthetic network probed with Gaussian inputs (controlled experiments: the truth is
known exactly), or a network trained by `main_normal.py`, probed with its benchmark's training
inputs or with Gaussian inputs (its test inputs measure generalisation). Targets are the
teacher's raw outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unforget.models.layers.base import SharedLinear
from unforget.models.layers.per_task import TaskHeads
from unforget.models.students import ACTIVATIONS, StudentsMLP

TEST_SHARE = 4  # Gaussian test inputs: a quarter as many as training inputs
REFERENCE_INPUTS = 4096  # Gaussian inputs that set a synthetic teacher's deeper biases
REFERENCE_SEED = 1000  # their generator's seed, apart from the weights' (seed) and the probes' (seed + 1)


@dataclass
class Teacher:
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    activation: str
    accuracy: float | None = None
    """a trained teacher's accuracy on its task's test images"""

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0][0].shape[1]] + [weight.shape[0] for weight, _ in self.layers]

    def network(self) -> StudentsMLP:
        """The teacher as a one-student network."""
        network = StudentsMLP(self.sizes, 1, self.activation)
        with torch.no_grad():
            for index, (weight, bias) in enumerate(self.layers):
                network.weights(index)[0].copy_(weight.unsqueeze(0))
                network.weights(index)[1].copy_(bias.unsqueeze(0))
        return network


@dataclass
class Labelled:
    """A trained teacher's images with their true labels, for the rebuilt network's accuracy."""

    x: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> Labelled:
        return Labelled(self.x.to(device), self.labels.to(device))


@dataclass
class Probes:
    """Inputs and the teacher's outputs on them, training and test; a trained teacher's labelled test images and,
    under --val_fraction, its held-out training images (which no student sees)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    test: Labelled | None = None
    validation: Labelled | None = None

    def to(self, device: torch.device) -> Probes:
        return Probes(self.x_train.to(device), self.y_train.to(device), self.x_test.to(device), self.y_test.to(device),
                      None if self.test is None else self.test.to(device),
                      None if self.validation is None else self.validation.to(device))


def synthetic_teacher(sizes: list[int], activation: str, seed: int) -> Teacher:
    """Random weights N(0, 1/fan_in) and first-layer biases N(0, 0.25): every first-layer neuron is
    active on part of the Gaussian inputs and neurons point in distinct directions. A deeper hidden
    neuron sees inputs that are not centred, so a bias drawn the same way could leave it active on
    every input, where it is linear and no student can tell it from a mix of the others; its bias is
    instead minus its pre-activation's mean plus 0.5 standard deviations times N(0, 1) (over Gaussian
    reference inputs), so it too is active on part of the inputs. One hidden layer draws as before."""
    generator = torch.Generator().manual_seed(seed)
    below = torch.randn(REFERENCE_INPUTS, sizes[0], generator=torch.Generator().manual_seed(seed + REFERENCE_SEED))
    act = ACTIVATIONS[activation]()
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weight = torch.randn(fan_out, fan_in, generator=generator) / fan_in ** 0.5
        bias = 0.5 * torch.randn(fan_out, generator=generator)
        if 0 < index < len(sizes) - 2:
            drive = below @ weight.T
            bias = bias * drive.std(0) - drive.mean(0)
        layers.append((weight, bias))
        below = act(below @ weight.T + bias)
    return Teacher(layers, activation)


@torch.no_grad()
def gaussian_probes(teacher: Teacher, samples: int, seed: int) -> Probes:
    generator = torch.Generator().manual_seed(seed + 1)
    network = teacher.network()
    x_train = torch.randn(samples, teacher.sizes[0], generator=generator)
    x_test = torch.randn(max(1, samples // TEST_SHARE), teacher.sizes[0], generator=generator)
    return Probes(x_train, network(x_train)[0], x_test, network(x_test)[0])


def checkpoint_teacher(folder: Path, benchmark: str, dataset: str, data_root: Path, probe: str = "data",
                       samples: int = 0, seed: int = 1, val_fraction: float = 0.0) -> tuple[Teacher, Probes]:
    """A fully connected ReLU network trained by `main_normal.py` (its dense layers and the task's
    head; `folder` is its checkpoint folder or the checkpoint file in it), probed with the task's
    normalised, flattened training images (`probe` "data", as the published code) or with `samples`
    standard Gaussian inputs of the same size (`probe` "gaussian"); tested on the task's test images. A
    `val_fraction` holds out that share of the training images as the CPG family does (`hold_out`): they are
    no probes, only the rebuilt network's validation images."""
    from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
    from unforget.utils.cli import UsageError
    from unforget.utils.data.registry import get_benchmark
    from unforget.utils.data.tasks import DeviceTaskData, hold_out

    network = network_from_checkpoint(load_checkpoint(folder.parent if folder.is_file() else folder)).eval()
    network.set_task(network.task_id(dataset))
    parts = list(network.features.children())
    heads = network.heads  # a plain linear head per task in the modes an MLP teacher is trained in
    head = heads.per_task[network.active_task - 1] if isinstance(heads, TaskHeads) else None
    if not all(isinstance(part, (nn.Flatten, nn.ReLU, SharedLinear)) for part in parts) or \
            not isinstance(network.classifier, nn.Identity) or not isinstance(head, SharedLinear):
        raise UsageError(f"teacher {folder} is not a fully connected ReLU network (train it with an MLP arch)")
    hidden = [part for part in parts if isinstance(part, SharedLinear)]
    with torch.no_grad():
        layers = [tuple(t.detach().clone() for t in layer.weights()) for layer in [*hidden, head]]
        loaded = get_benchmark(benchmark).load_task(data_root, dataset)
        split = hold_out(loaded, val_fraction) if val_fraction else None
        task = DeviceTaskData(loaded if split is None else split, torch.device("cpu"), 0, False)
        shape = task.train_images.shape[1:]
        x_train = task.normalise(task.train_images).flatten(1)
        validation = None if split is None else Labelled(task.normalise(task.test_images).flatten(1),
                                                         task.test_labels)
        task = DeviceTaskData(loaded, torch.device("cpu"), 0, False)
        if probe == "gaussian":
            x_train = torch.randn(samples, x_train.shape[1], generator=torch.Generator().manual_seed(seed + 1))
        x_test = task.normalise(task.test_images).flatten(1)
        probes = Probes(x_train, network(x_train.view(-1, *shape)), x_test, network(x_test.view(-1, *shape)),
                        Labelled(x_test, task.test_labels), validation)
        accuracy = float((probes.y_test.argmax(1) == task.test_labels).float().mean())
    return Teacher(layers, "relu", accuracy), probes


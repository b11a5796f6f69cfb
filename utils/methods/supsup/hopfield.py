"""HopSupSup (SupSup section 3.7): task masks kept in a Hopfield network, recovered by gradient descent.

finetune: learn each task of --supsup_stream in turn (its identity is given while training): SGD with
momentum 0.9 on the batch-norm channel scores of the fixed network, then store the mask in each layer's
Hopfield weights (Storkey's rule) and as bits. inference: for every stored task, recover a mask from the
Hopfield weights alone, without the task's identity: the score starts at the mean stored pattern and takes
--supsup_hop_steps SGD steps (momentum 0.9, weight decay 1e-4) on test batches of the task, step b of B
minimising (1 - b/B) entropy + gamma (b/B) sum_layers energy per channel, so the data pick the attractor and
the energy then snaps onto it. The summary gives, per task, the accuracy with the stored and with the recovered
mask, the step from which the recovered mask equals the stored one, and the bytes of the Hopfield weights
against those of the bit-packed mask stack. To tell a wrong basin from a descent that did not converge, the
summary also gives the entropy of the task's test set under its own stored mask and under the lowest-entropy
other one (the objective cannot pick the task when the latter is lower), and eval.log gives per recovery step
the entropy and, per layer, the stored task whose pattern is nearest the current signs with their overlap
(the stored bits are read for these reports only, never by the descent).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import torch

from unforget.models import build_network
from unforget.models.layers.base import unpack_bits
from unforget.models.layers.hopfield import HopfieldMaskedNorm, hopfield_norms
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint, read_meta
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import TrainLoop
from unforget.utils.engine import evaluate as accuracy_of
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.stage import open_stage
from unforget.utils.methods.supsup.infer import objective
from unforget.utils.methods.supsup.settings import SupSupSettings, stream_names
from unforget.utils.optim import SGD

ARCH = "bn_mask_net"
"""the network every function here takes: a BNMaskNet (models/bn_mask_net.py) with Hopfield batch-norms"""
RECOVERY_MOMENTUM, RECOVERY_DECAY = 0.9, 1e-4


def storage_bytes(network: TaskNetwork) -> dict:
    """Bytes of what recovery needs (Hopfield weights and pattern sums) against the bit-packed masks."""
    norms = hopfield_norms(network)
    hopfield = sum(n.memory.numel() * n.memory.element_size() + n.pattern_sum.numel() * n.pattern_sum.element_size()
                   for n in norms)
    return {"hopfield_bytes": hopfield, "mask_stack_bytes": sum(n.stack.numel() for n in norms)}


def _shifted(data: DeviceTaskData, offset: int) -> DeviceTaskData:
    """The task's labels moved past the earlier tasks' classes: every task shares one output layer, each
    class its own unit (the reference's split MNIST keeps the digits' own labels)."""
    data.train_labels = data.train_labels + offset
    data.test_labels = data.test_labels + offset
    return data


def train(settings: SupSupSettings) -> ExitCode:
    """Learn the stream's tasks one after another and store each mask in the Hopfield weights."""
    stage = open_stage(settings)
    names = stream_names(settings)
    tasks = [stage.load_task(name) for name in names]
    offsets = [sum(task.num_classes for task in tasks[:position]) for position in range(len(tasks))]
    classes = sum(task.num_classes for task in tasks)
    outputs = settings.supsup_output_size or classes
    if classes > outputs:
        raise UsageError(f"--supsup_output_size {outputs} is too few for the stream's {classes} classes")
    network = build_network(ARCH, 1.0, mode="plain", input_shape=tasks[0].image_shape, outputs=outputs,
                            hidden=settings.supsup_hop_hidden).to(stage.device)
    learned = {}
    for position, (name, task) in enumerate(zip(names, tasks, strict=True)):
        index = network.add_task(name, task.num_classes)
        # no random crops: the reference's split MNIST trains without them, and on the 8x8 digits they leave the
        # masks so unsure that another task's mask gives some tasks' test images a lower entropy than their own
        trained, held = stage.validation_split(task)
        data = _shifted(stage.on_device(trained, augment=False), offsets[position])
        validation = None if held is None else _shifted(stage.on_device(held, augment=False), offsets[position])
        loop = TrainLoop(network, [SGD(network.task_parameters(index), lr=settings.lr, momentum=0.9)], stage.device)

        def finish(data: DeviceTaskData = data, validation: DeviceTaskData | None = validation) -> dict[str, float]:
            """Store the task's norms, then its accuracy on the held-out training images (--val_fraction) and
            on the test images."""
            for norm in hopfield_norms(network):
                norm.store()
            held_out = {} if validation is None else {
                "val_acc": accuracy_of(network, validation, settings.val_batch_size)}
            return {**held_out, "test_acc": accuracy_of(network, data, settings.val_batch_size)}

        done = stage.lines(stage="supsup_hopfield", task=name).train(
            loop, data, f"supsup_hopfield_{name}", generator=data.generator(settings.seed + position),
            board_extra={"lr": settings.lr}, finish=finish)
        learned[name] = round(done.final["test_acc"], 4)
        stage.log.decision(stage="supsup_hopfield", task=name, val_acc=learned[name], reason="mask stored")
    stage.save(settings.needed(settings.save_folder, "save_folder"), network.cpu(), arch=ARCH, meta={
        "input_shape": list(tasks[0].image_shape), "outputs": outputs, "hidden": settings.supsup_hop_hidden,
        "label_offsets": offsets,
        "accuracy_after_learning": learned, "benchmark": settings.benchmark, "stage": "finetune",
        "seed": settings.seed, "scenario": "hopfield", **storage_bytes(network)})
    return ExitCode.OK


def load(folder: Path) -> tuple[TaskNetwork, dict]:
    payload, meta = load_checkpoint(folder), read_meta(folder)
    if payload["arch"] != ARCH:
        raise UsageError(f"{folder} holds a {payload['arch']} checkpoint, not a HopSupSup one")
    network = network_from_checkpoint(payload, input_shape=tuple(meta["input_shape"]), outputs=meta["outputs"],
                                      hidden=meta["hidden"])
    return network, meta


def stored_patterns(norm: HopfieldMaskedNorm) -> torch.Tensor:
    """The layer's stored masks as +-1 rows [tasks, channels] (for the reports, not for the descent)."""
    return torch.stack([unpack_bits(norm.stack[t], (norm.channels,)) for t in range(norm.num_tasks)]).float() * 2 - 1


def pattern_overlaps(norms: list[HopfieldMaskedNorm], patterns: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer, the overlap s.x/d of the recovery's signs with each stored pattern (`stored_patterns`)."""
    return [rows @ (norm.recovered().float() * 2 - 1) / norm.channels
            for norm, rows in zip(norms, patterns, strict=True)]


def nearest_patterns(overlaps: list[torch.Tensor]) -> list[tuple[int, float]]:
    """Per layer, the stored task whose pattern is nearest the recovery's signs, and their overlap."""
    return [(int(layer.argmax()) + 1, round(float(layer.max()), 3)) for layer in overlaps]


@torch.no_grad()
def stored_mask_entropies(network: TaskNetwork, data: DeviceTaskData, batch_size: int) -> list[float]:
    """Mean output entropy of the task's test set under each stored mask (batch statistics, as in recovery)."""
    network.train()
    entropies = []
    for task in range(1, hopfield_norms(network)[0].num_tasks + 1):
        network.set_task(task)
        values = torch.cat([objective(network(images), "h", 0) for images, _ in data.test_batches(batch_size)])
        entropies.append(round(float(values.mean()), 4))
    return entropies


def recover(network: TaskNetwork, data: DeviceTaskData, task: int, settings: SupSupSettings,
            trace: Callable[..., None] | None = None) -> dict:
    """Recover a mask for the task's test data from the Hopfield weights; the step from which it equals
    task `task`'s stored mask (None: it does not by the last step) and its distance to it at the end.
    `trace`, if given, gets per step the entropy, the energy, each layer's nearest stored pattern and its
    overlap with the task's own stored pattern (s.x/d: 1 when recovered)."""
    norms = hopfield_norms(network)
    scores = [norm.start_recovery() for norm in norms]
    optimizer = SGD(scores, lr=settings.supsup_hop_lr, momentum=RECOVERY_MOMENTUM, weight_decay=RECOVERY_DECAY)
    stored = [unpack_bits(norm.stack[task - 1], (norm.channels,)) for norm in norms]
    batches = [images for images, _ in data.test_batches(settings.val_batch_size)]
    patterns = [stored_patterns(norm) for norm in norms] if trace is not None else []
    steps, since = settings.supsup_hop_steps, None
    network.train()
    try:
        for step in range(steps):
            share = step / steps
            entropy = objective(network(batches[step % len(batches)]), "h", 0).mean()
            energy = reduce(operator.add, (norm.energy() for norm in norms))
            loss = (1 - share) * entropy + settings.supsup_hop_gamma * share * energy
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            same = all(torch.equal(norm.recovered(), bits) for norm, bits in zip(norms, stored, strict=True))
            since = (since or step + 1) if same else None
            if trace is not None:
                overlaps = pattern_overlaps(norms, patterns)
                nearest = nearest_patterns(overlaps)
                own = [round(float(layer[task - 1]), 3) for layer in overlaps]
                trace(step=step + 1, entropy=round(entropy.item(), 4), energy=round(energy.item(), 2),
                      nearest_task=[t for t, _ in nearest], overlap=[o for _, o in nearest], own_overlap=own)
        distance = sum(int((norm.recovered() != bits).sum()) for norm, bits in zip(norms, stored, strict=True))
        accuracy = accuracy_of(network, data, settings.val_batch_size)
    finally:
        for norm in norms:
            norm.end_recovery()
    return {"recovered_from_step": since, "bits_off_after_recovery": distance,
            "accuracy_recovered_mask": round(accuracy, 4)}


def evaluate(settings: SupSupSettings) -> ExitCode:
    """Per stored task: accuracy with its stored mask, then a recovery and the accuracy with its result."""
    stage = open_stage(settings, seed=False)
    log = stage.log
    network, meta = load(Path(settings.needed(settings.load_folder, "load_folder")))
    network.to(stage.device)
    rows: list[dict] = []
    traces: dict[str, list[dict]] = {}
    for task, spec in enumerate(network.tasks, start=1):
        data = _shifted(stage.task_data(spec.name, augment=False), meta["label_offsets"][task - 1])
        entropies = stored_mask_entropies(network, data, settings.val_batch_size)
        network.set_task(task)
        row = {"task": spec.name, "accuracy_stored_mask": round(accuracy_of(network, data, settings.val_batch_size), 4)}

        steps = traces[spec.name] = []

        def trace(name: str = spec.name, steps: list = steps, **fields) -> None:
            steps.append(fields)
            log.line(stage="supsup_hopfield_recovery_step", task=name,
                     **{key: ",".join(map(str, value)) if isinstance(value, list) else value
                        for key, value in fields.items()})

        row.update(recover(network, data, task, settings, trace))
        others = [(value, other) for other, value in enumerate(entropies, start=1) if other != task]
        lowest, rival = min(others) if others else (None, None)
        row.update(entropy_own_mask=entropies[task - 1], lowest_entropy_other_mask=lowest,
                   lowest_entropy_other_task=network.tasks[rival - 1].name if rival else None)
        rows.append(row)
        print(json.dumps(row), flush=True)
        log.line(stage="supsup_hopfield_recovery", steps=settings.supsup_hop_steps, **row)
    if settings.supsup_summary:
        atomic_json_dump({"benchmark": settings.benchmark, "method": "supsup", "scenario": "hopfield",
                          "hidden": meta["hidden"], "recovery_steps": settings.supsup_hop_steps,
                          "num_tasks_learned": len(rows), "tasks": rows, **storage_bytes(network),
                          "recovery_trace": traces},
                         Path(settings.supsup_summary))
    return ExitCode.OK

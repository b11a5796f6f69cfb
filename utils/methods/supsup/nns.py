"""SupSup NNs: no task identity while training or testing (paper section 3.5, the reference's NNs trainer).

The tasks' training data arrive as one unlabelled stream of batches with shared labels. The first batch
trains mask 1; every `--supsup_nns_every` batches a check superposes the n = max(allocated, maxn) candidate
masks (untrained ones, fresh random scores, fill up to maxn so that a one-mask model can still tell a new
task apart) with alpha = 1/n and takes nu = softmax(-dH/dalpha) from the entropy H of that batch's outputs.
When n max_i nu_i < 1 + epsilon no mask stands out: the batch is from a new task and the next mask is
allocated (up to the budget; past it, batches train nothing until a check finds a known mask). Otherwise
the winning mask trains on; a winner that was never allocated counts as "nothing known fits", so a new mask
is allocated. Each mask has its own optimizer state, so a mask no check picks never changes.

At test time each image's mask is inferred by one-shot entropy minimisation over the allocated masks and
the image is classified with it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from unforget.models import build_network
from unforget.models.layers.base import pack_bits
from unforget.models.layers.supsup import set_density, store_masks, supsup_layers
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import atomic_csv, atomic_json_dump
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.stage import StageContext, open_stage
from unforget.utils.methods.supsup.checkpoints import first_tasks, load
from unforget.utils.methods.supsup.infer import alpha_gradient, infer_tasks
from unforget.utils.methods.supsup.results import add_csv_rows
from unforget.utils.methods.supsup.settings import SupSupSettings, stream_names, too_few_outputs
from unforget.utils.optim import Adam, RMSprop

CHECKS = "checks.csv"
"""Beside the NNs checkpoint: one row per new-task check (what train.log says, for tables and plots)."""


@torch.no_grad()
def _pack_live(network: TaskNetwork, mask: int) -> None:
    """Write mask `mask`'s current bits (from its live scores) into the stack superposition reads."""
    for layer in supsup_layers(network):
        layer.stack[mask - 1] = pack_bits(layer.mask(mask) > 0)


def new_candidate(network: TaskNetwork, num_classes: int) -> int:
    """One more mask with fresh random scores, its bits in the stack; returns its 1-based index."""
    index = network.add_task(f"mask_{len(network.tasks) + 1:04d}", num_classes)
    _pack_live(network, index)
    return index


def check(network: TaskNetwork, images: torch.Tensor, epsilon: float) -> tuple[bool, int, float]:
    """(new task?, winning 0-based candidate, n max nu) for one batch over every mask in the stack."""
    share = F.softmax(-alpha_gradient(network, images, "h", 0), 0)
    top = share.numel() * share.max().item()
    return top < 1.0 + epsilon, int(share.argmax().item()), round(top, 4)


class MaskStream:
    """The masks of an NNs run: allocated count, candidates, one optimizer per allocated mask, and the masks
    trained since the last check (only their bits in the stack are stale)."""

    def __init__(self, network: TaskNetwork, settings: SupSupSettings, num_classes: int):
        self.network, self.settings, self.num_classes = network, settings, num_classes
        self.allocated = 0
        self.optimizers: dict[int, Adam | RMSprop] = {}
        self.stale: set[int] = set()
        while len(network.tasks) < settings.supsup_nns_maxn:
            new_candidate(network, num_classes)

    def allocate(self) -> int | None:
        """The next mask (1-based; a new candidate when every one is taken), or None once the budget is spent."""
        if self.allocated >= self.settings.supsup_nns_budget:
            return None
        self.allocated += 1
        if len(self.network.tasks) < self.allocated:
            new_candidate(self.network, self.num_classes)
        params = self.network.task_parameters(self.allocated)
        kind = Adam if self.settings.supsup_optimizer == "adam" else RMSprop
        self.optimizers[self.allocated] = kind(params, lr=self.settings.lr)
        return self.allocated

    def decide(self, images: torch.Tensor) -> tuple[int | None, dict]:
        """The mask the coming batches train, and the check's log fields."""
        for stale in self.stale:
            _pack_live(self.network, stale)
        self.stale.clear()
        new, winner, share = check(self.network, images, self.settings.supsup_nns_epsilon)
        fields = {"candidates": len(self.network.tasks), "n_max_nu": share}
        if not new and winner < self.allocated:
            return winner + 1, {**fields, "decision": "known"}
        mask = self.allocate()
        decision = "budget_spent" if mask is None else "new" if new else "new_untrained_won"
        return mask, {**fields, "decision": decision}

    def step(self, mask: int, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One optimizer step of `mask` (no host sync: the loss stays on the device)."""
        self.network.set_task(mask)
        loss = F.cross_entropy(self.network(images), labels)
        optimizer = self.optimizers[mask]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        self.stale.add(mask)


def _task_batches(data: DeviceTaskData, batch_size: int, seed: int, count: int):
    """`count` training batches of one task, over as many shuffled epochs as it takes."""
    generator = data.generator(seed)
    while True:
        for batch in data.train_batches(batch_size, generator):
            yield batch
            count -= 1
            if count == 0:
                return


def train(settings: SupSupSettings) -> ExitCode:
    """Learn the stream's tasks without their identities and save the allocated masks."""
    stage = open_stage(settings, head={"stage": "supsup_nns"})
    log = stage.log
    names = stream_names(settings)
    first = stage.load_task(names[0])  # each task is read when its turn comes
    classes = first.num_classes
    outputs = settings.supsup_output_size or classes
    too_few_outputs(names[0], classes, outputs)
    network = build_network(settings.needed(settings.arch, "arch"), 1.0, mode="supsup", input_shape=first.image_shape,
                            outputs=outputs)
    set_density(network, settings.supsup_density if settings.supsup_masks == "topk" else None, settings.supsup_er)
    network.to(stage.device)
    network.train()
    masks = MaskStream(network, settings, classes)
    mask, seen, stream, checks = masks.allocate(), 0, [], []
    mapped_masks: list[int] = []  # per stream task, the mask most of its batches trained (0: none)
    board = log.board("supsup_nns")  # one point per check, at its batch of the stream
    for position, name in enumerate(names):
        task = first if position == 0 else stage.load_task(name)
        too_few_outputs(name, task.num_classes, outputs)
        data = stage.on_device(stage.validation_split(task)[0])
        used: Counter[int] = Counter()
        for images, labels in _task_batches(data, settings.batch_size, settings.seed + position,
                                            settings.supsup_nns_task_batches):
            if seen and seen % settings.supsup_nns_every == 0:
                mask, fields = masks.decide(images)
                check_row = {"batch": seen, "stream_task": name, "mask": mask or "none",
                             "masks_allocated": masks.allocated, **fields}
                checks.append(check_row)
                log.line(stage="supsup_nns", **check_row)
                board.epoch(seen, masks_allocated=masks.allocated, mask=mask or 0, **fields)
            if mask is not None:
                masks.step(mask, images, labels)
            used[mask or 0] += 1
            seen += 1
        mapped = max(used, key=lambda m: (used[m], -m))
        mapped_masks.append(mapped)
        stream.append({"task": name, "batches": sum(used.values()), "mapped_mask": mapped or None,
                       "batches_per_mask": {str(m): n for m, n in sorted(used.items())}})
        log.decision(stage="supsup_nns", task=name, mapped_mask=mapped or "none", masks_allocated=masks.allocated)
    board.close()
    store_masks(network)
    first_tasks(network, masks.allocated)  # the candidates no check allocated were never trained
    with log.board("supsup_nns_tasks") as tasks_board:  # step: the task's place in the stream
        for position, (name, mapped) in enumerate(zip(names, mapped_masks, strict=True), 1):
            tasks_board.epoch(position, **_stream_task_accuracy(stage, network, name, mapped))
    stage.save(settings.needed(settings.save_folder, "save_folder"), network.cpu(), {
        "input_shape": list(first.image_shape), "outputs": outputs, "accuracy_after_learning": {},
        "benchmark": settings.benchmark, "stage": "finetune", "seed": settings.seed, "scenario": "nns",
        "masks_allocated": masks.allocated, "stream": stream})
    if checks:
        atomic_csv(Path(settings.needed(settings.save_folder, "save_folder")) / CHECKS, checks)
    return stage.decide(ExitCode.OK, masks_allocated=masks.allocated, batches=seen,
                        reason="stream learned, masks stored")


def _inferred(network: TaskNetwork, data: DeviceTaskData,
              settings: SupSupSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The test images of `data`, each one's inferred (0-based) mask and whether its class under that mask is
    right."""
    images = torch.cat([images for images, _ in data.test_batches(settings.val_batch_size)])
    inferred = infer_tasks(network, images, "oneshot", "h", settings.supsup_real_neurons, settings.supsup_infer_batch)
    return images, inferred, classify(network, images, inferred) == data.test_labels


def _stream_task_accuracy(stage: StageContext[SupSupSettings], network: TaskNetwork, name: str,
                          mapped: int) -> dict[str, float]:
    """A learned stream task on the board: how often inference picks its mapped mask on its test images
    (task_inference_acc), its accuracy with the inferred masks there (test_acc) and, under --val_fraction, on its
    held-out training images (val_acc)."""
    kept, held = stage.validation_split(stage.load_task(name))
    _, inferred, right = _inferred(network, stage.on_device(kept, augment=False), stage.settings)
    values = {"task_inference_acc": (inferred + 1 == mapped).float().mean().item(),
              "test_acc": right.float().mean().item()}
    if held is not None:
        _, _, right = _inferred(network, stage.on_device(held, augment=False), stage.settings)
        values["val_acc"] = right.float().mean().item()
    return values


@torch.no_grad()
def classify(network: TaskNetwork, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Each image's class under its own (0-based) mask."""
    network.eval()
    predictions = torch.empty(len(images), dtype=torch.long, device=images.device)
    for mask in masks.unique().tolist():
        chosen = masks == mask
        network.set_task(mask + 1)
        predictions[chosen] = network(images[chosen]).argmax(1)
    return predictions


def evaluate(settings: SupSupSettings) -> ExitCode:
    """Per stream task: its mapped mask, how often inference picks it, accuracy with the inferred mask."""
    stage = open_stage(settings, seed=False)
    network, meta = load(Path(settings.needed(settings.load_folder, "load_folder")))
    if meta.get("scenario") != "nns":
        raise UsageError(f"{settings.load_folder} was not learned by --supsup_scenario nns (no stream to evaluate)")
    network.to(stage.device)
    rows = []
    for entry in meta["stream"]:
        data = stage.task_data(entry["task"])
        images, inferred, right = _inferred(network, data, settings)
        mapped = entry["mapped_mask"]
        row = {"num_tasks_learned": meta["masks_allocated"], "task": entry["task"], "mapped_mask": mapped,
               "inferred_is_mapped": round((inferred + 1 == (mapped or 0)).float().mean().item(), 4),
               "accuracy_inferred_mask": round(right.float().mean().item(), 4)}
        if mapped:
            own = classify(network, images, torch.full_like(inferred, mapped - 1)) == data.test_labels
            row["accuracy_mapped_mask"] = round(own.float().mean().item(), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        stage.log.line(stage="supsup_nns_inference", **row)
    average = round(sum(row["accuracy_inferred_mask"] for row in rows) / len(rows), 4)
    if settings.supsup_results:
        add_csv_rows(Path(settings.supsup_results), rows)
    if settings.supsup_summary:
        atomic_json_dump({"benchmark": settings.benchmark, "method": "supsup", "scenario": "nns",
                          "masks_allocated": meta["masks_allocated"], "tasks": rows,
                          "average_accuracy_inferred_mask": average}, Path(settings.supsup_summary))
    return ExitCode.OK

"""WSN's stages.

finetune: add task --dataset to the loaded network (or a fresh one), learn its weights, scores, batch-norm and head
with Adam under the reference's plateau schedule, keep the epoch of lowest validation loss, freeze the task's mask
into its bits and save the checkpoint. inference: evaluate one task, or every task with the summary.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F

from unforget.models import build_network, input_options
from unforget.models.layers.wsn import set_capacity, store_masks
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint, read_meta
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData, TaskData
from unforget.utils.engine import EpochResult, TrainLoop, evaluate, predict
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.matrices import arch_options
from unforget.utils.methods.stage import StageContext, open_stage
from unforget.utils.methods.wsn.costs import mask_cost
from unforget.utils.methods.wsn.settings import WSNSettings
from unforget.utils.optim import Adam

MODE = "wsn"


def _network(stage: StageContext[WSNSettings], task: TaskData) -> tuple[TaskNetwork, dict]:
    """The loaded network and its meta, or a fresh one (whose meta records what rebuilding it needs)."""
    settings = stage.settings
    arch = settings.needed(settings.arch, "arch")
    options = input_options(arch, task.image_shape)
    if not settings.load_folder:
        return build_network(arch, 1.0, mode=MODE, **options), {"accuracy_after_learning": {}, **_shape(options)}
    payload = load_checkpoint(Path(settings.load_folder))
    if payload["mode"] != MODE:
        raise UsageError(f"--method wsn cannot continue a {payload['mode']} checkpoint ({settings.load_folder})")
    if payload["arch"] != arch:
        raise UsageError(f"--arch {arch} but {settings.load_folder} holds a {payload['arch']}")
    network = network_from_checkpoint(payload, **options)
    if settings.dataset in [spec.name for spec in network.tasks]:
        raise UsageError(f"task {settings.dataset} is already learned in {settings.load_folder}")
    meta = read_meta(Path(settings.load_folder))
    return network, {"accuracy_after_learning": dict(meta.get("accuracy_after_learning", {})), **_shape(options)}


def _shape(options: dict) -> dict:
    return {"input_shape": list(options["input_shape"])} if "input_shape" in options else {}


@dataclass
class Plateau:
    """The reference's schedule: the learning rate is divided by `factor` after `patience` epochs without a lower
    validation loss, and training stops once it falls below `lr_min`; the epoch of lowest loss is kept."""

    optimizer: Adam
    patience: int
    factor: float
    lr_min: float
    best_loss: float = float("inf")
    best_state: dict | None = None
    waited: int = 0

    def after_epoch(self, loss: float, network: TaskNetwork) -> bool:
        """Record the epoch's validation loss; True when training should stop."""
        if loss < self.best_loss:
            self.best_loss, self.waited = loss, 0
            self.best_state = copy.deepcopy(network.state_dict())
            return False
        self.waited += 1
        if self.waited < self.patience:
            return False
        self.waited = 0
        self.optimizer.lr = self.optimizer.lr / self.factor
        return self.optimizer.lr < self.lr_min


def _validation(network: TaskNetwork, data: DeviceTaskData, batch_size: int) -> tuple[float, float]:
    """(loss, accuracy) of the active task on the data's evaluation images."""
    logits = predict(network, data, batch_size)
    labels = data.test_labels
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def finetune(stage: StageContext[WSNSettings]) -> ExitCode:
    """Learn task --dataset and save the network with its mask to --save_folder."""
    settings = stage.settings
    task_data = stage.load_task()
    network, meta = _network(stage, task_data)
    task = network.add_task(settings.dataset, task_data.num_classes)
    set_capacity(network, settings.wsn_capacity)
    network.to(stage.device)
    trained, held = stage.validation_split(task_data)
    test_data = stage.on_device(trained)
    data = stage.on_device(held) if held is not None else test_data
    optimizer = Adam(network.task_parameters(task), lr=settings.lr)
    plateau = Plateau(optimizer, settings.wsn_lr_patience, settings.wsn_lr_factor, settings.wsn_lr_min)
    measured: dict[str, float] = {}

    def validate() -> float:
        measured["loss"], accuracy = _validation(network, data, settings.val_batch_size)
        return accuracy

    def scalars(epoch: int, result: EpochResult, fields: dict) -> dict:
        return dict(loss=result.loss, train_acc=result.accuracy, val_loss=measured["loss"], **fields)

    def keep_best() -> dict[str, float]:
        """The lowest validation loss's network back in place, and its test accuracy for the run's last step."""
        if plateau.best_state is not None:
            network.load_state_dict(plateau.best_state)
        return {"test_acc": evaluate(network, test_data, settings.val_batch_size)}

    done = stage.train(TrainLoop(network, [optimizer], stage.device), data, "finetune", scalars=scalars,
                       schedule=lambda epoch: {"lr": optimizer.lr}, evaluate=validate,
                       stop=lambda epoch, result: plateau.after_epoch(measured["loss"], network),
                       finish=keep_best, description=f"wsn {settings.dataset}")
    store_masks(network)
    accuracy = evaluate(network, data, settings.val_batch_size)
    test_accuracy = done.final["test_acc"]
    meta["accuracy_after_learning"][settings.dataset] = round(test_accuracy, 4)
    cost = mask_cost(network)
    stage.save(settings.needed(settings.save_folder, "save_folder"), network, {
        "benchmark": settings.benchmark, "task": settings.dataset, "stage": settings.mode,
        "accuracy": round(accuracy, 4), "test_accuracy": round(test_accuracy, 4),
        "train_accuracy": round(done.last.accuracy, 4), "epochs_trained": done.count,
        "best_val_loss": round(plateau.best_loss, 6), **meta, **cost})
    return stage.decide(ExitCode.OK, val_acc=accuracy, test_acc=test_accuracy, epochs=done.count,
                        used_fraction=cost["used_fraction"], reason="task learned, its mask frozen")


def _stored(settings: WSNSettings) -> tuple[TaskNetwork, dict]:
    folder = Path(settings.needed(settings.load_folder, "load_folder"))
    payload = load_checkpoint(folder)
    if payload["mode"] != MODE:
        raise UsageError(f"--method wsn cannot evaluate a {payload['mode']} checkpoint ({folder})")
    return network_from_checkpoint(payload, **arch_options(payload, folder)), read_meta(folder)


def inference(stage: StageContext[WSNSettings]) -> ExitCode:
    """Evaluate task --dataset with its own mask, batch-norm and head; with --wsn_summary every task of the
    checkpoint, beside its accuracy right after it was learned, and what the masks cost."""
    settings = stage.settings
    network, meta = _stored(settings)
    network.to(stage.device)
    names = [spec.name for spec in network.tasks]
    if not settings.wsn_summary:
        if settings.dataset not in names:
            raise UsageError(f"task {settings.dataset} is not in {settings.load_folder} (it holds {', '.join(names)})")
        names = [settings.dataset]
    rows = []
    for name in names:
        network.set_task(network.task_id(name))
        final = round(evaluate(network, stage.task_data(name), settings.val_batch_size), 4)
        rows.append({"task": name, "accuracy_after_learning": meta.get("accuracy_after_learning", {}).get(name),
                     "accuracy_final": final})
        print(json.dumps(rows[-1]), flush=True)
    if settings.wsn_summary:
        average = round(sum(row["accuracy_final"] for row in rows) / len(rows), 4)
        atomic_json_dump({"benchmark": settings.benchmark, "method": MODE, "tasks": rows,
                          "average_accuracy_final": average, **mask_cost(network)}, Path(settings.wsn_summary))
    stage.log.line(stage="inference", method=MODE, tasks=len(rows), accuracies={r["task"]: r["accuracy_final"]
                                                                                for r in rows})
    return ExitCode.OK


def run(settings: WSNSettings, process_start: float) -> ExitCode:
    stage = open_stage(settings, process_start, seed=settings.mode == "finetune")  # inference draws nothing
    return finetune(stage) if settings.mode == "finetune" else inference(stage)

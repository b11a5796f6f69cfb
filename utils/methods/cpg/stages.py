"""The CPG stages: finetune (pick and train), prune (compact), retrain, inference; PackNet and the
baselines run the same stages with the parts their settings class leaves out.

Each stage is one call of `main_normal.py` for one task; it loads the previous
stage's checkpoint, trains, writes its own checkpoint and record entry, and
returns the state code the driver branches on (docs/design.md#exit-codes).

Under torchrun (finetune, prune, retrain) every rank runs the stage on its slice of each batch in
DistributedDataParallel; rank 0 alone evaluates, writes the checkpoint, records and log, and its
accuracies, pruning masks and exit code are every rank's (`utils/distributed.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from unforget.models import build_network, input_options
from unforget.models.layers.cpg import cpg_layers
from unforget.models.network import TaskNetwork
from unforget.models.pretrained import PretrainedError, add_pretrained_task
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.checkpoint import load_checkpoint, network_from_checkpoint
from unforget.utils.cli import UsageError
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData, TaskData, hold_out
from unforget.utils.distributed import data_parallel, from_main, join, on_main
from unforget.utils.engine import EpochResult, Epochs, TrainLoop, evaluate
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.cpg.pruner import GradualPruner, owned_fraction, task_sparsity
from unforget.utils.methods.cpg.settings import BaselineSettings, CPGSettings
from unforget.utils.methods.stage import Scalars, StageContext, open_stage, reseed
from unforget.utils.methods.stage_settings import OwnershipSettings
from unforget.utils.optim import SGD, Adam, Optimizer
from unforget.utils.ranks import is_main, rank, world_size
from unforget.utils.records import STOP_NOTE, goal_for, read_goals, read_record, write_goal_entry, write_record_entry

MOMENTUM = 0.9
RETRAIN_PATIENCE = 5
KEEP_AT_LEAST = 0.05
"""The smallest share of its pool a task keeps when it gives way to later tasks: the 0.95 step."""


Owning = TypeVar("Owning", bound=OwnershipSettings)


@dataclass(kw_only=True)
class Stage(StageContext[Owning]):
    """The shared stage context plus what a stage on ownership layers works on: the task's network and data."""

    network: TaskNetwork
    task: int
    data: DeviceTaskData
    """training images, and the images choices are made on: the held-out validation share, or the test
    images (the reference's choice) when --val_fraction is 0"""
    test_data: DeviceTaskData
    """the task's test images: what reports and inference measure, never what a stage chooses on"""

    def scalars(self, epoch: int, result: EpochResult, fields: dict) -> dict:
        """An epoch's values, with the width; the first epoch's line starts with its duration, the set-up
        time before it and the speed paths taken."""
        if epoch == 1:
            fields = {"seconds": fields.pop("seconds"), "setup_seconds": fields.pop("setup_seconds"),
                      "paths": self.settings.speed.describe(), **fields}
        return dict(loss=result.loss, train_acc=result.accuracy, width=self.network.width, **fields)

    def decide(self, code: ExitCode, reason: str = "", **extra) -> ExitCode:
        return super().decide(code, width=self.network.width, reason=reason, **extra)

    def test_accuracy(self, accuracy: float) -> float:
        """The test accuracy of the network whose accuracy on `data` is `accuracy` (the same number when choices
        are made on the test images); every rank calls it under torchrun."""
        if self.test_data is self.data:
            return accuracy
        return on_main(lambda: evaluate(self.network, self.test_data, self.settings.val_batch_size,
                                        self.settings.speed))

    def save_task(self, accuracy: float, train_accuracy: float, test_accuracy: float | None = None, **extra) -> None:
        """The checkpoint and its meta.json (rank 0 alone under torchrun); `accuracy` is on `data`, and the
        test accuracy (measured here unless given) is recorded apart when the two differ."""
        if not is_main():
            return
        settings, layers = self.settings, cpg_layers(self.network)
        if self.test_data is not self.data:
            if test_accuracy is None:
                test_accuracy = evaluate(self.network, self.test_data, settings.val_batch_size, settings.speed)
            extra["test_accuracy"] = round(test_accuracy, 4)
        self.save(settings.needed(settings.save_folder, "save_folder"), self.network, {
            "benchmark": settings.benchmark, "task": settings.dataset, "stage": settings.mode,
            "accuracy": round(accuracy, 4), "train_accuracy": round(train_accuracy, 4),
            "sparsity": round(task_sparsity(layers, self.task), 4),
            "owned_fraction": round(owned_fraction(layers, self.task), 6),
            **input_options(settings.needed(settings.arch, "arch"), tuple(self.test_data.test_images.shape[1:])),
            **extra})

    @property
    def choice_split(self) -> str:
        """What `data` evaluates, in decision lines: "validation" (held-out training images) or "test"."""
        return "test" if self.data is self.test_data else "validation"

    @property
    def accuracy_tag(self) -> str:
        """The TensorBoard tag of an accuracy on `data`: val_acc, or test_acc when choices are made on the test
        images (the log lines call both val_acc)."""
        return "test_acc" if self.data is self.test_data else "val_acc"

    def record(self, path: str, sparsity: float, accuracy: float) -> None:
        """record.txt[sparsity] = accuracy (rank 0 alone under torchrun); after the checkpoint it stands for.
        The whole record is then TensorBoard run `record`: accuracy_vs_sparsity and width, step = sparsity in
        per-mille. Every row of a task's record is at the task's one width (it grows in finetune, before the
        first row)."""
        if is_main():
            record = write_record_entry(Path(path), sparsity, accuracy)
            width = self.network.tasks[self.task - 1].width
            with self.log.board("record") as board:
                for key, value in record.items():
                    board.epoch(round(float(key) * 1000), accuracy_vs_sparsity=value, width=width)

    def owns_weights(self) -> bool:
        layers = cpg_layers(self.network)
        return not layers or owned_fraction(layers, self.task) > 0

    def epochs(self, loop: TrainLoop, scalars: Scalars | None = None, **hooks) -> Epochs:
        settings = self.settings
        return self.train(loop, self.data, board_run(settings), scalars=scalars or self.scalars,
                          board_tags={"val_acc": self.accuracy_tag},
                          description=f"{settings.mode} {settings.dataset}", **hooks)


def board_run(settings: OwnershipSettings) -> str:
    """The stage's TensorBoard run: a wider finetune and each pruning target get runs of their own, named
    as the driver names the stages."""
    if settings.mode == "finetune":
        return f"finetune_w{settings.width()}"
    if isinstance(settings, CPGSettings) and settings.mode == "prune":
        return f"prune_{settings.target_sparsity}"
    return settings.mode


def _fresh_network(settings: OwnershipSettings, image_shape: tuple[int, ...]) -> TaskNetwork:
    """A new network; with --pretrained its task 1 is "imagenet" holding torchvision's weights (in CPG modes
    owning every weight at width 1.0, so the first real task picks from it and owns only the wider rest)."""
    arch = settings.needed(settings.arch, "arch")
    network = build_network(arch, settings.width(), mode=settings.LAYER_MODE, **input_options(arch, image_shape))
    if settings.pretrained is not None:
        try:
            add_pretrained_task(network, settings.pretrained)
        except PretrainedError as error:
            raise UsageError(f"--pretrained: {error}") from error
    return network


def _new_task_network(settings: OwnershipSettings, num_classes: int,
                      image_shape: tuple[int, ...]) -> tuple[TaskNetwork, int]:
    """The loaded network (grown to this stage's width) with a new task, or a fresh network."""
    if settings.load_folder:
        payload = load_checkpoint(Path(settings.load_folder))
        if payload["arch"] != settings.arch:
            raise UsageError(f"--arch {settings.arch} but {settings.load_folder} holds a {payload['arch']}")
        if settings.width() < payload["width"]:
            raise UsageError(f"--network_width_multiplier {settings.width()} is narrower than "
                             f"the loaded network ({payload['width']}); width never shrinks")
        network = network_from_checkpoint(payload, settings.width(),
                                          **input_options(payload["arch"], image_shape))
    else:
        network = _fresh_network(settings, image_shape)
    if network.mode != settings.LAYER_MODE:
        raise UsageError(f"--method {settings.method} cannot continue a {network.mode} checkpoint")
    if settings.dataset in [spec.name for spec in network.tasks]:
        raise UsageError(f"task {settings.dataset} is already learned in {settings.load_folder}")
    if isinstance(settings, BaselineSettings) and settings.load_folder:
        return network, network.take_over(settings.dataset, num_classes)
    return network, network.add_task(settings.dataset, num_classes)


def _stored_task_network(settings: OwnershipSettings, image_shape: tuple[int, ...]) -> tuple[TaskNetwork, int]:
    """The loaded checkpoint with its own task `--dataset` active (prune, retrain, inference)."""
    payload = load_checkpoint(Path(settings.needed(settings.load_folder, "load_folder")))
    if settings.mode in ("prune", "retrain") and payload["arch"] != settings.arch:
        raise UsageError(f"--arch {settings.arch} but {settings.load_folder} holds a {payload['arch']}")
    network = network_from_checkpoint(payload, **input_options(payload["arch"], image_shape))
    names = [spec.name for spec in network.tasks]
    if settings.dataset not in names:
        raise UsageError(f"task {settings.dataset} is not in {settings.load_folder} (it holds {', '.join(names)})")
    task = network.task_id(settings.dataset)
    if settings.mode in ("prune", "retrain") and task != len(names):
        raise UsageError(f"{settings.mode} works on the latest task ({names[-1]}), not {settings.dataset}")
    return network, task


def load_stage(settings: Owning, process_start: float) -> Stage[Owning]:
    """Build the network for this stage: a new task on top of the loaded one (finetune) or the
    loaded checkpoint's own task (the other modes)."""
    context = open_stage(settings, process_start)
    device, speed = context.device, settings.speed
    if speed.cuda_graph and device.type != "cuda":
        raise UsageError(f"--cuda_graph needs a CUDA device, not {device}")
    if world_size() > 1 and (speed.cuda_graph or settings.mode == "inference"):
        what = "--cuda_graph" if speed.cuda_graph else "--mode inference"
        raise UsageError(f"{what} runs in one process; start it without torchrun")
    task_data = context.load_task()
    if settings.mode == "finetune":
        network, task = _new_task_network(settings, task_data.num_classes, task_data.image_shape)
    else:
        network, task = _stored_task_network(settings, task_data.image_shape)
    network.to(device)
    if speed.channels_last:
        network.to(memory_format=torch.channels_last)
    for layer in cpg_layers(network):
        layer.cache_multipliers = speed.cached_masks
    network.set_task(task)
    join(device)
    if world_size() > 1:
        reseed(settings.seed + rank())  # the same network everywhere, but each rank's own dropout

    def on_device(task: TaskData) -> DeviceTaskData:
        return context.on_device(task, resident=speed.resident_data, channels_last=speed.channels_last,
                                 shard=(rank(), world_size()))

    test_data = on_device(task_data)
    fraction = settings.val_fraction if settings.mode != "inference" else None  # inference only measures
    data = on_device(hold_out(task_data, fraction)) if fraction else test_data
    return context.grown(Stage, network=network, task=task, data=data, test_data=test_data)


def _optimizers(stage: Stage, lr: float, lr_mask: float) -> tuple[SGD, Adam | None]:
    """SGD (Nesterov, no built-in decay) over the task's trainables; Adam over fresh piggymasks."""
    network, task = stage.network, stage.task
    masks = []
    for layer in cpg_layers(network):
        mask = layer.start_picking() if lr_mask > 0 and task == layer.num_tasks else None
        if mask is not None:
            masks.append(mask)
    sgd = SGD(network.task_parameters(task), lr=lr, momentum=MOMENTUM, nesterov=True)
    adam = Adam(masks, lr=lr_mask) if masks else None
    return sgd, adam


def _weight_decay(stage: Stage):
    """grad += wd * w on the body's weights the task owns (all of them in a plain network); old
    tasks' weights, batch-norm, biases and heads are not decayed, as in the reference."""
    decay, weights = stage.settings.weight_decay, stage.network.body_weights()

    def apply() -> None:
        for weight in weights:
            weight.add_weight_decay(decay)
    return apply if decay > 0 else None


def _rates(sgd: SGD, adam: Adam | None) -> dict:
    """The learning rates an epoch trains with, for its log line and TensorBoard."""
    return {"lr": sgd.lr, **({"lr_mask": adam.lr} if adam else {})}


def _set_lr(optimizer: Optimizer | None, lr: float) -> None:
    if optimizer is not None:
        optimizer.lr = lr


def _train_loop(stage: Stage, optimizers: list[Optimizer | None], after_step=None) -> TrainLoop:
    """The stage's training steps; under torchrun on the network wrapped for data-parallel training."""
    present = [o for o in optimizers if o]
    network = data_parallel(stage.network, [parameter for optimizer in present for parameter in optimizer.params])
    return TrainLoop(network, present, stage.device, stage.settings.speed, before_step=_weight_decay(stage),
                     after_step=after_step)


def _evaluate(stage: Stage) -> float:
    """Validation accuracy, measured by rank 0 (whose batch-norm statistics the checkpoint holds) under torchrun."""
    return on_main(lambda: evaluate(stage.network, stage.data, stage.settings.val_batch_size, stage.settings.speed))


def measured(stage: Stage) -> dict[str, float]:
    """The trained network's accuracy on the images choices are made on and, kept apart, on the test images:
    a stage's last points on the board (one value, test_acc, when choices are made on the test images)."""
    accuracy = _evaluate(stage)
    return {stage.accuracy_tag: accuracy, "test_acc": stage.test_accuracy(accuracy)}


def train_new_task(stage: Stage) -> tuple[EpochResult, float, float]:
    """Train a new task's weights (and picks); SGD x0.1 at 50% and 80% of the epochs, the mask
    learning rate x0.2 at 50% and 0 from 70% unless the task owns no weights. Returns the last
    epoch's training result, the validation accuracy and the test accuracy."""
    settings = stage.settings
    sgd, adam = _optimizers(stage, settings.lr, settings.lr_mask)
    owns_weights = stage.owns_weights()

    def schedule(epoch: int) -> dict:
        progress = (epoch - 1) / settings.epochs
        _set_lr(sgd, settings.lr * (0.1 if progress >= 0.5 else 1.0) * (0.1 if progress >= 0.8 else 1.0))
        mask_scale = 1.0 if progress < 0.5 else (0.2 if progress < 0.7 or not owns_weights else 0.0)
        _set_lr(adam, settings.lr_mask * mask_scale)
        return _rates(sgd, adam)

    done = stage.epochs(_train_loop(stage, [sgd, adam]), schedule=schedule, finish=lambda: measured(stage))
    return done.last, done.final[stage.accuracy_tag], done.final["test_acc"]


def shortfall(split: str, accuracy: float, goal: float, train_accuracy: float, gate: float) -> str:
    """Why a finetuned task does not count as learned, in words ("" when it does): its accuracy on the images
    choices are made on is below the goal, or its training accuracy does not exceed the gate (then the words
    also say whether the goal itself is met)."""
    below_goal = f"{split} accuracy {accuracy:.4f} below the goal {goal:g}" if accuracy < goal else ""
    if train_accuracy > gate:
        return below_goal
    at_gate = f"train accuracy {train_accuracy:.4f} not above --train_accuracy_gate {gate:g}"
    if below_goal:
        return f"{below_goal} and {at_gate}"
    return f"{at_gate} (the {split} accuracy {accuracy:.4f} meets the goal {goal:g})"


def finetune(stage: Stage[CPGSettings], goal: float) -> ExitCode:
    """Learn a new task: train its free weights and pick old ones; exit 2 asks for a wider network."""
    settings = stage.settings
    result, accuracy, test_accuracy = train_new_task(stage)
    at_cap = stage.network.width >= settings.width_cap
    missed = shortfall(stage.choice_split, accuracy, goal, result.accuracy, settings.train_accuracy_gate)
    facts = dict(val_acc=accuracy, train_acc=result.accuracy, goal=goal)
    if missed and not at_cap:
        return stage.decide(ExitCode.EXPAND, f"{missed}, below the width cap: grow", **facts)
    stage.save_task(accuracy, result.accuracy, test_accuracy)
    stage.record(settings.needed(settings.jsonfile, "jsonfile"), 0.0, accuracy)
    reason = f"{missed}, at the width cap: keep it" if missed else "goal met"
    if not stage.owns_weights():
        return stage.decide(ExitCode.NO_SPACE, f"{reason}; the task owns no free weights", **facts)
    return stage.decide(ExitCode.OK, reason, **facts)


def baseline(stage: Stage[CPGSettings]) -> ExitCode:
    """Train a plain network on one task and add its accuracy to --logfile (an accuracy-goal file)."""
    result, accuracy, test_accuracy = train_new_task(stage)
    settings = stage.settings
    if isinstance(settings, BaselineSettings) and settings.logfile and is_main():  # run() calls it for these alone
        write_goal_entry(Path(settings.logfile), settings.dataset, accuracy)
    stage.save_task(accuracy, result.accuracy, test_accuracy)
    return stage.decide(ExitCode.OK, "baseline trained", val_acc=accuracy, train_acc=result.accuracy)


def required_sparsity(total_tasks: int, task: int) -> float:
    """At the cap with the goal missed, free enough of the pool for the tasks still to come: keep
    1/(remaining+1) of it, rounded to a sparsity step, but never less than `KEEP_AT_LEAST` (the
    reference's rounding kept nothing once 20 or more tasks remained, so it never gave way)."""
    remaining = max(total_tasks - task, 0)
    return round(1.0 - max(round(1.0 / (remaining + 1), 1), KEEP_AT_LEAST), 4)


def note_stop(stage: Stage[CPGSettings], kind: str, cause: str, **numbers) -> None:
    """A prune stage that stops without saving says why in its save folder (`STOP_NOTE`; rank 0 alone)."""
    if is_main():
        atomic_json_dump({"sparsity": stage.settings.target_sparsity, "kind": kind, "cause": cause, **numbers},
                         Path(stage.settings.needed(stage.settings.save_folder, "save_folder")) / STOP_NOTE)


def prune(stage: Stage[CPGSettings], goal: float, record: dict[str, float]) -> ExitCode:
    """Compact the task's weights from the initial to the target sparsity; exit 6 ends pruning."""
    settings = stage.settings
    total_tasks = settings.needed(settings.total_num_tasks, "total_num_tasks")  # resolved() sets it
    give_way = (stage.network.width >= settings.width_cap and record["0.0"] < goal)
    must_free = required_sparsity(total_tasks, stage.task)
    if give_way and stage.task >= total_tasks:
        cause = f"at the width cap below the goal, and the last of --total_num_tasks {settings.total_num_tasks}"
        note_stop(stage, "last_task", cause, total_num_tasks=settings.total_num_tasks)
        return stage.decide(ExitCode.STOP, f"pruning skipped: {cause}, so no later task needs its weights",
                            sparsity=settings.initial_sparsity)
    if give_way and settings.initial_sparsity >= must_free:
        return stage.decide(ExitCode.STOP, f"at the width cap below the goal; {must_free} already freed for "
                                           "later tasks", sparsity=settings.initial_sparsity)
    sgd, _ = _optimizers(stage, settings.lr, 0.0)
    steps = stage.data.steps_per_epoch(settings.batch_size)
    layers = cpg_layers(stage.network)
    pruner = GradualPruner(layers, stage.task, settings.initial_sparsity, settings.target_sparsity,
                           settings.pruning_frequency, 0, settings.pruning_interval * steps,
                           sgd.momentum_buffers.get, on_device=settings.speed.device_pruning)
    if settings.pruning_interval == 0:
        pruner.finish()  # one shot (PackNet), then train the kept weights

    def sparsity(epoch: int, result: EpochResult, fields: dict) -> dict:
        return stage.scalars(epoch, result, {**fields, "sparsity": task_sparsity(layers, stage.task)})

    def finish() -> dict[str, float]:
        pruner.finish()
        return measured(stage)

    done = stage.epochs(_train_loop(stage, [sgd], after_step=pruner.step), schedule=lambda _: _rates(sgd, None),
                        scalars=sparsity, finish=finish)
    result, accuracy = done.last, done.final[stage.accuracy_tag]
    facts = dict(val_acc=accuracy, train_acc=result.accuracy, goal=goal, sparsity=settings.target_sparsity)
    gate = settings.train_accuracy_gate
    if result.accuracy <= gate:
        cause = (f"train accuracy {result.accuracy:.4f} at sparsity {settings.target_sparsity} not above "
                 f"--train_accuracy_gate {gate:g}")
        note_stop(stage, "train_accuracy_gate", cause, train_accuracy=round(result.accuracy, 4),
                        train_accuracy_gate=gate)
        if any(key != "0.0" for key in record):
            return stage.decide(ExitCode.STOP, f"pruning stops: {cause}; sparsity {settings.target_sparsity} is "
                                               "not recorded or saved", **facts)
        return stage.decide(ExitCode.STOP, f"pruning skipped: {cause}, so nothing is recorded or saved and the "
                                           "task keeps its unpruned model", **facts)
    stage.save_task(accuracy, result.accuracy, done.final["test_acc"])
    stage.record(settings.needed(settings.jsonfile, "jsonfile"), settings.target_sparsity, accuracy)
    if give_way and settings.target_sparsity >= must_free:
        return stage.decide(ExitCode.STOP, f"at the width cap below the goal; freed {must_free} for later tasks",
                            **facts)
    return stage.decide(ExitCode.OK, "pruned", **facts)


def retrain(stage: Stage[CPGSettings]) -> ExitCode:
    """Learn the piggymask again with the kept weights; keep the best epoch by validation accuracy."""
    settings = stage.settings
    before = _evaluate(stage)
    sgd, adam = _optimizers(stage, settings.lr, settings.lr_mask)
    def keep_best(epoch: int, result: EpochResult, accuracy: float) -> None:
        """A new best epoch: its test accuracy on the board at that epoch, then its checkpoint."""
        test_accuracy = stage.test_accuracy(accuracy)
        stage.board_point(epoch, test_acc=test_accuracy)
        stage.save_task(accuracy, result.accuracy, test_accuracy, epoch=epoch)

    done = stage.epochs(_train_loop(stage, [sgd, adam]), schedule=lambda _: _rates(sgd, adam),
                        evaluate=lambda: _evaluate(stage), keep_best=keep_best, patience=RETRAIN_PATIENCE)
    if settings.jsonfile:
        stage.record(settings.jsonfile, task_sparsity(cpg_layers(stage.network), stage.task), done.best_accuracy)
    return stage.decide(ExitCode.OK, f"best retrain epoch kept (before retrain {before:.4f})",
                        val_acc=done.best_accuracy)


def inference(stage: Stage) -> ExitCode:
    """Evaluate one task on its test images at its own width with its own batch-norm, head and picks."""
    accuracy = evaluate(stage.network, stage.test_data, stage.settings.val_batch_size, stage.settings.speed)
    width = stage.network.tasks[stage.task - 1].width
    print(json.dumps({"task": stage.settings.dataset, "accuracy": round(accuracy, 4), "width": width}))
    stage.log.line(stage="inference", task=stage.settings.dataset, test_acc=accuracy, width=width)
    return ExitCode.OK


def accuracy_goal(settings: CPGSettings) -> float:
    """The task's goal from --baseline_acc_file, else from the benchmark's built-in goals (methods
    without goals always keep their model)."""
    if not settings.USES_GOALS:
        return 0.0
    if settings.baseline_acc_file:
        return goal_for(read_goals(Path(settings.baseline_acc_file)), settings.dataset, settings.baseline_acc_file)
    return goal_for(get_benchmark(settings.benchmark).default_goals, settings.dataset,
                    f"the {settings.benchmark} defaults")


def run(settings: CPGSettings, process_start: float) -> ExitCode:
    goal = accuracy_goal(settings) if settings.mode in ("finetune", "prune") else 0.0  # no other stage reads it
    record = read_record(Path(settings.needed(settings.jsonfile, "jsonfile"))) if settings.mode == "prune" else {}
    if settings.mode == "prune" and "0.0" not in record:
        raise UsageError(f"record file {settings.jsonfile} has no unpruned accuracy (\"0.0\"); run finetune first")
    stage = load_stage(settings, process_start)
    if isinstance(settings, BaselineSettings) and settings.mode == "finetune":
        code = baseline(stage)
    else:
        stages = {"finetune": lambda: finetune(stage, goal), "prune": lambda: prune(stage, goal, record),
                  "retrain": lambda: retrain(stage), "inference": lambda: inference(stage)}
        code = stages[settings.mode]()
    return ExitCode(int(from_main(code)))  # rank 0's decision is every rank's exit code

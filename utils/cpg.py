"""The CPG stages: finetune (pick and train), prune (compact), retrain, inference.

Each stage is one call of `main_normal.py` for one task; it loads the previous
stage's checkpoint, trains, writes its own checkpoint and record entry, and
returns the state code the driver branches on (design section 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from models import build_network
from models.network import TaskNetwork
from utils.checkpoint import load_checkpoint, network_from_checkpoint, save_checkpoint
from utils.cli import UsageError
from utils.data.registry import get_benchmark
from utils.data.tasks import DeviceTaskData
from utils.device import resolve_device
from utils.engine import EpochResult, TrainLoop, evaluate
from utils.exit_codes import ExitCode
from utils.logs import RunLog
from utils.optim import SGD, Adam, Optimizer
from utils.pruner import GradualPruner, owned_fraction, task_sparsity
from utils.records import goal_for, read_goals, read_record, write_goal_entry, write_record_entry
from utils.speed import Speed

TRAIN_ACCURACY_GATE = 0.95
LAYER_MODES = {"cpg": "cpg", "packnet": "packnet", "baseline": "plain"}
MOMENTUM = 0.9
RETRAIN_PATIENCE = 5


@dataclass
class Stage:
    """Everything one stage needs: flags, log, device, speed settings, the task's data and its network."""

    args: argparse.Namespace
    log: RunLog
    device: torch.device
    speed: Speed
    network: TaskNetwork
    task: int
    data: DeviceTaskData
    epoch_started: float = 0.0

    def epoch_line(self, epoch: int, result: EpochResult, **extra) -> None:
        """One log line per epoch, with its duration (and, for the first, the set-up time before it)."""
        timing = {"seconds": time.time() - self.epoch_started}
        if epoch == 1:
            timing["setup_seconds"] = self.epoch_started - self.args.process_start
            timing["paths"] = self.speed.describe()
        self.log.line(stage=self.args.mode, task=self.args.dataset, epoch=f"{epoch}/{self.args.epochs}",
                      loss=result.loss, train_acc=result.accuracy, width=self.network.width, **timing, **extra)

    def decide(self, code: ExitCode, reason: str, **extra) -> ExitCode:
        self.log.decision(stage=self.args.mode, task=self.args.dataset, exit=int(code), state=code.name,
                          width=self.network.width, reason=reason, **extra)
        return code

    def save(self, accuracy: float, train_accuracy: float, **extra) -> None:
        layers = self.network.cpg_layers()
        save_checkpoint(Path(self.args.save_folder), self.network, self.args.arch, {
            "benchmark": self.args.benchmark, "task": self.args.dataset, "stage": self.args.mode,
            "accuracy": round(accuracy, 4), "train_accuracy": round(train_accuracy, 4),
            "sparsity": round(task_sparsity(layers, self.task), 4),
            "owned_fraction": round(owned_fraction(layers, self.task), 6), **extra})


def load_stage(args: argparse.Namespace, log: RunLog) -> Stage:
    """Build the network for this stage: a new task on top of the loaded one (finetune) or the
    loaded checkpoint's own task (the other modes)."""
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    speed = Speed.from_args(args)
    if speed.cuda_graph and device.type != "cuda":
        raise UsageError(f"--cuda_graph needs a CUDA device, not {device}")
    benchmark = get_benchmark(args.benchmark)
    task_data = benchmark.load_task(Path(args.data_root), args.dataset)
    if args.mode == "finetune":
        if args.load_folder:
            payload = load_checkpoint(Path(args.load_folder))
            if payload["arch"] != args.arch:
                raise UsageError(f"--arch {args.arch} but {args.load_folder} holds a {payload['arch']}")
            if args.network_width_multiplier < payload["width"]:
                raise UsageError(f"--network_width_multiplier {args.network_width_multiplier} is narrower than "
                                 f"the loaded network ({payload['width']}); width never shrinks")
            network = network_from_checkpoint(payload, args.network_width_multiplier)
        else:
            network = build_network(args.arch, args.network_width_multiplier, mode=LAYER_MODES[args.method])
        if network.mode != LAYER_MODES[args.method]:
            raise UsageError(f"--method {args.method} cannot continue a {network.mode} checkpoint")
        if args.dataset in [spec.name for spec in network.tasks]:
            raise UsageError(f"task {args.dataset} is already learned in {args.load_folder}")
        if args.method == "baseline" and network.tasks:
            task = network.take_over(args.dataset, task_data.num_classes)
        else:
            task = network.add_task(args.dataset, task_data.num_classes)
    else:
        network = network_from_checkpoint(load_checkpoint(Path(args.load_folder)))
        names = [spec.name for spec in network.tasks]
        if args.dataset not in names:
            raise UsageError(f"task {args.dataset} is not in {args.load_folder} (it holds {', '.join(names)})")
        task = network.task_id(args.dataset)
        if args.mode in ("prune", "retrain") and task != len(names):
            raise UsageError(f"{args.mode} works on the latest task ({names[-1]}), not {args.dataset}")
    network.to(device)
    if speed.channels_last:
        network.to(memory_format=torch.channels_last)
    for layer in network.cpg_layers():
        layer.cache_multipliers = speed.cached_masks
    network.set_task(task)
    data = DeviceTaskData(task_data, device, benchmark.crop_padding, benchmark.flip, resident=speed.resident_data,
                          channels_last=speed.channels_last)
    return Stage(args, log, device, speed, network, task, data)


def _optimizers(stage: Stage, lr: float, lr_mask: float) -> tuple[SGD, Adam | None]:
    """SGD (Nesterov, no built-in decay) over the task's trainables; Adam over fresh piggymasks."""
    network, task = stage.network, stage.task
    masks = []
    for layer in network.cpg_layers():
        mask = layer.start_picking() if lr_mask > 0 and task == layer.num_tasks else None
        if mask is not None:
            masks.append(mask)
    sgd = SGD(network.task_parameters(task), lr=lr, momentum=MOMENTUM, nesterov=True)
    adam = Adam(masks, lr=lr_mask) if masks else None
    return sgd, adam


def _weight_decay(stage: Stage):
    """grad += wd * w on the body's weights the task owns (all of them in a plain network); old
    tasks' weights, batch-norm, biases and heads are not decayed, as in the reference."""
    decay = stage.args.weight_decay
    cpg_layers = stage.network.cpg_layers()
    plain = [w for w in stage.network.shared_weights() if not any(w is layer.weight for layer in cpg_layers)]

    @torch.no_grad()
    def apply() -> None:
        for layer in cpg_layers:
            own, _ = layer.multipliers()
            if layer.weight.grad is not None:
                layer.weight.grad.addcmul_(layer.weight, own, value=decay)
        for weight in plain:
            if weight.grad is not None:
                weight.grad.add_(weight, alpha=decay)
    return apply if decay > 0 else None


def _set_lr(optimizer: Optimizer | None, lr: float) -> None:
    if optimizer is not None:
        optimizer.lr = lr


def _train_loop(stage: Stage, optimizers: list[Optimizer | None], after_step=None) -> TrainLoop:
    return TrainLoop(stage.network, [o for o in optimizers if o], stage.device, stage.speed,
                     before_step=_weight_decay(stage), after_step=after_step)


def _evaluate(stage: Stage) -> float:
    return evaluate(stage.network, stage.data, stage.args.val_batch_size, stage.speed)


def _epochs(stage: Stage):
    """Epoch numbers 1..E with a progress bar on a terminal only; notes when each epoch starts."""
    for epoch in tqdm(range(1, stage.args.epochs + 1), desc=f"{stage.args.mode} {stage.args.dataset}",
                      unit="epoch", leave=False, disable=not sys.stderr.isatty()):
        stage.epoch_started = time.time()
        yield epoch


def _train_new_task(stage: Stage) -> tuple[EpochResult, float]:
    """Train a new task's weights (and picks); SGD x0.1 at 50% and 80% of the epochs, the mask
    learning rate x0.2 at 50% and 0 from 70% unless the task owns no weights. Returns the last
    epoch's training result and the validation accuracy."""
    args = stage.args
    sgd, adam = _optimizers(stage, args.lr, args.lr_mask)
    loop = _train_loop(stage, [sgd, adam])
    owns_weights = not stage.network.cpg_layers() or owned_fraction(stage.network.cpg_layers(), stage.task) > 0
    generator = stage.data.generator(args.seed)
    result = EpochResult(0.0, 0.0)
    for epoch in _epochs(stage):
        progress = (epoch - 1) / args.epochs
        _set_lr(sgd, args.lr * (0.1 if progress >= 0.5 else 1.0) * (0.1 if progress >= 0.8 else 1.0))
        mask_scale = 1.0 if progress < 0.5 else (0.2 if progress < 0.7 or not owns_weights else 0.0)
        _set_lr(adam, args.lr_mask * mask_scale)
        result = loop.epoch(stage.data, args.batch_size, generator)
        stage.epoch_line(epoch, result)
    return result, _evaluate(stage)


def finetune(stage: Stage, goal: float) -> ExitCode:
    """Learn a new task: train its free weights and pick old ones; exit 2 asks for a wider network."""
    args = stage.args
    result, accuracy = _train_new_task(stage)
    write_record_entry(Path(args.jsonfile), 0.0, accuracy)
    at_cap = stage.network.width >= args.max_allowed_network_width_multiplier
    met = result.accuracy > TRAIN_ACCURACY_GATE and accuracy >= goal
    facts = dict(val_acc=accuracy, train_acc=result.accuracy, goal=goal)
    if not met and not at_cap:
        return stage.decide(ExitCode.EXPAND, "goal not met below the width cap", **facts)
    stage.save(accuracy, result.accuracy)
    reason = "goal met" if met else "goal not met at the width cap"
    if owned_fraction(stage.network.cpg_layers(), stage.task) == 0:
        return stage.decide(ExitCode.NO_SPACE, f"{reason}; the task owns no free weights", **facts)
    return stage.decide(ExitCode.OK, reason, **facts)


def baseline(stage: Stage) -> ExitCode:
    """Train a plain network on one task and add its accuracy to --logfile (an accuracy-goal file)."""
    result, accuracy = _train_new_task(stage)
    if stage.args.logfile:
        write_goal_entry(Path(stage.args.logfile), stage.args.dataset, accuracy)
    stage.save(accuracy, result.accuracy)
    return stage.decide(ExitCode.OK, "baseline trained", val_acc=accuracy, train_acc=result.accuracy)


def _required_sparsity(args: argparse.Namespace, task: int) -> float:
    """At the cap with the goal missed, leave capacity for the tasks still to come."""
    remaining = max(args.total_num_tasks - task, 0)
    return 1.0 - round(1.0 / (remaining + 1), 1)


def prune(stage: Stage, goal: float, record: dict[str, float]) -> ExitCode:
    """Compact the task's weights from the initial to the target sparsity; exit 6 ends pruning."""
    args = stage.args
    give_way = (stage.network.width >= args.max_allowed_network_width_multiplier and record["0.0"] < goal)
    must_free = _required_sparsity(args, stage.task)
    if give_way and args.initial_sparsity >= must_free:
        return stage.decide(ExitCode.STOP, f"at the width cap below the goal; {must_free} already freed for "
                                           "later tasks", sparsity=args.initial_sparsity)
    sgd, _ = _optimizers(stage, args.lr, 0.0)
    steps = stage.data.steps_per_epoch(args.batch_size)

    def momentum_of(weight: torch.Tensor) -> torch.Tensor | None:
        return sgd.momentum_buffers.get(weight)

    pruner = GradualPruner(stage.network.cpg_layers(), stage.task, args.initial_sparsity, args.target_sparsity,
                           args.pruning_frequency, 0, args.pruning_interval * steps, momentum_of,
                           on_device=stage.speed.device_pruning)
    if args.pruning_interval == 0:
        pruner.finish()  # one shot (PackNet), then train the kept weights
    loop = _train_loop(stage, [sgd], after_step=pruner.step)
    generator = stage.data.generator(args.seed)
    result = EpochResult(0.0, 0.0)
    for epoch in _epochs(stage):
        result = loop.epoch(stage.data, args.batch_size, generator)
        stage.epoch_line(epoch, result, sparsity=task_sparsity(stage.network.cpg_layers(), stage.task))
    pruner.finish()
    accuracy = _evaluate(stage)
    facts = dict(val_acc=accuracy, train_acc=result.accuracy, goal=goal, sparsity=args.target_sparsity)
    if result.accuracy <= TRAIN_ACCURACY_GATE:
        return stage.decide(ExitCode.STOP, f"train accuracy {result.accuracy:.4f} fell to the gate "
                                           f"{TRAIN_ACCURACY_GATE}; nothing recorded", **facts)
    write_record_entry(Path(args.jsonfile), args.target_sparsity, accuracy)
    stage.save(accuracy, result.accuracy)
    if give_way and args.target_sparsity >= must_free:
        return stage.decide(ExitCode.STOP, f"at the width cap below the goal; freed {must_free} for later tasks",
                            **facts)
    return stage.decide(ExitCode.OK, "pruned", **facts)


def retrain(stage: Stage) -> ExitCode:
    """Learn the piggymask again with the kept weights; keep the best epoch by validation accuracy."""
    args = stage.args
    before = _evaluate(stage)
    sgd, adam = _optimizers(stage, args.lr, args.lr_mask)
    loop = _train_loop(stage, [sgd, adam])
    generator = stage.data.generator(args.seed)
    best, since_best = -1.0, 0
    for epoch in _epochs(stage):
        result = loop.epoch(stage.data, args.batch_size, generator)
        evaluation_started = time.time()
        accuracy = _evaluate(stage)
        stage.epoch_line(epoch, result, val_acc=accuracy, eval_seconds=time.time() - evaluation_started)
        if accuracy > best:
            best, since_best = accuracy, 0
            stage.save(accuracy, result.accuracy, epoch=epoch)
        else:
            since_best += 1
            if since_best >= RETRAIN_PATIENCE:
                break
    if args.jsonfile:
        write_record_entry(Path(args.jsonfile), task_sparsity(stage.network.cpg_layers(), stage.task), best)
    return stage.decide(ExitCode.OK, f"best retrain epoch kept (before retrain {before:.4f})", val_acc=best)


def inference(stage: Stage) -> ExitCode:
    """Evaluate one task at its own width with its own batch-norm, head and picks."""
    accuracy = _evaluate(stage)
    print(json.dumps({"task": stage.args.dataset, "accuracy": round(accuracy, 4),
                      "width": stage.network.tasks[stage.task - 1].width}))
    stage.log.line(stage="inference", task=stage.args.dataset, val_acc=accuracy,
                   width=stage.network.tasks[stage.task - 1].width)
    return ExitCode.OK


def accuracy_goal(args: argparse.Namespace) -> float:
    """The task's goal from --baseline_acc_file, else from the benchmark's built-in goals (PackNet
    has no goals: it always keeps its model)."""
    if args.method == "packnet":
        return 0.0
    if args.baseline_acc_file:
        return goal_for(read_goals(Path(args.baseline_acc_file)), args.dataset, args.baseline_acc_file)
    return goal_for(get_benchmark(args.benchmark).default_goals, args.dataset, f"the {args.benchmark} defaults")


def run(args: argparse.Namespace) -> ExitCode:
    goal = accuracy_goal(args) if args.mode in ("finetune", "prune") and args.method != "baseline" else None
    record = read_record(Path(args.jsonfile)) if args.mode == "prune" else {}
    if args.mode == "prune" and "0.0" not in record:
        raise UsageError(f"record file {args.jsonfile} has no unpruned accuracy (\"0.0\"); run finetune first")
    stage = load_stage(args, RunLog(args.log_path))
    if args.method == "baseline" and args.mode == "finetune":
        return baseline(stage)
    if args.mode == "finetune":
        return finetune(stage, goal)
    if args.mode == "prune":
        return prune(stage, goal, record)
    if args.mode == "retrain":
        return retrain(stage)
    return inference(stage)


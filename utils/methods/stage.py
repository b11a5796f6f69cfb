"""The stage context every method's stages share: seed, device, benchmark, task data on the device, train.log
and TensorBoard, the epoch logger, save and decide, written once.

A stage opens its context (`open_stage`) where its seed belongs relative to its data loading and model
construction: both draw from torch's global generator, so moving the seed changes every number. Stages that
seed again later (a task's own draw, a control's initialisation) call `reseed`, the one place that generator
is seeded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

from unforget.models.network import TaskNetwork
from unforget.utils.board import Board
from unforget.utils.checkpoint import save_checkpoint, task_record
from unforget.utils.data.registry import get_benchmark
from unforget.utils.data.tasks import DeviceTaskData, TaskData, hold_out
from unforget.utils.device import resolve_device
from unforget.utils.engine import EpochResult, Epochs, TrainLoop, run_epochs
from unforget.utils.exit_codes import ExitCode
from unforget.utils.logs import RunLog
from unforget.utils.ranks import is_main
from unforget.utils.settings import StageSettings

if TYPE_CHECKING:
    from unforget.utils.data.registry import Benchmark

Scalars = Callable[[int, EpochResult, dict], dict]
"""(epoch, its training result, run_epochs' fields) -> the values of its log line and TensorBoard step."""
Context = TypeVar("Context", bound="StageContext")
S = TypeVar("S", bound=StageSettings)


def reseed(seed: int) -> None:
    """Seed torch's global generator, which weight initialisation, new scores and dropout draw from."""
    torch.manual_seed(seed)


def train_scalars(epoch: int, result: EpochResult, fields: dict) -> dict:
    """The usual epoch values: loss and training accuracy, then run_epochs' timing and the schedule's rates."""
    return dict(loss=result.loss, train_acc=result.accuracy, **fields)


@dataclasses.dataclass
class StageContext(Generic[S]):
    """What one stage of any method runs in: its settings, device, log and the fields that head its lines."""

    settings: S
    log: RunLog
    device: torch.device
    head: dict[str, Any]
    """the fields each epoch and decision line starts with (stage, method, task, ...)"""
    process_start: float | None = None
    """when the process started: the first epoch line gives the set-up seconds since (None: it does not)"""
    board: Board | None = dataclasses.field(default=None, repr=False)
    """the TensorBoard run `train` has open (None outside it): hooks that measure more during the epochs, such
    as a kept epoch's test accuracy, put their points there with `board_point`"""
    records: dict[str, dict] = dataclasses.field(default_factory=dict)
    """what the checkpoints keep of each task this stage read (utils.checkpoint.task_record), by name; shared by
    the contexts `lines` and `grown` make"""

    @cached_property
    def benchmark(self) -> Benchmark:
        return get_benchmark(self.settings.benchmark)

    def lines(self: Context, **head: Any) -> Context:
        """This context with other line heads (a stage that logs several tasks or stages)."""
        return dataclasses.replace(self, head=head)

    def load_task(self, name: str | None = None) -> TaskData:
        """Task `name` (default --dataset) of the benchmark, on the CPU; its record goes into the checkpoints."""
        task = self.benchmark.load_task(Path(self.settings.data_root), name or self.settings.dataset)
        self.records[task.name] = task_record(task, self._held_out(task))
        return task

    def _held_out(self, task: TaskData) -> int | None:
        """How many of the task's training images a learning stage holds out to choose on (the count
        utils.data.tasks.hold_out takes), or None when its method has no validation split."""
        fraction = getattr(self.settings, "val_fraction", None)
        if not fraction or self.settings.mode == "inference" or task.name != self.settings.dataset:
            return None
        return round(fraction * task.train_labels.numel())

    def on_device(self, task: TaskData, augment: bool = True, **options: Any) -> DeviceTaskData:
        """The task on the stage's device, with the benchmark's crops and flips unless `augment` is False."""
        if not augment:
            return task.on_device(self.device, 0, False, **options)
        return task.on_device(self.device, self.benchmark.crop_padding, self.benchmark.flip, **options)

    def validation_split(self, task: TaskData) -> tuple[TaskData, TaskData | None]:
        """(the task to train and test on, its validation split) under an opt-in --val_fraction: the CPG
        family's held-out training images (`hold_out`) become the validation split's test images and leave
        training; the test images stay the task's. Without a fraction (0, or a method without the flag) the
        task whole and None."""
        fraction = getattr(self.settings, "val_fraction", None)
        if not fraction:
            return task, None
        held = hold_out(task, fraction)
        return dataclasses.replace(held, test_images=task.test_images, test_labels=task.test_labels), held

    def task_data(self, name: str | None = None, augment: bool = True) -> DeviceTaskData:
        return self.on_device(self.load_task(name), augment)

    def epoch_logger(self, board: Board, scalars: Scalars = train_scalars, board_extra: dict | None = None,
                     board_tags: dict[str, str] | None = None) -> Callable[[int, EpochResult, dict], None]:
        """run_epochs' `log`: one train.log line and one TensorBoard step per epoch, with the same values
        (and `board_extra`, values the curves show but the line leaves out; `board_tags` renames a value's
        tag on the board only, e.g. a line's val_acc measured on the test images as test_acc)."""
        def log_epoch(epoch: int, result: EpochResult, fields: dict) -> None:
            values = scalars(epoch, result, fields)
            self.log.line(**self.head, epoch=f"{epoch}/{self.settings.epochs}", **values)
            tags, shown = board_tags or {}, {**values, **(board_extra or {})}
            board.epoch(epoch, **{tags.get(tag, tag): value for tag, value in shown.items()})
        return log_epoch

    def train(self, loop: TrainLoop, data: DeviceTaskData, board_run: str, *, generator: torch.Generator | None = None,
              scalars: Scalars = train_scalars, board_extra: dict | None = None,
              board_tags: dict[str, str] | None = None, finish: Callable[[], dict[str, float]] | None = None,
              description: str = "", **hooks: Any) -> Epochs:
        """--epochs of `loop` over `data` in the seeded order (or `generator`'s), logged each epoch to train.log
        and to TensorBoard run `board_run`; `hooks` are run_epochs' (schedule, evaluate, keep_best, ...).
        `finish` measures the trained network (its accuracy, by TensorBoard tag: val_acc on held-out training
        images, test_acc on the test images); its values are the run's points at the last epoch, and the
        returned `Epochs.final`."""
        settings = self.settings
        with self.log.board(board_run) as board:
            self.board = board
            try:
                done = run_epochs(loop, data, settings.batch_size, generator or data.generator(settings.seed),
                                  settings.epochs, log=self.epoch_logger(board, scalars, board_extra, board_tags),
                                  description=description, process_start=self.process_start, **hooks)
                if finish is not None:
                    done.final = finish()
                    board.epoch(done.count, **done.final)
            finally:
                self.board = None
            return done

    def board_point(self, step: int, **values: float) -> None:
        """Values at `step` of the run `train` has open (nothing outside `train`)."""
        if self.board is not None:
            self.board.epoch(step, **values)

    def save(self, folder: str | Path, network: TaskNetwork, meta: dict, arch: str | None = None) -> None:
        """The checkpoint and its meta.json, with these settings (rank 0 alone under torchrun)."""
        if is_main():
            arch = arch or self.settings.needed(self.settings.arch, "arch")
            save_checkpoint(Path(folder), network, arch, self.settings, meta, self.records)

    def decide(self, code: ExitCode, **fields: Any) -> ExitCode:
        """The stage's decision line (echoed to the console) and its exit code."""
        self.log.decision(**self.head, exit=int(code), state=code.name, **fields)
        return code

    def grown(self, kind: type[Context], **parts: Any) -> Context:
        """This context as `kind`, a subclass holding more of the stage (CPG's network and data)."""
        return kind(**{item.name: getattr(self, item.name) for item in dataclasses.fields(self)}, **parts)


def open_stage(settings: S, process_start: float | None = None, *, seed: bool = True,
               log_path: str | Path | None = None, head: dict[str, Any] | None = None) -> StageContext[S]:
    """Seed (unless `seed` is False: the method seeds at a later moment, or the stage is an evaluation that never
    seeded), resolve the device and open train.log (--log_path, else `log_path`; silent on ranks other than 0).
    Lines start with `head`, by default the stage and the task."""
    if seed:
        reseed(settings.seed)
    device = resolve_device(settings.device)
    path = settings.log_path or log_path
    log = RunLog(Path(path) if path else None, quiet=not is_main())
    return StageContext(settings, log, device, head or {"stage": settings.mode, "task": settings.dataset},
                        process_start)

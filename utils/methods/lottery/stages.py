"""The lottery stages: level 0 trains dense, level k prunes and rewinds, and two controls per level.

finetune (level 0) trains the dense network from its seeded initialisation and keeps its weights at
iteration --rewind_step in `level_0/rewind/` (before the first step when 0). prune (level k >= 1)
prunes --prune_fraction of the weights level k-1 kept, by magnitude after its training, writes the
level's `mask.pth` and `sparsity_report.json`, rewinds the kept weights (and the biases, batch-norm
and head) to `level_0/rewind/` and trains again. retrain trains a control of level k: its mask on a
fresh initialisation (`reinit/`), or a random mask of the same per-layer sparsity on the rewound
weights (`random_mask/`). Every level trains --epochs epochs from its start (OpenLTH trains a
rewound level only for the steps after the rewind point; with the constant learning rate used here
the difference is those --rewind_step steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unforget.models import build_network, input_options
from unforget.models.layers.base import SharedConv2d, SharedLinear
from unforget.models.network import TaskNetwork
from unforget.utils.atomic import UnreadableFile, atomic_json_dump, atomic_torch_save, read_torch_file
from unforget.utils.checkpoint import CheckpointError, load_checkpoint, network_from_checkpoint, read_meta
from unforget.utils.cli import UsageError
from unforget.utils.data.tasks import DeviceTaskData
from unforget.utils.engine import TrainLoop, evaluate
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.lottery.folders import LotteryFolders
from unforget.utils.methods.lottery.pruning import (
    apply_masks,
    magnitude_masks,
    random_masks,
    read_masks,
    sparsity_report,
)
from unforget.utils.methods.lottery.settings import LotterySettings
from unforget.utils.methods.stage import StageContext, open_stage, reseed
from unforget.utils.optim import SGD

LAYER_MODE = "packnet"
REINIT_SEED = 1_000_003
"""added to --seed for the random-reinit control's initialisation, so it differs from level 0's"""
SAME_AS_LEVEL_0 = ("benchmark", "dataset", "arch", "rewind_step")
"""settings a later level must share with the level 0 it builds on"""


@dataclass(frozen=True)
class LotteryData:
    """The task every level trains and tests on, and its validation split under --val_fraction (else None)."""

    train: DeviceTaskData
    validation: DeviceTaskData | None


def arch_options(arch: str, data: DeviceTaskData) -> dict:
    return input_options(arch, tuple(data.train_images.shape[1:]))


@torch.no_grad()
def kaiming_init(network: TaskNetwork) -> None:
    """OpenLTH's default: kaiming-normal (fan-in, ReLU gain) on every conv and linear weight, head included
    (biases start at zero in every mode); the architectures' reference init (linear N(0, 0.01)) leaves an
    MLP without batch-norm barely trained after a few epochs."""
    for module in network.modules():
        if isinstance(module, (SharedConv2d, SharedLinear)):
            nn.init.kaiming_normal_(module.weights.weight, nonlinearity="relu")


def fresh_network(settings: LotterySettings, data: DeviceTaskData, seed: int) -> TaskNetwork:
    reseed(seed)
    arch = settings.needed(settings.arch, "arch")
    network = build_network(arch, 1.0, mode=LAYER_MODE, **arch_options(arch, data))
    network.add_task(settings.dataset, data.num_classes)
    if settings.init == "kaiming_normal":
        kaiming_init(network)
    return network.to(data.device)


def stored_network(folder: Path, settings: LotterySettings, data: DeviceTaskData) -> TaskNetwork:
    options = arch_options(settings.needed(settings.arch, "arch"), data)
    return network_from_checkpoint(load_checkpoint(folder), **options).to(data.device)


def train(stage: StageContext[LotterySettings], network: TaskNetwork, data: LotteryData,
          after_step=None) -> float:
    """--epochs of SGD at the constant --lr on the same seeded data order for every level; the final
    test accuracy (and on the board, with --val_fraction, the held-out training images' as val_acc).
    Pruned weights get no gradient and stay zero (see pruning.py)."""
    settings, name = stage.settings, stage.head["stage"]
    optimizer = SGD(network.parameters(), settings.lr, settings.momentum, settings.weight_decay)
    loop = TrainLoop(network, [optimizer], data.train.device, after_step=after_step)

    def measured() -> dict[str, float]:
        held_out = {} if data.validation is None else {
            "val_acc": evaluate(network, data.validation, settings.val_batch_size)}
        return {**held_out, "test_acc": evaluate(network, data.train, settings.val_batch_size)}

    done = stage.train(loop, data.train, f"lottery_{name}", board_extra={"lr": settings.lr},
                       description=f"lottery {name}", finish=measured)
    return done.final["test_acc"]


def finish(stage: StageContext[LotterySettings], folder: Path, network: TaskNetwork, accuracy: float,
           meta: dict) -> ExitCode:
    """The trained network, its sparsity report and the decision line."""
    settings = stage.settings
    report = sparsity_report(read_masks(network))
    atomic_json_dump(report, folder / "sparsity_report.json")
    stage.save(folder, network, {
        "benchmark": settings.benchmark, "task": settings.dataset, "accuracy": round(accuracy, 4),
        "sparsity": report["sparsity"], "remaining": round(report["unpruned"] / report["total"], 6), **meta})
    return stage.decide(ExitCode.OK, accuracy=accuracy, sparsity=report["sparsity"], folder=str(folder))


def level_zero(stage: StageContext[LotterySettings], folders: LotteryFolders, data: LotteryData) -> ExitCode:
    settings = stage.settings
    total_steps = settings.epochs * data.train.steps_per_epoch(settings.batch_size)
    if settings.rewind_step > total_steps:
        raise UsageError(f"--rewind_step {settings.rewind_step} is past training: level 0 trains {total_steps} steps "
                         f"(--epochs {settings.epochs} of {data.train.steps_per_epoch(settings.batch_size)})")
    network = fresh_network(settings, data.train, settings.seed)
    rewind = folders.rewind()
    meta = {"level": 0, "rewind_step": settings.rewind_step}

    def keep_rewind_point() -> None:
        stage.save(rewind, network, {**meta, "step": settings.rewind_step})

    steps = 0

    def count_step() -> None:
        nonlocal steps
        steps += 1
        if steps == settings.rewind_step:
            keep_rewind_point()

    if settings.rewind_step == 0:
        keep_rewind_point()
    accuracy = train(stage, network, data, count_step)
    return finish(stage, folders.level(0), network, accuracy, meta)


def checked_level_zero(settings: LotterySettings, folders: LotteryFolders) -> None:
    """Level 0 and its rewind point exist and were made with the settings later levels must share."""
    for folder in (folders.level(0), folders.rewind()):
        if not (folder / "meta.json").is_file():
            raise UsageError(f"level {settings.level} needs level 0 at {folder}, which is missing: run --mode finetune "
                             "first")
    made = read_meta(folders.rewind())["settings"]
    for name in SAME_AS_LEVEL_0:
        if made.get(name) != getattr(settings, name):
            raise UsageError(f"level 0 at {folders.level(0)} has --{name} {made.get(name)}, this level "
                             f"{getattr(settings, name)}")


def rewound(settings: LotterySettings, folders: LotteryFolders, data: DeviceTaskData) -> TaskNetwork:
    return stored_network(folders.rewind(), settings, data)


def level_k(stage: StageContext[LotterySettings], folders: LotteryFolders, data: LotteryData) -> ExitCode:
    settings = stage.settings
    level = settings.needed(settings.level, "level")
    previous = folders.level(level - 1)
    if not (previous / "meta.json").is_file():
        raise UsageError(f"level {level} prunes the trained level {level - 1}, but {previous} holds none: "
                         f"make level {level - 1} first")
    checked_level_zero(settings, folders)
    trained = stored_network(previous, settings, data.train)
    masks = magnitude_masks(trained, settings.prune_fraction, settings.prune_scope)
    folder = folders.level(level)
    atomic_torch_save({name: mask.cpu() for name, mask in masks.items()}, folder / "mask.pth")
    network = rewound(settings, folders, data.train)
    apply_masks(network, masks)
    accuracy = train(stage, network, data)
    meta = {"level": level, "rewind_step": settings.rewind_step, "prune_fraction": settings.prune_fraction,
            "prune_scope": settings.prune_scope}
    return finish(stage, folder, network, accuracy, meta)


def level_masks(folders: LotteryFolders, level: int) -> dict[str, torch.Tensor]:
    path = folders.level(level) / "mask.pth"
    if not path.is_file():
        raise UsageError(f"a control of level {level} needs its mask at {path}: make level {level} first "
                         "(--mode prune)")
    try:
        masks = read_torch_file(path)
    except UnreadableFile as error:
        raise CheckpointError(f"mask file {path} is unreadable ({error})") from error
    if not isinstance(masks, dict) or not all(isinstance(mask, torch.Tensor) for mask in masks.values()):
        raise CheckpointError(f"mask file {path} holds no masks")
    return {name: mask.bool() for name, mask in masks.items()}


def control(stage: StageContext[LotterySettings], folders: LotteryFolders, data: LotteryData) -> ExitCode:
    settings = stage.settings
    level = settings.needed(settings.level, "level")
    checked_level_zero(settings, folders)
    masks = level_masks(folders, level)
    if settings.control == "reinit":
        network = fresh_network(settings, data.train, settings.seed + REINIT_SEED)
    else:
        network = rewound(settings, folders, data.train)
        masks = random_masks(masks, torch.Generator().manual_seed((settings.seed * 1009 + level) % 2 ** 64))
    try:
        apply_masks(network, masks)
    except ValueError as error:
        path = folders.level(level) / "mask.pth"
        raise CheckpointError(f"{path} does not fit the network: {error}") from error
    accuracy = train(stage, network, data)
    kind = settings.needed(settings.control, "control")
    meta = {"level": level, "control": kind, "rewind_step": settings.rewind_step}
    return finish(stage, folders.control(level, kind), network, accuracy, meta)


def stage_name(settings: LotterySettings) -> str:
    """What the stage's lines and TensorBoard run are called: level_0, level_<k>, level_<k>_<control>."""
    if settings.mode == "finetune":
        return "level_0"
    return f"level_{settings.level}" if settings.mode == "prune" else f"level_{settings.level}_{settings.control}"


def run(settings: LotterySettings, process_start: float) -> ExitCode:
    folders = LotteryFolders(Path(settings.needed(settings.save_folder, "save_folder")))
    head = {"stage": stage_name(settings), "method": "lottery", "task": settings.dataset}
    # no seed here: each network's initialisation seeds itself (fresh_network)
    stage = open_stage(settings, process_start, seed=False, log_path=folders.root / "train.log", head=head)
    trained, held = stage.validation_split(stage.load_task())
    data = LotteryData(stage.on_device(trained), None if held is None else stage.on_device(held, augment=False))
    if settings.mode == "finetune":
        return level_zero(stage, folders, data)
    if settings.mode == "prune":
        return level_k(stage, folders, data)
    return control(stage, folders, data)

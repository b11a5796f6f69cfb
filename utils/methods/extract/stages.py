"""The Expand-and-Cluster stages: recover a teacher's weights from its outputs.

finetune trains N overparameterised students (the students layer mode) to imitate the
teacher: a synthetic one (benchmark gaussian_teacher) or a fully connected network trained by
`main_normal.py` (`--load_folder`). retrain clusters their hidden neurons, rebuilds the teacher
layer by layer, fine-tunes it and writes the recovery report. Students live under
`<save_folder>/ec_<hash>/`, each clustering under `clustering_<hash>/` inside it, so clustering
again with other gamma and beta reuses the students.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import nn

from unforget.models.students import StudentsMLP
from unforget.utils.atomic import UnreadableFile, atomic_json_dump, atomic_torch_save, read_torch_file
from unforget.utils.checkpoint import CheckpointError
from unforget.utils.exit_codes import ExitCode
from unforget.utils.logs import RunLog
from unforget.utils.methods.extract.folders import settings_hash
from unforget.utils.methods.extract.inputs import InputMask
from unforget.utils.methods.extract.reconstruct import ExtractionFailed, OnRebuilt, extract, fine_tune
from unforget.utils.methods.extract.recovery import layer_recovery
from unforget.utils.methods.extract.report import copy_report, write_report
from unforget.utils.methods.extract.settings import SYNTHETIC, ExtractSettings
from unforget.utils.methods.extract.teachers import (
    Probes,
    Teacher,
    checkpoint_teacher,
    gaussian_probes,
    synthetic_teacher,
)
from unforget.utils.methods.extract.training import TrainSettings, evaluate, train_students
from unforget.utils.methods.stage import open_stage, reseed

STUDENTS_FILE = "students.pth"
Students = TypeVar("Students", bound=nn.Module)


def load_teacher(settings: ExtractSettings, sizes: list[int]) -> tuple[Teacher, Probes]:
    if settings.benchmark == SYNTHETIC:
        teacher = synthetic_teacher(sizes, settings.ec_activation, settings.seed)
        return teacher, gaussian_probes(teacher, settings.ec_samples, settings.seed)
    checkpoint = Path(settings.needed(settings.load_folder, "load_folder"))
    return checkpoint_teacher(checkpoint, settings.benchmark, settings.dataset, Path(settings.data_root),
                              settings.ec_probe, settings.ec_samples, settings.seed, settings.val_fraction)


def student_settings(settings: ExtractSettings) -> dict:
    """What the trained students depend on (the name of their folder)."""
    if settings.benchmark == SYNTHETIC:
        teacher = {"sizes": settings.ec_sizes, "activation": settings.ec_activation, "samples": settings.ec_samples}
        if len(settings.sizes) > 3:  # deeper biases are centred now: students of older deep teachers do not fit
            teacher["deeper_biases"] = "centred"
    else:
        checkpoint = Path(settings.needed(settings.load_folder, "load_folder"))
        teacher = {"checkpoint": str(checkpoint.resolve()), "dataset": settings.dataset, "probe": settings.ec_probe}
        if settings.ec_probe == "gaussian":
            teacher["samples"] = settings.ec_samples
        if settings.val_fraction:  # fewer probes: other students (without it, the folders of earlier runs)
            teacher["val_fraction"] = settings.val_fraction
    return {"benchmark": settings.benchmark, "teacher": teacher, "students": settings.ec_students,
            "expansion": settings.ec_expansion, "lr": settings.lr, "epochs": settings.epochs,
            "batch_size": settings.batch_size, "patience": settings.ec_patience, "min_lr": settings.ec_min_lr,
            "seed": settings.seed}


def clustering_settings(settings: ExtractSettings) -> dict:
    """What a rebuild depends on beyond its students (the name of its folder); `layers_below` marks
    rebuilds whose deeper students train on the layers below kept fixed."""
    return {"gamma": settings.ec_gamma, "beta": settings.ec_beta, "finetune_lr": settings.ec_finetune_lr,
            "finetune_epochs": settings.ec_finetune_epochs, "mask_share": settings.ec_mask_share,
            "threshold": settings.ec_threshold, "layers_below": "fixed as clustered"}


def train_settings(settings: ExtractSettings) -> TrainSettings:
    return TrainSettings(settings.lr, settings.epochs, settings.batch_size, patience=settings.ec_patience,
                         min_lr=settings.ec_min_lr, seed=settings.seed)


def student_widths(teacher: Teacher, expansion: float) -> list[int]:
    return [math.ceil(size * expansion) for size in teacher.sizes[1:-1]]


def reuse_students(path: Path, model: nn.Module) -> None:
    """Load students saved by an earlier run into `model`; a file that cannot serve (truncated by a full
    disk, or of other students) is a CheckpointError naming it, which main_normal.py reports in one line."""
    try:
        model.load_state_dict(read_torch_file(path))
    except UnreadableFile as error:
        raise CheckpointError(f"cannot reuse the saved students: {error}; delete it to train them again") from error
    except (RuntimeError, TypeError) as error:  # load_state_dict: not a state dict, or other keys or shapes
        raise CheckpointError(f"cannot reuse the saved students: {path} holds other students; delete it to "
                              f"train them again") from error


def train_or_load(path: Path, model: Students, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                  log: RunLog, stage: str) -> tuple[Students, torch.Tensor, float]:
    """Students saved at `path`, else trained and saved there; also the seconds their training took
    (kept in a JSON file beside them, so the report counts them when they are reused)."""
    meta = path.with_suffix(".json")
    if path.is_file():
        reuse_students(path, model)
        log.decision(stage=stage, reused=str(path))
        seconds = json.loads(meta.read_text())["seconds"] if meta.is_file() else 0.0
        return model, evaluate(model, x, y), seconds
    started = time.monotonic()
    with log.board(stage) as board:
        losses = train_students(model, x, y, settings, lambda **fields: log.line(stage=stage, **fields), board=board)
    seconds = round(time.monotonic() - started, 1)
    atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    atomic_json_dump({"seconds": seconds, "losses": losses.tolist()}, meta)
    log.decision(stage=stage, saved=str(path), best_loss=f"{float(losses.min()):.3e}",
                 worst_loss=f"{float(losses.max()):.3e}", losses=" ".join(f"{loss:.2e}" for loss in losses.tolist()))
    return model, losses, seconds


def weights_of(network: StudentsMLP) -> list[tuple]:
    return [tuple(t[0].detach().cpu().double().numpy() for t in network.weights(i)) for i in range(len(network.layers))]


def recovery_of(teacher: Teacher, network: StudentsMLP, mask: InputMask, threshold: float) -> list[dict]:
    teacher_weights = [(w.double().numpy(), b.double().numpy()) for w, b in teacher.layers]
    return layer_recovery(teacher_weights, weights_of(network), mask, threshold)


def stage_summary(teacher: Teacher, network: StudentsMLP, probes: Probes, mask: InputMask, threshold: float) -> dict:
    return {"layers": recovery_of(teacher, network, mask, threshold),
            "train_loss": float(evaluate(network, probes.x_train, probes.y_train)[0]),
            "test_loss": float(evaluate(network, probes.x_test, probes.y_test)[0])}


def board_figures(summary: dict, network: StudentsMLP, probes: Probes) -> dict[str, float]:
    """A stage summary's recovery as TensorBoard values (per hidden layer k: recovered_Lk neurons and
    max_incoming_Lk, the worst 1-|cos|; the probes' train_loss and test_loss) and, for a trained teacher, the
    network's accuracy on its test images (test_acc) and on the held-out training images (val_acc)."""
    values = {"train_loss": summary["train_loss"], "test_loss": summary["test_loss"]}
    for layer in summary["layers"]:
        values[f"recovered_L{layer['layer']}"] = layer["recovered"]
        values[f"max_incoming_L{layer['layer']}"] = layer["max_incoming"]
    for tag, part in (("val_acc", probes.validation), ("test_acc", probes.test)):
        if part is not None:
            with torch.no_grad():
                values[tag] = (network(part.x)[0].argmax(1) == part.labels).float().mean().item()
    return values


def run(settings: ExtractSettings, process_start: float) -> ExitCode:
    started = time.monotonic()
    teacher, probes = load_teacher(settings, settings.sizes)  # on the CPU, from generators of its own
    root = Path(settings.needed(settings.save_folder, "save_folder"))
    folder = root / settings_hash("ec", student_settings(settings))
    stage = open_stage(settings, process_start, seed=False, log_path=folder / "train.log",
                       head={"stage": settings.mode})
    log, probes = stage.log, probes.to(stage.device)
    widths = student_widths(teacher, settings.ec_expansion)
    reseed(settings.seed)
    sizes = [teacher.sizes[0], *widths, teacher.sizes[-1]]
    first = StudentsMLP(sizes, settings.ec_students, teacher.activation).to(stage.device)
    training = train_settings(settings)
    first, losses, seconds = train_or_load(folder / STUDENTS_FILE, first, probes.x_train, probes.y_train, training,
                                           log, "students_L1")
    student_seconds = [seconds]
    student_losses = [losses.tolist()]
    rebuild_started = time.monotonic()
    if settings.mode == "finetune":
        seconds = round(time.monotonic() - started)
        return stage.decide(ExitCode.OK, folder=str(folder), seconds=seconds)
    clustering = folder / settings_hash("clustering", clustering_settings(settings))

    def later(index: int, model: OnRebuilt) -> tuple[OnRebuilt, torch.Tensor]:
        model, layer_losses, layer_seconds = train_or_load(clustering / f"students_L{index + 1}.pth", model,
                                                           probes.x_train, probes.y_train, training, log,
                                                           f"students_L{index + 1}")
        student_seconds.append(layer_seconds)
        student_losses.append(layer_losses.tolist())
        return model, layer_losses

    mask = InputMask.of(probes.x_train, settings.ec_mask_share)
    try:
        layers, network = extract(first, losses, widths, probes.x_train, probes.y_train, teacher.activation,
                                  settings.ec_gamma, settings.ec_beta, mask, later)
    except ExtractionFailed as error:
        return stage.decide(ExitCode.FAILED, reason=str(error))
    report: dict[str, object] = {"settings": {**student_settings(settings), **clustering_settings(settings)},
              "teacher_sizes": teacher.sizes, "teacher_accuracy": teacher.accuracy, "student_widths": widths,
              "rebuilt_sizes": network.sizes,
              "masked_inputs": mask.dropped, "student_losses": student_losses,
              "after_reconstruction": stage_summary(teacher, network, probes, mask, settings.ec_threshold)}
    tune = TrainSettings(settings.ec_finetune_lr, settings.ec_finetune_epochs, settings.batch_size,
                         patience=settings.ec_patience, min_lr=settings.ec_min_lr, seed=settings.seed)
    with log.board("fine_tune") as board:  # the rebuilt network before the fine-tune at step 0
        board.epoch(0, **board_figures(cast(dict, report["after_reconstruction"]), network, probes))
        tuned = fine_tune(network, probes.x_train, probes.y_train, tune,
                          lambda **fields: log.line(stage="fine_tune", **fields),
                          lambda net: sum(layer["recovered"] for layer in recovery_of(teacher, net, mask,
                                                                                       settings.ec_threshold)),
                          board=board)
        tuned_summary = stage_summary(teacher, network, probes, mask, settings.ec_threshold)
        board.epoch(tuned.kept_epoch, **board_figures(tuned_summary, network, probes))
    log.decision(stage="fine_tune", kept_epoch=tuned.kept_epoch, recovered=tuned.recovered, loss=f"{tuned.loss:.3e}")
    report["after_tuning"] = {**tuned_summary, "kept_epoch": tuned.kept_epoch}
    report["student_seconds"] = student_seconds
    report["seconds"] = round(student_seconds[0] + time.monotonic() - rebuild_started, 1)  # students + rebuild
    atomic_torch_save({k: v.detach().cpu() for k, v in network.state_dict().items()}, clustering / "rebuilt.pth")
    text = write_report(report, clustering)
    if settings.ec_report:
        copy_report(report, text, Path(settings.ec_report))
    print(text, end="")
    return stage.decide(ExitCode.OK, folder=str(clustering), seconds=report["seconds"])

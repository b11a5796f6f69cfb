"""The Expand-and-Cluster method (`--method extract`): recover a teacher's weights from its outputs.

finetune trains N overparameterised students (the students layer mode) to imitate the
teacher: a synthetic one (benchmark gaussian_teacher) or a fully connected network trained by
`main_normal.py` (`--load_folder`). retrain clusters their hidden neurons, rebuilds the teacher
layer by layer, fine-tunes it and writes the recovery report. Students live under
`<save_folder>/ec_<hash>/`, each clustering under `clustering_<hash>/` inside it, so clustering
again with other gamma and beta reuses the students.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from models.students import StudentsMLP
from utils.atomic import atomic_json_dump, atomic_torch_save
from utils.cli import UsageError
from utils.device import resolve_device
from utils.exit_codes import ExitCode
from utils.extraction.folders import settings_hash
from utils.extraction.reconstruct import ExtractionFailed, OnRebuilt, extract, fine_tune
from utils.extraction.recovery import layer_recovery
from utils.extraction.report import copy_report, write_report
from utils.extraction.teachers import Probes, Teacher, checkpoint_teacher, gaussian_probes, synthetic_teacher
from utils.extraction.training import TrainSettings, evaluate, train_students
from utils.logs import RunLog

SYNTHETIC = "gaussian_teacher"
STUDENTS_FILE = "students.pth"


def check_flags(args: argparse.Namespace) -> list[int]:
    """Reject bad flags with one line; returns the synthetic teacher's sizes."""
    if args.mode not in ("finetune", "retrain"):
        raise UsageError(f"--method extract has no {args.mode} stage (finetune trains students, retrain rebuilds)")
    if not args.save_folder:
        raise UsageError("--method extract needs --save_folder (the root of the ec_<hash> folders)")
    if args.benchmark != SYNTHETIC and not args.load_folder:
        raise UsageError(f"--benchmark {args.benchmark} needs --load_folder, the teacher's checkpoint folder")
    try:
        sizes = [int(size) for size in args.ec_sizes.split(",")]
    except ValueError:
        raise UsageError(f"--ec_sizes must be comma-separated integers, got {args.ec_sizes!r}") from None
    if len(sizes) < 3 or min(sizes) < 1:
        raise UsageError(f"--ec_sizes needs inputs, at least one hidden layer and outputs, all positive: {sizes}")
    if args.ec_students < 2 or int(args.ec_gamma * args.ec_students) < 2:
        raise UsageError(f"int(--ec_gamma * --ec_students) must be at least 2, "
                         f"got {args.ec_gamma} * {args.ec_students}")
    if args.ec_beta <= 1.0 or args.ec_expansion < 1.0 or args.ec_samples < 10:
        raise UsageError("--ec_beta must exceed 1, --ec_expansion be at least 1 and --ec_samples at least 10")
    return sizes


def load_teacher(args: argparse.Namespace, sizes: list[int]) -> tuple[Teacher, Probes]:
    if args.benchmark == SYNTHETIC:
        teacher = synthetic_teacher(sizes, args.ec_activation, args.seed)
        return teacher, gaussian_probes(teacher, args.ec_samples, args.seed)
    return checkpoint_teacher(Path(args.load_folder), args.benchmark, args.dataset, Path(args.data_root))


def student_settings(args: argparse.Namespace) -> dict:
    """What the trained students depend on (the name of their folder)."""
    teacher = ({"sizes": args.ec_sizes, "activation": args.ec_activation, "samples": args.ec_samples}
               if args.benchmark == SYNTHETIC else
               {"checkpoint": str(Path(args.load_folder).resolve()), "dataset": args.dataset})
    return {"benchmark": args.benchmark, "teacher": teacher, "students": args.ec_students,
            "expansion": args.ec_expansion, "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
            "patience": args.ec_patience, "min_lr": args.ec_min_lr, "seed": args.seed}


def clustering_settings(args: argparse.Namespace) -> dict:
    return {"gamma": args.ec_gamma, "beta": args.ec_beta, "finetune_lr": args.ec_finetune_lr,
            "finetune_epochs": args.ec_finetune_epochs}


def train_settings(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(args.lr, args.epochs, args.batch_size, patience=args.ec_patience, min_lr=args.ec_min_lr)


def student_widths(teacher: Teacher, expansion: float) -> list[int]:
    return [math.ceil(size * expansion) for size in teacher.sizes[1:-1]]


def train_or_load(path: Path, model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                  log: RunLog, stage: str) -> tuple[nn.Module, torch.Tensor, float]:
    """Students saved at `path`, else trained and saved there; also the seconds their training took
    (kept in a JSON file beside them, so the report counts them when they are reused)."""
    meta = path.with_suffix(".json")
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location=x.device, weights_only=True))
        log.decision(stage=stage, reused=str(path))
        seconds = json.loads(meta.read_text())["seconds"] if meta.is_file() else 0.0
        return model, evaluate(model, x, y), seconds
    started = time.monotonic()
    losses = train_students(model, x, y, settings, lambda **fields: log.line(stage=stage, **fields))
    seconds = round(time.monotonic() - started, 1)
    atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    atomic_json_dump({"seconds": seconds, "losses": losses.tolist()}, meta)
    log.decision(stage=stage, saved=str(path), best_loss=f"{float(losses.min()):.3e}",
                 worst_loss=f"{float(losses.max()):.3e}")
    return model, losses, seconds


def weights_of(network: StudentsMLP) -> list[tuple]:
    return [tuple(t[0].detach().cpu().double().numpy() for t in network.weights(i)) for i in range(len(network.layers))]


def stage_summary(teacher: Teacher, network: StudentsMLP, probes: Probes) -> dict:
    teacher_weights = [(w.double().numpy(), b.double().numpy()) for w, b in teacher.layers]
    return {"layers": layer_recovery(teacher_weights, weights_of(network)),
            "train_loss": float(evaluate(network, probes.x_train, probes.y_train)[0]),
            "test_loss": float(evaluate(network, probes.x_test, probes.y_test)[0])}


def run(args: argparse.Namespace) -> ExitCode:
    started = time.monotonic()
    sizes = check_flags(args)
    device = resolve_device(args.device)
    teacher, probes = load_teacher(args, sizes)
    probes = probes.to(device)
    folder = Path(args.save_folder) / settings_hash("ec", student_settings(args))
    log = RunLog(Path(args.log_path) if args.log_path else folder / "train.log")
    widths = student_widths(teacher, args.ec_expansion)
    torch.manual_seed(args.seed)
    first = StudentsMLP([teacher.sizes[0], *widths, teacher.sizes[-1]], args.ec_students, teacher.activation).to(device)
    settings = train_settings(args)
    first, losses, seconds = train_or_load(folder / STUDENTS_FILE, first, probes.x_train, probes.y_train, settings,
                                           log, "students_L1")
    student_seconds = [seconds]
    rebuild_started = time.monotonic()
    if args.mode == "finetune":
        seconds = round(time.monotonic() - started)
        log.decision(stage="finetune", exit=0, state="OK", folder=str(folder), seconds=seconds)
        return ExitCode.OK
    clustering = folder / settings_hash("clustering", clustering_settings(args))

    def later(index: int, model: OnRebuilt) -> tuple[OnRebuilt, torch.Tensor]:
        model, layer_losses, layer_seconds = train_or_load(clustering / f"students_L{index + 1}.pth", model,
                                                           probes.x_train, probes.y_train, settings, log,
                                                           f"students_L{index + 1}")
        student_seconds.append(layer_seconds)
        return model, layer_losses

    try:
        layers, network = extract(first, losses, widths, probes.x_train, probes.y_train, teacher.activation,
                                  args.ec_gamma, args.ec_beta, later)
    except ExtractionFailed as error:
        log.decision(stage="retrain", exit=1, state="FAILED", reason=str(error))
        return ExitCode.FAILED
    report = {"settings": {**student_settings(args), **clustering_settings(args)}, "teacher_sizes": teacher.sizes,
              "student_widths": widths, "rebuilt_sizes": network.sizes,
              "after_reconstruction": stage_summary(teacher, network, probes)}
    tune = TrainSettings(args.ec_finetune_lr, args.ec_finetune_epochs, args.batch_size, patience=args.ec_patience,
                         min_lr=args.ec_min_lr)
    fine_tune(network, probes.x_train, probes.y_train, tune, lambda **fields: log.line(stage="fine_tune", **fields))
    report["after_tuning"] = stage_summary(teacher, network, probes)
    report["student_seconds"] = student_seconds
    report["seconds"] = round(student_seconds[0] + time.monotonic() - rebuild_started, 1)  # students + rebuild
    atomic_torch_save({k: v.detach().cpu() for k, v in network.state_dict().items()}, clustering / "rebuilt.pth")
    text = write_report(report, clustering)
    if args.ec_report:
        copy_report(report, text, Path(args.ec_report))
    print(text, end="")
    log.decision(stage="retrain", exit=0, state="OK", folder=str(clustering), seconds=report["seconds"])
    return ExitCode.OK

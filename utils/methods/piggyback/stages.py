"""Piggyback's stages on CPG's machinery: finetune trains the backbone (first task) or learns a new
task's mask, batch-norm and head over the frozen backbone (the trained one, or with --pretrained the
ImageNet task's); inference evaluates one task, or every task with the summary."""

from __future__ import annotations

import json
from pathlib import Path

from unforget.models.layers.base import packed_size
from unforget.models.layers.cpg import cpg_layers
from unforget.utils.atomic import atomic_json_dump
from unforget.utils.checkpoint import read_meta
from unforget.utils.distributed import from_main
from unforget.utils.engine import evaluate
from unforget.utils.exit_codes import ExitCode
from unforget.utils.methods.cpg.stages import Stage, inference, load_stage, train_new_task
from unforget.utils.methods.piggyback.settings import PiggybackSettings


def finetune(stage: Stage[PiggybackSettings]) -> ExitCode:
    settings = stage.settings
    result, accuracy, test_accuracy = train_new_task(stage)  # the summary reports the test accuracy, never the
    # validation accuracy
    learned = read_meta(Path(settings.load_folder)).get("accuracy_after_learning", {}) if settings.load_folder else {}
    stage.save_task(accuracy, result.accuracy, test_accuracy,
               accuracy_after_learning={**learned, settings.dataset: round(test_accuracy, 4)})
    role = "backbone trained" if stage.task == 1 else "mask learned over the frozen backbone"
    return stage.decide(ExitCode.OK, role, val_acc=accuracy, train_acc=result.accuracy)


def mask_cost(stage: Stage) -> dict:
    """What each task after the first stores: its pick bits over the backbone's weights."""
    layers = cpg_layers(stage.network)
    weights = sum(layer.weight.numel() for layer in layers)
    mask_bytes = sum(packed_size(tuple(layer.weight.shape)) for layer in layers)
    return {"backbone_weights": weights, "mask_bytes_per_task": mask_bytes,
            "mask_bits_per_backbone_weight": round(8 * mask_bytes / weights, 4)}


def summarise(stage: Stage[PiggybackSettings]) -> ExitCode:
    """Every task's test accuracy now and right after it was learned (its own checkpoint's meta), and the cost;
    a --pretrained backbone's ImageNet task has no data here and is left out."""
    settings, benchmark = stage.settings, stage.benchmark
    learned = read_meta(Path(settings.needed(settings.load_folder, "load_folder"))).get("accuracy_after_learning", {})
    rows = []
    for task, spec in enumerate(stage.network.tasks, start=1):
        if spec.name not in benchmark.task_names:
            continue
        stage.network.set_task(task)
        data = stage.task_data(spec.name)
        final = round(evaluate(stage.network, data, settings.val_batch_size, settings.speed), 4)
        rows.append({"task": spec.name, "accuracy_after_learning": learned.get(spec.name), "accuracy_final": final})
        print(json.dumps(rows[-1]), flush=True)
    summary = {"benchmark": settings.benchmark, "method": "piggyback", "tasks": rows,
               "average_accuracy_final": round(sum(row["accuracy_final"] for row in rows) / len(rows), 4),
               **mask_cost(stage)}
    atomic_json_dump(summary, Path(settings.needed(settings.piggyback_summary, "piggyback_summary")))
    stage.log.line(stage="inference", method="piggyback", tasks=len(rows),
                   average_accuracy_final=summary["average_accuracy_final"])
    return ExitCode.OK


def run(settings: PiggybackSettings, process_start: float) -> ExitCode:
    stage = load_stage(settings, process_start)
    if settings.mode == "finetune":
        return ExitCode(int(from_main(finetune(stage))))  # rank 0's decision is every rank's (torchrun)
    return summarise(stage) if settings.piggyback_summary else inference(stage)

"""The report of an EWC or LwF run: the sequential layout's accuracy matrix (the network saved after each
task answers every task so far with its own head), with what EWC keeps beside the network (its anchors and
Fisher, ewc.pth) counted in the storage."""

from __future__ import annotations

from unforget.utils.methods import sequences
from unforget.utils.methods.layout import ReportInputs
from unforget.utils.methods.regularised import ewc


def summarise(inputs: ReportInputs) -> dict:
    summary = sequences.sequential_summary(inputs)
    kept = ewc.state_bytes(inputs.folders[-1])
    if kept:
        cost = summary["capacity"]
        total = cost["model_bytes"] + kept
        summary["capacity"] = {**cost, "model_bytes": total, "ewc_state_bytes": kept,
                               "model_vs_independent": round(total / cost["independent_models_bytes"], 4)}
    return summary

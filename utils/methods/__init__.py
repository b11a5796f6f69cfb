"""The methods `main_normal.py` runs, one registry line each (torch-free, so flags parse fast).

A method is a folder here: `settings.py` (its settings dataclass, which is its flag group),
`stages.py` with `run(settings) -> ExitCode` (one stage for one task), and whatever else it needs; a method
whose runs `tools.report` reads declares their checkpoint layouts (utils/methods/layout.py), naming the report
code it owns for each.
It imports its own folder and the layers below (utils/__init__.py; tests/core/test_layering.py enforces it),
never another method's folder unless that test's ALLOWED list says why.

Flag names: every flag a new method adds starts with its own name or a short prefix naming it
(`--supsup_density`, `--gg_body_lr`, `--subspace_vertices`, `--ec_sizes`), so a flag says whose it is and
no two methods' flags collide; only the common flags of `StageSettings` are bare. The bare flags of CPG,
Piggyback and the lottery predate the rule and stay, as drivers and users call them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from unforget.utils.methods.layout import Layout
from unforget.utils.settings import StageSettings


@dataclass(frozen=True)
class Method:
    folder: str
    """package under utils.methods holding settings.py and stages.py"""
    settings: str
    """the settings class in that settings.py"""
    about: str
    data_parallel: bool = False
    """whether its training stages run under torchrun (DistributedDataParallel, `utils/distributed.py`)"""
    layouts: Mapping[str, Layout] = field(default_factory=dict)
    """the --checkpoints names of tools.report its runs are read with (several methods may share one)"""

    def settings_class(self) -> type[StageSettings]:
        return getattr(importlib.import_module(f"unforget.utils.methods.{self.folder}.settings"), self.settings)

    def runner(self) -> Callable:
        """The stages' `run` (imports the method, and so torch)."""
        return importlib.import_module(f"unforget.utils.methods.{self.folder}.stages").run


# The layouts two methods share; the generic ones (SEQUENTIAL, INDEPENDENT) report through utils/methods/sequences.py.
HERE = "unforget.utils.methods"
GRADUAL_PRUNE = Layout("gradual_prune", f"{HERE}.cpg.report:summarise_run", f"{HERE}.cpg.report:write",
                       finished="chosen.json")
"""CPG and PackNet: <root>/<task>/gradual_prune, the full summary (summary.json)."""
SEQUENTIAL = Layout(".", f"{HERE}.sequences:sequential_summary", f"{HERE}.sequences:write_metrics")
"""A sequential finetune baseline: <root>/<task> holds the network after that task."""
INDEPENDENT = Layout(".", f"{HERE}.sequences:independent_summary", f"{HERE}.sequences:write_metrics")
"""Independent models, one per task, each learned alone in <root>/<task>."""
SUPSUP = Layout(".", f"{HERE}.supsup.report:summarise", f"{HERE}.supsup.report:write",
                whole_run="model/meta.json")
"""SupSup and GG's transfer baseline: <root>/<task> of GG, or GNu's one <root>/model."""
PLAIN = {"task": SEQUENTIAL, "independent": INDEPENDENT}
REGULARISED = Layout(".", f"{HERE}.regularised.report:summarise", SEQUENTIAL.write)
"""EWC and LwF: <root>/<task> holds the network after that task (every head so far), EWC's terms beside it."""
"""The plain models of `baseline` (scripts/lib.sh) and of the GG baselines."""

METHODS: dict[str, Method] = {
    "cpg": Method("cpg", "CPGSettings", "pick old weights, compact by pruning, grow when needed",
                  data_parallel=True, layouts={"gradual_prune": GRADUAL_PRUNE}),
    "packnet": Method("cpg", "PackNetSettings", "ownership without picking or growth",
                  data_parallel=True, layouts={"gradual_prune": GRADUAL_PRUNE}),
    "baseline": Method("cpg", "BaselineSettings", "one plain model per task (goals, finetune)",
                  data_parallel=True, layouts=PLAIN),
    "piggyback": Method("piggyback", "PiggybackSettings", "one learned binary mask per task over a backbone",
                  data_parallel=True, layouts={"model": Layout("model", SEQUENTIAL.summarise, SEQUENTIAL.write)}),
    "supsup": Method("supsup", "SupSupSettings", "one supermask per task over fixed weights",
                     layouts={"supsup": SUPSUP}),
    "gg_baseline": Method("gg_baseline", "GGBaselineSettings",
                          "SupSup's GG baselines: upper bound, separate heads, BatchE",
                          layouts={**PLAIN, "supsup": SUPSUP}),
    "hat": Method("hat", "HATSettings", "hard attention to the task, one gate per unit", layouts={"task": SEQUENTIAL}),
    "ewc": Method("regularised", "EWCSettings", "elastic weight consolidation (online EWC as an option)",
                  layouts={"regularised": REGULARISED}),
    "lwf": Method("regularised", "LwFSettings", "learning without forgetting: distillation on old heads",
                  layouts={"regularised": REGULARISED}),
    "lottery": Method("lottery", "LotterySettings", "iterative magnitude pruning with rewinding"),
    "subspace": Method("subspace", "SubspaceSettings", "lines, curves, simplexes"),
    "extract": Method("extract", "ExtractSettings", "Expand-and-Cluster weight recovery"),
    "wsn": Method("wsn", "WSNSettings", "winning subnetworks: a top-c mask per task, used weights frozen",
                  layouts={"wsn": Layout("model", f"{HERE}.wsn.report:summarise", f"{HERE}.wsn.report:write")}),
}


def layouts() -> dict[str, Layout]:
    """Every layout a method declares, by its --checkpoints name; a name that two methods share is one layout."""
    found: dict[str, Layout] = {}
    for method in METHODS.values():
        for name, layout in method.layouts.items():
            if found.setdefault(name, layout) != layout:
                raise ValueError(f"two layouts are called {name!r}: give one another name")
    return found

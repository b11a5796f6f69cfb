"""The methods `main_normal.py` runs, one registry line each (torch-free, so flags parse fast).

A method is a folder here: `settings.py` (its settings dataclass, which is its flag group),
`stages.py` with `run(settings) -> ExitCode` (one stage for one task), and whatever else it needs.
It imports its own folder and the layers below (utils/__init__.py; tests/core/test_layering.py enforces it),
never another method's folder unless that test's ALLOWED list says why.

Flag names: every flag a new method adds starts with its own name or a short prefix naming it
(`--supsup_density`, `--gg_body_lr`, `--subspace_vertices`, `--ec_sizes`), so a flag says whose it is and
no two methods' flags collide; only the common flags of `StageSettings` are bare. The bare flags of CPG,
Piggyback and the lottery predate the rule and stay, as drivers and users call them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from utils.settings import StageSettings


@dataclass(frozen=True)
class Method:
    folder: str
    """package under utils.methods holding settings.py and stages.py"""
    settings: str
    """the settings class in that settings.py"""
    about: str
    data_parallel: bool = False
    """whether its training stages run under torchrun (DistributedDataParallel, `utils/distributed.py`)"""

    def settings_class(self) -> type[StageSettings]:
        return getattr(importlib.import_module(f"utils.methods.{self.folder}.settings"), self.settings)

    def runner(self) -> Callable:
        """The stages' `run` (imports the method, and so torch)."""
        return importlib.import_module(f"utils.methods.{self.folder}.stages").run


METHODS: dict[str, Method] = {
    "cpg": Method("cpg", "CPGSettings", "pick old weights, compact by pruning, grow when needed",
                  data_parallel=True),
    "packnet": Method("cpg", "PackNetSettings", "ownership without picking or growth",
                  data_parallel=True),
    "baseline": Method("cpg", "BaselineSettings", "one plain model per task (goals, finetune)",
                  data_parallel=True),
    "piggyback": Method("piggyback", "PiggybackSettings", "one learned binary mask per task over a backbone",
                  data_parallel=True),
    "supsup": Method("supsup", "SupSupSettings", "one supermask per task over fixed weights"),
    "gg_baseline": Method("gg_baseline", "GGBaselineSettings",
                          "SupSup's GG baselines: upper bound, separate heads, BatchE"),
    "lottery": Method("lottery", "LotterySettings", "iterative magnitude pruning with rewinding"),
    "subspace": Method("subspace", "SubspaceSettings", "lines, curves, simplexes"),
    "extract": Method("extract", "ExtractSettings", "Expand-and-Cluster weight recovery"),
}

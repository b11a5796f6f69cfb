"""The methods `main_normal.py` runs, one registry line each (torch-free, so flags parse fast).

A method is a folder here: `settings.py` (its settings dataclass, which is its flag group),
`stages.py` with `run(settings) -> ExitCode` (one stage for one task), and whatever else it needs.
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
    layer_modes: tuple[str, ...]
    """the layer modes its networks use"""
    about: str
    data_parallel: bool = False
    """whether its training stages run under torchrun (DistributedDataParallel, `utils/distributed.py`)"""

    def settings_class(self) -> type[StageSettings]:
        return getattr(importlib.import_module(f"utils.methods.{self.folder}.settings"), self.settings)

    def runner(self) -> Callable:
        """The stages' `run` (imports the method, and so torch)."""
        return importlib.import_module(f"utils.methods.{self.folder}.stages").run


METHODS: dict[str, Method] = {
    "cpg": Method("cpg", "CPGSettings", ("cpg",), "pick old weights, compact by pruning, grow when needed",
                  data_parallel=True),
    "packnet": Method("cpg", "PackNetSettings", ("packnet",), "ownership without picking or growth",
                  data_parallel=True),
    "baseline": Method("cpg", "BaselineSettings", ("plain",), "one plain model per task (goals, finetune)",
                  data_parallel=True),
    "piggyback": Method("piggyback", "PiggybackSettings", ("cpg",), "one learned binary mask per task over a backbone",
                  data_parallel=True),
    "supsup": Method("supsup", "SupSupSettings", ("supsup",), "one supermask per task over fixed weights"),
    "gg_baseline": Method("gg_baseline", "GGBaselineSettings", ("plain", "fixed_body*", "batche*"),
                          "SupSup's GG baselines: upper bound, separate heads, BatchE"),
    "lottery": Method("lottery", "LotterySettings", ("packnet",), "iterative magnitude pruning with rewinding"),
    "subspace": Method("subspace", "SubspaceSettings", ("line", "curve", "simplex*"), "lines, curves, simplexes"),
    "extract": Method("extract", "ExtractSettings", ("students",), "Expand-and-Cluster weight recovery"),
}

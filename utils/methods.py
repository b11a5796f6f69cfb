"""The methods `main_normal.py` runs, by name (torch-free, so flags parse fast).

A method is a module with `run(args) -> ExitCode` (one stage for one task). A method
with flags of its own also names a torch-free `add_flags(group)` function; the entry
point adds every method's flags as an argument group.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

METHODS: dict[str, str] = {
    "cpg": "utils.cpg",
    "packnet": "utils.cpg",
    "baseline": "utils.cpg",
    "subspace": "utils.subspace_method",
    "supsup": "utils.supsup",
    "extract": "utils.students",
}

METHOD_FLAGS: dict[str, str] = {
    "subspace": "utils.subspace_flags:add_flags",
    "supsup": "utils.supsup_flags:add_flags",
    "extract": "utils.students_flags:add_flags",
}


def run_method(name: str) -> Callable:
    """The `run` function of method `name` (imports the method's module, and so torch)."""
    return importlib.import_module(METHODS[name]).run


def flag_adders() -> dict[str, Callable]:
    """Each flagged method's `add_flags` function."""
    adders = {}
    for name, target in METHOD_FLAGS.items():
        module_name, function_name = target.split(":")
        adders[name] = getattr(importlib.import_module(module_name), function_name)
    return adders

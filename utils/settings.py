"""Typed settings that become flags, are validated before torch is imported, and travel with every
checkpoint (OpenLTH's hparams idea).

A settings class is a frozen dataclass whose fields are declared with `flag(...)`: the field's
type and default make the flag, its metadata the help text and the bounds `validate` checks.
Each method's settings class extends `StageSettings` (the flags every method shares) with its own
group; `main_normal.py` offers a method only its own flags, so another method's flag is a usage
error, and `meta.json` stores `to_json()` whole.
"""

from __future__ import annotations

import argparse
import math
import re
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from unforget.utils.cli import UsageError

T = TypeVar("T")

INT_LIMIT = 2**63
"""Integer settings end up in torch and numpy tensors and sizes, which hold 64-bit integers."""
FLOAT_LIMIT = 3.4028234663852886e38
"""The largest float32: float settings scale float32 tensors, and a larger one overflows there (torch's "value
cannot be converted to type float without overflow" in the middle of training)."""


def flag(default: Any = MISSING, help: str = "", *, choices: tuple | None = None, aliases: tuple[str, ...] = (),
         at_least: float | None = None, at_most: float | None = None, below: float | None = None,
         allow_inf: bool = False) -> Any:
    """A settings field: its flag's help, choices and extra names, and the range `validate` enforces
    (`at_least` and `at_most` inclusive, `below` exclusive; floats must be finite unless `allow_inf`; NaN never
    passes)."""
    metadata = {"help": help, "choices": choices, "aliases": aliases, "at_least": at_least, "at_most": at_most,
                "below": below, "allow_inf": allow_inf}
    return field(default=default, metadata=metadata)


def _base_type(annotation: Any) -> type:
    """int for `int`, `int | None` and `Optional[int]`."""
    options = [option for option in typing.get_args(annotation) if option is not type(None)]
    return options[0] if options else annotation


@dataclass(frozen=True)
class Settings:
    """Fields declared with `flag`; subclasses add cross-field rules in `validate` and derived
    defaults in `resolved`."""

    @classmethod
    def flag_names(cls) -> list[str]:
        return [name for item in fields(cls) for name in (f"--{item.name}", *item.metadata.get("aliases", ()))]

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, group_of: typing.Callable[[type], Any]) -> None:
        """One flag per field, in the argument group `group_of(the class that declared it)`."""
        hints = typing.get_type_hints(cls)
        for item in fields(cls):
            kind = _base_type(hints[item.name])
            meta = item.metadata
            names = [f"--{item.name}", *meta.get("aliases", ())]
            options: dict[str, Any] = {"dest": item.name, "help": meta.get("help", "")}
            if kind is bool:
                options["action"] = "store_true"
            else:
                options["type"] = _text if kind is str else kind
                options["default"] = item.default
                if item.default is MISSING:
                    options["required"] = True
                if meta.get("choices"):
                    options["choices"] = meta["choices"]
            group_of(_declaring_class(cls, item.name)).add_argument(*names, **options)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        return cls(**{item.name: getattr(args, item.name) for item in fields(cls)})

    def resolved(self) -> Self:
        """These settings with derived defaults filled in (e.g. the benchmark's architecture)."""
        return self

    def validate(self) -> None:
        """Every field within its declared range; raises UsageError naming the flag."""
        for item in fields(self):
            value, meta = getattr(self, item.name), item.metadata
            name = f"--{item.name}"
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and not meta.get("allow_inf"))):
                raise UsageError(f"{name} must be a finite number, got {value}")
            if meta.get("at_least") is not None and value < meta["at_least"]:
                raise UsageError(f"{name} must be at least {meta['at_least']}, got {value}")
            if meta.get("at_most") is not None and value > meta["at_most"]:
                raise UsageError(f"{name} must be at most {meta['at_most']}, got {value}")
            if meta.get("below") is not None and value >= meta["below"]:
                raise UsageError(f"{name} must be below {meta['below']}, got {value}")
            _check_limit(name, value)  # after the declared range, whose message says more

    def to_json(self) -> dict:
        return asdict(self)

    def replace(self, **changes: Any) -> Self:
        return replace(self, **changes)


def _text(value: str) -> str:
    """A text flag's value, never empty: an empty path is the current folder, an empty name the default, and
    neither is what a user (or a driver's unset variable) meant."""
    if not value:
        raise argparse.ArgumentTypeError("is empty: give it a value or leave the flag out")
    return value


def _check_limit(name: str, value: int | float) -> None:
    """Numbers beyond what the tensors they reach can hold are refused here, not as an overflow mid-stage."""
    if isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT:
        raise UsageError(f"{name} must fit a 64-bit integer (below 2**63 in magnitude), got {value}")
    if isinstance(value, float) and math.isfinite(value) and abs(value) > FLOAT_LIMIT:
        raise UsageError(f"{name} must be at most {FLOAT_LIMIT:.4g} in magnitude (float32's range), got {value}")


def _declaring_class(cls: type, name: str) -> type:
    """The class in `cls`'s hierarchy that declared field `name` (its flag group)."""
    for klass in reversed(cls.__mro__):
        if name in getattr(klass, "__annotations__", {}):
            return klass
    return cls


@dataclass(frozen=True)
class StageSettings(Settings):
    """Flags every method shares: which stage, for which task of which benchmark, on what."""

    STAGES: ClassVar[tuple[str, ...]] = ()
    """The stages (`--mode` values) the method has."""
    NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Per stage, the flags it cannot run without."""
    NEEDS_ARCH: ClassVar[bool] = True
    """False for a method that brings its own networks."""

    mode: str = flag(help="stage to run", choices=("finetune", "prune", "retrain", "inference"))
    dataset: str = flag(help="task name within the benchmark")
    method: str = flag("cpg", "the method (see the README)")
    benchmark: str = flag("split_digits", "task sequence: a built-in name or a benchmark spec file (*.json)")
    arch: str | None = flag(None, "architecture (default: the benchmark's)")
    data_root: str = flag("data", "folder holding (or caching) the benchmark's files")
    lr: float = flag(1e-2, "learning rate", at_least=0.0)
    batch_size: int = flag(32, at_least=1)
    val_batch_size: int = flag(100, at_least=1)
    epochs: int = flag(100, at_least=1)
    save_folder: str | None = flag(None, "where this stage writes checkpoint.pth and meta.json")
    load_folder: str | None = flag(None, "checkpoint folder this stage starts from")
    log_path: str | None = flag(None, "train.log to append to")
    seed: int = flag(1, at_least=0, below=2 ** 63)
    device: str = flag("auto", "auto, cpu, cuda or cuda:N")

    def resolved(self) -> Self:
        from unforget.utils.data.registry import get_benchmark

        return replace(self, arch=self.arch or get_benchmark(self.benchmark).arch)

    def needed(self, value: T | None, name: str) -> T:
        """`value`, of the flag --`name` this stage cannot run without. `validate` has refused its absence
        where NEEDS (or NEEDS_ARCH) says so; elsewhere a missing one is the same usage error, in one line."""
        if value is None:
            raise UsageError(f"--method {self.method} --mode {self.mode} needs --{name}")
        return value

    def validate(self) -> None:
        from unforget.utils.data.registry import get_benchmark

        super().validate()
        if self.mode not in self.STAGES:
            raise UsageError(f"--method {self.method} has no {self.mode} stage (it has {', '.join(self.STAGES)})")
        for name in self.NEEDS.get(self.mode, ()):
            if getattr(self, name) is None:
                raise UsageError(f"--method {self.method} --mode {self.mode} needs --{name}")
        benchmark = get_benchmark(self.benchmark)
        if self.NEEDS_ARCH and self.arch is None:
            raise UsageError(f"benchmark {self.benchmark} has no default architecture; name one with --arch")
        if self.dataset not in benchmark.task_names:
            raise UsageError(f"--dataset {self.dataset!r} is not a task of {self.benchmark}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if not Path(self.data_root).is_dir():
            raise UsageError(f"data root {self.data_root} does not exist "
                             "(create it, or point --data_root at your data)")

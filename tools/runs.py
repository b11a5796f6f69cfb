"""Finished runs side by side: one Markdown row per method, benchmark and settings, mean ± std over its seeds.

A run folder is what a driver finished: run.json (method, benchmark, seed, command and the settings that
shaped the run; scripts/lib.sh `write_run_card`) beside the report's summary.json (CPG, PackNet) or
metrics.json (every other layout), which hold the accuracy matrix's metrics and the storage cost. Only runs
that differ in nothing but their seed share a row: runs of one method and benchmark whose settings differ
are separate rows, each labelled with the settings it differs in (`cpg (FINETUNE_EPOCHS=5)`), so no spread
mixes two settings. A card without settings (written before they were recorded) has none. Time is the
run's stages' wall time added up (each stage's `.stages/<stage>.seconds`): what the run costs on one
device, however it was spread.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from unforget.tools.checkpoints import CheckpointFileError, read_json
from unforget.utils.atomic import atomic_write
from unforget.utils.cli import UsageError, UsageParser

CARD = "run.json"
TABLE = "comparison.md"
FOOTNOTE = ("storage: bytes of the tensors a run keeps to answer every task / bytes of one plain width-1.0 "
            "network of its architecture per task (the whole state, with that task's head)\n"
            "time: the run's stage wall times added up (what it costs on one device)")
DIGEST = re.compile(r"[0-9a-f]{40,}")
"""A setting's value that is a hex digest (benchmark_sha256, goals_sha256): shown by its first 12 digits."""


def read_card(path: Path) -> dict:
    """A run card whose every field is checked: a hand-edited card would otherwise label a row wrongly."""
    card = read_json(path)
    problem = _card_problem(card)
    if problem:
        raise CheckpointFileError(f"{path} is not a run card: {problem}")
    return {"method": card["method"], "benchmark": card["benchmark"], "seed": card["seed"],
            "settings": card.get("settings", {})}


def _card_problem(card: dict) -> str | None:
    missing = [key for key in ("method", "benchmark", "seed") if key not in card]
    if missing:
        return f"it lacks {', '.join(missing)}"
    for key in ("method", "benchmark"):
        value = card[key]
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            return f"{key} is {_shown(value)}, not a non-empty one-line string"
    if isinstance(card["seed"], bool) or not isinstance(card["seed"], int):
        return f"seed is {_shown(card['seed'])}, not a whole number"
    if not isinstance(card.get("command", ""), str):
        return f"command is {_shown(card['command'])}, not a string"
    settings = card.get("settings", {})
    if not isinstance(settings, dict):
        return f"settings is {_shown(settings)}, not an object of names to strings"
    for name, value in settings.items():
        if not isinstance(value, str):
            return f"settings[{_shown(name)}] is {_shown(value)}, not a string"
    return None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_run(root: Path) -> dict:
    """One run: its card and the numbers of its report."""
    card = read_card(root / CARD)
    report = _report(root)
    seconds = sum(_seconds(path) for path in root.rglob(".stages/*.seconds"))
    return {**card, "root": root, **report, "seconds": seconds}


def _seconds(path: Path) -> float:
    try:
        value = float(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointFileError(f"{path} does not hold a stage's seconds ({error})") from error
    if not math.isfinite(value) or value < 0:
        raise CheckpointFileError(f"{path} does not hold a stage's seconds ({value})")
    return value


def _report(root: Path) -> dict:
    """The numbers of the run's report holding the accuracy matrix: CPG's summary.json, else metrics.json
    (each read once)."""
    for path in (root / "summary.json", root / "metrics.json"):
        report = read_json(path) if path.is_file() else {}
        if "accuracy_matrix" in report:
            metrics, capacity = report.get("metrics"), report.get("capacity")
            if not isinstance(metrics, dict) or not isinstance(capacity, dict):
                raise CheckpointFileError(f"{path} is not what this toolkit wrote "
                                          "(expected the objects metrics, capacity)")
            return {"acc": _number(metrics, "average_accuracy", path),
                    "bwt": _number(metrics, "backward_transfer", path, optional=True),
                    "forgetting": _number(metrics, "forgetting", path, optional=True),
                    "capacity": _number(capacity, "model_vs_independent", path)}
    raise UsageError(f"{root} holds no report with an accuracy matrix (summary.json or metrics.json), so the "
                     "run has not finished: run its driver to the end")


def _number(data: dict, key: str, path: Path, optional: bool = False) -> float | None:
    """data[key] as a finite number; None where a metric needs more tasks than the run has (BWT,
    forgetting of one task)."""
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointFileError(f"{path}: {key} is {_shown(value)}, not a number")
    return float(value)


def _spread(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values that exist; one value has no spread (None)."""
    values = [value for value in values if value is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (method, benchmark, settings), in the order they first appear, each labelled with the
    settings it differs in from the other rows of its method and benchmark. Two runs of one row with the
    same seed would pass for two seeds: they are a usage error."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        members = groups.setdefault((run["method"], run["benchmark"], tuple(sorted(run["settings"].items()))), [])
        twin = next((member for member in members if member["seed"] == run["seed"]), None)
        if twin is not None:
            raise UsageError(f"{twin['root']} and {run['root']} are both seed {run['seed']} of {run['method']} "
                             "with the same settings: pass one of them")
        members.append(run)
    rows = []
    for (method, benchmark, _), members in groups.items():
        row = {"method": method, "benchmark": benchmark, "settings": members[0]["settings"],
               "seeds": sorted(run["seed"] for run in members)}
        for key in ("acc", "bwt", "forgetting", "capacity", "seconds"):
            row[f"{key}_mean"], row[f"{key}_std"] = _spread([run[key] for run in members])
        rows.append(row)
    _label(rows)
    return rows


def _label(rows: list[dict]) -> None:
    """Set what tells each row apart from the other rows of its method and benchmark: `differences`, the
    settings whose values are not the same in all of them (none for a row without such siblings), and
    `label`, its method followed by those."""
    families: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        families.setdefault((row["method"], row["benchmark"]), []).append(row)
    for family in families.values():
        names = dict.fromkeys(name for row in family for name in row["settings"])
        differing = [name for name in names if len({row["settings"].get(name) for row in family}) > 1]
        for row in family:
            row["differences"] = _differences(row["settings"], differing) if differing else []
            row["label"] = row["method"] + (f" ({', '.join(row['differences'])})" if differing else "")


def _differences(settings: dict[str, str], names: list[str]) -> list[str]:
    if not settings:
        return ["settings not recorded"]
    return [f"{name}={_value(settings[name])}" if name in settings else f"{name} unset" for name in names]


def _value(value: str) -> str:
    return value[:12] + "…" if DIGEST.fullmatch(value) else value


def _cell(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _escaped(text: str) -> str:
    """Text that stays inside its Markdown table cell."""
    return "".join(char if char.isprintable() else " " for char in text).replace("|", r"\|")


def markdown(rows: list[dict]) -> str:
    """The table: average accuracy, backward transfer and forgetting (mean ± std over seeds; one seed: its
    value), storage against one network per task and stage time, then what storage and time count."""
    several = len({row["benchmark"] for row in rows}) > 1
    header = ["method", *(["benchmark"] if several else []), "seeds", "ACC", "BWT", "forgetting",
              "storage (× one net per task)", "time (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_escaped(row["label"]), *([_escaped(row["benchmark"])] if several else []),
                 " ".join(map(str, row["seeds"])),
                 _cell(row["acc_mean"], row["acc_std"], 4), _cell(row["bwt_mean"], row["bwt_std"], 4),
                 _cell(row["forgetting_mean"], row["forgetting_std"], 4),
                 "n/a" if row["capacity_mean"] is None else f"{row['capacity_mean']:.2f}",
                 _cell(row["seconds_mean"], row["seconds_std"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + FOOTNOTE


def _distinct(roots: list[Path]) -> list[Path]:
    """The run folders, each once (a folder named twice, however spelled, is one run, not two seeds)."""
    first: dict[Path, Path] = {}
    for root in roots:
        first.setdefault(root.resolve(), root)
    return list(first.values())


def main(parser: UsageParser, roots: list[Path], out: Path | None) -> int:
    missing = [str(root) for root in roots if not (root / CARD).is_file()]
    if missing:
        parser.error(f"no finished run (no {CARD}) in {', '.join(missing)}")
    try:
        rows = aggregate([read_run(root) for root in _distinct(roots)])
    except UsageError as error:
        parser.error(str(error))
    table = markdown(rows)
    print(table)
    if out is not None:
        from unforget.utils import plots

        if out.exists() and not out.is_dir():
            parser.error(f"--out {out} is a file; give a folder for the table and its plot")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"cannot create the folder --out {out}: {error.strerror or error}")
        atomic_write(out / TABLE, lambda file: file.write(table + "\n"), binary=False)
        plots.comparison(out, rows)
        print(f"table and plot written to {out / TABLE} and {out / plots.COMPARISON}")
    return 0

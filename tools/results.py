"""Results with provenance: each results table (and its figures) that the README shows is a file in
docs/results/, written by a committed command (scripts/results.sh) together with that command, the commit
and the date; the README shows the file's text verbatim between two markers. So a table edited by hand,
or code that moved the numbers without a regeneration, is a difference that `check` reports (the fast
test tier runs it).

  python -m tools.results write NAME --command CMD (--table FILE | --summary SUMMARY_JSON) [--figure PNG]...
  python -m tools.results check
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

if not __package__:  # run as `python tools/results.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.atomic import atomic_write
from utils.cli import UsageParser

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path("docs/results")
README = Path("README.md")
BLOCK = re.compile(r"<!-- results: (?P<name>[\w-]+) -->\n(?P<text>.*?)<!-- /results: (?P=name) -->\n", re.S)
NAME = re.compile(r"[a-z][a-z0-9_-]*")


def commit() -> str:
    """The checkout's short commit, and whether files other than the results themselves differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", f":!{README}", f":!{RESULTS}")
    return f"{head} plus uncommitted changes" if dirty else head


def machine() -> str:
    """The processor and its core count, as far as the system tells: timings belong to a machine."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), name)
    return f"{name}, {os.cpu_count()} cores"


def render(command: str, body: str, figures: list[str], made: str, day: str, on: str) -> str:
    """A result file's text: its provenance line, the table, then the figures."""
    lines = [f"Made by `{command}` at commit {made} on {day}, on {on}.", "", body.strip(), ""]
    lines += [f"![{Path(figure).stem}]({figure})\n" for figure in figures]
    return "\n".join(lines).rstrip("\n") + "\n"


def blocks(readme: str) -> dict[str, str]:
    """The README's results blocks by name."""
    return {match["name"]: match["text"] for match in BLOCK.finditer(readme)}


def problems(repo: Path = REPO) -> list[str]:
    """Every way the README's results differ from docs/results/: a block that differs from its file, a block
    without a file, a file the README does not show, a figure that is not there."""
    shown = blocks((repo / README).read_text())
    files = {path.stem: path.read_text() for path in sorted((repo / RESULTS).glob("*.md"))}
    found = [f"README block '{name}' differs from {RESULTS / name}.md: regenerate it (scripts/results.sh {name}) "
             "instead of editing the README" for name in shown if name in files and shown[name] != files[name]]
    found += [f"README block '{name}' has no file {RESULTS / name}.md" for name in shown if name not in files]
    found += [f"{RESULTS / name}.md is not shown in the README (no block '{name}')" for name in files
              if name not in shown]
    for name, text in files.items():
        found += [f"{RESULTS / name}.md shows {figure}, which does not exist"
                  for figure in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text) if not (repo / figure).is_file()]
    return found


def summary_table(path: Path) -> str:
    """A CPG run's per-task table, width, metrics and storage as the driver prints them, in a code block."""
    from tools.checkpoints import read_json
    from tools.report import format_table

    return f"```\n{format_table(read_json(path, 'tasks'))}\n```"


def write(name: str, command: str, body: str, figures: list[Path], repo: Path = REPO) -> Path:
    """docs/results/NAME.md with its figures beside it, and the README's block NAME replaced by its text."""
    folder = repo / RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    shown = []
    for figure in figures:
        target = folder / f"{name}_{figure.name}"
        shutil.copyfile(figure, target)
        shown.append(str(target.relative_to(repo)))
    text = render(command, body, shown, commit(), datetime.date.today().isoformat(), machine())
    readme = (repo / README).read_text()
    if name not in blocks(readme):
        raise ValueError(f"the README has no block '{name}': put '<!-- results: {name} -->' and "
                         f"'<!-- /results: {name} -->' on lines of their own where it belongs")
    readme = BLOCK.sub(lambda match: match[0] if match["name"] != name else
                       f"<!-- results: {name} -->\n{text}<!-- /results: {name} -->\n", readme)
    path = folder / f"{name}.md"
    atomic_write(path, lambda file: file.write(text), binary=False)
    atomic_write(repo / README, lambda file: file.write(readme), binary=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.results", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    writer = verbs.add_parser("write", help="write docs/results/NAME.md and the README's copy")
    writer.add_argument("name")
    writer.add_argument("--command", required=True, help="the committed command that made the result")
    source = writer.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", type=Path, help="a Markdown table (e.g. tools.report --runs' comparison.md)")
    source.add_argument("--summary", type=Path, help="a CPG run's summary.json: its per-task table")
    writer.add_argument("--figure", type=Path, action="append", default=[])
    verbs.add_parser("check", help="exit 1 naming each README results block that differs from its file")
    args = parser.parse_args(argv)
    if args.verb == "check":
        found = problems()
        for problem in found:
            print(problem, file=sys.stderr)
        return 1 if found else 0
    if not NAME.fullmatch(args.name):
        parser.error(f"a result's name is lower-case letters, digits, _ and -, got {args.name!r}")
    missing = [str(path) for path in [args.table or args.summary, *args.figure] if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    body = args.table.read_text() if args.table else summary_table(args.summary)
    try:
        path = write(args.name, args.command, body, args.figure)
    except ValueError as error:
        parser.error(str(error))
    print(f"written {path} and its README block")
    return 0


if __name__ == "__main__":
    sys.exit(main())

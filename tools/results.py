"""Results with provenance: each results table (and its figures) that the docs show is a file in
docs/results/, written by a committed command (scripts/results.sh) together with that command, the commit
and the date; the page that shows it (README.md or a page under docs/) holds the file's text between two
markers, its figure links made relative to that page. So a table edited by hand, or code that moved the
numbers without a regeneration, is a difference that `check` reports (the fast test tier runs it).

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

from unforget.utils.atomic import atomic_write
from unforget.utils.cli import UsageParser

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path("docs/results")
README = Path("README.md")
BLOCK = re.compile(r"<!-- results: (?P<name>[\w-]+) -->\n(?P<text>.*?)<!-- /results: (?P=name) -->\n", re.S)
FIGURE = re.compile(r"(!\[[^]]*\]\()([^)]+)(\))")
NAME = re.compile(r"[a-z][a-z0-9_-]*")


def commit() -> str:
    """The checkout's short commit, and whether files other than the results themselves differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", f":!{README}", ":!docs")
    return f"{head} plus uncommitted changes" if dirty else head


def machine() -> str:
    """The processor and its core count, as far as the system tells: timings belong to a machine."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), name)
    return f"{name}, {os.cpu_count()} cores"


def render(command: str, body: str, figures: list[str], made: str, day: str, on: str) -> str:
    """A result file's text: its provenance line, the table, then the figures (named relative to the file)."""
    lines = [f"Made by `{command}` at commit {made} on {day}, on {on}.", "", body.strip(), ""]
    lines += [f"![{Path(figure).stem}]({figure})\n" for figure in figures]
    return "\n".join(lines).rstrip("\n") + "\n"


def pages(repo: Path = REPO) -> list[Path]:
    """The pages that may show results, relative to `repo`: the README and every page under docs/ but the
    result files themselves."""
    found = [README] if (repo / README).is_file() else []
    found += sorted(path.relative_to(repo) for path in (repo / "docs").rglob("*.md")
                    if path.parent != repo / RESULTS)
    return found


def blocks(text: str) -> dict[str, str]:
    """A page's results blocks by name."""
    return {match["name"]: match["text"] for match in BLOCK.finditer(text)}


def shown(repo: Path = REPO) -> dict[str, list[tuple[Path, str]]]:
    """Every results block of every page by name: (the page, the block's text)."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for page in pages(repo):
        for name, text in blocks((repo / page).read_text()).items():
            found.setdefault(name, []).append((page, text))
    return found


def as_shown(text: str, page: Path) -> str:
    """A result file's text as `page` (relative to the repository) shows it: its figure links, relative to
    docs/results/, made relative to the page."""
    def rebase(match: re.Match) -> str:
        return match[1] + os.path.relpath(RESULTS / match[2], page.parent) + match[3]

    return FIGURE.sub(rebase, text)


def problems(repo: Path = REPO) -> list[str]:
    """Every way the pages' results differ from docs/results/: a block that differs from its file, a block
    without a file, a result shown twice, a file no page shows, a figure that is not there."""
    blocks_by_name = shown(repo)
    files = {path.stem: path.read_text() for path in sorted((repo / RESULTS).glob("*.md"))}
    found = []
    for name, places in blocks_by_name.items():
        if len(places) > 1:
            found.append(f"results block '{name}' is shown on {len(places)} pages "
                         f"({', '.join(str(page) for page, _ in places)}): keep one")
        for page, text in places:
            if name not in files:
                found.append(f"{page} block '{name}' has no file {RESULTS / name}.md")
            elif text != as_shown(files[name], page):
                found.append(f"{page} block '{name}' differs from {RESULTS / name}.md: regenerate it "
                             f"(scripts/results.sh {name}) instead of editing the page")
    found += [f"{RESULTS / name}.md is shown on no page (no block '{name}' in the README or docs/)"
              for name in files if name not in blocks_by_name]
    for name, text in files.items():
        found += [f"{RESULTS / name}.md shows {figure}, which does not exist"
                  for _, figure, _ in FIGURE.findall(text) if not (repo / RESULTS / figure).is_file()]
    return found


def summary_table(path: Path) -> str:
    """A CPG run's per-task table, width, metrics and storage as the driver prints them, in a code block."""
    from unforget.tools.checkpoints import read_json
    from unforget.tools.report import format_table

    return f"```\n{format_table(read_json(path, 'tasks'))}\n```"


def write(name: str, command: str, body: str, figures: list[Path], repo: Path = REPO) -> Path:
    """docs/results/NAME.md with its figures beside it, and the block NAME of the page that shows it
    replaced by its text."""
    places = shown(repo).get(name, [])
    if len(places) != 1:
        raise ValueError(f"no page has a block '{name}': put '<!-- results: {name} -->' and "
                         f"'<!-- /results: {name} -->' on lines of their own where it belongs" if not places else
                         f"block '{name}' is on {len(places)} pages: keep one")
    page = places[0][0]
    folder = repo / RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for figure in figures:
        target = folder / f"{name}_{figure.name}"
        shutil.copyfile(figure, target)
        names.append(target.name)
    text = render(command, body, names, commit(), datetime.date.today().isoformat(), machine())
    content = BLOCK.sub(lambda match: match[0] if match["name"] != name else
                        f"<!-- results: {name} -->\n{as_shown(text, page)}<!-- /results: {name} -->\n",
                        (repo / page).read_text())
    path = folder / f"{name}.md"
    atomic_write(path, lambda file: file.write(text), binary=False)
    atomic_write(repo / page, lambda file: file.write(content), binary=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="tools.results", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    writer = verbs.add_parser("write", help="write docs/results/NAME.md and the copy its page shows")
    writer.add_argument("name")
    writer.add_argument("--command", required=True, help="the committed command that made the result")
    source = writer.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", type=Path, help="a Markdown table (e.g. tools.report --runs' comparison.md)")
    source.add_argument("--summary", type=Path, help="a CPG run's summary.json: its per-task table")
    writer.add_argument("--figure", type=Path, action="append", default=[])
    verbs.add_parser("check", help="exit 1 naming each results block that differs from its file")
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
    print(f"written {path} and the block that shows it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The docs hold together: the README stays short, every relative link in README.md and docs/ reaches a file
(and, for Markdown, a heading), every script a page names exists, and every citation of the design or of a
docs page in the code's docstrings and comments names a section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CITATION = re.compile(r"docs/[\w./-]+\.md(?:#[\w-]+)?")
README_SECTION = re.compile(r"README(?:'s| section) \\?\"([^\"\\]+)\\?\"")


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {anchor(match) for match in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(FENCE.sub("", page.read_text()))
            if not re.match(r"[a-z]+:", target)]


def broken(page: Path, target: str) -> str | None:
    """Why `target`, a link on `page`, does not resolve (None when it does)."""
    path, _, fragment = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    name = page.relative_to(REPO) if page.is_relative_to(REPO) else page.name
    if not file.exists():
        return f"{name}: {target} (no such file)"
    if fragment and file.suffix == ".md" and fragment not in anchors(file):
        return f"{name}: {target} (no heading '#{fragment}')"
    return None


def test_the_readme_is_at_most_400_lines():
    assert len((REPO / "README.md").read_text().splitlines()) <= 400


def test_every_relative_link_in_the_docs_resolves():
    found = [problem for page in PAGES for target in links(page) if (problem := broken(page, target))]
    assert found == []


def test_every_script_the_docs_name_exists():
    named = {name for page in PAGES for name in re.findall(r"scripts/[\w./]+\.sh", page.read_text())}
    assert "scripts/cpg.sh" in named
    assert sorted(name for name in named if not (REPO / name).is_file()) == []


def _code_files() -> list[Path]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard",
                             "*.py", "*.sh"], capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_every_citation_in_the_code_names_a_section_that_exists():
    found = []
    readme = anchors(REPO / "README.md")
    for path in _code_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.relative_to(REPO)}:{number}"
            if re.search(r"design section \d", line):
                found.append(f"{where}: cites a numbered design section; cite docs/design.md#<anchor>")
            for citation in CITATION.findall("" if "write_text(" in line else line):  # tests write pages
                if re.fullmatch(r"[A-Z_]+", Path(citation.partition("#")[0]).stem):
                    continue  # a placeholder such as docs/results/NAME.md
                if (problem := broken(REPO / "README.md", citation.rstrip("."))):
                    found.append(f"{where}: {problem.split(': ', 1)[1]}")
            found += [f"{where}: README has no section {name!r}" for name in README_SECTION.findall(line)
                      if anchor(name) not in readme]
    assert found == []


def test_the_checks_find_what_they_are_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n## Exit codes\n\n```\n## not a heading\n[x](gone.md)\n```\n")
    assert anchors(page) == {"a-title", "exit-codes"}
    assert links(page) == []
    (tmp_path / "other.md").write_text("# Other\n")
    assert broken(page, "other.md") is None and broken(page, "#exit-codes") is None
    assert "no such file" in broken(page, "gone.md")
    assert "no heading" in broken(page, "other.md#missing")
    assert anchor("At scale: loading, warm start, EVAL_AT and GNs") == "at-scale-loading-warm-start-eval_at-and-gns"

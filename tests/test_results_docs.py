"""The README's results are the files in docs/results/ that scripts/results.sh wrote (tools/results.py):
a table edited by hand in the README, or a result file with no README block, fails the fast tier."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tools import results


def test_the_readme_shows_every_result_exactly_as_its_file_holds_it():
    assert results.problems() == []
    assert set(results.blocks((REPO / "README.md").read_text())) >= {"quickstart", "compare", "gg_baselines"}


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copyfile(REPO / "README.md", tmp_path / "README.md")
    return tmp_path


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_hand_edit_inside_a_results_block_is_found(tmp_path_factory, data):
    repo = _copy(tmp_path_factory.mktemp("repo"))
    readme = (repo / "README.md").read_text()
    match = data.draw(st.sampled_from(list(results.BLOCK.finditer(readme))))
    position = data.draw(st.integers(match.start("text"), match.end("text") - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda char: char != readme[position]))
    (repo / "README.md").write_text(readme[:position] + replacement + readme[position + 1:])
    assert any(f"'{match['name']}' differs" in problem for problem in results.problems(repo))


def test_write_replaces_its_own_block_and_records_the_command(tmp_path):
    repo = _copy(tmp_path)
    table = tmp_path / "table.md"
    table.write_text("| method | ACC |\n|---|---|\n| cpg | 0.5000 |\n")
    before = results.blocks((repo / "README.md").read_text())
    path = results.write("compare", "bash scripts/results.sh compare", table.read_text(), [], repo)
    after = results.blocks((repo / "README.md").read_text())
    assert after["compare"] == path.read_text() and "| cpg | 0.5000 |" in after["compare"]
    assert "Made by `bash scripts/results.sh compare` at commit " in after["compare"]
    assert {name: text for name, text in after.items() if name != "compare"} == \
        {name: text for name, text in before.items() if name != "compare"}


def test_a_result_file_without_its_block_or_figure_is_found(tmp_path):
    repo = _copy(tmp_path)
    (repo / "docs/results/orphan.md").write_text("Made by `x`.\n\n![gone](docs/results/gone.png)\n")
    found = results.problems(repo)
    assert any("orphan.md is not shown" in problem for problem in found)
    assert any("gone.png, which does not exist" in problem for problem in found)

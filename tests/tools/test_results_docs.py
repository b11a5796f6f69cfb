"""The docs' results are the files in docs/results/ that scripts/results.sh wrote (tools/results.py): a table
edited by hand on the page that shows it, or a result file no page shows, fails the fast tier."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import REPO
from unforget.tools import results


def test_the_docs_show_every_result_exactly_as_its_file_holds_it():
    assert results.problems() == []
    assert set(results.shown()) >= {"quickstart", "compare", "gg_baselines"}


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copyfile(REPO / "README.md", tmp_path / "README.md")
    return tmp_path


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_hand_edit_inside_a_results_block_is_found(tmp_path_factory, data):
    repo = _copy(tmp_path_factory.mktemp("repo"))
    places = [(page, match) for page in results.pages(repo)
              for match in results.BLOCK.finditer((repo / page).read_text())]
    page, match = data.draw(st.sampled_from(places))
    text = (repo / page).read_text()
    position = data.draw(st.integers(match.start("text"), match.end("text") - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda char: char != text[position]))
    (repo / page).write_text(text[:position] + replacement + text[position + 1:])
    assert any(f"'{match['name']}' differs" in problem for problem in results.problems(repo))


def test_write_replaces_its_own_block_and_records_the_command(tmp_path):
    repo = _copy(tmp_path)
    table = tmp_path / "table.md"
    table.write_text("| method | ACC |\n|---|---|\n| cpg | 0.5000 |\n")
    figure = tmp_path / "comparison.png"
    figure.write_bytes(b"png")
    before = results.shown(repo)
    path = results.write("compare", "bash scripts/results.sh compare", table.read_text(), [figure], repo)
    after = results.shown(repo)
    [(page, text)] = after["compare"]
    assert text == results.as_shown(path.read_text(), page) and "| cpg | 0.5000 |" in text
    assert "Made by `bash scripts/results.sh compare` at commit " in text
    assert "![compare_comparison](compare_comparison.png)" in path.read_text()  # beside the result file
    assert (repo / page).parent.joinpath(text.split("](")[-1].split(")")[0]).resolve() == \
        (repo / "docs/results/compare_comparison.png").resolve()  # and relative to the page that shows it
    assert results.problems(repo) == []
    assert {name: places for name, places in after.items() if name != "compare"} == \
        {name: places for name, places in before.items() if name != "compare"}


def test_a_result_file_without_its_block_or_figure_is_found(tmp_path):
    repo = _copy(tmp_path)
    (repo / "docs/results/orphan.md").write_text("Made by `x`.\n\n![gone](gone.png)\n")
    found = results.problems(repo)
    assert any("orphan.md is shown on no page" in problem for problem in found)
    assert any("gone.png, which does not exist" in problem for problem in found)


def test_a_result_shown_on_two_pages_is_found(tmp_path):
    repo = _copy(tmp_path)
    [(_, text)] = results.shown(repo)["quickstart"]
    block = f"<!-- results: quickstart -->\n{text}<!-- /results: quickstart -->\n"
    (repo / "docs/extra.md").write_text(f"# Extra\n\n{block}")
    assert any("'quickstart' is shown on 2 pages" in problem for problem in results.problems(repo))

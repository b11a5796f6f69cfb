"""The registry's report layouts: every `tools.report --checkpoints` name a method declares names report code
that imports, two methods share a layout only as one, and a layout finds the unfinished task folders."""

import json

import pytest

import unforget.utils.methods
from unforget.utils.methods import METHODS, Method, layouts
from unforget.utils.methods.layout import Layout, named_function


def test_every_layout_names_hooks_that_import():
    found = layouts()
    assert sorted(found) == ["gradual_prune", "independent", "model", "regularised", "supsup", "task", "wsn"]
    for layout in found.values():
        assert callable(named_function(layout.summarise)) and callable(named_function(layout.write))


def test_two_different_layouts_under_one_name_are_refused(monkeypatch):
    sequences = "unforget.utils.methods.sequences"
    other = Layout("elsewhere", f"{sequences}:sequential_summary", f"{sequences}:write_metrics")
    new = Method("new", "S", "x", layouts={"task": other})
    monkeypatch.setattr(unforget.utils.methods, "METHODS", {**METHODS, "new": new})
    with pytest.raises(ValueError, match="two layouts are called 'task'"):
        layouts()


def test_a_layout_lists_the_unfinished_tasks_unless_one_checkpoint_holds_the_run(tmp_path):
    layout = Layout(".", "m:f", "m:g", whole_run="model/meta.json")
    (tmp_path / "a").mkdir()
    (tmp_path / "a/meta.json").write_text(json.dumps({}))
    assert layout.missing(tmp_path, ["a", "b"]) == ["b"]
    (tmp_path / "model").mkdir()
    (tmp_path / "model/meta.json").write_text(json.dumps({}))
    assert layout.missing(tmp_path, ["a", "b"]) == []
    assert Layout("gradual_prune", "m:f", "m:g", finished="chosen.json").folders(tmp_path, ["a"]) == [
        tmp_path / "a/gradual_prune"]

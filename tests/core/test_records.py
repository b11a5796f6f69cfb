"""record.txt and accuracy-goal files: canonical keys, rounding, validation."""

import json
import os

import pytest

from unforget.utils.records import (
    MissingGoal,
    RecordError,
    goal_for,
    read_goals,
    read_record,
    sparsity_key,
    write_record_entry,
)


@pytest.mark.parametrize("value, key", [(0, "0.0"), (0.1, "0.1"), ("0.30000000000000004", "0.3"), (0.95, "0.95")])
def test_sparsity_keys_are_canonical_short_strings(value, key):
    assert sparsity_key(value) == key


def test_entries_are_rounded_sorted_and_rewritten(tmp_path):
    path = tmp_path / "record.txt"
    write_record_entry(path, 0.2, 0.123456)
    write_record_entry(path, 0.0, 0.9)
    write_record_entry(path, 0.1, 0.5)
    write_record_entry(path, 0.1, 0.6)
    assert list(json.loads(path.read_text()).items()) == [("0.0", 0.9), ("0.1", 0.6), ("0.2", 0.1235)]


@pytest.mark.parametrize("text", ['[1, 2]', '{"0.1": "high"}', '{"x": 0.5}', '{"0.1": 1.5}', '{', '{"0.1": true}'])
def test_malformed_records_are_rejected(tmp_path, text):
    path = tmp_path / "record.txt"
    path.write_text(text)
    with pytest.raises(RecordError):
        read_record(path)


def test_goals_accept_numeric_strings_and_report_missing_tasks(tmp_path):
    path = tmp_path / "goals.json"
    path.write_text('{"fish": "0.7560", "people": 0.488}')
    goals = read_goals(path)
    assert goals == {"fish": 0.756, "people": 0.488}
    with pytest.raises(MissingGoal):
        goal_for(goals, "trees", str(path))
    with pytest.raises(RecordError, match="does not exist"):
        read_goals(tmp_path / "absent.json")


@pytest.mark.parametrize("goal", [97.5, "97.5", 2])
def test_a_goal_in_percent_is_refused_naming_fraction_and_percent(tmp_path, goal):
    path = tmp_path / "goals.json"
    path.write_text(json.dumps({"fish": goal}))
    with pytest.raises(RecordError, match="fractions .* not percentages"):
        read_goals(path)


def test_force_growth_is_a_goal_never_met(tmp_path):
    path = tmp_path / "goals.json"
    path.write_text('{"fish": "force_growth", "trees": 1.0}')
    goals = read_goals(path)
    assert goals["fish"] > 1.0 and goals["trees"] == 1.0


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    from unforget.utils.atomic import atomic_json_dump

    previous = os.umask(umask)
    try:
        atomic_json_dump({"a": 1}, tmp_path / "out.json")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == mode

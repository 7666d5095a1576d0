"""Bad segment definitions: every error names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_files
from trouw.segments import SegmentError, load_catalog
from trouw.segments.definition import Event


def _error(tmp_path: Path, text: str, name: str = "bad") -> SegmentError:
    write_files(tmp_path, {f"segments/{name}.yaml": text})
    catalog = load_catalog(tmp_path / "segments")
    assert name in catalog.errors, catalog.segments
    return catalog.errors[name]


@pytest.mark.parametrize(
    ("text", "line", "key", "says"),
    [
        ("description: x\nwhere:\n  event: purchase\n  withn: 30d\n", 4, "withn", "unknown key"),
        ("where:\n  attribute: household\n  equal: family\n", 3, "equal", "unknown operator"),
        (
            "where:\n  event: purchase\n  count: {more_than: 2}\n",
            3,
            "more_than",
            "unknown operator",
        ),
        ("where:\n  event: purchase\n  within: 3m\n", 3, "within", "ambiguous"),
        ("where:\n  event: purchase\n  within: soon\n", 3, "within", "duration"),
        (
            "where:\n  all:\n    - event: purchase\n      count: {at_least: two}\n",
            4,
            "at_least",
            "whole number",
        ),
        ("where:\n  all: {event: purchase}\n", 2, "all", "list"),
        ("where:\n  attribute: city\n  at_least: 5\n", 3, "at_least", "number or a date"),
        ("where:\n  attribute: birthday\n  equals: yesterday\n", 3, "equals", "a date"),
        ("where:\n  nps: fan\n", 2, "nps", "NPS class"),
        ("where:\n  any:\n    - segment: nowhere\n", 3, "segment", "does not exist"),
        ("description: [a]\nwhere: {nps: promoter}\n", 1, "description", "text"),
        ("wehre: {nps: promoter}\n", 1, "wehre", "unknown key"),
        ("where:\n  event: purchase\n  attribute: city\n", 3, "attribute", "one form"),
        ("where:\n  at_least: 3\n", 2, "at_least", "needs an `attribute:`"),
        ("where:\n  birthday_within: 1mo\n", 2, "birthday_within", "days or weeks"),
        ("where:\n  event: click\n  where: {amount: {at_least: cheap}}\n", 3, "at_least", "number"),
    ],
)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, says: str
) -> None:
    error = _error(tmp_path, text)
    message = str(error)
    assert str(tmp_path / "segments" / "bad.yaml") in message
    assert f"line {line}," in message
    assert f"key '{key}'" in message
    assert says in message
    assert "fix:" in message


def test_yaml_syntax_errors_have_a_line(tmp_path: Path) -> None:
    error = _error(tmp_path, "where:\n  event: [purchase\n")
    assert "not valid YAML" in str(error) and error.line is not None


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, "where:\n  event: purchase\n  event: click\n")
    assert "appears twice" in str(error) and error.line == 3


def test_reference_cycles_are_errors(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "segments/a.yaml": "where:\n  segment: b\n",
            "segments/b.yaml": "where:\n  all:\n    - segment: a\n",
            "segments/c.yaml": "where:\n  segment: a\n",
        },
    )
    catalog = load_catalog(tmp_path / "segments")
    assert "cycle: a -> b -> a" in str(catalog.errors["a"])
    assert catalog.errors["a"].line == 2 and catalog.errors["a"].key == "segment"
    assert "cycle: b -> a -> b" in str(catalog.errors["b"]) and catalog.errors["b"].line == 3
    assert "'a', which is invalid" in str(catalog.errors["c"])
    with pytest.raises(SegmentError, match="cycle"):
        catalog.get("a")


def test_defaults_and_spelling_variants(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"segments/ok.yaml": "where:\n  event: purchase\n  tag: [a, b]\n  count: {exactly: 0}\n"},
    )
    catalog = load_catalog(tmp_path / "segments")
    where = catalog.get("ok").where
    assert isinstance(where, Event)
    assert where.tag == ("a", "b")
    assert [(op.name, op.value) for op in where.ops] == [("equals", 0)]
    with pytest.raises(SegmentError, match="no segment named 'nope'"):
        catalog.get("nope")

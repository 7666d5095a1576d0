"""`trouw contacts show|export|forget` on a real database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli

CONTACTS = (
    "id,email,first_name,city,points\n"
    "c1,anna@example.nl,Anna,Utrecht,120\n"
    "c2,b@example.nl,Bram,Ede,5\n"
)
EVENTS = (
    "contact_id,type,occurred_at,tag\n"
    "c1,click,2027-03-01T10:00:00,fire-safety\n"
    "c1,open,2027-03-01T09:00:00,newsletter\n"
    "c2,open,2027-03-01T09:00:00,newsletter\n"
)


def _load(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text(CONTACTS, encoding="utf-8")
    (tmp_path / "e.csv").write_text(EVENTS, encoding="utf-8")
    assert cli("import", "contacts", str(tmp_path / "c.csv")).exit_code == 0
    assert cli("import", "events", str(tmp_path / "e.csv")).exit_code == 0


def test_show_lists_fields_attributes_and_recent_events(cli: Cli, tmp_path: Path) -> None:
    _load(cli, tmp_path)
    result = cli("contacts", "show", "c1")
    assert result.exit_code == 0, result.output
    assert "anna@example.nl" in result.stdout
    assert "Utrecht" in result.stdout
    assert "points" in result.stdout and "120" in result.stdout
    assert "fire-safety" in result.stdout
    assert result.stdout.index("click") < result.stdout.index("open")  # newest first


def test_show_unknown_contact_exits_2(cli: Cli) -> None:
    result = cli("contacts", "show", "nobody")
    assert result.exit_code == 2
    assert "no contact with id 'nobody'" in result.stderr


def test_export_is_everything_about_one_person(cli: Cli, tmp_path: Path) -> None:
    _load(cli, tmp_path)
    result = cli("contacts", "export", "c1")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["contact"]["email"] == "anna@example.nl"
    assert data["contact"]["attributes"] == {"points": 120}
    assert {event["type"] for event in data["events"]} == {"click", "open"}
    assert all(event["contact_id"] == "c1" for event in data["events"])
    assert data["suppressed"] is False


def test_forget_erases_and_a_reimport_stays_suppressed(cli: Cli, tmp_path: Path) -> None:
    _load(cli, tmp_path)
    result = cli("contacts", "forget", "c1", "--yes")
    assert result.exit_code == 0, result.output
    assert "2 events" in result.stdout
    assert cli("contacts", "show", "c1").exit_code == 2
    export = json.loads(cli("contacts", "export", "c2").stdout)
    assert len(export["events"]) == 1  # the other contact is untouched

    again = cli("import", "contacts", str(tmp_path / "c.csv"))
    assert again.exit_code == 0
    assert "1 addresses were forgotten before" in again.stdout
    assert json.loads(cli("contacts", "export", "c1").stdout)["suppressed"] is True
    assert "never mailed" in cli("contacts", "show", "c1").stdout


def test_forget_asks_first(cli: Cli, tmp_path: Path) -> None:
    _load(cli, tmp_path)
    result = cli("contacts", "forget", "c1", input="n\n")
    assert result.exit_code == 1  # aborted
    assert cli("contacts", "show", "c1").exit_code == 0

"""`trouw segments …` on a real project and database, comparing real output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.conftest import Cli, write_files

CONTACTS = (
    "id,email,first_name,household,points\n"
    "c1,anna@example.nl,Anna,family,120\n"
    "c2,bram@example.nl,Bram,single,5\n"
    "c3,cor@example.nl,Cor,family,0\n"
)
EVENTS = (
    "contact_id,type,occurred_at,tag\n"
    "c1,click,2027-03-01T10:00:00,fire-safety\n"
    "c1,click,2027-02-01T10:00:00,fire-safety\n"
    "c2,click,2027-03-01T10:00:00,garden\n"
)
SEGMENTS = {
    "segments/families.yaml": "description: Households with children\n"
    "where: {attribute: household, equals: family}\n",
    "segments/fire-safety.yaml": "description: Clicked fire safety\n"
    "where:\n  all:\n    - segment: families\n    - event: click\n      tag: fire-safety\n"
    "      within: 90d\n",
}


def _project(cli: Cli, tmp_path: Path) -> None:
    write_files(cli.project, SEGMENTS)
    write_files(tmp_path, {"c.csv": CONTACTS, "e.csv": EVENTS})
    assert cli("import", "contacts", str(tmp_path / "c.csv")).exit_code == 0
    assert cli("import", "events", str(tmp_path / "e.csv")).exit_code == 0


def test_list_shows_descriptions_and_errors(cli: Cli, tmp_path: Path) -> None:
    _project(cli, tmp_path)
    assert cli("segments", "list").exit_code == 0
    write_files(cli.project, {"segments/broken.yaml": "where:\n  event: click\n  within: 2m\n"})
    result = cli("segments", "list")
    assert result.exit_code == 2
    assert "Households with children" in result.stdout
    assert "broken" in result.stdout and "ambiguous" in result.stdout
    assert "broken.yaml, line 3, key 'within'" in result.stderr


def test_count_several_and_save_snapshots(cli: Cli, tmp_path: Path) -> None:
    _project(cli, tmp_path)
    result = cli("segments", "count", "--as-of", "2027-03-01")
    assert result.exit_code == 0, result.output
    lines = {
        line.split()[1]: line.split()[3]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    }
    assert lines == {"families": "2", "fire-safety": "1"}
    saved = cli("segments", "count", "fire-safety", "--as-of", "2027-03-01", "--save")
    assert saved.exit_code == 0 and "entered" in saved.stdout
    again = cli("segments", "count", "fire-safety", "--as-of", "2027-07-01", "--save")
    row = next(line for line in again.stdout.splitlines() if "fire-safety" in line)
    assert row.split()[1::2] == ["fire-safety", "0", "0", "1"]


def test_count_unknown_segment_exits_2(cli: Cli, tmp_path: Path) -> None:
    _project(cli, tmp_path)
    result = cli("segments", "count", "nope")
    assert result.exit_code == 2
    assert "no segment named 'nope'" in result.stderr


def test_members_as_csv_json_and_table(cli: Cli, tmp_path: Path) -> None:
    _project(cli, tmp_path)
    result = cli("segments", "members", "families", "--format", "csv", "--as-of", "2027-03-01")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:2] == ["contact_id", "email"]
    assert [row[:2] for row in rows[1:]] == [["c1", "anna@example.nl"], ["c3", "cor@example.nl"]]
    data = json.loads(cli("segments", "members", "families", "--format", "json").stdout)
    assert [row["contact_id"] for row in data] == ["c1", "c3"]
    table = cli("segments", "members", "families").stdout
    assert "anna@example.nl" in table and "2 members" in table


def test_explain_says_why(cli: Cli, tmp_path: Path) -> None:
    _project(cli, tmp_path)
    result = cli("segments", "explain", "fire-safety", "--contact", "c1", "--as-of", "2027-03-01")
    assert result.exit_code == 0, result.output
    assert "c1 is a member of fire-safety as of 2027-03-01" in result.stdout
    assert "clicked tag fire-safety 2 times in 90d: meets at_least 1" in result.stdout
    assert "household is 'family': meets equals family" in result.stdout
    other = cli("segments", "explain", "fire-safety", "--contact", "c2", "--as-of", "2027-03-01")
    assert "c2 is not a member" in other.stdout
    assert "clicked tag fire-safety 0 times in 90d: does not meet at_least 1" in other.stdout
    missing = cli("segments", "explain", "fire-safety", "--contact", "zz")
    assert missing.exit_code == 2


def test_sql_prints_the_compiled_statement(cli: Cli, tmp_path: Path) -> None:
    _project(cli, tmp_path)
    result = cli("segments", "sql", "fire-safety", "--as-of", "2027-03-01")
    assert result.exit_code == 0, result.output
    sql = result.stdout
    assert sql.startswith("SELECT contacts.id") and sql.rstrip().endswith(";")
    assert "'fire-safety'" in sql and "2027-03-01 23:00:00" in sql  # as-of end in UTC
    if cli.db_url.startswith("postgresql"):
        assert "@>" in sql
    else:
        assert "json_extract" in sql

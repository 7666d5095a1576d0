"""Imports of real exports: Excel's semicolons and BOM, tabs, day-first dates, decimal
commas, files without a header, and a rejects file to fix and import again."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from tests.conftest import Cli
from trouw.importing import CsvLayout, read_records
from trouw.store import contacts, events

BOM = "\ufeff"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))  # newlines as given: Excel writes CRLF
    return path


def _rows(db_url: str, table: Any, *columns: str) -> list[tuple[Any, ...]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            query = select(*(table.c[name] for name in columns)).order_by(table.c.id)
            return [tuple(row) for row in connection.execute(query)]
    finally:
        engine.dispose()


# As Excel (Dutch regional settings) saves "CSV UTF-8 (gescheiden door lijstscheidingsteken)":
# a BOM, semicolons, CRLF, day-first dates with one-digit days, decimal commas, thousands dots.
EXCEL_CONTACTS = BOM + (
    "id;email;first_name;birthday;customer_since;kwh;korting;opmerking\r\n"
    'k1;anna@example.nl;Anna;1-2-1990;15-01-2020;4.500;3,5;"tuin; groot"\r\n'
    "k2;bram@example.nl;Bram;28-02-1985;01-06-2019;1.234.567;0,75;\r\n"
    "k3;carla@example.nl;Carla;;;12;10;geen\r\n"
)
EXCEL_EVENTS = BOM + (
    "contact_id;type;occurred_at;amount;kwh\r\n"
    "k1;purchase;02-04-2027 10:30;12,50;4.500\r\n"
    "k2;purchase;03-04-2027;1.250,00;3,5\r\n"
)


def test_an_excel_nl_export_imports_with_date_format_and_decimal_comma(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "klanten.csv", EXCEL_CONTACTS)
    options = ("--date-format", "DD-MM-YYYY", "--decimal-comma")
    result = cli("import", "contacts", *options, str(path))
    assert result.exit_code == 0, result.output
    assert "klanten.csv: columns separated by semicolons" in result.stdout
    assert "3 contacts imported" in result.stdout
    assert _rows(db_url, contacts, "id", "birthday", "customer_since", "attributes") == [
        ("k1", date(1990, 2, 1), date(2020, 1, 15),
         {"kwh": 4500, "korting": 3.5, "opmerking": "tuin; groot"}),
        ("k2", date(1985, 2, 28), date(2019, 6, 1), {"kwh": 1234567, "korting": 0.75}),
        ("k3", None, None, {"kwh": 12, "korting": 10, "opmerking": "geen"}),
    ]  # fmt: skip
    path = _write(tmp_path, "orders.csv", EXCEL_EVENTS)
    result = cli("import", "events", *options, str(path))
    assert result.exit_code == 0, result.output
    assert _rows(db_url, events, "contact_id", "occurred_at", "amount", "properties") == [
        ("k1", datetime(2027, 4, 2, 8, 30), 12.5, {"kwh": 4500}),  # CEST: UTC+2
        ("k2", datetime(2027, 4, 2, 22, 0), 1250.0, {"kwh": 3.5}),  # midnight in Amsterdam
    ]


def test_day_first_dates_without_date_format_are_refused_naming_the_option(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "klanten.csv", EXCEL_CONTACTS)
    result = cli("import", "contacts", "--decimal-comma", "--strict", str(path))
    assert result.exit_code == 2
    assert (
        f"{path}, line 2, column 'birthday': '1-2-1990' could be day-first or month-first: "
        "say which with --date-format DD-MM-YYYY (or MM-DD-YYYY)"
    ) in result.stderr
    assert (
        f"{path}, line 3, column 'birthday': '28-02-1985' is day-first: "
        "import with --date-format DD-MM-YYYY"
    ) in result.stderr
    assert _rows(db_url, contacts, "id") == []
    path = _write(tmp_path, "orders.csv", EXCEL_EVENTS)
    result = cli("import", "events", "--decimal-comma", str(path))
    assert result.exit_code == 2
    assert f"{path}, line 2, column 'occurred_at': '02-04-2027 10:30' could be day-first" in (
        result.stderr
    )
    bad = cli("import", "contacts", "--date-format", "%d-%m-%Y", str(path))
    assert bad.exit_code == 2
    assert "'%d-%m-%Y' is not a date format" in bad.stderr
    assert "DD-MM-YYYY" in bad.stderr


def test_a_tab_separated_file_imports_and_says_so(cli: Cli, db_url: str, tmp_path: Path) -> None:
    path = _write(tmp_path, "export.tsv", "id\temail\tcity\nt1\tt1@example.nl\tDen Haag\n")
    result = cli("import", "contacts", str(path))
    assert result.exit_code == 0, result.output
    assert "columns separated by tabs" in result.stdout
    assert _rows(db_url, contacts, "id", "city") == [("t1", "Den Haag")]
    # --delimiter overrides the guess; a wrong one is named, with the fix.
    wrong = cli("import", "contacts", "--delimiter", ",", str(path))
    assert wrong.exit_code == 2
    assert "the header reads as one column" in wrong.stderr
    assert "--delimiter tab" in wrong.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "c1,anna@example.nl,Anna\nc2,bram@example.nl,Bram\n",
            "line 1: the first line looks like data, not a header: it has no column 'id'",
        ),
        ("klant;email\nc1;a@example.nl\n", "line 1: the header has no column 'id'"),
    ],
    ids=["header-less", "another-key-name"],
)
def test_a_file_without_the_id_header_is_refused_as_a_whole(
    cli: Cli, db_url: str, tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, "c.csv", text)
    result = cli("import", "contacts", str(path))
    assert result.exit_code == 2
    assert f"{path}, {expected}" in result.stderr
    assert "id,email,first_name" in result.stderr or "id;email;first_name" in result.stderr
    assert _rows(db_url, contacts, "id") == []
    events_file = _write(tmp_path, "e.csv", "c1,click,2027-01-01T10:00:00\n")
    result = cli("import", "events", str(events_file))
    assert result.exit_code == 2
    assert "no column 'contact_id' or 'email'" in result.stderr
    assert "contact_id,type,occurred_at" in result.stderr


BAD_EXPORT = (
    "id;email;birthday;punten\n"
    "r1;r1@example.nl;1990-01-01;10\n"
    "r2;not-an-email;1990-01-01;20\n"
    "r3;r3@example.nl;1990-02-30;30\n"
    "r1;again@example.nl;1990-01-01;40\n"
    "r4;r4@example.nl;1990-01-01\n"
    "r5;r5@example.nl;1990-01-01;50\n"
)


def test_rejects_file_round_trip_fix_and_import_again(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "export.csv", BAD_EXPORT)
    rejects = tmp_path / "rejects.csv"
    result = cli("import", "contacts", "--batch-size", "2", "--rejects", str(rejects), str(path))
    assert result.exit_code == 2
    assert f"the 4 rejected rows are in {rejects}" in result.stderr
    with rejects.open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle, delimiter=";"))  # the file's own delimiter
    assert table[0] == ["reject_reason", "id", "email", "birthday", "punten"]
    assert sorted(table[1:]) == [
        ["line 3, column 'email': 'not-an-email' is not a valid email address",
         "r2", "not-an-email", "1990-01-01", "20"],
        ["line 4, column 'birthday': '1990-02-30' is not a real date",
         "r3", "r3@example.nl", "1990-02-30", "30"],
        ["line 5, column 'id': 'r1' appears again (first on line 2)",
         "r1", "again@example.nl", "1990-01-01", "40"],
        ["line 6: has 3 fields, the header has 4", "r4", "r4@example.nl", "1990-01-01"],
    ]  # fmt: skip
    fixed = (
        rejects.read_text(encoding="utf-8")
        .replace(";not-an-email;", ";r2@example.nl;")
        .replace("1990-02-30", "1990-02-28")
        .replace(";r1;again@", ";r6;again@")
        .replace(";r4@example.nl;1990-01-01", ";r4@example.nl;1990-01-01;60")
    )
    rejects.write_text(fixed, encoding="utf-8")
    again = cli("import", "contacts", "--rejects", str(tmp_path / "left.csv"), str(rejects))
    assert again.exit_code == 0, again.output
    assert "4 contacts imported" in again.stdout
    assert (tmp_path / "left.csv").read_bytes() == b"reject_reason;id;email;birthday;punten\r\n"
    assert _rows(db_url, contacts, "id", "attributes") == [
        ("r1", {"punten": 10}),
        ("r2", {"punten": 20}),
        ("r3", {"punten": 30}),
        ("r4", {"punten": 60}),
        ("r5", {"punten": 50}),
        ("r6", {"punten": 40}),
    ]  # fmt: skip  the reason column is not an attribute


def test_rejects_of_events_include_those_refused_at_the_database(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    assert cli("import", "contacts", str(_write(tmp_path, "c.csv", "id\nc1\n"))).exit_code == 0
    text = (
        "contact_id,type,occurred_at,reason\n"
        "c1,click,2027-01-01T10:00:00,ok\n"
        "c2,click,2027-01-01T11:00:00,later\n"
        "c1,click,yesterday,oops\n"
    )
    rejects = tmp_path / "rejects.csv"
    result = cli(
        "import", "events", "--rejects", str(rejects), str(_write(tmp_path, "e.csv", text))
    )
    assert result.exit_code == 2
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "reject_reason,contact_id,type,occurred_at,reason"
    assert sorted(lines[1:]) == [
        "\"line 3, column 'contact_id': no contact with id 'c2' (import the contacts first)\","
        "c2,click,2027-01-01T11:00:00,later",
        "\"line 4, column 'occurred_at': 'yesterday' is not an ISO 8601 time "
        '(2027-04-02T10:30:00+02:00)",c1,click,yesterday,oops',
    ]
    assert cli("import", "contacts", str(_write(tmp_path, "c2.csv", "id\nc2\n"))).exit_code == 0
    rejects.write_text(rejects.read_text().replace("yesterday", "2027-01-01T12:00:00"))
    again = cli("import", "events", str(rejects))
    assert again.exit_code == 0, again.output
    stored = _rows(db_url, events, "contact_id", "properties")
    assert sorted((contact, found["reason"]) for contact, found in stored) == [
        ("c1", "ok"),
        ("c1", "oops"),
        ("c2", "later"),
    ]  # fmt: skip  (the rejects file lists rows refused at the database last)


def test_a_failed_file_leaves_no_rejects_file(cli: Cli, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    path = _write(tmp_path, "c.csv", "c1,a@example.nl\n")
    assert cli("import", "contacts", "--rejects", str(rejects), str(path)).exit_code == 2
    assert not rejects.exists() and not (tmp_path / "rejects.csv.part").exists()


@pytest.mark.parametrize(
    ("option", "number"),
    [(None, None), ("--decimal-comma", 4500), ("--decimal-point", 4.5)],
    ids=["no-option", "decimal-comma", "decimal-point"],
)
def test_4_500_reads_the_same_in_contacts_and_events(
    cli: Cli, db_url: str, tmp_path: Path, option: str | None, number: float | None
) -> None:
    options = [option] if option else []
    people = _write(tmp_path, "c.csv", "id,kwh\nc1,4.500\n")
    result = cli("import", "contacts", *options, str(people))
    assert result.exit_code == 0, result.output
    orders = _write(
        tmp_path, "e.csv", "contact_id,type,occurred_at,kwh,amount\n"
        "c1,purchase,2027-01-01T10:00:00,4.500,4.500\n"
        "c1,purchase,2027-01-02T10:00:00,4.500,12.50\n",
    )  # fmt: skip
    imported = cli("import", "events", *options, str(orders))
    attributes = _rows(db_url, contacts, "attributes")
    properties = _rows(db_url, events, "properties", "amount")
    if number is None:  # ambiguous: text in an extra column (and said so), refused as amount
        assert attributes == [({"kwh": "4.500"},)]
        for output in (result, imported):
            assert "column 'kwh': '4.500' could be 4.5 or 4500: import with --decimal-comma" in (
                output.stderr
            )
            assert "(1 rows kept this as text)" in output.stderr
        assert imported.exit_code == 2
        assert f"{orders}, line 2, column 'amount': '4.500' could be 4.5 or 4500" in (
            imported.stderr
        )
        assert properties == [({"kwh": "4.500"}, 12.5)]
    elif option == "--decimal-comma":  # and then 12.50 has the wrong mark: refused, said so
        assert attributes == [({"kwh": number},)]
        assert imported.exit_code == 2
        assert "'12.50' has a decimal point, and --decimal-comma was given" in imported.stderr
        assert properties == [({"kwh": number}, number)]
    else:
        assert imported.exit_code == 0, imported.output
        assert attributes == [({"kwh": number},)]
        assert properties == [({"kwh": number}, number), ({"kwh": number}, 12.5)]


# Any table written by the csv module with any of the three delimiters reads back the same.
_names = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz_ 0123456789", min_size=1, max_size=8)
    .map(str.strip)
    .filter(lambda name: bool(name) and name not in ("id", "reject_reason")),
    min_size=1,  # a one-column file has no delimiter to find (nor quotes a comma in it)
    max_size=4,
    unique=True,
)
_value = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12
)


@settings(max_examples=60, deadline=None)
@given(
    names=_names,
    data=st.data(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    bom=st.booleans(),
)
def test_any_table_reads_the_same_with_any_delimiter(
    names: list[str], data: st.DataObject, delimiter: str, bom: bool
) -> None:
    header = ["id", *names]
    row = st.fixed_dictionaries({name: _value for name in header}).filter(
        lambda record: any(value.strip() for value in record.values())
    )
    table = data.draw(st.lists(row, max_size=5))
    out = io.StringIO()
    writer = csv.DictWriter(out, header, delimiter=delimiter)
    writer.writeheader()
    writer.writerows(table)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_text((BOM if bom else "") + out.getvalue(), encoding="utf-8", newline="")
        layout = CsvLayout(kind="contacts")
        records = [record for _, record in read_records(path, "csv", layout=layout)]
    assert layout.delimiter == delimiter
    assert layout.header == header
    assert records == table

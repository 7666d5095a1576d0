"""Import of contacts and events: what lands, what is refused and why."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from tests.conftest import Cli
from trouw.contacts import is_suppressed
from trouw.errors import ImportFileError
from trouw.importing import import_contacts, import_events
from trouw.store import contacts, events

CONTACTS_CSV = """\
id,email,first_name,last_name,birthday,customer_since,channel,household,children,member_no
c1, Anna@Example.NL ,Anna,de Vries,1990-04-02,2020-01-15,email,family,2,0123
c2,bram@example.com,Bram,Jansen,1985-02-28,2019-06-01,post,single,0,1234
c3,,Carla,Smit,,2024-11-01,none,couple,0,
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _contact(engine: Engine, contact_id: str) -> dict:
    with engine.connect() as connection:
        row = connection.execute(select(contacts).where(contacts.c.id == contact_id)).mappings()
        return dict(row.one())


def _count(engine: Engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_contacts_are_normalised_and_extras_become_typed_attributes(
    engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, "contacts.csv", CONTACTS_CSV)
    report = import_contacts(engine, path, timezone="Europe/Amsterdam")
    assert (report.written, report.rejected_count) == (3, 0)
    anna = _contact(engine, "c1")
    assert anna["email"] == "Anna@example.nl"  # trimmed; only the domain lower-cased
    assert anna["birthday"] == date(1990, 4, 2)
    assert anna["channel"] == "email"
    # a number-looking CSV value is a number, but a leading zero keeps it text
    assert anna["attributes"] == {"household": "family", "children": 2, "member_no": "0123"}
    assert _contact(engine, "c3")["email"] is None


def test_reimport_updates_by_id_and_keeps_what_the_file_leaves_empty(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path, "a.csv", CONTACTS_CSV), timezone="UTC")
    update = "id,email,first_name,city,points\nc1,,Annie,Utrecht,120\nc2,,,,\nc9,,New,,\n"
    report = import_contacts(engine, _write(tmp_path, "b.csv", update), timezone="UTC")
    assert report.written == 3
    assert _contact(engine, "c9")["channel"] == "email"  # a new contact without a channel
    anna = _contact(engine, "c1")
    assert anna["first_name"] == "Annie"
    assert anna["city"] == "Utrecht"
    assert anna["email"] == "Anna@example.nl"  # empty in the update: kept
    assert _contact(engine, "c2")["channel"] == "post"
    assert anna["attributes"] == {
        "household": "family",
        "children": 2,
        "member_no": "0123",
        "points": 120,
    }
    assert _count(engine, contacts) == 4


def test_jsonl_keeps_json_types(engine: Engine, tmp_path: Path) -> None:
    lines = [
        {"id": "j1", "email": "j@example.org", "vip": True, "tags": ["a", "b"], "zip": "0123"},
    ]
    path = _write(tmp_path, "c.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    import_contacts(engine, path, timezone="UTC")
    assert _contact(engine, "j1")["attributes"] == {"vip": True, "tags": ["a", "b"], "zip": "0123"}


BAD_CONTACTS = """\
id,email,first_name,birthday,channel
ok1,ok1@example.nl,Ok,1990-01-01,email
bad1,not-an-email,Bad,1990-01-01,email
bad2,b2@example.nl,Bad,1990-02-30,email
bad3,b3@example.nl,"Evil
Bcc: victim@example.com",1990-01-01,email
ok1,again@example.nl,Dup,1990-01-01,email
bad4,b4@example.nl,Bad,01-02-1990,email
,b5@example.nl,NoId,1990-01-01,email
ok2,ok2@example.nl,Ok,,post
bad5,b6@example.nl,Bad,1990-01-01,pigeon
"""


def test_bad_contact_rows_are_reported_with_line_and_column_and_the_rest_imported(
    engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, "bad.csv", BAD_CONTACTS)
    report = import_contacts(engine, path, timezone="UTC")
    found = {(r.line, r.column) for r in report.rejected}
    assert found == {
        (3, "email"),
        (4, "birthday"),
        (5, "first_name"),  # the CR/LF row starts on line 5 and spans two lines
        (7, "id"),
        (8, "birthday"),
        (9, "id"),
        (11, "channel"),
    }
    messages = {r.line: r.reason for r in report.rejected}
    assert "line break" in messages[5]
    assert "first on line 2" in messages[7]
    assert report.written == 2
    with engine.connect() as connection:
        ids = set(connection.execute(select(contacts.c.id)).scalars())
    assert ids == {"ok1", "ok2"}
    assert _contact(engine, "ok1")["email"] == "ok1@example.nl"  # the duplicate did not win


def test_strict_imports_nothing_when_a_row_is_bad(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.csv", BAD_CONTACTS)
    report = import_contacts(engine, path, timezone="UTC", strict=True, batch_size=2)
    assert not report.applied
    assert report.rejected_count == 7
    assert _count(engine, contacts) == 0


def test_events_times_without_offset_are_read_in_the_project_zone(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    text = (
        "contact_id,type,occurred_at,tag,amount,score,channel_hint\n"
        "c1,click,2027-04-02T10:00:00,fire-safety,,,mail\n"
        "c1,purchase,2027-01-10T10:00:00+00:00,,12.50,,\n"
        "c2,survey,2027-04-02 09:30,nps,,9,\n"
    )
    report = import_events(engine, _write(tmp_path, "e.csv", text), timezone="Europe/Amsterdam")
    assert (report.written, report.rejected_count) == (3, 0)
    with engine.connect() as connection:
        rows = connection.execute(select(events).order_by(events.c.id)).mappings().all()
    assert rows[0]["occurred_at"] == datetime(2027, 4, 2, 8, 0)  # CEST is UTC+2
    assert rows[0]["tag"] == "fire-safety"
    assert rows[0]["properties"] == {"channel_hint": "mail"}
    assert rows[1]["amount"] == 12.5
    assert rows[1]["occurred_at"] == datetime(2027, 1, 10, 10, 0)
    assert rows[2]["score"] == 9


def test_bad_event_rows_name_line_and_column(engine: Engine, tmp_path: Path) -> None:
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    text = (
        "contact_id,type,occurred_at,tag,amount,score\n"
        "c1,click,2027-04-02T10:00:00,ok,,\n"
        "nobody,click,2027-04-02T10:00:00,,,\n"
        "c1,purchase,yesterday,,,\n"
        "c1,purchase,2027-04-02T10:00:00,,twelve,\n"
        "c1,survey,2027-04-02T10:00:00,nps,,11\n"
        "c1,Add To Cart,2027-04-02T10:00:00,,,\n"
        'c1,click,2027-04-02T10:00:00,"a\rb",,\n'
    )
    report = import_events(engine, _write(tmp_path, "e.csv", text), timezone="UTC")
    assert {(r.line, r.column) for r in report.rejected} == {
        (3, "contact_id"),
        (4, "occurred_at"),
        (5, "amount"),
        (6, "score"),
        (7, "type"),
        (8, "tag"),
    }
    assert report.written == 1


def test_event_ids_make_reimport_idempotent(engine: Engine, tmp_path: Path) -> None:
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    lines = [
        {"id": f"e{n}", "contact_id": "c1", "type": "open", "occurred_at": "2027-01-01T10:00:00Z"}
        for n in range(5)
    ]
    path = _write(tmp_path, "e.jsonl", "\n".join(json.dumps(line) for line in lines))
    first = import_events(engine, path, timezone="UTC", batch_size=2)
    second = import_events(engine, path, timezone="UTC", batch_size=2)
    assert (first.written, first.unchanged) == (5, 0)
    assert (second.written, second.unchanged) == (0, 5)
    assert _count(engine, events) == 5


def test_batches_stored_while_the_next_is_read_are_counted_and_kept_whole(
    engine: Engine, tmp_path: Path
) -> None:
    """Large batches (PostgreSQL stores one while the next is read, store/bulk.py): written
    and unchanged rows are counted per batch, an id repeated in a later batch is skipped,
    and a file that breaks off midway keeps exactly the whole batches read before."""
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    pad = "t" * 180  # long lines: the decoder reads ahead a few lines only

    def line(n: int) -> str:
        return f"e{n},c1,open,2027-01-01T10:00:00Z,{pad}\n"

    header = "id,contact_id,type,occurred_at,tag\n"
    path = _write(tmp_path, "e.csv", header + "".join(line(n % 250) for n in range(260)))
    first = import_events(engine, path, timezone="UTC", batch_size=120)
    second = import_events(engine, path, timezone="UTC", batch_size=120)
    assert (first.written, first.unchanged) == (250, 10)
    assert (second.written, second.unchanged) == (0, 260)

    broken = tmp_path / "broken.csv"
    good = "".join(line(n) for n in range(1000, 1500)).encode()  # then a bad byte
    broken.write_bytes(header.encode() + good + b"e9,c1,open,2027-01-01T10:00:00Z,\xff\n")
    with pytest.raises(ImportFileError, match="not UTF-8"):
        import_events(engine, broken, timezone="UTC", batch_size=200)
    with engine.connect() as connection:
        kept = set(connection.execute(select(events.c.external_id)).scalars()) - {
            f"e{n}" for n in range(250)
        }
    assert kept == {f"e{n}" for n in range(1000, 1000 + len(kept))}
    assert len(kept) == 400, "the two batches read before the break, not the third"


def test_postgresql_plans_a_segment_on_the_imported_rows_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """Statistics right after the import (ANALYZE): a plan estimated on an empty table made
    a segment count 100 times slower until autovacuum came by."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's planner keeps no statistics trouw's queries need")
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    lines = [
        {"id": f"e{n}", "contact_id": f"c{1 + n % 3}", "type": "purchase",
         "occurred_at": "2027-01-01T10:00:00Z"}
        for n in range(300)
    ]  # fmt: skip
    path = _write(tmp_path, "e.jsonl", "\n".join(json.dumps(line) for line in lines))
    import_events(engine, path, timezone="UTC")
    with engine.connect() as connection:
        estimated = dict(
            connection.execute(
                text(
                    "SELECT relname, reltuples FROM pg_class "
                    "WHERE relname IN ('contacts', 'events')"
                )
            ).all()
        )
    assert estimated == {"contacts": 3, "events": 300}


def test_cli_reports_rejects_and_exits_2(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.csv", BAD_CONTACTS)
    result = cli("import", "contacts", str(path))
    assert result.exit_code == 2
    assert f"{path}, line 3, column 'email': 'not-an-email' is not a valid email" in result.stderr
    assert "2 contacts imported, 7 rejected" in result.stdout


def test_cli_strict_says_nothing_was_imported(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", "contacts", "--strict", str(_write(tmp_path, "bad.csv", BAD_CONTACTS)))
    assert result.exit_code == 2
    assert "nothing imported" in result.stderr
    good = cli("import", "contacts", str(_write(tmp_path, "good.csv", CONTACTS_CSV)))
    assert good.exit_code == 0, good.output
    assert "3 contacts imported" in good.stdout


def test_cli_refuses_an_unknown_extension(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", "contacts", str(_write(tmp_path, "c.txt", CONTACTS_CSV)))
    assert result.exit_code == 2
    assert "--format csv|jsonl" in result.stderr


def test_a_duplicate_id_in_a_later_batch_is_refused_too(engine: Engine, tmp_path: Path) -> None:
    text = "id,email\nd1,first@example.nl\nd2,x@example.nl\nd1,second@example.nl\n"
    report = import_contacts(engine, _write(tmp_path, "d.csv", text), timezone="UTC", batch_size=1)
    assert [(r.line, r.column, r.reason) for r in report.rejected] == [
        (4, "id", "'d1' appears again (earlier in this file)")
    ]
    assert _contact(engine, "d1")["email"] == "first@example.nl"
    # A later import of the same id is an update, not a duplicate.
    again = import_contacts(
        engine, _write(tmp_path, "u.csv", "id,email\nd1,new@example.nl\n"), timezone="UTC"
    )
    assert again.rejected_count == 0
    assert _contact(engine, "d1")["email"] == "new@example.nl"


def test_a_provider_bounce_export_by_email_reaches_contacts_and_suppresses_strangers(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    export = _write(
        tmp_path,
        "bounces.csv",
        "email,type,occurred_at,tag,reason\n"
        "Anna@EXAMPLE.nl,bounce,2027-01-02T10:00:00Z,,550 mailbox unknown\n"
        "ghost@example.org,complaint,2027-01-02T11:00:00Z,,spam\n"
        "soft@example.org,bounce,2027-01-02T12:00:00Z,soft,mailbox full\n",
    )
    report = import_events(engine, export, timezone="UTC")
    assert report.written == 1 and report.rejected_count == 0  # strangers are no bad rows
    # The complaining stranger is suppressed; a soft bounce suppresses nothing.
    assert report.strangers == [(3, "ghost@example.org", True), (4, "soft@example.org", False)]
    with engine.connect() as connection:
        row = connection.execute(select(events.c.contact_id, events.c.type, events.c.properties))
        assert [tuple(r) for r in row] == [("c1", "bounce", {"reason": "550 mailbox unknown"})]
        assert is_suppressed(connection, "ghost@example.org")
        assert not is_suppressed(connection, "soft@example.org")
    # The stranger who complained, imported later, is reported and never mailed.
    later = import_contacts(
        engine, _write(tmp_path, "g.csv", "id,email\ng1,ghost@example.org\n"), timezone="UTC"
    )
    assert later.suppressed == 1


# NUL characters: PostgreSQL keeps none in text or JSON (it failed the batch at the commit,
# after earlier batches were in), SQLite passed them on into mail headers. Each row with one
# is refused like any other bad row, on both databases, and the rest lands.
NUL_CONTACTS = (
    "id,email,first_name,city,note\n"
    "n1,n1@example.nl,Nina,Ede,ok\n"
    "n2,n2@example.nl,Ni\x00na,Ede,ok\n"  # a known column
    "n3,n3@example.nl,Noor,Ede,o\x00k\n"  # an attribute
    "n\x004,n4@example.nl,Noor,Ede,ok\n"  # the id
    "n5,n5@example.nl,Noah,Ede,ok\n"
)


def test_a_nul_in_any_contact_field_refuses_that_row_csv(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path, "nul.csv", NUL_CONTACTS)
    report = import_contacts(engine, path, timezone="UTC", batch_size=2)
    assert [(r.line, r.column) for r in report.rejected] == [
        (3, "first_name"),
        (4, "note"),
        (5, "id"),
    ]
    assert all("NUL" in r.reason and "\x00" not in r.reason for r in report.rejected)
    assert report.written == 2
    with engine.connect() as connection:
        assert set(connection.execute(select(contacts.c.id)).scalars()) == {"n1", "n5"}


def test_a_nul_anywhere_in_a_jsonl_row_refuses_that_row(engine: Engine, tmp_path: Path) -> None:
    rows: list[object] = [
        {"id": "j1", "first_name": "Jet", "tags": ["a", "b"]},
        {"id": "j2", "first_name": "J\u0000et"},
        {"id": "j3", "prefs": {"colour": ["red", "gr\u0000een"]}},  # deep inside an extra
        {"id": "j4", "prefs": {"col\u0000our": "red"}},  # a key inside an extra
        {"id": "j5", "no\u0000te": "x"},  # a column's name
        {"id": "j6", "score": float("nan")},  # PostgreSQL's JSONB refuses NaN as well
        {"id": "j7", "first_name": "Jop", "prefs": {"colour": "blue\nish"}},
    ]
    text = "\n".join(json.dumps(row) for row in rows) + "\n" + "[" * 100_000 + "\n"
    report = import_contacts(engine, _write(tmp_path, "nul.jsonl", text), timezone="UTC")
    assert [(r.line, r.column) for r in report.rejected] == [
        (2, "first_name"),
        (3, "prefs"),
        (4, "prefs"),
        (5, "no\\x00te"),
        (6, "score"),
        (8, None),
    ]
    assert "finite" in report.rejected[4].reason and "nested" in report.rejected[5].reason
    with engine.connect() as connection:
        assert set(connection.execute(select(contacts.c.id)).scalars()) == {"j1", "j7"}
    assert _contact(engine, "j7")["attributes"] == {"prefs": {"colour": "blue\nish"}}


def test_a_nul_in_an_event_refuses_that_row_csv_and_jsonl(engine: Engine, tmp_path: Path) -> None:
    import_contacts(engine, _write(tmp_path, "c.csv", CONTACTS_CSV), timezone="UTC")
    csv_text = (
        "contact_id,type,occurred_at,tag,amount,page\n"
        "c1,click,2027-04-02T10:00:00Z,ok,,/a\n"
        "c1,click,2027-04-02T10:00:00Z,o\x00k,,/a\n"
        "c1,purchase,2027-04-02T10:00:00Z,,1\x002,/a\n"
        "c1,page_view,2027-04-02T10:00:00Z,,,/a\x00\n"
        "c\x001,click,2027-04-02T10:00:00Z,,,/a\n"
        "c2,click,2027-04-02T10:00:00Z,ok,,/b\n"
    )
    report = import_events(
        engine, _write(tmp_path, "e.csv", csv_text), timezone="UTC", batch_size=2
    )
    assert [(r.line, r.column) for r in report.rejected] == [
        (3, "tag"),
        (4, "amount"),
        (5, "page"),
        (6, "contact_id"),
    ]
    assert report.written == 2
    jsonl = [
        {"id": "x1", "contact_id": "c1", "type": "open", "occurred_at": "2027-04-03T10:00:00Z"},
        {"id": "x2", "contact_id": "c1", "type": "open", "occurred_at": "2027-04-03T10:00:00Z",
         "meta": {"ua": "Mozilla\u0000"}},
        {"id": "x\u00003", "contact_id": "c1", "type": "open", "occurred_at": "2027-04-03"},
        {"id": "x4", "contact_id": "c1", "type": "purchase", "occurred_at": "2027-04-03",
         "amount": float("inf")},
        {"id": "x5", "contact_id": "c2", "type": "open", "occurred_at": "2027-04-03T10:00:00Z"},
    ]  # fmt: skip
    text = "\n".join(json.dumps(row) for row in jsonl)
    report = import_events(engine, _write(tmp_path, "e.jsonl", text), timezone="UTC", batch_size=2)
    assert [(r.line, r.column) for r in report.rejected] == [(2, "meta"), (3, "id"), (4, "amount")]
    assert report.written == 2
    assert _count(engine, events) == 4


def test_a_nul_in_the_csv_header_is_a_file_error(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, "h.csv", "id,no\x00te\nh1,x\n")
    result = cli("import", "contacts", str(path))
    assert result.exit_code == 2
    assert f"{path}, line 1: column 2 of the header, 'no\\x00te', contains a NUL" in result.stderr


def test_cli_names_the_file_line_and_column_of_a_nul_and_imports_the_rest(
    cli: Cli, tmp_path: Path
) -> None:
    path = _write(tmp_path, "nul.csv", NUL_CONTACTS)
    result = cli("import", "contacts", "--batch-size", "1", str(path))
    assert result.exit_code == 2
    assert f"{path}, line 3, column 'first_name': contains a NUL character" in result.stderr
    assert "2 contacts imported, 3 rejected" in result.stdout
    assert cli("contacts", "show", "n5").exit_code == 0


def test_a_bounce_export_finds_contacts_whatever_the_case_of_the_address(
    engine: Engine, tmp_path: Path
) -> None:
    """Frank@Hand.test is frank@hand.test, and Greet@Shop.test (as imported) greet@shop.test:
    mailbox providers ignore case. A bounce for an address no contact has is no bad row: the
    address is suppressed and reported; the others land."""
    contacts_csv = "id,email\nf1,frank@hand.test\ng1,Greet@Shop.test\n"
    import_contacts(engine, _write(tmp_path, "c.csv", contacts_csv), timezone="UTC")
    export = _write(
        tmp_path,
        "bounces.csv",
        "email,type,occurred_at\n"
        "Frank@Hand.test,bounce,2027-01-02T10:00:00Z\n"
        "nobody@hand.test,bounce,2027-01-02T10:00:00Z\n"
        "greet@SHOP.TEST,complaint,2027-01-02T11:00:00Z\n",
    )
    report = import_events(engine, export, timezone="UTC")
    assert report.written == 2 and report.rejected_count == 0
    assert report.strangers == [(3, "nobody@hand.test", True)]
    with engine.connect() as connection:
        rows = connection.execute(select(events.c.contact_id, events.c.type))
        assert sorted(tuple(r) for r in rows) == [("f1", "bounce"), ("g1", "complaint")]


def test_with_an_exact_local_part_only_the_domain_ignores_case(cli: Cli, tmp_path: Path) -> None:
    """`[bounces] local_part = "exact"` holds for a bounce export too: Frank@ is not frank@,
    while HAND.test is hand.test (domains never have case). A stranger's row is reported,
    and a complaint suppresses the address, without failing the import."""
    settings = cli.project / "trouw.toml"
    settings.write_text(
        settings.read_text(encoding="utf-8") + '\n[bounces]\nlocal_part = "exact"\n',
        encoding="utf-8",
    )
    people = _write(tmp_path, "c.csv", "id,email\nf1,frank@hand.test\n")
    assert cli("import", "contacts", str(people)).exit_code == 0
    export = _write(
        tmp_path,
        "bounces.csv",
        "email,type,occurred_at,tag\n"
        "frank@HAND.test,bounce,2027-01-02T10:00:00Z,soft\n"
        "Frank@hand.test,bounce,2027-01-02T11:00:00Z,soft\n"
        "ghost@hand.test,complaint,2027-01-02T12:00:00Z,\n",
    )
    result = cli("import", "events", str(export))
    assert result.exit_code == 0, result.output  # strangers are reported, not bad rows
    assert "1 events imported" in result.stdout
    assert "1 soft bounces of addresses no contact has: nothing to do" in result.stdout
    assert (
        "1 bounced or complaining addresses belong to no contact: 'ghost@hand.test' (line 4); "
        "they are suppressed and never mailed." in result.stdout
    )

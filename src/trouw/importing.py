"""CSV/JSONL -> contacts and events: streamed, validated, written in batches.

Memory stays flat whatever the file size: rows are read one at a time and
written in batches of `batch_size`, each batch in its own transaction, so an
interrupted import leaves only whole batches behind. With `strict`, all
batches share one transaction that is rolled back if any row is bad.

Bad rows are collected with file, line, column and reason; the valid rest is
imported. Every text field is refused if it holds a line break: such values
end up in mail headers, where CR/LF means header injection. A NUL character,
a lone surrogate (JSON's `"\ud800"`) or a non-finite number (NaN, Infinity)
anywhere in a row refuses the row too: PostgreSQL stores none of them in text
or JSON, and would fail the whole batch at the commit.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import json
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import Connection, Engine, Select, bindparam, exists, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.dml import Insert

from trouw.errors import ImportFileError
from trouw.notation import (
    DateFormat,
    DecimalMark,
    Notation,
    number_doubt,
    read_date,
    read_moment,
    read_number,
)
from trouw.store import atomic, contacts, events, refresh_statistics, suppressions
from trouw.store.among import among
from trouw.store.bulk import BulkInsert

Format = Literal["csv", "jsonl"]
Kind = Literal["contacts", "events"]
MAX_REPORTED = 1000  # rejected rows kept for the report; all are counted

CONTACT_FIELDS = (
    "id", "email", "first_name", "last_name", "locale", "timezone", "birthday",
    "customer_since", "channel", "street", "postcode", "city", "country",
)  # fmt: skip
EVENT_FIELDS = (
    "id", "contact_id", "type", "occurred_at", "tag", "url", "product", "category", "amount",
    "score",
)  # fmt: skip
CHANNELS = ("email", "post", "none")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}  # the ones a CSV file may use
REQUIRED = {"contacts": ("id",), "events": ("contact_id", "email")}  # the header has one
EXAMPLE_HEADER = {
    "contacts": ("id", "email", "first_name", "last_name", "birthday"),
    "events": ("contact_id", "type", "occurred_at", "amount"),
}
REJECT_COLUMN = "reject_reason"  # written first by --rejects; ignored when read back

# The WHATWG "valid e-mail address" grammar (what browsers accept in <input type=email>).
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)
_LOCALE = re.compile(r"^[a-z]{2,3}(?:-[A-Z]{2})?$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_BREAK = re.compile("[\r\n\x0b\x0c\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SIGNS = frozenset("-0123456789")  # how a number starts
_LINE_BREAK = "contains a line break (refused: it could inject mail headers)"
_NUL = "contains a NUL character (\\0), which no database keeps in text: remove it from the file"
_NOT_TEXT = "is not valid text (a lone surrogate such as \\ud800): correct the value in the file"
_NOT_FINITE = "is not a finite number (NaN or Infinity): give a number, or leave it empty"


def has_line_break(value: str) -> bool:
    # isprintable() is a fast C check that every line break fails; the regex
    # then tells line breaks from harmless tabs.
    return not value.isprintable() and _BREAK.search(value) is not None


def text_problem(value: str, *, breaks: bool = True) -> str | None:
    """Why a text value cannot be imported, or None: a NUL, a lone surrogate or (with
    `breaks`) a line break."""
    if value.isprintable():  # a fast C check that each of them fails
        return None
    if "\x00" in value:
        return _NUL
    if _SURROGATE.search(value) is not None:
        return _NOT_TEXT
    if breaks and _BREAK.search(value) is not None:
        return _LINE_BREAK
    return None


def json_problem(value: Any) -> str | None:
    """Why a JSON value (an extra column of JSONL) cannot be stored, or None: a NUL or a lone
    surrogate in any string or key inside it, or a non-finite number."""
    stack = [value]
    while stack:  # not recursive: json.loads nests as deep as the interpreter allows
        item = stack.pop()
        if isinstance(item, str):
            why = text_problem(item, breaks=False)
        elif isinstance(item, float):
            why = None if math.isfinite(item) else _NOT_FINITE
        elif isinstance(item, list):
            stack.extend(item)
            continue
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
            continue
        else:
            continue
        if why is not None:
            return why
    return None


def _shown(name: str) -> str:
    """A column name fit to print: control characters and surrogates escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


class RowError(Exception):
    """One bad value in one row."""

    def __init__(
        self, column: str | None, reason: str, original: list[str] | str | None = None
    ) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason
        self.original = original  # a row that could not be read: its fields or its text


@dataclass(frozen=True)
class Rejected:
    line: int
    column: str | None
    reason: str

    def describe(self, path: Path) -> str:
        where = f"{path}, line {self.line}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"

    def where(self) -> str:
        """Line, column and reason, for the rejects file."""
        column = f", column '{self.column}'" if self.column else ""
        return f"line {self.line}{column}: {self.reason}"


@dataclass
class ImportReport:
    path: Path
    kind: str
    strict: bool = False
    rows: int = 0
    written: int = 0
    unchanged: int = 0  # events whose id was imported before
    rejected_count: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    suppressed: int = 0  # contacts whose address was forgotten before
    # (line, address, suppressed) of bounces and complaints for an address no contact has
    strangers: list[tuple[int, str, bool]] = field(default_factory=list)
    delimiter: str | None = None  # a CSV file's, given or found from its header line
    doubts: dict[str, tuple[int, str]] = field(default_factory=dict)  # see Notation
    on_reject: Callable[[Rejected], None] | None = field(default=None, repr=False)

    @property
    def applied(self) -> bool:
        return not (self.strict and self.rejected_count)

    def reject(self, line: int, error: RowError) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED:
            self.rejected.append(Rejected(line, error.column, error.reason))
        if self.on_reject is not None:
            self.on_reject(Rejected(line, error.column, error.reason))


# ----------------------------------------------------------------------------- reading


def detect_format(path: Path, fmt: str | None) -> Format:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise ImportFileError(f"unknown format '{fmt}'", fix="use --format csv or jsonl")
        return fmt  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ImportFileError(
        f"cannot tell the format from the extension '{suffix}'",
        path=path,
        fix="name the file .csv or .jsonl, or pass --format csv|jsonl",
    )


@dataclass
class CsvLayout:
    """How a CSV file is laid out: its delimiter (given, or else found from the header line)
    and its header once read. With `kind`, the header must name that kind's key column."""

    delimiter: str | None = None
    kind: Kind | None = None
    header: list[str] | None = None


def read_records(
    path: Path,
    fmt: Format,
    progress: Callable[[int], None] | None = None,
    *,
    layout: CsvLayout | None = None,
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Yield (line number, record or the reason it cannot be read), streaming. A column
    `reject_reason` (a fixed --rejects file) is left out."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot open: {exc.strerror}", path=path) from exc
    with handle:
        lines: Iterable[str] = handle if progress is None else _counted(handle, progress)
        try:
            if fmt == "csv":
                yield from _csv_records(path, lines, layout or CsvLayout())
            else:
                yield from _jsonl_records(lines)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"not UTF-8 text ({exc.reason})", path=path, fix="save the file as UTF-8"
            ) from exc


def _counted(lines: Iterable[str], progress: Callable[[int], None]) -> Iterator[str]:
    for line in lines:
        progress(len(line))
        yield line


def _csv_records(
    path: Path, lines: Iterable[str], layout: CsvLayout
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        return
    if layout.delimiter is None:
        layout.delimiter = _find_delimiter(first, REQUIRED.get(layout.kind or "", ()))
    reader = csv.reader(itertools.chain([first], lines), delimiter=layout.delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise ImportFileError(f"unreadable CSV header: {exc}", path=path, line=1) from exc
    for number, name in enumerate(header, start=1):
        why = text_problem(name)
        if why is not None:
            raise ImportFileError(
                f"column {number} of the header, '{_shown(name)}', {why}",
                path=path,
                line=1,
                fix="give every column a plain name",
            )
    if len(set(header)) != len(header) or "" in header:
        raise ImportFileError(
            "the header has empty or repeated column names",
            path=path,
            line=1,
            fix="give every column one unique name",
        )
    if layout.kind is not None:
        _check_header(path, header, layout.kind, layout.delimiter)
    layout.header = [name for name in header if name != REJECT_COLUMN]
    width = len(header)
    line = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, RowError(None, f"unreadable CSV: {exc}", [])
            continue
        start, line = line + 1, reader.line_num
        if not values:
            continue  # a blank line
        if len(values) != width:
            why = f"has {len(values)} fields, the header has {width}"
            yield start, RowError(None, why, values)
            continue
        record = dict(zip(header, values, strict=True))  # "" means empty, as None does
        record.pop(REJECT_COLUMN, None)
        yield start, record


def _find_delimiter(line: str, required: tuple[str, ...]) -> str:
    """The delimiter (of DELIMITERS) that splits the header line into a required column,
    else into the most columns; a tie goes to the comma. Like csv.Sniffer on one line, but
    a semicolon header whose names hold a comma ("naam, voornaam") still reads right."""

    def fit(delimiter: str) -> tuple[bool, int]:
        try:
            names = [name.strip() for name in next(csv.reader([line], delimiter=delimiter))]
        except (csv.Error, StopIteration):
            return False, 0
        return any(name in required for name in names), len(names)

    return max(DELIMITERS, key=fit)


_DATA = re.compile(r"^[-+]?\d[\d\s.,/:-]*$")  # a number, a date, a time, a phone number


def _check_header(path: Path, header: list[str], kind: Kind, delimiter: str) -> None:
    """Refuse a header without the key column of `kind`: most often a file without a header,
    whose first row would otherwise be taken for one."""
    required = REQUIRED[kind]
    if any(name in header for name in required):
        return
    names = " or ".join(f"'{name}'" for name in required)
    example = delimiter.join(EXAMPLE_HEADER[kind])
    if any(_DATA.match(name) or _EMAIL.match(name) for name in header):
        raise ImportFileError(
            f"the first line looks like data, not a header: it has no column {names}",
            path=path,
            line=1,
            fix=f"add a first line that names the columns, such as: {example}",
        )
    others = [d for d in DELIMITERS if d != delimiter and d in header[0]]
    if len(header) == 1 and others:
        raise ImportFileError(
            f"the header reads as one column, '{_shown(header[0])}', split by "
            f"{DELIMITERS[delimiter]}s",
            path=path,
            line=1,
            fix=f"leave out --delimiter to find it, or give the file's own: "
            f"--delimiter {'tab' if others[0] == chr(9) else repr(others[0])}",
        )
    shown = ", ".join(f"'{_shown(name)}'" for name in header[:12])
    key = (
        "name the column with the shop's own customer key 'id'"
        if kind == "contacts"
        else "name the column with the contact's id 'contact_id' (or give an 'email' column)"
    )
    raise ImportFileError(
        f"the header has no column {names} (it has {shown}{', ...' if len(header) > 12 else ''})",
        path=path,
        line=1,
        fix=f"{key}, as in: {example}",
    )


def _jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, RowError(None, f"not valid JSON: {exc.msg}", text.rstrip("\r\n"))
            continue
        except RecursionError:
            yield number, RowError(None, "not valid JSON here: nested too deeply", text)
            continue
        if not isinstance(record, dict):
            yield number, RowError(None, "expected a JSON object per line", text.rstrip("\r\n"))
            continue
        record.pop(REJECT_COLUMN, None)
        yield number, record


# ----------------------------------------------------------------------------- values


def text_value(column: str, value: Any, max_length: int = 200) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RowError(column, f"expected text, got {type(value).__name__}")
        value = str(value)
    value = value.strip()
    why = text_problem(value)
    if why is not None:
        raise RowError(column, why)
    if len(value) > max_length:
        raise RowError(column, f"longer than {max_length} characters")
    return value or None


def normalise_email(value: str) -> str:
    """Trim and lower-case the domain; the local part is case-sensitive by the RFC."""
    local, _, domain = value.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def email_hash(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()


def email_value(value: Any) -> str | None:
    text = text_value("email", value, 320)
    if text is None:
        return None
    email = normalise_email(text)
    if not _EMAIL.match(email):
        raise RowError("email", f"'{text}' is not a valid email address")
    return email


def date_value(column: str, value: Any, fmt: DateFormat | None = None) -> date | None:
    """A date in ISO 8601 or `fmt` (--date-format): see trouw.notation."""
    text = text_value(column, value, 10)
    if text is None:
        return None
    try:
        return read_date(text, fmt)
    except ValueError as exc:
        raise RowError(column, str(exc)) from None


def number_value(column: str, value: Any, mark: DecimalMark | None = None) -> float | None:
    """A number; text is read with the decimal `mark` (see trouw.notation)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            raise RowError(column, _NOT_FINITE)
        return number
    if isinstance(value, str):
        read = read_number(value, mark)
        if read is not None:
            return float(read)
        why = text_problem(value) or number_doubt(value, mark)
        if why is not None:
            raise RowError(column, why)
    example = "12,50" if mark == "," else "12.50"
    raise RowError(column, f"'{value}' is not a number (such as {example})")


def typed_extra(value: Any, mark: DecimalMark | None = None) -> Any:
    """A CSV value that reads as a number becomes one (but '0123' stays text); one that is
    a number only in another notation (4.500, 4,5) stays text: see trouw.notation."""
    if isinstance(value, str):
        number = read_number(value, mark)
        if number is not None:
            return number
    return value


def extras(
    record: dict[str, Any], known: tuple[str, ...], notation: Notation | None = None
) -> dict[str, Any]:
    """The other columns, typed; a value kept as text that looks like a number in another
    notation is counted in `notation.doubts`, so the import can say so."""
    mark = notation.decimal_mark if notation is not None else None
    result = {}
    for key, value in record.items():
        if key in known or value is None or value == "":
            continue
        why = text_problem(key)
        if why is not None:
            raise RowError(_shown(key), f"the column's name {why}")
        why = text_problem(value) if type(value) is str else json_problem(value)
        if why is not None:
            raise RowError(key, why)
        typed = typed_extra(value, mark)
        if notation is not None and typed is value and type(value) is str and value[:1] in _SIGNS:
            doubt = number_doubt(value, mark)
            if doubt is not None:
                notation.doubt(key, doubt)
        result[key] = typed
    return result


# ----------------------------------------------------------------------------- contacts


CHANNEL = CONTACT_FIELDS.index("channel")  # its place in a contact row


def new_link_key() -> str:
    """A contact row's link key: random, so a later row with the same id has another one
    (signed into the contact's links: see templates/links.py). It only has to differ."""
    return secrets.token_urlsafe(6)


@functools.cache
def _time_zones() -> frozenset[str]:
    """The IANA zone names: read from disk once per process (the API parses per request)."""
    return frozenset(available_timezones())


class _Kind:
    """Parses, screens and stores the rows of one kind (contacts, events)."""

    def send(
        self, connection: Connection, rows: list[tuple[Any, ...]], report: ImportReport
    ) -> Callable[[], None]:
        """Start storing `rows` (screened); the function returned waits for it and counts
        it in `report`. Until then the connection serves nothing else (BulkInsert.send)."""
        raise NotImplementedError

    def store(
        self, connection: Connection, rows: list[tuple[Any, ...]], report: ImportReport
    ) -> None:
        """Store `rows` (screened) and count them in `report`."""
        self.send(connection, rows, report)()


class _Contacts(_Kind):
    # link_key last: given to new rows only (the upsert leaves a stored one as it is).
    columns = ("id", *CONTACT_FIELDS[1:], "attributes", "created_at", "updated_at", "link_key")

    def __init__(self, notation: Notation | None = None) -> None:
        self.notation = notation or Notation()
        self.zones = _time_zones()
        self.now = datetime.now(UTC).replace(tzinfo=None)
        self.any_suppressed: bool | None = None
        self.insert = BulkInsert(contacts, self.columns, _contacts_upsert)

    def parse(self, line: int, record: dict[str, Any]) -> tuple[Any, ...]:
        contact_id = text_value("id", record.get("id"))
        if contact_id is None:
            raise RowError("id", "is required")
        locale = text_value("locale", record.get("locale"), 20)
        if locale is not None:
            locale = locale.replace("_", "-")
            if not _LOCALE.match(locale):
                raise RowError("locale", f"'{locale}' is not a language code such as nl or en")
        zone = text_value("timezone", record.get("timezone"), 64)
        if zone is not None and zone not in self.zones:
            raise RowError("timezone", f"'{zone}' is not an IANA time zone (Europe/Amsterdam)")
        channel = text_value("channel", record.get("channel"), 10)
        if channel is not None:
            channel = channel.lower()
            if channel not in CHANNELS:
                raise RowError("channel", f"'{channel}' is not one of email, post, none")
        country = text_value("country", record.get("country"), 2)
        if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
            raise RowError("country", f"'{country}' is not a two-letter country code")
        row = (
            contact_id,
            email_value(record.get("email")),
            text_value("first_name", record.get("first_name")),
            text_value("last_name", record.get("last_name")),
            locale,
            zone,
            date_value("birthday", record.get("birthday"), self.notation.date_format),
            date_value("customer_since", record.get("customer_since"), self.notation.date_format),
            channel,  # None: resolved in screen()
            text_value("street", record.get("street")),
            text_value("postcode", record.get("postcode"), 20),
            text_value("city", record.get("city"), 100),
            country.upper() if country else None,
            extras(record, CONTACT_FIELDS, self.notation),
            self.now,
            self.now,
            new_link_key(),
        )
        return row

    def screen(
        self,
        connection: Connection,
        rows: list[tuple[Any, ...]],
        lines: list[int],
        report: ImportReport,
    ) -> list[tuple[Any, ...]]:
        """Rows fit to write: one per id, channels resolved; forgotten addresses counted.

        An id seen earlier in the file is refused. Within a batch a dict finds
        it; across batches the database does, as a row this very import wrote
        (its `updated_at` is this run's timestamp), so memory stays flat.
        """
        query = select(contacts.c.id, contacts.c.channel, contacts.c.updated_at).where(
            contacts.c.id.in_(bindparam("ids", expanding=True))
        )
        stored = {
            contact_id: (channel, updated_at)
            for contact_id, channel, updated_at in connection.execute(
                query, {"ids": [row[0] for row in rows]}
            )
        }
        first_lines: dict[str, int] = {}
        kept = []
        for line, row in zip(lines, rows, strict=True):
            contact_id = row[0]
            channel, updated_at = stored.get(contact_id, ("email", None))
            if contact_id in first_lines:
                where = f"first on line {first_lines[contact_id]}"
            elif updated_at == self.now:
                where = "earlier in this file"
            else:
                first_lines[contact_id] = line
                if row[CHANNEL] is None:  # keep the stored channel; a new contact gets email
                    row = (*row[:CHANNEL], channel, *row[CHANNEL + 1 :])
                kept.append(row)
                continue
            report.reject(line, RowError("id", f"'{contact_id}' appears again ({where})"))
        if self.any_suppressed is None:  # asked once per import: usually there are none
            self.any_suppressed = bool(
                connection.execute(select(exists().select_from(suppressions))).scalar()
            )
        hashes = [email_hash(row[1]) for row in kept if row[1]] if self.any_suppressed else []
        if hashes:
            report.suppressed += connection.execute(
                select(func.count())
                .select_from(suppressions)
                .where(suppressions.c.email_hash.in_(bindparam("hashes", expanding=True))),
                {"hashes": hashes},
            ).scalar_one()
        return kept

    def send(
        self, connection: Connection, rows: list[tuple[Any, ...]], report: ImportReport
    ) -> Callable[[], None]:
        written = self.insert.send(connection, rows)

        def counted() -> None:
            written()
            report.written += len(rows)

        return counted


def _contacts_upsert(statement: Any) -> Insert:
    """Insert, or update by id: an empty value keeps what is stored, attributes merge."""
    excluded = statement.excluded
    if isinstance(statement, postgresql.Insert):
        merge: Any = contacts.c.attributes.op("||")(excluded.attributes)
    else:
        merge = func.json_patch(contacts.c.attributes, excluded.attributes)
    updates: dict[str, Any] = {
        name: func.coalesce(excluded[name], contacts.c[name]) for name in CONTACT_FIELDS[1:]
    }
    updates["attributes"] = merge
    updates["updated_at"] = excluded.updated_at
    result: Insert = statement.on_conflict_do_update(index_elements=["id"], set_=updates)
    return result


# ----------------------------------------------------------------------------- events


class _ByEmail(str):
    """An event's contact given by email address (provider exports): resolved in `screen`."""


def suppress_addresses(connection: Connection, addresses: Iterable[str], reason: str) -> int:
    """Keep a suppression record (a hash) of each address not yet suppressed; returns how many."""
    hashes = sorted({email_hash(address) for address in addresses})
    if not hashes:
        return 0
    known = set(
        connection.execute(
            select(suppressions.c.email_hash).where(
                suppressions.c.email_hash.in_(bindparam("hashes", expanding=True))
            ),
            {"hashes": hashes},
        ).scalars()
    )
    new = [h for h in hashes if h not in known]
    if new:
        now = datetime.now(UTC).replace(tzinfo=None)
        connection.execute(
            insert(suppressions),
            [{"email_hash": h, "reason": reason, "created_at": now} for h in new],
        )
    return len(new)


def contacts_with(
    connection: Connection, addresses: Iterable[str], local_part: str = "any-case"
) -> list[tuple[str, str]]:
    """(contact id, stored email) of the contacts with one of `addresses`, by id: how bounce
    exports and bounce reports find their contacts. The domain is compared without case; the
    local part too, as mailbox providers do, unless `local_part` is "exact"."""
    wanted = {normalise_email(a) for a in addresses if "@" in a}
    if not wanted:
        return []
    query = select(contacts.c.id, contacts.c.email).order_by(contacts.c.id)
    if local_part == "exact":
        rows = connection.execute(query.where(contacts.c.email.in_(sorted(wanted)))).all()
        return [(str(i), str(e)) for i, e in rows]
    # lower(email) cannot use the email index: ask the index for the usual spellings first,
    # and scan only when an address is not found that way.
    lowered = {a.lower() for a in wanted}
    rows = connection.execute(query.where(contacts.c.email.in_(sorted(wanted | lowered)))).all()
    if lowered - {str(e).lower() for _, e in rows}:
        rows = connection.execute(
            query.where(func.lower(contacts.c.email).in_(sorted(lowered)))
        ).all()
    return [(str(i), str(e)) for i, e in rows]


@functools.cache
def _known_ids(dialect: str) -> Select[Any]:
    """The contacts among some ids: built once (an API request screens a handful of events,
    and making the statement cost more than running it)."""
    return select(contacts.c.id).where(among(contacts.c.id, dialect))


class _Events(_Kind):
    columns = ("external_id", *EVENT_FIELDS[1:], "properties")

    def __init__(
        self, default_tz: str, notation: Notation | None = None, local_part: str = "any-case"
    ) -> None:
        self.notation = notation or Notation()
        self.zone = ZoneInfo(default_tz)
        self.local_part = local_part  # how rows by email find their contact ([bounces])
        self.insert = BulkInsert(
            events,
            self.columns,
            lambda statement: statement.on_conflict_do_nothing(index_elements=["external_id"]),
        )

    def parse(self, line: int, record: dict[str, Any]) -> tuple[Any, ...]:
        contact_id: str | None = text_value("contact_id", record.get("contact_id"))
        if contact_id is None:
            email = email_value(record.get("email"))
            if email is None:
                raise RowError(
                    "contact_id",
                    "is required (or an email column, as in a provider's bounce export)",
                )
            contact_id = _ByEmail(email)
        kind = text_value("type", record.get("type"), 50)
        if kind is None:
            raise RowError("type", "is required")
        if not _EVENT_TYPE.match(kind):
            raise RowError("type", f"'{kind}' must be lower-case letters, digits and _")
        tag = text_value("tag", record.get("tag"))
        score = self._score(kind, tag, record.get("score"))
        return (
            text_value("id", record.get("id")),
            contact_id,
            kind,
            self._moment(record.get("occurred_at")),
            tag,
            text_value("url", record.get("url"), 2000),
            text_value("product", record.get("product")),
            text_value("category", record.get("category")),
            number_value("amount", record.get("amount"), self.notation.decimal_mark),
            score,
            extras(record, (*EVENT_FIELDS, "email"), self.notation),
        )

    def _moment(self, value: Any) -> datetime:
        text = text_value("occurred_at", value, 40)
        if text is None:
            raise RowError("occurred_at", "is required")
        try:
            moment = read_moment(text, self.notation.date_format)
        except ValueError as exc:
            raise RowError("occurred_at", str(exc)) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)  # read in the project's time zone
        return moment.astimezone(UTC).replace(tzinfo=None)

    def _score(self, kind: str, tag: str | None, value: Any) -> int | None:
        number = number_value("score", value, self.notation.decimal_mark)
        if number is None:
            if kind == "survey":
                raise RowError("score", "a survey answer needs a score")
            return None
        if number != int(number):
            raise RowError("score", f"'{value}' is not a whole number")
        if kind == "survey":
            low, high = {"nps": (0, 10), "csat": (1, 5)}.get(tag or "", (0, 10))
            if tag not in ("nps", "csat"):
                raise RowError("tag", "a survey answer needs tag nps (score 0-10) or csat (1-5)")
            if not low <= number <= high:
                raise RowError("score", f"{tag} scores run from {low} to {high}, got {value}")
        return int(number)

    def screen(
        self,
        connection: Connection,
        rows: list[tuple[Any, ...]],
        lines: list[int],
        report: ImportReport,
    ) -> list[tuple[Any, ...]]:
        """Rows whose contact exists (rows by email: one per contact with it); the others are
        rejected with their line. A hard bounce or complaint for an address no contact
        has suppresses the address, so a contact imported with it later is never mailed."""
        ids = {row[1] for row in rows if not isinstance(row[1], _ByEmail)}
        known: set[str] = set()
        if ids:
            known.update(
                connection.execute(_known_ids(connection.dialect.name), {"ids": ids}).scalars()
            )
        owners: dict[str, list[str]] = {}  # by the address as `local_part` compares it
        addresses = {str(row[1]) for row in rows if isinstance(row[1], _ByEmail)}
        for contact_id, email in contacts_with(connection, addresses, self.local_part):
            owners.setdefault(self._compared(email), []).append(contact_id)
        good = []
        for line, row in zip(lines, rows, strict=True):
            if not isinstance(row[1], _ByEmail):
                if row[1] in known:
                    good.append(row)
                else:
                    why = f"no contact with id '{row[1]}' (import the contacts first)"
                    report.reject(line, RowError("contact_id", why))
                continue
            email = str(row[1])
            found = owners.get(self._compared(email))
            if found:
                good.extend((row[0], owner, *row[2:]) for owner in found)
            elif row[2] in ("bounce", "complaint"):
                # Nobody to attach it to, yet the report is no bad row: a hard bounce or a
                # complaint suppresses the address, so a contact imported with it later is
                # never mailed; a soft bounce of a stranger changes nothing.
                hard = row[4] != "soft"
                if hard:
                    suppress_addresses(connection, [email], row[2])
                report.strangers.append((line, email, hard))
            else:
                report.reject(line, RowError("email", f"no contact has '{email}'"))
        return good

    def _compared(self, email: str) -> str:
        """An address as matching compares it: the domain without case, and the local part
        too unless `local_part` is "exact" (Frank@Hand.test is frank@hand.test)."""
        email = normalise_email(email)
        return email if self.local_part == "exact" else email.lower()

    def send(
        self, connection: Connection, rows: list[tuple[Any, ...]], report: ImportReport
    ) -> Callable[[], None]:
        written = self.insert.send(connection, rows)

        def counted() -> None:
            count = written()
            report.written += count
            report.unchanged += len(rows) - count

        return counted


# ----------------------------------------------------------------------------- driver


def import_contacts(
    engine: Engine,
    path: Path,
    *,
    timezone: str,
    fmt: str | None = None,
    strict: bool = False,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    **reading: Any,
) -> ImportReport:
    """Upsert contacts by id from a CSV or JSONL file. `reading`: delimiter, date_format,
    decimal_mark, rejects, as import_file takes them."""
    return import_file(
        engine,
        "contacts",
        path,
        timezone=timezone,
        fmt=fmt,
        strict=strict,
        batch_size=batch_size,
        progress=progress,
        **reading,
    )


def import_events(
    engine: Engine,
    path: Path,
    *,
    timezone: str,
    fmt: str | None = None,
    strict: bool = False,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    **reading: Any,
) -> ImportReport:
    """Append events from a CSV or JSONL file; rows with a known `id` are skipped.
    `reading`: delimiter, date_format, decimal_mark, rejects, as import_file takes them."""
    return import_file(
        engine,
        "events",
        path,
        timezone=timezone,
        fmt=fmt,
        strict=strict,
        batch_size=batch_size,
        progress=progress,
        **reading,
    )


def import_file(
    engine: Engine,
    kind: Kind,
    path: Path,
    *,
    timezone: str,
    fmt: str | None = None,
    strict: bool = False,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    delimiter: str | None = None,
    date_format: str | DateFormat | None = None,
    decimal_mark: DecimalMark | None = None,
    rejects: Path | None = None,
    local_part: str = "any-case",
) -> ImportReport:
    """Import `kind` ("contacts" or "events") from `path`; see the module docstring.

    `delimiter` (, ; or a tab) is found from the header line when not given; dates and
    numbers follow `date_format` and `decimal_mark` (see trouw.notation). With `rejects`,
    every refused row is written to that file, its reason first (see RejectsFile). Events
    given by e-mail address find their contact as `local_part` says ([bounces]).
    """
    form = detect_format(path, fmt)
    if delimiter is not None and delimiter not in DELIMITERS:
        raise ImportFileError(
            f"the delimiter {delimiter!r} is not one a CSV file may use here",
            fix="give --delimiter ',' or ';' or tab, or leave it out to find it",
        )
    if isinstance(date_format, str):
        try:
            date_format = DateFormat.parse(date_format)
        except ValueError as exc:
            raise ImportFileError(str(exc), key="date format") from None
    layout = CsvLayout(delimiter=delimiter, kind=kind)
    notation = Notation(date_format, decimal_mark)
    records = read_records(path, form, progress, layout=layout)
    report = ImportReport(path=path, kind=kind, strict=strict)
    with ExitStack() as stack:
        sink = None
        if rejects is not None:
            sink = stack.enter_context(RejectsFile(rejects, form, layout, path))
            report.on_reject = sink.write
        # Strict: one transaction around every batch, rolled back if any row was bad.
        outer = stack.enter_context(atomic(engine)) if strict else None
        parser = parser_for(kind, timezone, notation, local_part)
        batches = stack.enter_context(_Batches(engine, outer, parser, report))
        rows: list[tuple[Any, ...]] = []
        lines: list[int] = []
        for line, record in records:
            if sink is not None:
                sink.keep(line, record)
            row = parse_record(parser, line, record, report)
            if row is not None:
                rows.append(row)
                lines.append(line)
            elif sink is not None:
                sink.forget(line)  # written already
            if len(rows) >= batch_size:
                batches.flush(rows, lines)
                rows, lines = [], []
                if sink is not None:
                    sink.clear()
        if rows:
            batches.flush(rows, lines)
        batches.finish()
        if outer is not None and report.rejected_count:
            outer.rollback()
            report.written = report.unchanged = report.suppressed = 0
    if report.written:
        refresh_statistics(engine, parser.insert.table)  # the segments count next
    report.delimiter = layout.delimiter if form == "csv" else None
    report.doubts = notation.doubts
    return report


class RejectsFile:
    """Every refused row as it was read, with `reject_reason` (line, column, why) as the
    first column: fix the rows and import the file again, which ignores that column. Same
    format, delimiter and BOM as the file imported. Written to FILE.part and renamed at the
    end, so the file is whole or absent; holds one batch of rows in memory at most."""

    def __init__(self, target: Path, fmt: Format, layout: CsvLayout, source: Path) -> None:
        self.target = target
        self.part = target.with_name(target.name + ".part")
        self.fmt = fmt
        self.layout = layout
        try:
            with source.open("rb") as head:
                self.bom = head.read(3) == b"\xef\xbb\xbf"  # Excel wants it back
        except OSError:
            self.bom = False  # reading the file will say why
        self.kept: dict[int, dict[str, Any] | RowError] = {}
        self.handle: Any = None
        self.writer: Any = None

    def __enter__(self) -> RejectsFile:
        try:
            self.handle = self.part.open(
                "w", encoding="utf-8-sig" if self.bom else "utf-8", newline=""
            )
        except OSError as exc:
            raise ImportFileError(
                f"cannot write the rejects file: {exc.strerror}",
                path=self.target,
                fix="give --rejects a file in a folder you can write to",
            ) from exc
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            if error is None:
                self._start()  # the header, also when no row was refused
        finally:
            self.handle.close()
        if error is None:
            os.replace(self.part, self.target)
        else:
            self.part.unlink(missing_ok=True)

    def keep(self, line: int, record: dict[str, Any] | RowError) -> None:
        self.kept[line] = record

    def forget(self, line: int) -> None:
        self.kept.pop(line, None)

    def clear(self) -> None:
        self.kept.clear()

    def _start(self) -> None:
        if self.writer is None and self.fmt == "csv":
            self.writer = csv.writer(self.handle, delimiter=self.layout.delimiter or ",")
            self.writer.writerow([REJECT_COLUMN, *(self.layout.header or [])])

    def write(self, rejected: Rejected) -> None:
        record = self.kept.get(rejected.line)
        original = record.original if isinstance(record, RowError) else None
        if self.fmt == "jsonl":
            if isinstance(record, dict):
                entry = {REJECT_COLUMN: rejected.where(), **record}
            else:  # not a JSON object: its text, to fix by hand
                entry = {REJECT_COLUMN: rejected.where(), "reject_text": original}
            self.handle.write(json.dumps(entry) + "\n")
            return
        self._start()
        if isinstance(record, dict):
            values = [record.get(name) or "" for name in self.layout.header or ()]
        else:
            values = list(original) if isinstance(original, list) else []
        self.writer.writerow([rejected.where(), *values])


Parser = _Contacts | _Events


def parser_for(
    kind: Kind, timezone: str, notation: Notation | None = None, local_part: str = "any-case"
) -> Parser:
    """What parses, screens and stores rows of `kind`: for a file, or a batch from the API
    (tracking/api.py), so both validate a row alike. `local_part`: how an event given by
    e-mail address finds its contact (`[bounces] local_part`)."""
    if kind == "contacts":
        return _Contacts(notation)
    return _Events(timezone, notation, local_part)


def parse_record(
    parser: Parser, line: int, record: dict[str, Any] | RowError, report: ImportReport
) -> tuple[Any, ...] | None:
    """The row of `record` (line: its line, or its place in a batch), or None when it is
    rejected: then `report` has the reason."""
    report.rows += 1
    try:
        if isinstance(record, RowError):
            raise record
        return parser.parse(line, record)
    except RowError as error:
        report.reject(line, error)
        return None


class _Batches:
    """Screens and stores the batches of one import, each in its own transaction (or all in
    `outer`, strict's). A batch is screened as it comes, so its rejects come in file order.

    A batch is sent to the database and the next one read while the server stores it
    (BulkInsert.send): as in one COPY stream, neither side waits for the other all the
    time. The batch before is finished (counted, committed) before anything else is asked
    of the database, so a screen sees every earlier batch stored (contacts find an id seen
    earlier in the file that way), and at most one batch is held beyond the one being read.
    """

    def __init__(
        self, engine: Engine, outer: Connection | None, parser: Parser, report: ImportReport
    ) -> None:
        self.engine, self.outer, self.parser, self.report = engine, outer, parser, report
        self.open = ExitStack()  # the transaction of the batch being stored
        self.stored: Callable[[], None] | None = None

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if self.stored is not None:  # sent whole: stored, as when nothing overlapped
            self.finish()
        else:  # a batch not sent whole is rolled back
            self.open.__exit__(kind, error, trace)

    def flush(self, rows: list[tuple[Any, ...]], lines: list[int]) -> None:
        self.finish()
        connection = self.outer
        if connection is None:
            connection = self.open.enter_context(atomic(self.engine))
        # Strict keeps writing after a bad row (the outer transaction is rolled back at
        # the end), so later duplicates and unknown contacts are reported too.
        good = self.parser.screen(connection, rows, lines, self.report)
        self.stored = self.parser.send(connection, good, self.report)

    def finish(self) -> None:
        """Wait for the batch being stored, count it and commit it (raising its error)."""
        with self.open:
            if self.stored is not None:
                stored, self.stored = self.stored, None
                stored()

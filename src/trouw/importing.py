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
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import Connection, Engine, bindparam, exists, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.dml import Insert

from trouw.errors import ImportFileError
from trouw.store import atomic, contacts, events, suppressions
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

# The WHATWG "valid e-mail address" grammar (what browsers accept in <input type=email>).
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOCALE = re.compile(r"^[a-z]{2,3}(?:-[A-Z]{2})?$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_INTEGER = re.compile(r"^-?(?:0|[1-9]\d*)$")
_DECIMAL = re.compile(r"^-?(?:0|[1-9]\d*)\.\d+$")
_BREAK = re.compile("[\r\n\x0b\x0c\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
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

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


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

    @property
    def applied(self) -> bool:
        return not (self.strict and self.rejected_count)

    def reject(self, line: int, error: RowError) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED:
            self.rejected.append(Rejected(line, error.column, error.reason))


# ----------------------------------------------------------------------------- reading


def detect_format(path: Path, fmt: str | None) -> Format:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise ImportFileError(f"unknown format '{fmt}'", fix="use --format csv or jsonl")
        return fmt  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ImportFileError(
        f"cannot tell the format from the extension '{suffix}'",
        path=path,
        fix="name the file .csv or .jsonl, or pass --format csv|jsonl",
    )


def read_records(
    path: Path, fmt: Format, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Yield (line number, record or the reason it cannot be read), streaming."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot open: {exc.strerror}", path=path) from exc
    with handle:
        lines: Iterable[str] = handle if progress is None else _counted(handle, progress)
        try:
            if fmt == "csv":
                yield from _csv_records(path, lines)
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
    path: Path, lines: Iterable[str]
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    reader = csv.reader(lines)
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
    width = len(header)
    line = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, RowError(None, f"unreadable CSV: {exc}")
            continue
        start, line = line + 1, reader.line_num
        if not values:
            continue  # a blank line
        if len(values) != width:
            yield start, RowError(None, f"has {len(values)} fields, the header has {width}")
            continue
        yield start, dict(zip(header, values, strict=True))  # "" means empty, as None does


def _jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, RowError(None, f"not valid JSON: {exc.msg}")
            continue
        except RecursionError:
            yield number, RowError(None, "not valid JSON here: nested too deeply")
            continue
        if not isinstance(record, dict):
            yield number, RowError(None, "expected a JSON object per line")
            continue
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


def date_value(column: str, value: Any) -> date | None:
    text = text_value(column, value, 10)
    if text is None:
        return None
    if not _DATE.match(text):
        raise RowError(column, f"'{text}' is not a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RowError(column, f"'{text}' is not a real date") from None


def number_value(column: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number):
            raise RowError(column, _NOT_FINITE)
        return number
    if isinstance(value, str):
        if _INTEGER.match(value) or _DECIMAL.match(value):
            return float(value)
        why = text_problem(value)
        if why is not None:
            raise RowError(column, why)
    raise RowError(column, f"'{value}' is not a number (use a dot for decimals: 12.50)")


def typed_extra(value: Any) -> Any:
    """A CSV value that reads as a number becomes one (but '0123' stays text)."""
    if isinstance(value, str):
        if _INTEGER.match(value):
            return int(value)
        if _DECIMAL.match(value):
            return float(value)
    return value


def extras(record: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
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
        result[key] = typed_extra(value)
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


class _Contacts:
    # link_key last: given to new rows only (the upsert leaves a stored one as it is).
    columns = ("id", *CONTACT_FIELDS[1:], "attributes", "created_at", "updated_at", "link_key")

    def __init__(self) -> None:
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
            date_value("birthday", record.get("birthday")),
            date_value("customer_since", record.get("customer_since")),
            channel,  # None: resolved in screen()
            text_value("street", record.get("street")),
            text_value("postcode", record.get("postcode"), 20),
            text_value("city", record.get("city"), 100),
            country.upper() if country else None,
            extras(record, CONTACT_FIELDS),
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

    def store(
        self, connection: Connection, rows: list[tuple[Any, ...]], report: ImportReport
    ) -> None:
        self.insert.run(connection, rows)
        report.written += len(rows)


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


class _Events:
    columns = ("external_id", *EVENT_FIELDS[1:], "properties")

    def __init__(self, default_tz: str) -> None:
        self.zone = ZoneInfo(default_tz)
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
            number_value("amount", record.get("amount")),
            score,
            extras(record, (*EVENT_FIELDS, "email")),
        )

    def _moment(self, value: Any) -> datetime:
        text = text_value("occurred_at", value, 40)
        if text is None:
            raise RowError("occurred_at", "is required")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise RowError(
                "occurred_at", f"'{text}' is not an ISO 8601 time (2027-04-02T10:30:00+02:00)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)  # read in the project's time zone
        return moment.astimezone(UTC).replace(tzinfo=None)

    @staticmethod
    def _score(kind: str, tag: str | None, value: Any) -> int | None:
        number = number_value("score", value)
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
        known = set(
            connection.execute(
                select(contacts.c.id).where(contacts.c.id.in_(bindparam("ids", expanding=True))),
                {"ids": list(ids)},
            ).scalars()
        )
        owners: dict[str, list[str]] = {}
        addresses = {str(row[1]) for row in rows if isinstance(row[1], _ByEmail)}
        if addresses:
            for contact_id, email in connection.execute(
                select(contacts.c.id, contacts.c.email)
                .where(contacts.c.email.in_(bindparam("emails", expanding=True)))
                .order_by(contacts.c.id),
                {"emails": sorted(addresses)},
            ):
                owners.setdefault(str(email), []).append(str(contact_id))
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
            found = owners.get(email)
            if found:
                good.extend((row[0], owner, *row[2:]) for owner in found)
            elif row[2] in ("bounce", "complaint") and row[4] != "soft":
                suppress_addresses(connection, [email], row[2])
                why = f"no contact has '{email}': the address is suppressed, never to be mailed"
                report.reject(line, RowError("email", why))
            else:
                report.reject(line, RowError("email", f"no contact has '{email}'"))
        return good

    def store(
        self, connection: Connection, rows: list[tuple[Any, ...]], report: ImportReport
    ) -> None:
        written = self.insert.run(connection, rows)
        report.written += written
        report.unchanged += len(rows) - written


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
) -> ImportReport:
    """Upsert contacts by id from a CSV or JSONL file."""
    return import_file(
        engine,
        "contacts",
        path,
        timezone=timezone,
        fmt=fmt,
        strict=strict,
        batch_size=batch_size,
        progress=progress,
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
) -> ImportReport:
    """Append events from a CSV or JSONL file; rows with a known `id` are skipped."""
    return import_file(
        engine,
        "events",
        path,
        timezone=timezone,
        fmt=fmt,
        strict=strict,
        batch_size=batch_size,
        progress=progress,
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
) -> ImportReport:
    """Import `kind` ("contacts" or "events") from `path`; see the module docstring."""
    records = read_records(path, detect_format(path, fmt), progress)
    report = ImportReport(path=path, kind=kind, strict=strict)
    with ExitStack() as stack:
        # Strict: one transaction around every batch, rolled back if any row was bad.
        outer = stack.enter_context(atomic(engine)) if strict else None
        parser = parser_for(kind, timezone)
        rows: list[tuple[Any, ...]] = []
        lines: list[int] = []
        for line, record in records:
            row = parse_record(parser, line, record, report)
            if row is not None:
                rows.append(row)
                lines.append(line)
            if len(rows) >= batch_size:
                _flush(engine, outer, parser, rows, lines, report)
                rows, lines = [], []
        if rows:
            _flush(engine, outer, parser, rows, lines, report)
        if outer is not None and report.rejected_count:
            outer.rollback()
            report.written = report.unchanged = report.suppressed = 0
    return report


Parser = _Contacts | _Events


def parser_for(kind: Kind, timezone: str) -> Parser:
    """What parses, screens and stores rows of `kind`: for a file, or a batch from the API
    (tracking/api.py), so both validate a row alike."""
    return _Contacts() if kind == "contacts" else _Events(timezone)


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


def _flush(
    engine: Engine,
    outer: Connection | None,
    parser: Parser,
    rows: list[tuple[Any, ...]],
    lines: list[int],
    report: ImportReport,
) -> None:
    with ExitStack() as stack:
        connection = outer if outer is not None else stack.enter_context(atomic(engine))
        # Strict keeps writing after a bad row (the outer transaction is rolled
        # back at the end), so later duplicates and unknown contacts are reported too.
        parser.store(connection, parser.screen(connection, rows, lines, report), report)

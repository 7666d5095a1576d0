"""POST /api/events and /api/contacts: a shop pushes behaviour and sign-ups as they happen.

    POST /api/events     a JSON batch of events, as the lines of `trouw import events`
    POST /api/contacts   a JSON batch of contacts, as the lines of `trouw import contacts`

The body is a JSON list of items, or `{"batch": [...]}`, at most MAX_ITEMS
items and MAX_BYTES bytes (else 413); each request carries
`Authorization: Bearer KEY` with a key from `trouw keys create` (else 401).
Every item goes through the very parse, screen and store of a file import
(`importing.parser_for`): what a file import rejects, the API rejects, with
the same column and words. The answer (200) counts the items accepted and
lists the others by their place in the batch (from 0):
`{"accepted": 2, "rejected": [{"index": 1, "column": "occurred_at", "error": "..."}]}`.

Events are idempotent by their `id` (the unique `events.external_id`, as for
re-imported files): an event sent again, say a retry after a timeout, is
accepted and not stored twice. Give every event an id to make retries safe.
Event batches are written by group commit: the batches of concurrent requests
share one transaction, and an answer means "committed"; a failed write
answers 503 with nothing of the batch stored.

Segment-shaped items are read too: `{"type": "track", "userId", "event",
"timestamp", "messageId", "properties"}` is the event `{"id": messageId,
"contact_id": userId, "type": event in snake_case, "occurred_at": timestamp,
**properties}`; `{"type": "identify", "userId", "traits"}` is the contact
`{"id": userId, **traits}` (firstName and lastName as first_name, last_name).

Keys are checked against their hashes, read again at most every KEYS_REREAD_SECONDS:
a key made or revoked on any machine counts within that time.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import Connection, Engine

from trouw.importing import ImportReport, Kind, RowError, parse_record, parser_for
from trouw.project import Project
from trouw.store import atomic
from trouw.store.apikeys import PREFIX, active_keys, key_hash
from trouw.store.groupcommit import GroupCommit, WriteFailed

MAX_ITEMS = 1000  # per request; every rejected item is reported (importing.MAX_REPORTED)
MAX_BYTES = 1 << 20
KEYS_REREAD_SECONDS = 1.0
# Batches of this many requests at most share a transaction.
REQUESTS_PER_COMMIT = 64
_NOT_AN_OBJECT = "expected a JSON object"
_TRAITS = {"firstName": "first_name", "lastName": "last_name"}


class ApiKeys:
    """The hashes of the keys not revoked, read again at most every KEYS_REREAD_SECONDS."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}
        self._read_at = float("-inf")

    def holder(self, authorization: str | None) -> str | None:
        """The name of the key in an `Authorization: Bearer KEY` header, or None."""
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key.startswith(PREFIX):
            return None
        if time.monotonic() - self._read_at >= KEYS_REREAD_SECONDS:
            with self._lock:
                if time.monotonic() - self._read_at >= KEYS_REREAD_SECONDS:
                    with self._engine.connect() as connection:
                        self._known = active_keys(connection)
                    self._read_at = time.monotonic()
        return self._known.get(key_hash(key))


@dataclass
class _Pending:
    """One request's parsed events, waiting for their batch's transaction."""

    rows: list[tuple[Any, ...]]
    indexes: list[int]
    report: ImportReport


class _KeptConnection:
    """The group commit's connection, kept between batches (one at a time: the leader's).

    Checking a connection out of the pool and resetting it cost as much as a
    small batch's writing. Opened per process on first use (never shared across
    a fork), dropped after a failed transaction: the next one opens a fresh one.
    """

    def __init__(self, engine: Engine, lock: AbstractContextManager[Any]) -> None:
        self._engine = engine
        self._lock = lock
        self._connection: Connection | None = None
        self._pid = 0

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._lock:
            connection = self._connection
            if connection is None or self._pid != os.getpid():
                connection = self._engine.connect()
                if self._engine.dialect.name == "sqlite":  # as store.atomic does
                    connection = connection.execution_options(sqlite_begin="IMMEDIATE")
                self._connection, self._pid = connection, os.getpid()
            try:
                with connection.begin():
                    yield connection
            except BaseException:
                self._connection = None
                connection.close()
                raise


class _Routed(ImportReport):
    """The report of a screen over the rows of several requests: each rejected row goes to
    the report of its request, at its place in that request's batch."""

    def __init__(self, reports: list[ImportReport]) -> None:
        super().__init__(path=Path("POST /api/events"), kind="events")
        self._reports = reports

    def reject(self, line: int, error: RowError) -> None:
        request, index = divmod(line, MAX_ITEMS)
        self._reports[request].reject(index, error)


def api_blueprint(project: Project, engine: Engine, lock: AbstractContextManager[Any]) -> Blueprint:
    """The API routes for one project and database; `lock` serialises SQLite's writers."""
    keys = ApiKeys(engine)
    timezone = project.settings.timezone
    # keeps no state between batches
    events = parser_for("events", timezone, local_part=project.settings.bounces.local_part)

    kept = _KeptConnection(engine, lock)

    @contextmanager
    def transaction() -> Iterator[Connection]:
        with lock, atomic(engine) as connection:
            yield connection

    def write(connection: Connection, batch: Sequence[_Pending]) -> list[ImportReport]:
        # The requests of a commit are screened and stored as one batch: one query for
        # their contacts, one insert. Item i of request k is "line" k * MAX_ITEMS + i.
        rows = [row for pending in batch for row in pending.rows]
        lines = [k * MAX_ITEMS + i for k, pending in enumerate(batch) for i in pending.indexes]
        report = _Routed([pending.report for pending in batch])
        events.store(connection, events.screen(connection, rows, lines, report), report)
        return [pending.report for pending in batch]

    writer = GroupCommit(kept.transaction, write, limit=REQUESTS_PER_COMMIT)
    api = Blueprint("api", __name__, url_prefix="/api")

    @api.before_request
    def authorised() -> Response | None:
        if keys.holder(request.headers.get("Authorization")) is None:
            return _answer(
                401,
                {"error": "a valid API key is required: Authorization: Bearer KEY"},
                {"WWW-Authenticate": 'Bearer realm="trouw"'},
            )
        return None

    @api.post("/events")
    def post_events() -> Response:
        items = _items()
        if isinstance(items, Response):
            return items
        pending = _Pending([], [], _report("events"))
        for index, item in enumerate(items):
            row = parse_record(events, index, _event(item), pending.report)
            if row is not None:
                pending.rows.append(row)
                pending.indexes.append(index)
        if pending.rows:
            try:
                writer.submit(pending)
            except WriteFailed:
                return _answer(503, {"error": "the database did not take the batch: send it again"})
        return _result(len(items), pending.report)

    @api.post("/contacts")
    def post_contacts() -> Response:
        items = _items()
        if isinstance(items, Response):
            return items
        contacts = parser_for("contacts", timezone)  # per request: its own time of update
        report = _report("contacts")
        rows, indexes = [], []
        for index, item in enumerate(items):
            row = parse_record(contacts, index, _contact(item), report)
            if row is not None:
                rows.append(row)
                indexes.append(index)
        if rows:
            with transaction() as connection:
                contacts.store(
                    connection, contacts.screen(connection, rows, indexes, report), report
                )
        return _result(len(items), report)

    return api


def _report(kind: Kind) -> ImportReport:
    return ImportReport(path=Path(f"POST /api/{kind}"), kind=kind)


def _items() -> list[Any] | Response:
    """The batch in the request's body, or the error answer (400, 413)."""
    length = request.content_length
    if length is not None and length > MAX_BYTES:
        return _too_large()
    body = request.stream.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        return _too_large()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _answer(400, {"error": "the body is not JSON: send a list of items"})
    if isinstance(data, dict) and isinstance(data.get("batch"), list):
        data = data["batch"]
    if not isinstance(data, list):
        return _answer(400, {"error": 'expected a JSON list of items, or {"batch": [...]}'})
    if len(data) > MAX_ITEMS:
        return _answer(413, {"error": f"more than {MAX_ITEMS} items: split the batch"})
    return data


def _too_large() -> Response:
    return _answer(413, {"error": f"the body is over {MAX_BYTES} bytes: split the batch"})


def _event(item: Any) -> dict[str, Any] | RowError:
    if not isinstance(item, dict):
        return RowError(None, _NOT_AN_OBJECT)
    if "userId" not in item or item.get("type") not in ("track", "identify"):
        return item
    if item["type"] != "track":
        return RowError("type", "a Segment identify call goes to /api/contacts")
    properties = item.get("properties") or {}
    if not isinstance(properties, dict):
        return RowError("properties", _NOT_AN_OBJECT)
    name = item.get("event")
    if isinstance(name, str):
        name = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return {
        **properties,
        "id": item.get("messageId"),
        "contact_id": item["userId"],
        "type": name,
        "occurred_at": item.get("timestamp"),
    }


def _contact(item: Any) -> dict[str, Any] | RowError:
    if not isinstance(item, dict):
        return RowError(None, _NOT_AN_OBJECT)
    if "userId" not in item or item.get("type") not in ("track", "identify"):
        return item
    if item["type"] != "identify":
        return RowError("type", "a Segment track call goes to /api/events")
    traits = item.get("traits") or {}
    if not isinstance(traits, dict):
        return RowError("traits", _NOT_AN_OBJECT)
    return {**{_TRAITS.get(str(k), str(k)): v for k, v in traits.items()}, "id": item["userId"]}


def _result(items: int, report: ImportReport) -> Response:
    rejected = sorted(report.rejected, key=lambda r: r.line)
    return _answer(
        200,
        {
            "accepted": items - report.rejected_count,
            "rejected": [
                {"index": r.line, "column": r.column, "error": r.reason} for r in rejected
            ],
        },
    )


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )

"""Send runs: who is sending now, and which runs died.

Every `send_day` registers a run (a row in `send_runs`: host, pid, day, start)
and holds a lock for as long as it lives, one that the operating system or
the database releases when the process dies, however it dies:

- SQLite: `flock` on `<database>-runs/<id>.lock`, beside the database.
- PostgreSQL: a session advisory lock `(RUN_LOCKS, id)` on a connection the
  run keeps open; the server drops it when that connection goes.

A run that meets rows `reserved` or `sending` by another run asks `alive`:
a dead run's rows are taken over at once (no waiting for them to age), a live
run's rows are left alone. The row keeps how the run ended (`outcome`,
`summary`) for `trouw status` and for the operator.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from trouw.sending.ledger import HELD
from trouw.store import atomic, ledger, send_runs

# The first key of the PostgreSQL advisory locks of send runs ("tr" in ASCII); the second is
# the run's id.
RUN_LOCKS = 0x7472
# Runs of a database without a file (SQLite in memory) live in this process only.
_LIVE_HERE: set[int] = set()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class RunInfo:
    """Who holds rows: a run's id, host, pid and start, for the summary."""

    id: int
    host: str
    pid: int
    started_at: datetime

    def __str__(self) -> str:
        return f"a run that started {self.started_at:%Y-%m-%d %H:%M:%S} UTC on {self.host}"


def _lock_folder(engine: Engine) -> Path | None:
    database = engine.url.database or ""
    if database.startswith("file:"):  # a URI filename (?uri=true)
        database = database[len("file:") :].partition("?")[0]
    if database in ("", ":memory:"):
        return None
    return Path(f"{database}-runs")


class SendRun:
    """A context manager: the run's row, and its lock held until the block ends."""

    def __init__(self, engine: Engine, as_of: date) -> None:
        self.engine = engine
        self.as_of = as_of
        self.id = 0
        self.started_at = _now()
        self._fd: int | None = None
        self._connection: Connection | None = None
        self._path: Path | None = None

    def __enter__(self) -> SendRun:
        with atomic(self.engine) as connection:
            self.id = int(
                connection.execute(
                    insert(send_runs)
                    .values(
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        as_of=self.as_of,
                        started_at=self.started_at,
                    )
                    .returning(send_runs.c.id)
                ).scalar_one()
            )
        if self.engine.dialect.name == "postgresql":
            self._connection = self.engine.connect()
            self._connection.execute(
                text("SELECT pg_advisory_lock(CAST(:space AS integer), CAST(:id AS integer))"),
                {"space": RUN_LOCKS, "id": self.id},
            )
            self._connection.commit()  # the lock is the session's, not the transaction's
        elif (folder := _lock_folder(self.engine)) is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._path = folder / f"{self.id}.lock"
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        else:
            _LIVE_HERE.add(self.id)
        return self

    def finish(self, outcome: str, summary: dict[str, Any]) -> None:
        """Record how the run ended."""
        with atomic(self.engine) as connection:
            connection.execute(
                update(send_runs)
                .where(send_runs.c.id == self.id)
                .values(ended_at=_now(), outcome=outcome, summary=summary)
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a lost connection released the lock anyway
                self._connection.close()
        if self._fd is not None:
            assert self._path is not None
            with contextlib.suppress(OSError):
                self._path.unlink()
            os.close(self._fd)  # releases the flock
        _LIVE_HERE.discard(self.id)


def alive(connection: Connection, run_ids: Iterable[int]) -> set[int]:
    """Which of these runs still hold their lock (are alive)."""
    wanted = {int(i) for i in run_ids}
    if not wanted:
        return set()
    engine = connection.engine
    if engine.dialect.name == "postgresql":
        held = connection.execute(
            text(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = :space"
                " AND objsubid = 2 AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"space": RUN_LOCKS},
        ).scalars()
        return wanted & {int(i) for i in held}
    folder = _lock_folder(engine)
    if folder is None:
        return wanted & _LIVE_HERE
    return {run_id for run_id in wanted if _holds_lock(folder / f"{run_id}.lock")}


def _holds_lock(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False  # ended, or never got as far as its lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if we took it
    with contextlib.suppress(OSError):
        path.unlink()  # a dead run's file
    return False


def run_info(connection: Connection, run_ids: Iterable[int]) -> dict[int, RunInfo]:
    ids = sorted({int(i) for i in run_ids})
    if not ids:
        return {}
    rows = connection.execute(
        select(send_runs.c.id, send_runs.c.host, send_runs.c.pid, send_runs.c.started_at).where(
            send_runs.c.id.in_(ids)
        )
    )
    return {int(r.id): RunInfo(int(r.id), str(r.host), int(r.pid), r.started_at) for r in rows}


@dataclass(frozen=True)
class RunRecord:
    """A send run as its row keeps it; `outcome` is None while it runs, or if it died."""

    id: int
    host: str
    pid: int
    as_of: date
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    summary: dict[str, Any]


def recent_runs(connection: Connection, limit: int = 20) -> list[RunRecord]:
    """The send runs that started last, newest first."""
    rows = connection.execute(
        select(send_runs)
        .order_by(send_runs.c.started_at.desc(), send_runs.c.id.desc())
        .limit(limit)
    ).mappings()
    return [
        RunRecord(
            int(r["id"]), str(r["host"]), int(r["pid"]), r["as_of"], r["started_at"],
            r["ended_at"], r["outcome"], dict(r["summary"] or {}),
        )
        for r in rows
    ]  # fmt: skip


def held_rows(connection: Connection) -> dict[int | None, int]:
    """Ledger rows `reserved` or `sending`, per run holding them (None: a row of no run)."""
    query = (
        select(ledger.c.run_id, func.count())
        .where(ledger.c.status.in_(HELD))
        .group_by(ledger.c.run_id)
    )
    return {
        None if run_id is None else int(run_id): int(n) for run_id, n in connection.execute(query)
    }


__all__ = [
    "RUN_LOCKS",
    "RunInfo",
    "RunRecord",
    "SendRun",
    "alive",
    "held_rows",
    "recent_runs",
    "run_info",
]

"""The year plan's chunks computed in worker processes, written in order by the caller.

Per chunk most of the time goes to reading (one statement per segment and
trigger) and to Python per contact; writing the rows is a fraction. So worker
processes compute chunks, each through its own read-only connection, while
the main process keeps the one write transaction: it deletes the old plan and
inserts each chunk's rows in contact order, so the stored plan is the same as
a serial run's.

- Chunks are named by id bounds the main process reads off the contacts'
  primary key (`after < id <= upto`); a worker reads the chunk's contacts itself.
- Workers see what is committed. On SQLite the main transaction holds the
  write lock (BEGIN IMMEDIATE), so nothing commits meanwhile; on PostgreSQL
  each chunk is read in the main transaction's exported snapshot.
- At most `workers + 1` chunks are in flight: memory stays flat.
- Workers are spawned (no inherited connections) and ignore Ctrl-C. When the
  main process stops for any reason, the chunks not yet started are
  cancelled and the workers end after the one they are on (a fraction of a
  second); its transaction then rolls back, leaving the old plan. (A
  multiprocessing Pool's terminate() could deadlock on its task queue.)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, event, select

from trouw.planning.candidates import CONTACT_COLUMNS
from trouw.project import Project
from trouw.store import contacts
from trouw.store.engine import create_store_engine

if TYPE_CHECKING:
    from trouw.planning.planner import ChunkPlanner

# (after, upto): the chunk's contacts have after < id <= upto; None is open-ended.
Bounds = tuple[str | None, str | None]
# What a worker returns: (contacts in the chunk, plan rows, (campaign, status) -> rows).
ChunkResult = tuple[int, list[tuple[Any, ...]], Counter[tuple[str, str]]]


def default_workers() -> int:
    """Worker processes for a plan: two, or one (serial) on a single core.

    Measured on two cores: two workers beat one and three. With more cores a
    third may pay, until the main process's inserts are the bottleneck.
    """
    return max(1, min(2, os.cpu_count() or 1))


def shared_url(connection: Connection) -> str | None:
    """The URL other processes can open for this connection's database, or None (in-memory)."""
    url = connection.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        return None
    return url.render_as_string(hide_password=False)


def chunk_bounds(connection: Connection, size: int) -> Iterator[Bounds]:
    """Id bounds of `size` contacts at a time, in id order (the last one open-ended)."""
    after: str | None = None
    while True:
        query = select(contacts.c.id).order_by(contacts.c.id).offset(size - 1).limit(1)
        if after is not None:
            query = query.where(contacts.c.id > after)
        upto = connection.execute(query).scalar_one_or_none()
        if upto is None:
            yield after, None
            return
        yield after, str(upto)
        after = str(upto)


class ChunkPool:
    """Worker processes that plan chunks; `run` yields their results in chunk order."""

    def __init__(
        self,
        connection: Connection,
        url: str,
        project: Project,
        *,
        year: int,
        as_of: date,
        workers: int,
    ) -> None:
        self.connection = connection
        self.workers = workers
        snapshot = None
        if connection.dialect.name == "postgresql":
            snapshot = str(connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(url, snapshot, project, year, as_of),
        )

    def __enter__(self) -> ChunkPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.pool.shutdown(wait=True, cancel_futures=kind is not None)

    def run(self, size: int) -> Iterator[ChunkResult]:
        pending: deque[Future[ChunkResult]] = deque()
        for bounds in chunk_bounds(self.connection, size):
            pending.append(self.pool.submit(_plan_chunk, bounds))
            if len(pending) > self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# -- in the worker process

_worker: _Worker | None = None


class _Worker:
    def __init__(
        self, url: str, snapshot: str | None, project: Project, year: int, as_of: date
    ) -> None:
        from trouw.planning.planner import ChunkPlanner

        self.engine: Engine = create_store_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _small_cache)
        self.snapshot = snapshot
        self.planner: ChunkPlanner = ChunkPlanner(project, year=year, as_of=as_of)

    def plan(self, bounds: Bounds) -> ChunkResult:
        from trouw.planning.planner import row_counts

        after, upto = bounds
        query = select(*CONTACT_COLUMNS).order_by(contacts.c.id)
        if after is not None:
            query = query.where(contacts.c.id > after)
        if upto is not None:
            query = query.where(contacts.c.id <= upto)
        with self.engine.connect() as connection, connection.begin():
            if self.snapshot is not None:
                # The main transaction's view, whatever commits meanwhile.
                connection.exec_driver_sql(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
                connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
            chunk: Sequence[Any] = connection.execute(query).all()
            if not chunk:
                return 0, [], Counter()
            rows = self.planner.rows(connection, chunk)
        return len(chunk), rows, row_counts(rows)


_failed: Exception | None = None
# A worker's SQLite page cache, in KiB: each chunk reads other pages, so a big
# cache per worker mostly costs memory (the OS caches the file for all of them).
WORKER_CACHE_KIB = 8 * 1024


def _small_cache(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size = -{WORKER_CACHE_KIB}")
    cursor.close()


def _start_worker(url: str, snapshot: str | None, project: Project, year: int, as_of: date) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    global _worker, _failed
    try:
        _worker = _Worker(url, snapshot, project, year, as_of)
    except Exception as exc:  # raised with the first chunk: a failing initializer loops
        _failed = exc


def _plan_chunk(bounds: Bounds) -> ChunkResult:
    if _failed is not None:
        raise _failed
    assert _worker is not None
    return _worker.plan(bounds)


__all__ = ["ChunkPool", "chunk_bounds", "default_workers", "shared_url"]

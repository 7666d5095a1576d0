"""The year plan's chunks computed in worker processes, written in order by the caller;
and (further down) one plan made by `trouw plan` runs on several machines (PostgreSQL).

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

import hashlib
import multiprocessing
import os
import queue
import signal
import socket
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    distinct,
    event,
    func,
    insert,
    select,
    text,
    update,
)

from trouw.errors import UserError
from trouw.planning.candidates import Bounds, chunk_bounds, contacts_within
from trouw.project import Project
from trouw.store import plan
from trouw.store.bulk import copy_types
from trouw.store.engine import create_store_engine
from trouw.store.plan_years import create_job_table, drop_job_table, job_table, swap_in
from trouw.store.tables import plan_chunks, plan_jobs

if TYPE_CHECKING:
    from trouw.planning.planner import ChunkPlanner

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

        with self.engine.connect() as connection, connection.begin():
            if self.snapshot is not None:
                # The main transaction's view, whatever commits meanwhile.
                connection.exec_driver_sql(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
                connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
            chunk = contacts_within(connection, bounds)
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


# -- one plan made by `trouw plan` runs on several machines (PostgreSQL)
#
# Every `trouw plan YEAR` on PostgreSQL takes part in the year's running job, or starts one
# when there is none (see plan_year_together in planner.py):
#
# - Starting a job writes its chunks (id bounds, as above) in plan_chunks and commits, under
#   a per-year advisory lock, so two runs starting at once make one job.
# - Each run (and each of its local worker processes) claims one chunk at a time with
#   SELECT … FOR UPDATE SKIP LOCKED, plans it, COPYs its rows into the job's own table (made
#   with the job, store/plan_years.py) and marks it done in that one transaction. A run
#   killed mid-chunk loses its connection, PostgreSQL rolls the transaction back, and the
#   chunk is free again.
# - A run with no free chunk left waits on the first chunk still claimed by another (FOR
#   UPDATE without SKIP LOCKED): it goes on when that one is done, or takes the chunk over
#   when its run died. So every run that ends normally has seen every chunk done.
# - The first run to lock the job row then makes the job's table the year's partition of
#   `plan` in one transaction: its indexes built, the year's old partition dropped, the new
#   one attached (the same rows as one process writes, their ids in another order), the
#   plan run recorded, the job marked done. Readers see the old plan or the new one. The
#   others find the job done and end.
# - Each run holds a shared advisory lock on the job while it takes part. A job nobody holds
#   is abandoned (every run of it died): the next run discards it and starts afresh.
# - Chunks read what is committed when each is claimed, not one snapshot of the whole run.

JOIN_LOCKS = 0x706A  # (JOIN_LOCKS, year): finding or starting the year's job
JOB_LOCKS = 0x704A  # (JOB_LOCKS, job id): held shared by every run taking part


@dataclass(frozen=True)
class Job:
    """A plan of one year made by any number of runs."""

    id: int
    year: int
    as_of: date
    chunk_size: int
    joined: bool  # this run joined a job another run started
    chunks: int  # chunks in the job


@dataclass
class Share:
    """What one run (or worker process) planned of a job: contacts, chunks, rows."""

    contacts: int = 0
    chunks: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, other: Share) -> None:
        self.contacts += other.contacts
        self.chunks += other.chunks
        self.counts.update(other.counts)


def project_fingerprint(project: Project) -> str:
    """A digest of what a plan reads from the project: runs of one job must agree on it."""
    digest = hashlib.sha256()
    digest.update(repr((project.settings.policy, project.settings.tz)).encode())
    # The files campaigns.py and segments/ read (not an editor's backup beside them).
    for folder in (project.campaigns_dir, project.segments_dir):
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            digest.update(str(path.relative_to(project.root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextmanager
def job_of_year(
    engine: Engine, project: Project, *, year: int, as_of: date, chunk_size: int
) -> Iterator[Job]:
    """The running job of `year`, joined, or a new one; this run takes part until the end.

    A connection kept open meanwhile holds the job's shared lock in its session; it is
    closed (not pooled) at the end, so the lock goes with it however the run ends."""
    lease = engine.connect()
    try:
        yield open_job(lease, project, year=year, as_of=as_of, chunk_size=chunk_size)
    finally:
        lease.invalidate()
        lease.close()


def open_job(
    lease: Connection, project: Project, *, year: int, as_of: date, chunk_size: int
) -> Job:
    """Join the running job of `year`, or start one; `lease`'s session then holds its
    shared lock (see job_of_year)."""
    fingerprint = project_fingerprint(project)
    year_lock = {"space": JOIN_LOCKS, "key": year}
    with lease.begin():
        lease.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), year_lock)
        running = lease.execute(
            select(plan_jobs)
            .where(plan_jobs.c.year == year, plan_jobs.c.state == "running")
            .order_by(plan_jobs.c.id)
        ).all()
        for row in running:
            if _try_lock(lease, row.id, exclusive=True):  # nobody takes part: abandoned
                _discard(lease, row.id, "abandoned")
                _unlock(lease, row.id, exclusive=True)
                continue
            if row.project != fingerprint:
                raise UserError(
                    f"another `trouw plan {year}` runs with other campaigns, segments or "
                    f"policy (job {row.id}, started {row.started_at:%Y-%m-%d %H:%M} UTC)",
                    fix="give every machine the same project files, or wait until that run ends",
                )
            _lock_shared(lease, row.id)
            count = lease.execute(
                select(func.count()).where(plan_chunks.c.job == row.id)
            ).scalar_one()
            return Job(row.id, year, row.as_of, row.chunk_size, joined=True, chunks=count)
        job_id = lease.execute(
            insert(plan_jobs)
            .values(
                year=year,
                as_of=as_of,
                chunk_size=chunk_size,
                project=fingerprint,
                started_at=datetime.now(UTC).replace(tzinfo=None),
                state="running",
            )
            .returning(plan_jobs.c.id)
        ).scalar_one()
        chunks = [
            {"job": job_id, "seq": seq, "after_id": after, "upto_id": upto}
            for seq, (after, upto) in enumerate(chunk_bounds(lease, chunk_size))
        ]
        lease.execute(insert(plan_chunks), chunks)
        create_job_table(lease, job_id, year)
        _lock_shared(lease, job_id)
    return Job(int(job_id), year, as_of, chunk_size, joined=False, chunks=len(chunks))


def _try_lock(connection: Connection, job: int, *, exclusive: bool) -> bool:
    function = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
    query = text(f"SELECT {function}(:space, CAST(:key AS integer))")
    return bool(connection.execute(query, _job_key(job)).scalar_one())


def _lock_shared(connection: Connection, job: int) -> None:
    query = text("SELECT pg_advisory_lock_shared(:space, CAST(:key AS integer))")
    connection.execute(query, _job_key(job))


def _unlock(connection: Connection, job: int, *, exclusive: bool) -> None:
    function = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
    connection.execute(text(f"SELECT {function}(:space, CAST(:key AS integer))"), _job_key(job))


def _job_key(job: int) -> dict[str, int]:
    return {"space": JOB_LOCKS, "key": job % 2**31}


def _discard(connection: Connection, job: int, state: str) -> None:
    """Mark the job `state` and drop its chunks and its table (if it is not the plan's now).

    The chunks first: a process still writing one (its run killed under it) holds the
    chunk's row, and then the table; the table's DROP waits for it behind the chunks."""
    connection.execute(delete(plan_chunks).where(plan_chunks.c.job == job))
    connection.execute(update(plan_jobs).where(plan_jobs.c.id == job).values(state=state))
    drop_job_table(connection, job)


def take_part(
    engine: Engine,
    planner: ChunkPlanner,
    job: int,
    *,
    progress: Callable[[int], Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Share:
    """Plan chunks of `job` until none is left undone (or `stop()`); what this process did.

    `progress` is called after each chunk with the contacts of the job's chunks done."""
    share = Share()
    host = f"{socket.gethostname()}:{os.getpid()}"[:255]
    pending = (
        select(plan_chunks.c.seq, plan_chunks.c.after_id, plan_chunks.c.upto_id)
        .where(plan_chunks.c.job == job, plan_chunks.c.done.is_(False))
        .order_by(plan_chunks.c.seq)
        .limit(1)
    )
    done_contacts = select(func.coalesce(func.sum(plan_chunks.c.contacts), 0)).where(
        plan_chunks.c.job == job, plan_chunks.c.done
    )
    from trouw.planning.planner import row_counts

    while not stop():
        with engine.connect() as connection, connection.begin():
            claimed = connection.execute(pending.with_for_update(skip_locked=True)).first()
            if claimed is None:  # all claimed: wait for the first other one (or take it over)
                claimed = connection.execute(pending.with_for_update()).first()
            if claimed is None:
                return share
            seq, after, upto = claimed
            chunk = contacts_within(connection, (after, upto))
            rows = planner.rows(connection, chunk) if chunk else []
            _copy_rows(connection, job, rows)
            counts = row_counts(rows)
            statuses: Counter[str] = Counter()
            for (_, status), count in counts.items():
                statuses[status] += count
            connection.execute(
                update(plan_chunks)
                .where(plan_chunks.c.job == job, plan_chunks.c.seq == seq)
                .values(done=True, contacts=len(chunk), host=host, statuses=dict(statuses))
            )
        share.contacts += len(chunk)
        share.chunks += 1
        share.counts.update(counts)
        if progress is not None:  # the whole job's, whoever planned it
            with engine.connect() as connection:
                progress(connection.execute(done_contacts).scalar_one())
    return share


def _copy_rows(connection: Connection, job: int, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    from trouw.planning.planner import PLAN_COLUMNS

    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql = f"COPY {job_table(job)} ({', '.join(PLAN_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with cursor.copy(sql) as copy:
        copy.set_types(copy_types(connection, plan, PLAN_COLUMNS))
        for row in rows:
            copy.write_row(row)
    cursor.close()


def lock_job(connection: Connection, job: Job) -> bool:
    """Lock the job's row until this transaction ends: True if it is still to be finished
    (by this transaction), False if another run finished it."""
    state = connection.execute(
        select(plan_jobs.c.state).where(plan_jobs.c.id == job.id).with_for_update()
    ).scalar_one()
    return bool(state == "running")


def finish_job(connection: Connection, job: Job) -> tuple[int, Counter[str], int]:
    """Make the job's table the plan of its year (store/plan_years.py), and discard the job.

    Returns (contacts, rows per status, runs that took part). Call it after `lock_job`, in
    the transaction that records the plan run."""
    done = connection.execute(
        select(
            func.coalesce(func.sum(plan_chunks.c.contacts), 0),
            func.count(distinct(plan_chunks.c.host)),
            func.count().filter(plan_chunks.c.done.is_(False)),
        ).where(plan_chunks.c.job == job.id)
    ).one()
    if done[2]:
        raise RuntimeError(f"plan job {job.id} has {done[2]} chunks not done")
    statuses: Counter[str] = Counter()
    for counted in connection.execute(
        select(plan_chunks.c.statuses).where(plan_chunks.c.job == job.id)
    ).scalars():
        statuses.update(counted or {})
    swap_in(connection, job.id, job.year)
    _discard(connection, job.id, "done")
    return int(done[0]), statuses, int(done[1])


class Helpers:
    """`count` local worker processes taking part in a job beside this one."""

    def __init__(self, url: str, project: Project, job: Job, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.results: Any = context.Queue()
        self.processes = [
            context.Process(
                target=_help,
                args=(url, project, job, self.stop, self.results),
                daemon=True,
            )
            for _ in range(count)
        ]
        for process in self.processes:
            process.start()

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is not None:
            self.stop.set()  # they end after the chunk they are on (rolled back if we fail)
        for process in self.processes:
            process.join()

    def shares(self) -> Share:
        """What the helpers planned, once they ended (a helper that failed planned nothing:
        its chunk went back, and this process took it over)."""
        for process in self.processes:
            process.join()
        total = Share()
        while True:
            try:
                found = self.results.get(timeout=0.1)
            except queue.Empty:
                return total
            if isinstance(found, Share):
                total.add(found)


def _help(url: str, project: Project, job: Job, stop: Any, results: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    from trouw.planning.planner import ChunkPlanner

    engine = create_store_engine(url)
    try:
        planner = ChunkPlanner(project, year=job.year, as_of=job.as_of)
        results.put(take_part(engine, planner, job.id, stop=stop.is_set))
    except Exception as exc:  # its chunk went back with its transaction: the main process
        results.put(str(exc))  # plans it (and raises the error itself if it is not ours)
    finally:
        engine.dispose()


__all__ = [
    "ChunkPool",
    "Helpers",
    "Job",
    "Share",
    "default_workers",
    "finish_job",
    "job_of_year",
    "lock_job",
    "open_job",
    "project_fingerprint",
    "shared_url",
    "take_part",
]

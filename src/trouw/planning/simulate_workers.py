"""`simulate --workers N`: the contacts' chunks decided in N processes, the days in lockstep.

Chunk i goes to worker i % N for the whole run: each worker keeps its own
watch (watch.py) of its chunks from day to day. For each day the main process
does the shop-wide step (simulate_day.py `begin`: the A/B winners) and
commits, then tells every worker the day and what changed overnight
(watch.py `Overnight`, asked once for all of them); each decides its chunks as
the one-process loop does, keeps their sends, writes the ledger rows a later day
reads (simulate_day.py `DayReplay.keep`), commits and says so.
Meanwhile the main process asks what changes overnight before the next day
(events and contacts only, which the replay does not write); when all workers
are done, it takes the day's snapshots (`end`) and commits, and the next day
starts. So every worker reads what the days before wrote, as one
process would. After the last day each worker writes its chunks' parts of the
timeline from the sends it kept (timeline.py), side by side, and ends (at once:
its watch is not freed object by object) while the main process joins the parts.

Each worker opens the scratch copy through its own engine (scratch.py
`scratch_url`). On SQLite a worker reads the day in a deferred transaction and
writes its rows at the end in a short one (BEGIN IMMEDIATE), so the workers'
reads run side by side and only their inserts queue for the write lock; its
reads see only its own contacts' ledger, which nobody else writes.

Workers are spawned (no inherited connections) and ignore Ctrl-C. The main
process waits on their pipes and on their process sentinels together, waking
every second: a worker that raises reports its error and ends, one that is
killed ends its sentinel; either makes the run fail at once with a message
naming the worker and the day (WorkFailed), never a hang. When the main
process stops for any reason, the workers still running are terminated (the
scratch copy is thrown away), and a worker whose main process is gone ends
when its pipe closes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

from sqlalchemy import Engine

from trouw.errors import WorkFailed
from trouw.planning.candidates import ContactRow, contact_chunks
from trouw.planning.collector import rarer_collections
from trouw.planning.scratch import scratch_engine
from trouw.planning.simulate_day import DayReplay
from trouw.planning.timeline import Tally, join_parts
from trouw.planning.watch import Overnight
from trouw.project import Project
from trouw.store.engine import atomic

# How often the main process checks that the workers live while it waits for a day.
LIVENESS_S = 1.0
# How long a worker has to end after the last day before it is terminated.
STOP_S = 30.0

READY = "ready"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class TimelineParts:
    """The order to write the timeline of a worker's chunks into `folder`, one part each."""

    folder: str


class Crew:
    """`workers` processes deciding the chunks of a scratch copy's contacts, day by day."""

    def __init__(
        self,
        url: str,
        project: Project,
        *,
        workers: int,
        chunk_size: int,
        incremental: bool,
        chunks: Sequence[Sequence[ContactRow]],
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = workers
        # Each worker's contacts (of the same `chunks` it reads), to hand it only what
        # changed overnight for them.
        self.shares = [
            frozenset(
                str(row.id)
                for number, chunk in enumerate(chunks)
                if _mine(number, index, workers)
                for row in chunk
            )
            for index in range(workers)
        ]
        self.pipes: list[Pipe] = []
        self.processes: list[BaseProcess] = []
        self.what = "starting"  # what the workers are doing, for messages
        self.released = False  # told to end
        try:
            for index in range(workers):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_work,
                    args=(url, project, chunk_size, incremental, index, workers, theirs),
                    name=f"trouw-simulate-{index + 1}",
                    daemon=True,
                )
                process.start()
                theirs.close()  # a dead worker's pipe then reads as closed
                self.pipes.append(mine)
                self.processes.append(process)
            self._wait_all(READY)
        except BaseException:
            self._stop(at_once=True)
            raise

    def __enter__(self) -> Crew:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop(at_once=kind is not None)

    def start_day(self, day: date, overnight: Overnight | None) -> None:
        """Have every worker decide and write its chunks for `day`, with what changed
        `overnight` (asked by the caller, or None: asked by each worker if it needs it)."""
        self.what = f"simulating {day}"
        for index, share in enumerate(self.shares):
            self._send(index, (day, None if overnight is None else overnight.part(share)))

    def finish_day(self) -> None:
        """Return when every worker has written the day `start_day` gave."""
        self._wait_all(DONE)

    def write_timeline(self, path: Path, chunks: int) -> Tally:
        """Write the timeline of the `chunks` chunks to `path` (timeline.py), the workers'
        parts side by side in a folder beside it, joined here; what its sends add up to.
        The workers are then told to end: they do while the parts are joined."""
        self.what = "writing the timeline"
        folder = Path(tempfile.mkdtemp(prefix=".timeline-", dir=path.parent))
        try:
            self._send_all(TimelineParts(str(folder)))
            tallies = self._wait_all(DONE)
            self._release()
            join_parts(folder, chunks, path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        tally = Tally()
        for part in tallies:
            tally.add(part)
        return tally

    def _send_all(self, message: Any) -> None:
        for index in range(len(self.pipes)):
            self._send(index, message)

    def _send(self, index: int, message: Any) -> None:
        try:
            self.pipes[index].send(message)
        except OSError:
            raise self._failure(index, None) from None

    def _release(self) -> None:
        """Tell every worker to end (the exit waits for them)."""
        if not self.released:
            self.released = True
            for pipe in self.pipes:
                with contextlib.suppress(OSError):
                    pipe.send(None)

    def _wait_all(self, expected: str) -> list[Any]:
        """Each worker's word `expected`, in worker order: its detail."""
        pending = dict(enumerate(self.pipes))
        details: list[Any] = [None] * len(self.pipes)
        while pending:
            ends = {self.processes[i].sentinel: i for i in pending}
            ready = wait([*pending.values(), *ends], timeout=LIVENESS_S)
            for index, pipe in list(pending.items()):
                if pipe in ready or pipe.poll():
                    try:
                        kind, detail = pipe.recv()
                    except (EOFError, OSError):
                        raise self._failure(index, None) from None
                    if kind == FAILED:
                        raise self._failure(index, str(detail))
                    if kind != expected:
                        raise self._failure(index, f"said {kind!r}, expected {expected!r}")
                    details[index] = detail
                    del pending[index]
            for sentinel, index in ends.items():
                ended = sentinel in ready or not self.processes[index].is_alive()
                # A worker that ended after its last words: those are read first.
                if index in pending and ended and not self.pipes[index].poll():
                    raise self._failure(index, None)
        return details

    def _failure(self, index: int, reason: str | None) -> WorkFailed:
        process = self.processes[index]
        if reason is None:
            process.join(1.0)
            code = process.exitcode
            if code is None:
                reason = "its pipe closed"
            elif code < 0:
                reason = f"it was killed (signal {-code})"
            else:
                reason = f"it ended (exit code {code})"
        return WorkFailed(
            f"simulate worker {index + 1} of {self.count} (pid {process.pid}) failed while "
            f"{self.what}: {reason}"
        )

    def _stop(self, *, at_once: bool) -> None:
        if not at_once:
            self._release()
        for process in self.processes:
            if at_once:
                process.terminate()
            process.join(STOP_S)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self.pipes:
            pipe.close()


# -- in the worker process


def _mine(number: int, index: int, count: int) -> bool:
    """Whether the chunk `number` (from 0, in id order) is worker `index`'s of `count`."""
    return number % count == index


def _work(
    url: str,
    project: Project,
    chunk_size: int,
    incremental: bool,
    index: int,
    count: int,
    pipe: Pipe,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    engine = None
    try:
        engine = scratch_engine(url)
        replay = DayReplay(project, incremental=incremental)
        # The contacts do not change during the replay: this worker's chunks, read once.
        with engine.connect() as connection:
            numbered = [
                (number, chunk)
                for number, chunk in enumerate(contact_chunks(connection, chunk_size))
                if _mine(number, index, count)
            ]
        chunks = [chunk for _, chunk in numbered]
        pipe.send((READY, None))
        with rarer_collections():
            while True:
                try:
                    given = pipe.recv()
                except EOFError:  # the main process is gone
                    return
                if given is None:
                    _end_now(engine)
                if isinstance(given, TimelineParts):
                    tally = Tally()
                    for number, chunk in numbered:
                        tally.add(replay.sends.write_part(chunk, number, Path(given.folder)))
                    pipe.send((DONE, tally))
                    continue
                day, overnight = given
                today = replay.day(day)
                rows = []
                with engine.connect() as connection, connection.begin():
                    replay.watch(connection, today, chunks, overnight)
                    for chunk in chunks:
                        rows.extend(replay.keep(replay.decide(connection, today, chunk)))
                if rows:
                    with atomic(engine) as connection:
                        replay.write(connection, rows)
                pipe.send((DONE, None))
    except BaseException as exc:  # reported to the main process, which fails the run
        traceback.print_exc(file=sys.stderr)
        with contextlib.suppress(OSError):
            pipe.send((FAILED, f"{type(exc).__name__}: {exc}"))
    finally:
        if engine is not None:
            engine.dispose()


def _end_now(engine: Engine) -> NoReturn:
    """End the worker when told to, without freeing its watch's millions of small objects one
    by one (most of a second at 100,000 contacts, which the main process waits for)."""
    engine.dispose()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


__all__ = ["Crew"]

"""Delivery in the background: one chunk goes out while the next is decided and rendered.

Rendering is CPU work and SMTP is mostly waiting for the server, so a run
that did them in turn would leave the connections idle while it renders and
the CPU idle while it waits. The courier is one thread: the run hands it a
chunk's reserved, rendered mails and goes on with the next chunk; at most one
parcel waits, so reservations never run far ahead of delivery.

When delivery fails (the SMTP server is down) or the run is interrupted, the
parcels not yet delivered are released in the ledger (back to the queue:
they certainly did not leave), and the error is raised in the run.

The `Keeper` keeps the ledger in step with the wire, in the thread that
delivers each mail: one short transaction records the outcome of that
thread's previous mail and marks the next one `sending`, committed before it
leaves. So at any moment each SMTP connection has at most one mail whose fate
a crash could leave in doubt.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from trouw.sending import ledger as book
from trouw.store.compiled import Compiled, KeptConnection, PreparedCalls, StatementsGone
from trouw.store.groupcommit import GroupCommit, WriteFailed


@dataclass(frozen=True)
class Parcel:
    """One chunk's reserved mails, ready to go; `unmade`: those not made, and how they end."""

    prepared: Sequence[Any]  # (Due, Outgoing) pairs
    unmade: Sequence[book.Confirmation]
    contacts_done: int  # for the progress bar, once delivered


class Keeper:
    """Marks each mail `sending` as it leaves and records how it ended, per delivering thread.

    `leaving` commits the outcome of the thread's previous mail and the
    `sending` mark of this one before the mail leaves. The threads' marks are
    written by group commit (store/groupcommit.py): the marks waiting at a
    moment go in one short transaction, on one raw DB-API connection with
    statements compiled once (store/compiled.py), after its turn on the run's
    write lock (SQLite). Each mail still waits for its own mark's commit, so
    each connection has at most one mail in doubt. The run records the outcomes
    still held (the last mail of each thread) from `take_held`.
    """

    def __init__(
        self,
        engine: Engine,
        lock: AbstractContextManager[Any],
        run_id: int,
        confirmation: Callable[..., Any],
    ) -> None:
        self.run_id = run_id
        self._confirmation = confirmation  # (item, outcome) -> book.Confirmation
        self._start = Compiled(book.START_SENDING, engine.dialect)
        self._confirm = Compiled(book.CONFIRM, engine.dialect)
        self._lock = threading.Lock()
        # PostgreSQL: a group's marks in one round trip, which is also its commit.
        self._calls = (
            PreparedCalls({"start": self._start, "confirm": self._confirm})
            if engine.dialect.name == "postgresql"
            else None
        )
        self._kept = KeptConnection(engine, lock, autocommit=self._calls is not None)
        self._held: dict[int, book.Confirmation] = {}  # thread id -> its previous outcome
        self._marks: GroupCommit[tuple[book.Confirmation | None, book.Key], bool, Any] = (
            GroupCommit(self._kept.transaction, self._write)
        )

    def _write(
        self, cursor: Any, marks: Sequence[tuple[book.Confirmation | None, book.Key]]
    ) -> list[bool]:
        if self._calls is not None:
            try:
                return self._write_in_one_trip(cursor, marks)
            except StatementsGone:  # behind PgBouncer in transaction mode: as below
                self._calls = None
        pipeline = getattr(cursor.connection, "pipeline", None)  # psycopg 3: PostgreSQL
        if pipeline is not None:
            return self._write_pipelined(cursor, pipeline, marks)
        owned = []
        for previous, key in marks:
            if previous is not None:
                params = book.confirm_params(previous, self.run_id)
                cursor.execute(self._confirm.sql, self._confirm.parameters(params))
            cursor.execute(
                self._start.sql, self._start.parameters(book.start_params(key, self.run_id))
            )
            owned.append(cursor.rowcount > 0)
        return owned

    def _write_in_one_trip(
        self, cursor: Any, marks: Sequence[tuple[book.Confirmation | None, book.Key]]
    ) -> list[bool]:
        """PostgreSQL: the group's updates in one round trip that is also the commit
        (store/compiled.PreparedCalls). Every mail of the group waits for that commit, on
        a server whose commit itself takes a millisecond. Both updates find one row by its
        key: prepared, PostgreSQL parses and plans each once per connection, not for every
        mail (10.2 s of its 16.5 s for them over 38,364 mails, session 21). In psycopg's
        pipeline mode the same updates cost about 0.3 ms of Python a mail and a second
        round trip for the commit; here about 0.1 ms."""
        assert self._calls is not None
        calls: list[tuple[str, dict[str, Any]]] = []
        starts = []  # where each mark's START_SENDING is among the calls
        for previous, key in marks:
            if previous is not None:
                calls.append(("confirm", book.confirm_params(previous, self.run_id)))
            starts.append(len(calls))
            calls.append(("start", book.start_params(key, self.run_id)))
        counts = self._calls.run(cursor, calls)
        return [counts[i] > 0 for i in starts]

    def _write_pipelined(
        self,
        cursor: Any,
        pipeline: Any,
        marks: Sequence[tuple[book.Confirmation | None, book.Key]],
    ) -> list[bool]:
        """PostgreSQL when a session's prepared statements do not follow the connection (a
        pooler in transaction mode): the same updates in psycopg's pipeline mode, prepared
        by the driver (PgBouncer 1.21+ keeps those). In autocommit, what a pipeline sends
        up to its sync is one implicit transaction. Each mark has its own cursor to read
        its own row count at the end."""
        starts = []
        with pipeline():
            for previous, key in marks:
                if previous is not None:
                    params = book.confirm_params(previous, self.run_id)
                    cursor.execute(
                        self._confirm.sql, self._confirm.parameters(params), prepare=True
                    )
                start = cursor.connection.cursor()
                start.execute(
                    self._start.sql,
                    self._start.parameters(book.start_params(key, self.run_id)),
                    prepare=True,
                )
                starts.append(start)
        owned = [start.rowcount > 0 for start in starts]
        for start in starts:
            start.close()
        return owned

    def leaving(self, item: Any) -> bool:
        with self._lock:
            previous = self._held.pop(threading.get_ident(), None)
        try:
            return self._marks.submit((previous, item.send.key))
        except WriteFailed as failed:  # the batch was rolled back: raise what rolled it back
            raise (failed.__cause__ or failed) from None

    def landed(self, item: Any, outcome: Any) -> None:
        confirmation = self._confirmation(item, outcome)
        with self._lock:
            self._held[threading.get_ident()] = confirmation

    def take_held(self) -> list[book.Confirmation]:
        """The outcomes not yet recorded (call when no thread is delivering)."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        return held

    def close(self) -> None:
        self._marks.close()
        self._kept.close()


class Courier:
    """Delivers parcels in order in its own thread; `close` waits and raises its error."""

    def __init__(
        self,
        deliver: Callable[[Parcel, Callable[[], bool]], None],
        release: Callable[[Parcel], None],
    ) -> None:
        self._deliver = deliver
        self._release = release
        # Room for the parcel being delivered and one waiting. The queue itself is
        # unbounded, so `close` never blocks putting its end mark.
        self._room = threading.Semaphore(2)
        self._parcels: queue.SimpleQueue[Parcel | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._undelivered: list[Parcel] = []
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._work, name="trouw-courier", daemon=True)
        self._thread.start()

    def send(self, parcel: Parcel) -> None:
        """Hand over a parcel; waits while another one is still waiting.

        Raises the courier's error instead when delivery has failed: the parcel
        is then not taken, and the caller still owns its reservations.
        """
        self._room.acquire()
        if self._error is not None:
            self._room.release()
            raise self._error
        self._parcels.put(parcel)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self, *, abandon: bool = False) -> None:
        """Wait until every parcel is delivered (`abandon`: stop after the current batch).

        Parcels not delivered are released; then the courier's error, if any, is
        raised. Interrupted while waiting (Ctrl-C), it stops after the current
        batch all the same. A second call does nothing.
        """
        if self._closed:
            return
        self._closed = True
        if abandon:
            self._stopping.set()
        self._parcels.put(None)
        # An Event, not Thread.join: a join cut short by Ctrl-C cannot safely be waited again.
        try:
            self._finished.wait()
        except BaseException:
            self._stopping.set()
            self._finished.wait()
            raise
        finally:
            for parcel in self._undelivered:
                self._release(parcel)
            self._undelivered.clear()
        self.raise_error()

    def _work(self) -> None:
        try:
            while (parcel := self._parcels.get()) is not None:
                try:
                    if self._error is not None or self._stopping.is_set():
                        self._undelivered.append(parcel)
                    else:
                        self._deliver(parcel, self._stopping.is_set)
                except BaseException as exc:  # raised in the run's thread by close/send
                    self._error = exc
                finally:
                    self._room.release()
        finally:
            self._finished.set()


__all__ = ["Courier", "Parcel"]

"""Group commit: the writes of many threads, one transaction per batch (the tracking
server's clicks, the send run's per-mail ledger marks).

A request thread hands its item to `GroupCommit.submit` and waits. When no
write is under way, the waiting thread itself becomes the writer (the
leader): it takes what is queued (the oldest `limit` items, its own among
them unless the queue is longer), writes it all in one transaction, commits,
and only then wakes the others with their results. Items queued meanwhile
wait for the next leader.
So an answer still means "committed", while the commit and the statement
overhead are paid once per batch instead of once per request: the busier the
server, the bigger the batches. A lone request writes its own item at once,
without handing it to another thread and back: in a process that serves one
request at a time (gunicorn's sync workers), the group commit costs nothing.

If the write fails, the transaction is rolled back and every request of that
batch gets `WriteFailed`: nothing of the batch is recorded, and the next
leader goes on with the next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Conn = TypeVar("Conn")  # what the transaction yields: a Connection, a DB-API cursor

LIMIT = 200


class WriteFailed(Exception):
    """The batch holding this item was rolled back: nothing of it was recorded."""


class _Slot(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result, Conn]):
    """Runs `write(connection, items)` in `transaction()` for batches of submitted items.

    `write` returns one result per item, in order. The transaction and the
    write run in whichever request thread leads the batch, one batch at a
    time. `close` waits for the batches under way; later submits fail.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Conn]],
        write: Callable[[Conn, Sequence[Item]], Sequence[Result]],
        *,
        limit: int = LIMIT,
    ) -> None:
        self._transaction = transaction
        self._write = write
        self._limit = limit
        self._changed = threading.Condition(threading.Lock())
        self._queued: list[_Slot[Item, Result]] = []
        self._writing = False
        self._closed = False

    def submit(self, item: Item) -> Result:
        """Queue `item` and wait until its batch is committed; its result from `write`.

        Raises WriteFailed when the batch was rolled back.
        """
        slot: _Slot[Item, Result] = _Slot(item)
        with self._changed:
            if self._closed:
                raise WriteFailed("the writer is closed")
            self._queued.append(slot)
            while not slot.done:
                if self._writing:
                    self._changed.wait()
                    continue
                batch = self._queued[: self._limit]
                del self._queued[: self._limit]
                self._writing = True
                self._changed.release()
                try:
                    self._run(batch)
                finally:
                    self._changed.acquire()
                    self._writing = False
                    self._changed.notify_all()
        if slot.error is not None:
            raise WriteFailed(str(slot.error)) from slot.error
        return slot.result  # type: ignore[return-value]  # set by _run for a done slot

    def close(self) -> None:
        """Wait until what is queued is written; later submits fail."""
        with self._changed:
            self._closed = True
            while self._writing or self._queued:
                self._changed.wait()

    def _run(self, batch: list[_Slot[Item, Result]]) -> None:
        try:
            with self._transaction() as connection:
                results = self._write(connection, [slot.item for slot in batch])
                if len(results) != len(batch):  # a bug: roll back, say so
                    raise RuntimeError(f"{len(results)} results for {len(batch)} items")
        except BaseException as exc:  # any failure: the batch's requests must hear of it
            for slot in batch:
                slot.error = exc
                slot.done = True
            if not isinstance(exc, Exception):
                raise  # Ctrl-C and friends go on up the leader's own thread
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result = result
            slot.done = True

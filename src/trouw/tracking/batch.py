"""Group commit: the writes of many request threads, one transaction per batch.

A request thread hands its item to `GroupCommit.submit` and waits. One writer
thread per process takes whatever is queued (up to `limit` items), writes it
all in one transaction, commits, and only then wakes the waiting threads with
their results. So an answer still means "committed", while the commit and the
statement overhead are paid once per batch instead of once per request: the
busier the server, the bigger the batches.

If the write fails, the transaction is rolled back and every request of that
batch gets `WriteFailed`: nothing of the batch is recorded, and the writer
goes on with the next one.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from sqlalchemy import Connection

Item = TypeVar("Item")
Result = TypeVar("Result")

LIMIT = 200


class WriteFailed(Exception):
    """The batch holding this item was rolled back: nothing of it was recorded."""


class _Batch(Generic[Item, Result]):
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.results: Sequence[Result] = ()
        self.error: BaseException | None = None
        self.done = threading.Event()


class GroupCommit(Generic[Item, Result]):
    """Runs `write(connection, items)` in `transaction()` for batches of submitted items.

    `write` returns one result per item, in order. The writer thread starts on
    the first submit, so an app made before gunicorn forks its workers starts
    one per worker; `close` (also run at exit) writes what is queued and stops it.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Connection]],
        write: Callable[[Connection, Sequence[Item]], Sequence[Result]],
        *,
        limit: int = LIMIT,
    ) -> None:
        self._transaction = transaction
        self._write = write
        self._limit = limit
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        self._batches: deque[_Batch[Item, Result]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, item: Item) -> Result:
        """Queue `item` and wait until its batch is committed; its result from `write`.

        Raises WriteFailed when the batch was rolled back.
        """
        with self._lock:
            if self._closed:
                raise WriteFailed("the writer is closed")
            if self._thread is None:
                self._start()
            if not self._batches or len(self._batches[-1].items) >= self._limit:
                self._batches.append(_Batch())
            batch = self._batches[-1]
            index = len(batch.items)
            batch.items.append(item)
            self._queued.notify()
        batch.done.wait()
        if batch.error is not None:
            raise WriteFailed(str(batch.error)) from batch.error
        return batch.results[index]

    def close(self) -> None:
        """Write what is queued, then stop the writer; later submits fail."""
        with self._lock:
            self._closed = True
            self._queued.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            atexit.unregister(self.close)

    def _start(self) -> None:
        # A daemon thread: the interpreter does not wait for it before running
        # the exit handlers, and `close` (one of them) flushes the queue first.
        self._thread = threading.Thread(target=self._run, name="trouw-group-commit", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._batches and not self._closed:
                    self._queued.wait()
                if not self._batches:
                    return  # closed, and nothing left to write
                batch = self._batches.popleft()
            try:
                with self._transaction() as connection:
                    results = self._write(connection, batch.items)
                    if len(results) != len(batch.items):  # a bug: roll back, say so
                        raise RuntimeError(f"{len(results)} results for {len(batch.items)} items")
                batch.results = results
            except Exception as exc:  # any failure: the batch's requests must hear of it
                batch.error = exc
            batch.done.set()

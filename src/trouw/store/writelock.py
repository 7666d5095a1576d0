"""One SQLite writer at a time across the threads and processes of a machine.

SQLite lets one writer in at a time. The others retry on the busy timeout,
sleeping 1, 2, 5, 10 … ms between tries. Under a steady stream of short
writes from several processes (the tracking server's workers), that sleeping
sets the pace, not the writing. Writers that take this lock first wait in
the kernel instead (`flock` on a file beside the database), and the next
writer starts as soon as the lock is released. Writers that do not take it,
such as a `trouw send` run, still meet the busy timeout as before.

On other databases the lock does nothing: they have row locks.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine


class WriteLock:
    """A context manager: held by one thread of one process at a time (SQLite only)."""

    def __init__(self, engine: Engine) -> None:
        self.active = engine.dialect.name == "sqlite"
        database = engine.url.database if self.active else None
        if database and database.startswith("file:"):  # a URI filename (?uri=true)
            database = database[len("file:") :]
        self._path = (
            Path(f"{database}-writers.lock") if database not in (None, "", ":memory:") else None
        )
        self._threads = threading.Lock()
        # Opened per process, on first use: a descriptor inherited through fork (gunicorn
        # --preload) shares its flock with the parent's, so it would exclude nobody.
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> WriteLock:
        if not self.active:
            return self
        self._threads.acquire()
        if self._path is not None:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.active:
            return
        try:
            if self._fd is not None and self._path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _descriptor(self) -> int:
        assert self._path is not None
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


__all__ = ["WriteLock"]

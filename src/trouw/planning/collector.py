"""Python's cyclic garbage collector, run less often while a simulation replays its days
and while a send run works its day.

A replay keeps every contact's runs, decisions and ledger for the whole year
(watch.py) and makes and drops millions of candidates and decisions a day.
CPython starts a collection of its youngest objects every 700 allocations not
yet freed and, every so many of those, one that walks every object kept, so
the longer the year runs the more of its time goes to walking what it keeps.
Almost nothing a replay makes is cyclic: reference counting frees it the
moment it is dropped, and the collector finds little (1,068 objects in 120
days of a 100k-contact shop). Measured there, in one process: 33.0 s, and
24.2 s with collections rarer as here (`rarer_collections`); a plan, which
keeps little from one chunk to the next, gained nothing measurable (PostgreSQL,
200k contacts: 15.0 and 16.4 s without, 17.0 and 16.7 s with).

A send run (sending/run.py) makes the same candidates and decisions for every
contact, and each mail's parts, message and ledger rows besides; a walk holds
the GIL, so the run's SMTP threads wait for it too. On PostgreSQL at 200k
contacts, 2 workers, `perf` put 7.8% of a worker's CPU in the collector on a
day of 32,977 mails, and 0.5% with collections rarer; a day with nothing
left to send took 6.8-7.2 s of trouw's CPU instead of 8.1-8.6 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations before a young collection (CPython's default: 700), and young collections per
# older one (default: 10 and 10).
THRESHOLD = (50_000, 10, 10)


@contextmanager
def rarer_collections() -> Iterator[None]:
    """Collect cycles less often inside, as before after."""
    before = gc.get_threshold()
    gc.set_threshold(*THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


__all__ = ["rarer_collections"]

"""The per-mail ledger marks (courier.Keeper): `sending` only on the run's own reservations,
the previous mail's outcome recorded with the next mark, several threads' marks in one
commit (on PostgreSQL in one round trip: pipeline mode)."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select, update

from trouw.sending import ledger as book
from trouw.sending.courier import Keeper
from trouw.store import atomic, ledger

DAY = date(2027, 3, 15)
NOW = datetime(2027, 3, 15, 10, 0)


def _reserve(engine: Engine, names: list[str]) -> list[Any]:
    sends = [book.Send(n, "welcome", "hello", "2027", DAY, "hello", "email") for n in names]
    with atomic(engine) as connection:
        assert book.reserve(connection, sends, domain="x.example", now=NOW, run_id=1) == sends
    return [SimpleNamespace(send=s) for s in sends]


def _statuses(engine: Engine) -> dict[str, tuple[str, int | None]]:
    with engine.connect() as connection:
        rows = connection.execute(select(ledger.c.contact_id, ledger.c.status, ledger.c.run_id))
        return {str(c): (str(s), r) for c, s, r in rows}


def _keeper(engine: Engine) -> Keeper:
    def confirmation(item: Any, outcome: str) -> book.Confirmation:
        return book.Confirmation(item.send.key, outcome, sent_at=NOW, template="hello")

    return Keeper(engine, nullcontext(), 1, confirmation)


def test_a_mark_records_the_previous_outcome_and_skips_what_the_run_lost(
    engine: Engine,
) -> None:
    ann, bob, cor = _reserve(engine, ["ann", "bob", "cor"])
    with atomic(engine) as connection:  # another run took cor over
        connection.execute(update(ledger).where(ledger.c.contact_id == "cor").values(run_id=2))
    keeper = _keeper(engine)
    try:
        assert keeper.leaving(ann) is True
        keeper.landed(ann, book.SENT)
        assert keeper.leaving(bob) is True  # records ann's outcome in the same commit
        assert keeper.leaving(cor) is False  # not the run's: not marked, not sent
        assert _statuses(engine) == {
            "ann": (book.SENT, 1),
            "bob": (book.SENDING, 1),
            "cor": (book.RESERVED, 2),
        }
        keeper.landed(cor, book.SENT)
        assert [c.key for c in keeper.take_held()] == [cor.send.key]  # the run records it
    finally:
        keeper.close()


def test_marks_of_many_threads_each_get_their_own_answer(engine: Engine) -> None:
    names = [f"c{i:02d}" for i in range(12)]
    items = _reserve(engine, names)
    lost = set(names[::3])
    with atomic(engine) as connection:
        connection.execute(
            update(ledger).where(ledger.c.contact_id.in_(lost)).values(status=book.DEFERRED)
        )
    keeper = _keeper(engine)
    answers: dict[str, bool] = {}
    start = threading.Barrier(4)

    def deliver(mine: list[Any]) -> None:
        start.wait()
        for item in mine:
            answers[item.send.contact_id] = keeper.leaving(item)
            keeper.landed(item, book.SENT)

    threads = [threading.Thread(target=deliver, args=(items[i::4],)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == {n: n not in lost for n in names}
        with atomic(engine) as connection:  # what the run records at the end of a batch
            book.confirm(connection, keeper.take_held(), run_id=1)
    finally:
        keeper.close()
    statuses = _statuses(engine)
    assert {n for n, (s, _) in statuses.items() if s == book.SENT} == set(names) - lost
    assert {n for n, (s, _) in statuses.items() if s == book.DEFERRED} == lost

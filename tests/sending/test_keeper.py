"""The per-mail ledger marks (courier.Keeper): `sending` only on the run's own reservations,
the previous mail's outcome recorded with the next mark, several threads' marks in one
commit (on PostgreSQL in one round trip that is also the commit: store/compiled.PreparedCalls)."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update

from trouw.sending import ledger as book
from trouw.sending.courier import Keeper
from trouw.store import atomic, ledger
from trouw.store.compiled import Compiled

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


def test_a_mark_finds_its_row_by_key_though_the_statistics_saw_no_reservation(
    engine: Engine,
) -> None:
    """A run analyzes the ledger when it starts (store/engine.py): full of sent rows, no
    `reserved` ones. PostgreSQL then took `status = 'reserved'` for a single row and
    scanned every reservation in flight for each mark; the mark must go by the contact."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    sent = [book.Send(f"c{n:05}", "welcome", "hello", "2027", DAY, "hello", "email")
            for n in range(5000)]  # fmt: skip
    with atomic(engine) as connection:
        book.reserve(connection, sent, domain="x.example", now=NOW, run_id=1)
        connection.execute(update(ledger).values(status=book.SENT, run_id=None))
        connection.execute(text("ANALYZE ledger"))
    from psycopg.sql import Literal  # PostgreSQL only

    (item,) = _reserve(engine, ["ann"])
    mark = Compiled(book.START_SENDING, engine.dialect)
    sql, names = mark.numbered()  # prepared, as the Keeper runs it
    values = mark.parameters(book.start_params(item.send.key, 1))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"PREPARE mark AS {sql}")
        arguments = ", ".join(Literal(values[name]).as_string(cursor.connection) for name in names)
        for mode in ("force_custom_plan", "force_generic_plan"):  # the first calls, the later
            cursor.execute(f"SET plan_cache_mode = {mode}")
            cursor.execute(f"EXPLAIN EXECUTE mark({arguments})")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "ix_ledger_status_next_attempt_at" not in plan, plan
            assert "Index Cond: ((contact_id)::text = " in plan, plan  # a contact's rows
    finally:
        raw.invalidate()  # not back to the pool with the statement and the setting


def test_marks_go_on_when_the_session_loses_the_prepared_statements(engine: Engine) -> None:
    """Behind PgBouncer in transaction mode each transaction may get another server session,
    without the statements PREPAREd on an earlier one: the marks go on, pipelined and
    prepared by the driver (a batch that finds them missing does nothing: PreparedCalls
    runs it as one transaction, tests/store/test_prepared_calls.py)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("prepared statements of a PostgreSQL session")
    ann, bob, cor = _reserve(engine, ["ann", "bob", "cor"])
    keeper = _keeper(engine)
    try:
        assert keeper.leaving(ann) is True
        keeper.landed(ann, book.SENT)
        session = keeper._kept._connection  # what a pooler would swap: its statements go
        session.cursor().execute("DEALLOCATE ALL")
        assert keeper.leaving(bob) is True
        keeper.landed(bob, book.SENT)
        assert keeper.leaving(cor) is True
        assert _statuses(engine) == {
            "ann": (book.SENT, 1),
            "bob": (book.SENT, 1),
            "cor": (book.SENDING, 1),
        }
    finally:
        keeper.close()

"""PreparedCalls (store/compiled.py): many calls of prepared statements in one round trip on
PostgreSQL. What the send run's marks rely on: every value arrives as it was given (the
literals are written by libpq, whatever a contact's data holds), each call has its own row
count, and a batch is one transaction, all of it or none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)

from trouw.store.compiled import Compiled, KeptConnection, PreparedCalls

notes = Table(
    "notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("body", Text),
    Column("at", DateTime),
    Column("n", Integer, nullable=False),
)
ADD = insert(notes)
RENAME = update(notes).where(notes.c.id == bindparam("k_id")).values(body=bindparam("new_body"))


@pytest.fixture
def postgres(engine: Engine) -> Iterator[Engine]:
    if engine.dialect.name != "postgresql":
        pytest.skip("PreparedCalls is PostgreSQL's")
    notes.create(engine)
    yield engine


def _calls(engine: Engine) -> PreparedCalls:
    return PreparedCalls(
        {"add": Compiled(ADD, engine.dialect), "rename": Compiled(RENAME, engine.dialect)}
    )


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(notes).order_by(notes.c.id))]


texts = st.text(st.characters(exclude_characters="\x00"))  # PostgreSQL's text holds no NUL


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    bodies=st.lists(st.one_of(st.none(), texts), min_size=1, max_size=4),
    at=st.one_of(st.none(), st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1))),
    n=st.integers(-(2**31), 2**31 - 1),
)
def test_every_value_arrives_as_given(
    postgres: Engine, bodies: list[str | None], at: datetime | None, n: int
) -> None:
    kept = KeptConnection(postgres, nullcontext(), autocommit=True)
    try:
        with kept.transaction() as cursor:
            cursor.execute("DELETE FROM notes")
            calls = [
                ("add", {"id": i, "body": body, "at": at, "n": n}) for i, body in enumerate(bodies)
            ]
            assert _calls(postgres).run(cursor, calls) == [1] * len(bodies)
    finally:
        kept.close()
    assert _rows(postgres) == [(i, body, at, n) for i, body in enumerate(bodies)]


def test_hostile_text_stays_text(postgres: Engine) -> None:
    hostile = ["x'); DELETE FROM notes; --", "back\\slash '' \\' E'", "$1 %s %(n)s ;"]
    kept = KeptConnection(postgres, nullcontext(), autocommit=True)
    try:
        with kept.transaction() as cursor:
            rows = [{"id": i, "body": b, "at": None, "n": 0} for i, b in enumerate(hostile)]
            _calls(postgres).run(cursor, [("add", row) for row in rows])
    finally:
        kept.close()
    assert [row[1] for row in _rows(postgres)] == hostile


def test_each_call_has_its_own_row_count(postgres: Engine) -> None:
    calls = _calls(postgres)
    kept = KeptConnection(postgres, nullcontext(), autocommit=True)
    try:
        with kept.transaction() as cursor:
            calls.run(cursor, [("add", {"id": i, "body": "a", "at": None, "n": 0}) for i in (1, 3)])
        with kept.transaction() as cursor:
            counts = calls.run(
                cursor,
                [("rename", {"k_id": i, "new_body": f"b{i}"}) for i in (1, 2, 3, 4)],
            )
    finally:
        kept.close()
    assert counts == [1, 0, 1, 0]
    assert [row[:2] for row in _rows(postgres)] == [(1, "b1"), (3, "b3")]


def test_a_failing_call_undoes_its_whole_batch_and_the_next_batch_goes_on(
    postgres: Engine,
) -> None:
    calls = _calls(postgres)
    kept = KeptConnection(postgres, nullcontext(), autocommit=True)
    try:
        with pytest.raises(Exception, match="duplicate key"), kept.transaction() as cursor:
            calls.run(
                cursor,
                [
                    ("add", {"id": 1, "body": "first", "at": None, "n": 0}),
                    ("add", {"id": 2, "body": "second", "at": None, "n": 0}),
                    ("add", {"id": 1, "body": "again", "at": None, "n": 0}),
                ],
            )
        assert _rows(postgres) == []  # the first two went with the third
        with kept.transaction() as cursor:  # a fresh connection: prepared again
            assert calls.run(cursor, [("add", {"id": 5, "body": "e", "at": None, "n": 0})]) == [1]
    finally:
        kept.close()
    assert [row[:2] for row in _rows(postgres)] == [(5, "e")]


def test_a_pooled_connection_that_already_holds_the_statements_is_used_again(
    postgres: Engine,
) -> None:
    sessions = set()
    for i in range(3):  # each a new PreparedCalls, on the pool's one idle connection
        kept = KeptConnection(postgres, nullcontext(), autocommit=True)
        try:
            with kept.transaction() as cursor:
                add = {"id": i, "body": str(i), "at": None, "n": 0}
                assert _calls(postgres).run(cursor, [("add", add)]) == [1]
                sessions.add(cursor.connection.info.backend_pid)
        finally:
            kept.close()
    assert len(sessions) == 1
    assert len(_rows(postgres)) == 3
    with postgres.connect() as connection:  # back in the pool as it left: transactions
        assert connection.connection.driver_connection.autocommit is False

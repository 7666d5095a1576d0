"""The plan computed by worker processes is the serial plan, row for row, in the same order."""

from __future__ import annotations

import multiprocessing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.planning.shop import make_shop, policy
from tests.planning.test_planner import CAMPAIGNS
from trouw.planning import PlanSummary, plan_year
from trouw.planning.parallel import chunk_bounds
from trouw.planning.planner import PLAN_COLUMNS, plan_year_together
from trouw.planning.runs import latest_plan_runs
from trouw.project import load_project
from trouw.store import atomic, contacts, open_store, plan
from trouw.store.plan_years import job_tables
from trouw.store.tables import plan_chunks, plan_jobs

PEOPLE = 250  # chunks of 100: three chunks, the last one short
SEGMENTS = {"posted": "where:\n  attribute: channel\n  equals: post\n"}
CAMPAIGNS_WITH_SEGMENT = {
    **CAMPAIGNS,
    "letters": 'priority: 30\nsegment: posted\nschedule:\n  rrule: "FREQ=MONTHLY;BYMONTHDAY=5"\n'
    "template: other\n",
}


def _shop(root: Path, engine: Engine) -> None:
    rows = ["id,email,channel,birthday,customer_since"]
    events = ["contact_id,type,occurred_at,tag"]
    channels = ("email", "email", "post", "none")
    for n in range(PEOPLE):
        cid = f"c{n:04d}"
        birthday = (date(1980, 1, 1) + timedelta(days=n * 37 % 365)).isoformat() if n % 5 else ""
        since = (date(2024, 1, 1) + timedelta(days=n * 11 % 1100)).isoformat() if n % 7 else ""
        rows.append(f"{cid},{cid}@x.example,{channels[n % 4]},{birthday},{since}")
        if n % 9 == 0:
            events.append(f"{cid},unsubscribe,2026-06-01T10:00:00,")
        if n % 6 == 1:
            clicked = date(2027, 1, 1) + timedelta(days=n % 200)
            events.append(f"{cid},click,{clicked}T12:00:00,x")
            events.append(f"{cid},purchase,{clicked}T12:05:00,")
    make_shop(
        root,
        engine,
        campaigns=CAMPAIGNS_WITH_SEGMENT,
        segments=SEGMENTS,
        contacts="\n".join(rows) + "\n",
        events="\n".join(events) + "\n",
        settings=policy(week=1, gap="3d"),
    )


def _plan(root: Path, engine: Engine, workers: int, **options: Any) -> PlanSummary:
    with atomic(engine) as connection:
        return plan_year(
            connection,
            load_project(root),
            year=2027,
            as_of=date(2026, 12, 1),
            chunk_size=100,
            workers=workers,
            **options,
        )


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    """Every plan row without its id, in id (insertion) order on SQLite.

    On PostgreSQL the rows go through a staging table (store/bulk.py) whose
    scan order sets the ids, and it varies between runs even serially: there
    the rows are compared sorted.
    """
    columns = [plan.c[name] for name in PLAN_COLUMNS]
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(select(*columns).order_by(plan.c.id))]
    return rows if engine.dialect.name == "sqlite" else sorted(rows, key=repr)


def test_workers_write_the_serial_plan_in_the_same_order(tmp_path: Path, engine: Engine) -> None:
    _shop(tmp_path, engine)
    serial = _plan(tmp_path, engine, workers=1)
    serial_rows = _stored(engine)
    assert serial.contacts == PEOPLE and len(serial_rows) > PEOPLE
    done: list[tuple[int, int]] = []
    parallel = _plan(
        tmp_path,
        engine,
        workers=2,
        progress=lambda n: done.append((n, len(multiprocessing.active_children()))),
    )
    assert _stored(engine) == serial_rows
    assert parallel == serial
    assert done == [(100, 2), (200, 2), (250, 2)]  # written here, computed by two workers
    assert not multiprocessing.active_children()


def test_an_interrupted_parallel_plan_keeps_the_old_one(tmp_path: Path, engine: Engine) -> None:
    _shop(tmp_path, engine)
    _plan(tmp_path, engine, workers=1)
    before = _stored(engine)

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _plan(tmp_path, engine, workers=2, progress=interrupt)
    assert _stored(engine) == before
    assert not multiprocessing.active_children()


def test_an_in_memory_database_is_planned_serially(tmp_path: Path) -> None:
    engine = open_store("sqlite://")
    try:
        _shop(tmp_path, engine)
        summary = _plan(tmp_path, engine, workers=2)
        assert summary.contacts == PEOPLE
        assert not multiprocessing.active_children()
    finally:
        engine.dispose()


def test_chunk_bounds_cover_every_contact_once(engine: Engine, tmp_path: Path) -> None:
    _shop(tmp_path, engine)
    with engine.connect() as connection:
        bounds = list(chunk_bounds(connection, 100))
        ids = list(connection.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars())
        assert connection.execute(select(func.count()).select_from(contacts)).scalar() == PEOPLE
    assert bounds == [(None, ids[99]), (ids[99], ids[199]), (ids[199], None)]


def _plan_together(root: Path, engine: Engine, workers: int, **options: Any) -> PlanSummary:
    return plan_year_together(
        engine,
        load_project(root),
        year=2027,
        as_of=date(2026, 12, 1),
        chunk_size=100,
        workers=workers,
        **options,
    )


def _left_over(engine: Engine) -> tuple[int, int, list[str]]:
    """Jobs' tables (store/plan_years.py), chunks, and the states of the plan jobs."""
    with engine.connect() as connection:
        tables = len(job_tables(connection))
        chunks = connection.execute(select(func.count()).select_from(plan_chunks)).scalar_one()
        states = list(connection.execute(select(plan_jobs.c.state).order_by(plan_jobs.c.id)))
    return tables, chunks, [state for (state,) in states]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_plan_made_together_is_the_serial_plan(tmp_path: Path, engine: Engine) -> None:
    _shop(tmp_path, engine)
    serial = _plan(tmp_path, engine, workers=1)
    serial_rows = _stored(engine)
    together = _plan_together(tmp_path, engine, workers=2)
    assert _stored(engine) == serial_rows  # the old plan replaced, by the same rows
    assert together.finished and together.year_contacts == PEOPLE and not together.joined
    # This run and its helper process (if it started before the small plan was done).
    assert together.contacts == PEOPLE and together.runs in (1, 2)
    assert _left_over(engine) == (0, 0, ["done"])
    with engine.connect() as connection:
        run = latest_plan_runs(connection, [2027])[2027]
    assert (run.contacts, run.statuses) == (PEOPLE, dict(serial.statuses))
    assert not multiprocessing.active_children()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_interrupted_plan_made_together_keeps_the_old_one(
    tmp_path: Path, engine: Engine
) -> None:
    _shop(tmp_path, engine)
    _plan(tmp_path, engine, workers=1)
    before = _stored(engine)

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _plan_together(tmp_path, engine, workers=1, progress=interrupt)
    assert _stored(engine) == before
    assert _left_over(engine)[2] == ["running"]  # nobody takes part in it any more
    # The next run discards the abandoned job and plans the year afresh.
    summary = _plan_together(tmp_path, engine, workers=1)
    assert (summary.contacts, summary.joined, summary.finished) == (PEOPLE, False, True)
    assert _stored(engine) == before
    assert _left_over(engine) == (0, 0, ["abandoned", "done"])

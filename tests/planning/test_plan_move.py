"""The last step of a plan made together (PostgreSQL): the year's staged rows go into `plan`.

The move may drop the plan's indexes and build them again after the rows, and may
TRUNCATE the staging table (parallel.py): whatever it does, other years' plans, the
indexes, and the rows another year's job has staged stay as they were.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from tests.planning.test_parallel import PEOPLE, _plan_together, _shop, _stored
from trouw.planning import plan_year
from trouw.planning.parallel import job_of_year
from trouw.planning.planner import PLAN_COLUMNS
from trouw.project import load_project
from trouw.store import atomic, plan
from trouw.store.tables import plan_staging


def _indexes(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'plan'")
        ).scalars()
        return set(found)


def _year(engine: Engine, year: int) -> list[tuple[Any, ...]]:
    columns = [plan.c[name] for name in PLAN_COLUMNS]
    query = select(*columns).where(plan.c.day >= date(year, 1, 1), plan.c.day <= date(year, 12, 31))
    with engine.connect() as connection:
        return sorted((tuple(row) for row in connection.execute(query)), key=repr)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_move_keeps_other_years_indexes_and_other_jobs(tmp_path: Path, engine: Engine) -> None:
    _shop(tmp_path, engine)
    indexes = _indexes(engine)
    assert {"ix_plan_day", "ix_plan_contact_id"} <= indexes
    _plan_together(tmp_path, engine, workers=1)  # into an empty plan
    assert _indexes(engine) == indexes
    first = _stored(engine)
    assert first and len({row[0] for row in first}) <= PEOPLE
    with atomic(engine) as connection:  # next year's plan beside it, made on one machine
        plan_year(connection, load_project(tmp_path), year=2028, as_of=date(2026, 12, 1))
    next_year = _year(engine, 2028)
    assert next_year
    with engine.begin() as connection:  # statistics: the move weighs the rows it keeps
        connection.execute(text("ANALYZE plan"))
    # Another machine's plan of 2029 is under way, with a row staged.
    project = load_project(tmp_path)
    with job_of_year(engine, project, year=2029, as_of=date(2026, 12, 1), chunk_size=100) as job:
        staged = dict(zip(PLAN_COLUMNS, first[0], strict=True), job=job.id, seq=0)
        with engine.begin() as connection:
            connection.execute(insert(plan_staging).values(staged))
        _plan_together(tmp_path, engine, workers=2)  # 2027 again, replaced whole
        with engine.connect() as connection:
            jobs = connection.execute(select(plan_staging.c.job, func.count()).group_by("job"))
            assert list(jobs) == [(job.id, 1)]  # only the finished job's rows went
    assert _year(engine, 2027) == first  # the same plan, made again
    assert _year(engine, 2028) == next_year
    assert _indexes(engine) == indexes

"""The last step of a plan made together (PostgreSQL): the job's table becomes the year's
partition of `plan` (store/plan_years.py), in place of the year's old plan: other years'
plans, the plan's indexes, and the rows another year's job has written stay as they were.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, column, func, insert, select, table, text

from tests.planning.test_parallel import PEOPLE, _plan_together, _shop, _stored
from trouw.planning import plan_year
from trouw.planning.parallel import job_of_year
from trouw.planning.planner import PLAN_COLUMNS
from trouw.project import load_project
from trouw.store import atomic, plan
from trouw.store.plan_years import job_table, partitions


def _indexes(engine: Engine, table: str = "plan") -> set[str]:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = :table"), {"table": table}
        ).scalars()
        return {re.sub(r"INDEX \S+ ON (ONLY )?\S+", "INDEX ON", index) for index in found}


def _partitions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return partitions(connection)


def _year(engine: Engine, year: int) -> list[tuple[Any, ...]]:
    columns = [plan.c[name] for name in PLAN_COLUMNS]
    query = select(*columns).where(plan.c.day >= date(year, 1, 1), plan.c.day <= date(year, 12, 31))
    with engine.connect() as connection:
        return sorted((tuple(row) for row in connection.execute(query)), key=repr)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_swap_keeps_other_years_indexes_and_other_jobs(tmp_path: Path, engine: Engine) -> None:
    _shop(tmp_path, engine)
    indexes = _indexes(engine)
    assert indexes == {
        "CREATE INDEX ON USING btree (contact_id)",
        "CREATE INDEX ON USING btree (day)",
    }
    _plan_together(tmp_path, engine, workers=1)  # into an empty plan
    assert _partitions(engine) == ["plan_default", "plan_y2027"]
    assert _indexes(engine) == indexes == _indexes(engine, "plan_y2027")
    first = _stored(engine)
    assert first and len({row[0] for row in first}) <= PEOPLE
    with atomic(engine) as connection:  # next year's plan beside it, made on one machine
        plan_year(connection, load_project(tmp_path), year=2028, as_of=date(2026, 12, 1))
    next_year = _year(engine, 2028)
    assert next_year
    # Another machine's plan of 2029 is under way, with a row written.
    project = load_project(tmp_path)
    with job_of_year(engine, project, year=2029, as_of=date(2026, 12, 1), chunk_size=100) as job:
        row = dict(zip(PLAN_COLUMNS, first[0], strict=True), day=date(2029, 3, 1))
        with engine.begin() as connection:
            written = table(job_table(job.id), *(column(name) for name in PLAN_COLUMNS))
            connection.execute(insert(written).values(row))
        _plan_together(tmp_path, engine, workers=2)  # 2027 again, replaced whole
        with engine.connect() as connection:
            count = select(func.count()).select_from(table(job_table(job.id)))
            assert connection.execute(count).scalar_one() == 1  # the other job's row stays
    assert _year(engine, 2027) == first  # the same plan, made again
    assert _year(engine, 2028) == next_year  # in the default partition: no plan made it
    assert _partitions(engine) == ["plan_default", "plan_y2027"]
    assert _indexes(engine) == indexes == _indexes(engine, "plan_y2027")
    with atomic(engine) as connection:  # and once more on one machine, into the partition
        plan_year(connection, load_project(tmp_path), year=2027, as_of=date(2026, 12, 1))
    assert _year(engine, 2027) == first
    with engine.connect() as connection:
        in_partition = connection.execute(text("SELECT count(*) FROM plan_y2027")).scalar_one()
    assert in_partition == len(first)

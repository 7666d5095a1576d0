"""`plan` on PostgreSQL: a partition per year, and the table a plan made together fills.

The plan is partitioned by the range of `day`, one partition a year (`plan_y2027`), and
`plan_default` for the rows of a year without one (migration 0010). A plan made together
(planning/parallel.py) writes its chunks into a table of its own (`plan_job_<id>`, made
when the job starts), with the plan's columns and a check that every row is of the year.
The run that finds every chunk done makes it the year's partition in one transaction
(`swap_in`): its indexes are built over its rows at once, while readers still read the
old plan; then, with `plan` locked, the year's old partition goes and the new one is
attached. Readers see the old plan or the new one, as before, and no row is copied a
second time.

Whoever changes the plan of a year locks `plan` before `plan_default` (the swap's
ATTACH needs both): two years' plans finishing at once then wait for each other instead
of deadlocking.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, text

from trouw.store.tables import plan

# Sort memory of the new partition's index builds (PostgreSQL's maintenance_work_mem, for
# them only): with the default 64 MB a year of 1M contacts (6M rows) is sorted on disk.
INDEX_BUILD_MEMORY = "256MB"
JOB_TABLE_PREFIX = "plan_job_"


def partition_of(year: int) -> str:
    return f"plan_y{int(year)}"


def job_table(job: int) -> str:
    return f"{JOB_TABLE_PREFIX}{int(job)}"


def year_span(year: int) -> tuple[date, date]:
    """The first day of `year` and the first day after it: a partition's bounds."""
    return date(year, 1, 1), date(year + 1, 1, 1)


def partitions(connection: Connection) -> list[str]:
    """The names of the plan's partitions, sorted."""
    query = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'plan'::regclass"
    return sorted(connection.execute(text(query)).scalars())


def job_tables(connection: Connection) -> list[str]:
    """The names of the jobs' tables that exist, sorted."""
    query = text("SELECT tablename FROM pg_tables WHERE starts_with(tablename, :prefix)")
    return sorted(connection.execute(query, {"prefix": JOB_TABLE_PREFIX}).scalars())


def create_job_table(connection: Connection, job: int, year: int) -> None:
    """The table job `job` writes the plan of `year` into: the plan's columns (ids from the
    plan's sequence), rows of the year only (so that attaching it needs no scan)."""
    name = job_table(job)
    start, end = year_span(year)
    connection.execute(
        text(
            f"CREATE TABLE {name} (LIKE plan INCLUDING DEFAULTS, "
            f"CONSTRAINT {name}_year CHECK (day >= '{start}' AND day < '{end}'))"
        )
    )


def drop_job_table(connection: Connection, job: int) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS {job_table(job)}"))


def clear_year(connection: Connection, year: int) -> None:
    """Delete the plan's rows of `year`: its partition emptied whole, if it has one."""
    connection.execute(text("LOCK TABLE plan IN ROW EXCLUSIVE MODE"))  # before plan_default
    partition = partition_of(year)
    if connection.execute(text("SELECT to_regclass(:name)"), {"name": partition}).scalar():
        connection.execute(text(f"TRUNCATE {partition}"))
    _delete_from_default(connection, year)


def _delete_from_default(connection: Connection, year: int) -> None:
    start, end = year_span(year)
    connection.execute(
        text("DELETE FROM plan_default WHERE day >= :start AND day < :end"),
        {"start": start, "end": end},
    )


def swap_in(connection: Connection, job: int, year: int) -> None:
    """Make job `job`'s table the partition of `year`, in place of the year's old plan.

    Its indexes are built first, while readers still read the old plan. Then `plan` is
    locked until the commit: a reader (a send run) waits for the swap and for fresh
    statistics of the plan, and then reads the new one."""
    name, partition = job_table(job), partition_of(year)
    indexes = sorted(plan.indexes, key=lambda index: str(index.name))
    connection.execute(text(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
    for index in indexes:  # named after the job until the year's old ones are gone
        columns = ", ".join(column.name for column in index.columns)
        connection.execute(text(f"CREATE INDEX {index.name}_{name} ON {name} ({columns})"))
    connection.execute(text("LOCK TABLE plan IN ACCESS EXCLUSIVE MODE"))  # before plan_default
    connection.execute(text(f"DROP TABLE IF EXISTS {partition}"))
    _delete_from_default(connection, year)
    start, end = year_span(year)
    connection.execute(
        text(f"ALTER TABLE plan ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')")
    )
    connection.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_year"))
    connection.execute(text(f"ALTER TABLE {name} RENAME TO {partition}"))
    for index in indexes:
        connection.execute(text(f"ALTER INDEX {index.name}_{name} RENAME TO {index.name}_{year}"))
    # Fresh statistics for the readers of the plan, at once (autovacuum never analyzes a
    # partitioned table itself): without them a send run's query for a chunk of contacts'
    # owed sends read the day index's whole look-back (1.7M entries at 1M contacts) for
    # each chunk.
    connection.execute(text("ANALYZE plan"))  # and each partition


__all__ = [
    "INDEX_BUILD_MEMORY",
    "clear_year",
    "create_job_table",
    "drop_job_table",
    "job_table",
    "job_tables",
    "partition_of",
    "partitions",
    "swap_in",
    "year_span",
]

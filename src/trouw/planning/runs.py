"""Plan runs: when each year's plan was made, as of which day, and what it holds.

`plan_year` writes one row in the transaction that writes the plan, so a row
exists exactly when that plan was committed; a plan run that failed rolled
both back and leaves none. `trouw status` reads them to tell whether the plan
covers today and next year.

Plan runs of one year take turns (`take_turn`): on PostgreSQL two at once,
say from two machines' cron, would each delete only the rows committed before
it started and insert all of its own, leaving the year planned twice. SQLite's
one writer (BEGIN IMMEDIATE) makes them take turns by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, text

from trouw.store import plan, plan_runs

# The first key of the PostgreSQL advisory locks of plan runs ("pl" in ASCII); the second is
# the year.
PLAN_LOCKS = 0x706C


def take_turn(connection: Connection, year: int) -> None:
    """Wait until no other transaction plans `year`; held until this transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:year AS integer))"),
            {"space": PLAN_LOCKS, "year": year},
        )


@dataclass(frozen=True)
class PlanRun:
    """A committed plan of one year: as of which day, when, and its rows per status."""

    year: int
    as_of: date
    started_at: datetime
    finished_at: datetime
    contacts: int
    statuses: dict[str, int] = field(default_factory=dict)


def record_plan_run(
    connection: Connection,
    *,
    year: int,
    as_of: date,
    started_at: datetime,
    contacts: int,
    statuses: Mapping[str, int],
) -> None:
    """Record a plan of `year`, in the transaction that writes it."""
    connection.execute(
        insert(plan_runs).values(
            year=year,
            as_of=as_of,
            started_at=started_at,
            finished_at=datetime.now(UTC).replace(tzinfo=None),
            contacts=contacts,
            summary=dict(statuses),
        )
    )


def latest_plan_runs(connection: Connection, years: Iterable[int]) -> dict[int, PlanRun]:
    """The plan in force of each of `years` (its latest run), for the years that have one."""
    found: dict[int, PlanRun] = {}
    for year in sorted(set(years)):
        query = (
            select(plan_runs)
            .where(plan_runs.c.year == year)
            .order_by(plan_runs.c.finished_at.desc(), plan_runs.c.id.desc())
            .limit(1)
        )
        row = connection.execute(query).first()
        if row is not None:
            found[year] = _plan_run(row)
    return found


def year_planned(connection: Connection, year: int) -> bool:
    """Whether `trouw plan YEAR` ran: a plan run is recorded for the year (even one with no
    sends), or, for a plan made before runs were recorded, the plan has a send in it."""
    if connection.execute(select(plan_runs.c.id).where(plan_runs.c.year == year).limit(1)).first():
        return True
    query = select(plan.c.id).where(
        plan.c.day >= date(year, 1, 1), plan.c.day <= date(year, 12, 31)
    )
    return connection.execute(query.limit(1)).first() is not None


def last_plan_run(connection: Connection) -> PlanRun | None:
    """The plan run that finished last, of any year."""
    query = select(plan_runs).order_by(plan_runs.c.finished_at.desc(), plan_runs.c.id.desc())
    row = connection.execute(query.limit(1)).first()
    return None if row is None else _plan_run(row)


def _plan_run(row: Row[Any]) -> PlanRun:
    values = row._mapping
    return PlanRun(
        year=int(values["year"]),
        as_of=values["as_of"],
        started_at=values["started_at"],
        finished_at=values["finished_at"],
        contacts=int(values["contacts"]),
        statuses={str(k): int(v) for k, v in (values["summary"] or {}).items()},
    )


__all__ = ["PlanRun", "last_plan_run", "latest_plan_runs", "record_plan_run", "year_planned"]

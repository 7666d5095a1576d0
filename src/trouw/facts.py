"""Facts about contacts for personal mails, computed for a batch in a few SQL statements.

`facts.last_purchase_date`, `facts.favourite_category`, `facts.nps_class`, ...
are what a mail says about the person ("your new lawn mower"). They are
computed as of a day (events after it are ignored, as everywhere in trouw)
for a whole batch of contacts at once: three grouped queries per batch,
never a query per contact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # templates use `Facts` without SQLAlchemy (`trouw check`)
    from sqlalchemy import Connection

BATCH = 900  # contacts per statement (their ids are one parameter: store/among.py)


@dataclass(frozen=True)
class Facts:
    """What the shop knows about one contact as of a day."""

    last_purchase_date: date | None = None
    last_purchase_product: str | None = None
    favourite_category: str | None = None
    total_spent: float = 0.0
    order_count: int = 0
    years_as_customer: int | None = None
    nps_score: int | None = None
    nps_class: str | None = None
    points: float | int | None = None


def nps_class(score: int | None) -> str | None:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    if score is None:
        return None
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


def full_years(since: date | None, as_of: date) -> int | None:
    """Whole years from `since` to `as_of` (29 February counts from 28 February)."""
    if since is None or since > as_of:
        return None
    years = as_of.year - since.year
    if (as_of.month, as_of.day) < (since.month, since.day):
        years -= 1
    return years


def end_of_day(as_of: date, tz: ZoneInfo) -> datetime:
    """The first moment after day `as_of` in `tz`, as the naive UTC events store."""
    local = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=tz)
    return local.astimezone(UTC).replace(tzinfo=None)


def compute_facts(
    connection: Connection,
    people: Sequence[Mapping[str, Any]],
    *,
    as_of: date,
    tz: ZoneInfo,
) -> dict[str, Facts]:
    """Facts for each contact row in `people` (needs `id`, `customer_since`, `attributes`)."""
    end = end_of_day(as_of, tz)
    result: dict[str, Facts] = {}
    for start in range(0, len(people), BATCH):
        batch = people[start : start + BATCH]
        ids = [str(person["id"]) for person in batch]
        purchases = _purchases(connection, ids, end)
        favourites = _favourite_categories(connection, ids, end)
        scores = _latest_nps(connection, ids, end)
        for person in batch:
            contact_id = str(person["id"])
            count, spent, last_at, product = purchases.get(contact_id, (0, 0.0, None, None))
            attributes = person.get("attributes") or {}
            points = attributes.get("points")
            score = scores.get(contact_id)
            result[contact_id] = Facts(
                last_purchase_date=_local_day(last_at, tz),
                last_purchase_product=product,
                favourite_category=favourites.get(contact_id),
                total_spent=round(float(spent), 2),
                order_count=int(count),
                years_as_customer=full_years(person.get("customer_since"), as_of),
                nps_score=score,
                nps_class=nps_class(score),
                points=points
                if isinstance(points, int | float) and not isinstance(points, bool)
                else None,
            )
    return result


def _local_day(moment: datetime | None, tz: ZoneInfo) -> date | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).astimezone(tz).date()


def _purchases(
    connection: Connection, ids: Iterable[str], end: datetime
) -> dict[str, tuple[int, float, datetime | None, str | None]]:
    """Per contact: order count, total spent, and the latest purchase's time and product."""
    from sqlalchemy import func, select

    from trouw.store import events
    from trouw.store.among import among

    ranked = (
        select(
            events.c.contact_id,
            events.c.product,
            events.c.occurred_at,
            func.count().over(partition_by=events.c.contact_id).label("orders"),
            func.coalesce(
                func.sum(events.c.amount).over(partition_by=events.c.contact_id), 0
            ).label("spent"),
            func.row_number()
            .over(
                partition_by=events.c.contact_id,
                order_by=(events.c.occurred_at.desc(), events.c.id.desc()),
            )
            .label("rank"),
        )
        .where(
            events.c.type == "purchase",
            events.c.occurred_at < end,
            among(events.c.contact_id, connection.dialect.name),
        )
        .subquery()
    )
    query = select(
        ranked.c.contact_id, ranked.c.orders, ranked.c.spent, ranked.c.occurred_at, ranked.c.product
    ).where(ranked.c.rank == 1)
    return {
        row.contact_id: (row.orders, row.spent, row.occurred_at, row.product)
        for row in connection.execute(query, {"ids": list(ids)})
    }


def _favourite_categories(
    connection: Connection, ids: Iterable[str], end: datetime
) -> dict[str, str]:
    """Per contact: the category bought most often (ties: the one bought most recently)."""
    from sqlalchemy import func, select

    from trouw.store import events
    from trouw.store.among import among

    ranked = (
        select(
            events.c.contact_id,
            events.c.category,
            func.row_number()
            .over(
                partition_by=events.c.contact_id,
                order_by=(
                    func.count().desc(),
                    func.max(events.c.occurred_at).desc(),
                    events.c.category,
                ),
            )
            .label("rank"),
        )
        .where(
            events.c.type == "purchase",
            events.c.category.is_not(None),
            events.c.occurred_at < end,
            among(events.c.contact_id, connection.dialect.name),
        )
        .group_by(events.c.contact_id, events.c.category)
        .subquery()
    )
    query = select(ranked.c.contact_id, ranked.c.category).where(ranked.c.rank == 1)
    return {row.contact_id: row.category for row in connection.execute(query, {"ids": list(ids)})}


def _latest_nps(connection: Connection, ids: Iterable[str], end: datetime) -> dict[str, int]:
    """Per contact: the score of the latest NPS answer (survey events tagged `nps`)."""
    from sqlalchemy import func, select

    from trouw.store import events
    from trouw.store.among import among

    ranked = (
        select(
            events.c.contact_id,
            events.c.score,
            func.row_number()
            .over(
                partition_by=events.c.contact_id,
                order_by=(events.c.occurred_at.desc(), events.c.id.desc()),
            )
            .label("rank"),
        )
        .where(
            events.c.type == "survey",
            events.c.tag == "nps",
            events.c.score.is_not(None),
            events.c.occurred_at < end,
            among(events.c.contact_id, connection.dialect.name),
        )
        .subquery()
    )
    query = select(ranked.c.contact_id, ranked.c.score).where(ranked.c.rank == 1)
    return {row.contact_id: int(row.score) for row in connection.execute(query, {"ids": list(ids)})}

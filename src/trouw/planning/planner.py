"""`trouw plan YEAR`: the year plan for every contact, written to the `plan` table.

Contacts are streamed in chunks: per chunk the database answers segment
membership and triggers (set-based, see candidates.py), Python resolves each
contact's candidates against the policy (policy.py), and the rows go in with
one bulk insert. Memory depends on the chunk size, not on the number of contacts.

Re-planning replaces the year's rows in the same transaction that writes the
new ones: readers see the old plan or the new one, never half of each.
`trouw plan` on PostgreSQL uses `plan_year_together`: runs on several machines
plan the chunks of one job and the last step swaps the year in (parallel.py).
Sends due before the planning day are left out (the ledger has them), except
recent ones within `defer_for`, which are caught up on the planning day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, func, or_, select

from trouw.campaigns import Campaign, CampaignError, check_references, load_campaigns
from trouw.planning.candidates import (
    CandidateFinder,
    ContactRow,
    chunk_bounds,
    contact_chunks,
    send_channel,
)
from trouw.planning.decision import decide
from trouw.planning.parallel import (
    ChunkPool,
    Helpers,
    finish_job,
    job_of_year,
    lock_job,
    shared_url,
    take_part,
)
from trouw.planning.policy import DEFERRED, DROPPED, PLANNED, Rules, SendWindow, YearCalendar
from trouw.planning.runs import record_plan_run, take_turn
from trouw.planning.send_time import describe, send_hour
from trouw.project import Project
from trouw.segments import Catalog, Clock, load_catalog
from trouw.store import contacts, plan
from trouw.store.bulk import BulkInsert
from trouw.store.plan_years import clear_year
from trouw.store.tables import plan_jobs

CHUNK_SIZE = 10_000
PLAN_COLUMNS = (
    "contact_id",
    "day",
    "campaign",
    "step",
    "occurrence",
    "template",
    "channel",
    "priority",
    "status",
    "reason",
)
# plan.occurrence is 50 characters: "<campaign>:YYYY-MM-DD" must fit.
MAX_CAMPAIGN_NAME = 50 - len(":YYYY-MM-DD")


@dataclass
class PlanSummary:
    """What a plan run wrote: counts per status, and per campaign and status."""

    year: int
    as_of: date
    contacts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    campaigns: dict[str, Counter[str]] = field(default_factory=dict)
    # Scheduled campaigns whose schedule has no day in the year: on no one's calendar.
    unscheduled: list[str] = field(default_factory=list)
    # Planned together (plan_year_together): the counts above are this run's share.
    joined: bool = False  # this run joined a plan another run had started
    finished: bool = True  # this run wrote the year's plan (else another run did)
    year_contacts: int = 0  # contacts in the whole plan, when this run wrote it
    runs: int = 1  # runs (processes) that planned chunks of it

    @property
    def sends(self) -> int:
        return self.statuses[PLANNED] + self.statuses[DEFERRED]


def calendar_campaigns(project: Project, catalog: Catalog) -> list[Campaign]:
    """The campaigns with a schedule or trigger, checked: every segment and template exists.

    `[policy] send_time = "best"` is given here to every campaign but service ones (an
    order follow-up goes at once) that does not say its own `send_time`."""
    best = project.settings.policy.send_time
    found = []
    for campaign in load_campaigns(project.campaigns_dir):
        if not campaign.on_calendar:
            continue
        if len(campaign.name) > MAX_CAMPAIGN_NAME:
            raise CampaignError(
                f"the name '{campaign.name}' is over {MAX_CAMPAIGN_NAME} characters",
                path=campaign.path,
                fix="rename the file: occurrence keys (name:date) must fit in 50 characters",
            )
        problems = check_references(
            campaign,
            segments=catalog.names,
            template_exists=lambda name: (project.templates_dir / f"{name}.html").is_file(),
        )
        if problems:
            raise problems[0]
        for name in sorted(campaign.segments()):
            catalog.get(name)  # raises the segment's own error if it is invalid
        if best and campaign.send_time is None and campaign.kind != "service":
            campaign = replace(campaign, send_time=best)
        found.append(campaign)
    return found


class ChunkPlanner:
    """The plan rows of chunks of contacts: the calendar, policy and finder, set up once.

    Built the same way in the main process and in each worker (parallel.py), so
    both paths compute the same rows.
    """

    def __init__(self, project: Project, *, year: int, as_of: date) -> None:
        catalog = load_catalog(project.segments_dir)
        campaigns = calendar_campaigns(project, catalog)
        self.rules = Rules.from_policy(project.settings.policy)
        self.calendar = YearCalendar(year, self.rules.quiet)
        clock = Clock(as_of, project.settings.tz)
        self.finder = CandidateFinder(campaigns, catalog, clock, year, self.rules.defer_days)
        window = project.settings.policy.send_window
        self.window = SendWindow(window) if window else None

    def rows(self, connection: Connection, chunk: Sequence[ContactRow]) -> list[tuple[Any, ...]]:
        """The plan rows (PLAN_COLUMNS) of `chunk`, in contact order."""
        finder, rules, calendar = self.finder, self.rules, self.calendar
        facts = finder.gather(connection, chunk)
        rows: list[tuple[Any, ...]] = []
        for contact in chunk:
            decisions = decide(finder, rules, calendar, contact, facts)
            if not decisions:
                continue
            contact_id = str(contact.id)
            channel = send_channel(contact)
            for decision in decisions:
                candidate = decision.candidate
                reason = decision.reason
                if finder.best_hour_campaigns and decision.status != DROPPED:
                    hour = send_hour(finder, facts, contact, candidate.campaign, self.window)
                    if hour is not None:  # `send_time: best`: the plan says the hour
                        own = contact_id in facts.best_hours
                        reason = "; ".join(filter(None, (reason, describe(hour, own))))
                rows.append(
                    (
                        contact_id,
                        decision.day,
                        candidate.campaign,
                        candidate.step,
                        candidate.occurrence,
                        candidate.template,
                        channel,
                        candidate.priority,
                        decision.status,
                        reason,
                    )
                )
        return rows


def row_counts(rows: Sequence[tuple[Any, ...]]) -> Counter[tuple[str, str]]:
    """(campaign, status) -> rows; counted per chunk (campaign at 2, status at 8)."""
    return Counter((row[2], row[8]) for row in rows)


def plan_year(
    connection: Connection,
    project: Project,
    *,
    year: int,
    as_of: date,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], Any] | None = None,
    workers: int = 1,
) -> PlanSummary:
    """Compute and store the plan of `year` as of `as_of`, replacing the year's old plan.

    Run it inside one transaction (`atomic`); the plan run is recorded in it
    (runs.py). `progress` is called with the number of contacts done after each chunk.

    With `workers` > 1 the chunks are computed by that many worker processes,
    each reading through its own connection (parallel.py), while this
    connection deletes and writes, chunk by chunk in contact order: the rows
    are the same as with one worker. Workers see only committed data, so this
    is for a database with a URL other processes can open, and a transaction
    that has not changed contacts or events itself; otherwise (an in-memory
    SQLite, or contacts that fit in one chunk) the plan is computed here.
    """
    take_turn(connection, year)  # a plan of the same year from elsewhere ends first
    started_at = datetime.now(UTC).replace(tzinfo=None)
    planner = ChunkPlanner(project, year=year, as_of=as_of)
    summary = PlanSummary(year, as_of)
    summary.unscheduled = [
        c.name
        for c in planner.finder.campaigns
        if c.schedule is not None and not c.schedule.days_in(year)
    ]
    statuses = summary.statuses
    per_campaign = summary.campaigns
    writer = BulkInsert(plan, PLAN_COLUMNS)
    chunks: Iterator[tuple[int, Sequence[tuple[Any, ...]], Counter[tuple[str, str]] | None]]
    url = shared_url(connection) if workers > 1 else None
    if url is not None and next(chunk_bounds(connection, chunk_size))[1] is None:
        url = None  # one chunk: nothing to share out
    with ExitStack() as stack:
        if url is None:
            _delete_year(connection, year)
            chunks = (
                (len(chunk), planner.rows(connection, chunk), None)
                for chunk in contact_chunks(connection, chunk_size)
            )
        else:
            pool = stack.enter_context(
                ChunkPool(connection, url, project, year=year, as_of=as_of, workers=workers)
            )
            _delete_year(connection, year)  # while the workers start
            chunks = pool.run(chunk_size)
        for contacts_done, rows, counts in chunks:
            for (campaign, status), count in (counts or row_counts(rows)).items():
                statuses[status] += count
                per_campaign.setdefault(campaign, Counter())[status] += count
            writer.run(connection, rows)
            summary.contacts += contacts_done
            if progress is not None:
                progress(summary.contacts)
    record_plan_run(
        connection,
        year=year,
        as_of=as_of,
        started_at=started_at,
        contacts=summary.contacts,
        statuses=summary.statuses,
    )
    return summary


def plan_year_together(
    engine: Engine,
    project: Project,
    *,
    year: int,
    as_of: date,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], Any] | None = None,
    workers: int = 1,
) -> PlanSummary:
    """Plan `year` on PostgreSQL together with every other run of it (parallel.py).

    Joins the year's running plan, or starts one as of `as_of` (a run that joins plans as
    of the first run's day). This run and `workers - 1` local processes claim chunks until
    none is left; the first run to see them all done writes the year's plan in one
    transaction. The summary counts this run's share."""
    planner = ChunkPlanner(project, year=year, as_of=as_of)  # the project's errors first
    with job_of_year(engine, project, year=year, as_of=as_of, chunk_size=chunk_size) as job:
        if job.as_of != as_of:
            planner = ChunkPlanner(project, year=year, as_of=job.as_of)
        summary = PlanSummary(year, job.as_of, joined=job.joined)
        summary.unscheduled = [
            c.name
            for c in planner.finder.campaigns
            if c.schedule is not None and not c.schedule.days_in(year)
        ]
        url = engine.url.render_as_string(hide_password=False)
        helpers_wanted = min(workers, job.chunks) - 1  # one chunk: nothing to share out
        with Helpers(url, project, job, helpers_wanted) as helpers:
            share = take_part(engine, planner, job.id, progress=progress)
            share.add(helpers.shares())
        summary.contacts = share.contacts
        for (campaign, status), count in share.counts.items():
            summary.statuses[status] += count
            summary.campaigns.setdefault(campaign, Counter())[status] += count
        with engine.begin() as connection:
            summary.finished = lock_job(connection, job)
            if summary.finished:
                take_turn(connection, year)
                started_at = connection.execute(
                    select(plan_jobs.c.started_at).where(plan_jobs.c.id == job.id)
                ).scalar_one()
                summary.year_contacts, statuses, summary.runs = finish_job(connection, job)
                record_plan_run(
                    connection,
                    year=year,
                    as_of=job.as_of,
                    started_at=started_at,
                    contacts=summary.year_contacts,
                    statuses=statuses,
                )
    return summary


def _delete_year(connection: Connection, year: int) -> None:
    """Delete the year's old plan rows.

    Emptied whole rather than deleted row by row (and index entry by entry) where it can:
    on PostgreSQL the year's partition is truncated (store/plan_years.py: readers of the
    year wait for the commit); SQLite empties the table when it holds no other year (it
    frees the pages of a DELETE without WHERE). At 1M contacts a year is 6M rows.
    """
    if connection.dialect.name == "postgresql":
        clear_year(connection, year)
        return
    start, end = date(year, 1, 1), date(year, 12, 31)
    other_years = exists().where(or_(plan.c.day < start, plan.c.day > end))
    if connection.execute(select(other_years)).scalar():
        connection.execute(delete(plan).where(plan.c.day >= start, plan.c.day <= end))
    else:
        connection.execute(delete(plan))


def count_contacts(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(contacts)).scalar_one())


__all__ = [
    "DROPPED",
    "ChunkPlanner",
    "PlanSummary",
    "calendar_campaigns",
    "count_contacts",
    "plan_year",
    "plan_year_together",
    "row_counts",
]

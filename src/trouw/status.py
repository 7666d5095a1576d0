"""`trouw status`: what a monitor needs to know, gathered with a few indexed queries.

Whether the plan covers today and the year (and from 1 December next year
too), what a send run would work now, what is deferred, unknown or expired,
which runs hold mail, how the last plan and send runs ended, the key that
signs links and the database. Each fact that needs the operator becomes an
`Attention` with its fix; the CLI prints them and exits 3 when there are any.

It reads only: owed mail is counted with the send's own query (sending/owed.py),
never row by row, and the send runs' liveness with their own locks (runs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from trouw.campaigns import load_campaigns
from trouw.errors import TrouwError, UserError
from trouw.planning.runs import PlanRun, last_plan_run, latest_plan_runs, year_planned
from trouw.project import Project
from trouw.sending import ledger as book
from trouw.sending import runs
from trouw.sending.owed import count_owed
from trouw.store import ledger
from trouw.templates.links import signing_key

# Unknown and expired mail of this many days (the day itself and those before) needs attention.
WINDOW_DAYS = 7
# From this month on the plan of next year should exist (the plan job runs on 1 December).
NEXT_YEAR_MONTH = 12
# Owed mail that no run has handled for longer than this needs attention (send runs hourly).
OVERDUE_DAYS = 1
# The send runs looked at for the last one and the live ones (workers each have a run).
RECENT_RUNS = 20


@dataclass(frozen=True)
class Attention:
    """Something the operator should do: what is wrong, and the fix."""

    problem: str
    fix: str


@dataclass(frozen=True)
class YearPlan:
    """Whether a year is planned, and the plan run in force (None for a plan made before
    plan runs were recorded)."""

    year: int
    planned: bool
    run: PlanRun | None = None


@dataclass(frozen=True)
class SendRunState:
    """A send run and how it stands: finished, interrupted, failed, running or died."""

    record: runs.RunRecord
    state: str


@dataclass
class MailCounts:
    """The ledger and the plan, counted: owed now, and what needs a look."""

    owed: int = 0  # a send run would work these now
    owed_since: date | None = None  # the earliest day the owed are owed from
    overdue: int = 0  # owed (or expiring) that no run has handled for over OVERDUE_DAYS
    overdue_since: date | None = None  # the earliest day those were last handled
    expiring: int = 0  # past their validity: the next run records them expired
    deferred: int = 0  # refused for now (4xx) or waiting: tried again by a later run
    unknown: int = 0  # in the window: fate unknown (a run died mid-send)
    unknown_days: dict[date, int] = field(default_factory=dict)
    expired: int = 0  # in the window: not sent within their validity
    failed: int = 0  # in the window: refused for good (5xx)
    held: int = 0  # reserved or sending by live runs
    held_by_dead_runs: int = 0  # reserved or sending by runs that died: the next run takes them


@dataclass
class Status:
    """Everything `trouw status` reports, and what needs attention."""

    as_of: date
    checked_at: datetime  # UTC
    database: str  # the URL, password masked
    days: int  # the window for unknown, expired and failed mail
    key_fingerprint: str | None = None
    key_source: str | None = None
    key_problem: str | None = None
    this_year: YearPlan | None = None
    next_year: YearPlan | None = None
    next_year_needed: bool = False
    covers_today: bool = False
    last_plan: PlanRun | None = None
    last_send: SendRunState | None = None
    live_sends: list[SendRunState] = field(default_factory=list)
    mail: MailCounts = field(default_factory=MailCounts)
    attention: list[Attention] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.attention

    def to_json(self) -> dict[str, Any]:
        """The facts as JSON-ready values, under stable keys (see `trouw status --help`)."""
        mail = self.mail
        return {
            "ok": self.ok,
            "as_of": self.as_of.isoformat(),
            "checked_at": _utc(self.checked_at),
            "database": self.database,
            "signing_key": {
                "fingerprint": self.key_fingerprint,
                "source": self.key_source,
                "problem": self.key_problem,
            },
            "plan": {
                "covers_today": self.covers_today,
                "this_year": _year_json(self.this_year),
                "next_year": _year_json(self.next_year),
                "next_year_needed": self.next_year_needed,
                "last_run": _plan_json(self.last_plan),
            },
            "mail": {
                "owed": mail.owed,
                "owed_since": _day(mail.owed_since),
                "overdue": mail.overdue,
                "overdue_since": _day(mail.overdue_since),
                "expiring": mail.expiring,
                "deferred": mail.deferred,
                "days": self.days,
                "since": (self.as_of - timedelta(days=self.days - 1)).isoformat(),
                "unknown": mail.unknown,
                "expired": mail.expired,
                "failed": mail.failed,
                "held": mail.held,
                "held_by_dead_runs": mail.held_by_dead_runs,
            },
            "send": {
                "last_run": _send_json(self.last_send),
                "live_runs": [_send_json(run) for run in self.live_sends],
            },
            "attention": [{"problem": a.problem, "fix": a.fix} for a in self.attention],
        }


def masked_url(url: str) -> str:
    """The database URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def gather_status(
    connection: Connection,
    project: Project,
    *,
    as_of: date,
    now: datetime,
    database_url: str,
    days: int = WINDOW_DAYS,
) -> Status:
    """The status as of the day `as_of`, at the UTC time `now` (naive)."""
    status = Status(as_of=as_of, checked_at=now, database=masked_url(database_url), days=days)
    _signing_key(connection, status)
    _plan(connection, status)
    _mail(connection, project, status, now)
    _send_runs(connection, status)
    return status


def _signing_key(connection: Connection, status: Status) -> None:
    try:
        key = signing_key(connection)
    except UserError as exc:
        status.key_problem = exc.reason
        status.attention.append(Attention(f"links cannot be signed: {exc.reason}", exc.fix or ""))
    except TrouwError as exc:
        status.key_problem = str(exc)
        status.attention.append(
            Attention(f"links cannot be signed: {exc}", "run `trouw send` once to migrate")
        )
    else:
        status.key_fingerprint, status.key_source = key.fingerprint, key.source


def _plan(connection: Connection, status: Status) -> None:
    day = status.as_of
    year, following = day.year, day.year + 1
    found = latest_plan_runs(connection, (year, following))
    this, upcoming = (
        YearPlan(y, year_planned(connection, y), found.get(y)) for y in (year, following)
    )
    status.this_year, status.next_year = this, upcoming
    status.last_plan = last_plan_run(connection)
    status.next_year_needed = day.month >= NEXT_YEAR_MONTH
    status.covers_today = this.planned and (this.run is None or this.run.as_of <= day)
    if not this.planned:
        status.attention.append(
            Attention(
                f"there is no plan for {year}: the send decides each day by itself, but "
                "calendar, plan explain and the forecast of what is owed show nothing",
                f"run `trouw plan {year}` (is the plan job scheduled?)",
            )
        )
    elif not status.covers_today:
        assert this.run is not None
        status.attention.append(
            Attention(
                f"the plan of {year} starts on {this.run.as_of}, after {day}",
                f"run `trouw plan {year} --as-of {day}`",
            )
        )
    if status.next_year_needed and not upcoming.planned:
        status.attention.append(
            Attention(
                f"there is no plan for {following}, and it is December",
                f"run `trouw plan {following}` (did the plan job of 1 December fail?)",
            )
        )


def _mail(connection: Connection, project: Project, status: Status, now: datetime) -> None:
    day, mail = status.as_of, status.mail
    campaigns = {c.name: c for c in load_campaigns(project.campaigns_dir)}
    owed = count_owed(connection, day, campaigns=campaigns, policy=project.settings.policy, now=now)
    mail.owed, mail.owed_since, mail.expiring = owed.owed, owed.since, owed.expiring
    overdue = {d: n for d, n in owed.waiting.items() if d < day - timedelta(days=OVERDUE_DAYS)}
    mail.overdue = sum(overdue.values())
    mail.overdue_since = min(overdue, default=None)
    mail.deferred = _count(connection, ledger.c.status == book.DEFERRED)
    since = day - timedelta(days=status.days - 1)
    recent = connection.execute(
        select(ledger.c.status, ledger.c.day, func.count())
        .where(
            ledger.c.status.in_((book.UNKNOWN, book.EXPIRED, book.FAILED)),
            ledger.c.day >= since,
            ledger.c.day <= day,
        )
        .group_by(ledger.c.status, ledger.c.day)
    )
    for state, when, n in recent:
        if state == book.UNKNOWN:
            mail.unknown += n
            mail.unknown_days[when] = n
        elif state == book.EXPIRED:
            mail.expired += n
        else:
            mail.failed += n
    mail.unknown_days = dict(sorted(mail.unknown_days.items()))
    held = runs.held_rows(connection)
    live = runs.alive(connection, [run_id for run_id in held if run_id is not None])
    mail.held = sum(n for run_id, n in held.items() if run_id in live)
    mail.held_by_dead_runs = sum(n for run_id, n in held.items() if run_id not in live)
    _mail_attention(status, since)


def _mail_attention(status: Status, since: date) -> None:
    mail, add = status.mail, status.attention.append
    if mail.unknown:
        first = next(iter(mail.unknown_days))
        days = ", ".join(f"{n} of {d}" for d, n in mail.unknown_days.items())
        add(
            Attention(
                f"{mail.unknown} mails have an unknown fate ({days}): a send run died while "
                "the server had them",
                f"check the SMTP server's log (`trouw log --status unknown --since {first}` "
                "lists them); `trouw send --as-of DAY --retry-unknown` sends a day's again",
            )
        )
    if mail.expired:
        add(
            Attention(
                f"{mail.expired} mails expired since {since}: not sent within their validity",
                f"`trouw log --status expired --since {since}` says why; check that the send "
                "job runs and the server accepts mail",
            )
        )
    if mail.overdue:
        add(
            Attention(
                f"{mail.overdue} owed mails have waited for a send run since {mail.overdue_since}",
                f"run `trouw send --as-of {status.as_of}` (is the send job scheduled?)",
            )
        )
    if mail.held_by_dead_runs:
        add(
            Attention(
                f"{mail.held_by_dead_runs} mails are held by send runs that died",
                "run `trouw send`: it takes them over (any that were on the wire become unknown)",
            )
        )


def _send_runs(connection: Connection, status: Status) -> None:
    recent = runs.recent_runs(connection, RECENT_RUNS)
    running = runs.alive(connection, [r.id for r in recent if r.outcome is None])
    for record in recent:
        if record.id in running:
            status.live_sends.append(SendRunState(record, "running"))
        elif status.last_send is None:
            status.last_send = SendRunState(record, record.outcome or "died")
    last = status.last_send
    if last is None:
        return
    run = last.record
    which = (
        f"the last send run (#{run.id}, for {run.as_of}, started "
        f"{run.started_at:%Y-%m-%d %H:%M} UTC on {run.host}, pid {run.pid})"
    )
    if last.state == "failed":
        status.attention.append(
            Attention(
                f"{which} failed",
                "read its output (e.g. .trouw/logs/send.log), fix the cause, run `trouw send`",
            )
        )
    elif last.state == "died":
        status.attention.append(
            Attention(
                f"{which} ended without a word: killed or crashed",
                "find why it died (out of memory? killed?); the next `trouw send` takes over "
                "its mails",
            )
        )


def _count(connection: Connection, condition: Any) -> int:
    query = select(func.count()).select_from(ledger).where(condition)
    return int(connection.execute(query).scalar_one())


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.replace(microsecond=0).isoformat() + "Z"


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _plan_json(run: PlanRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "year": run.year,
        "as_of": run.as_of.isoformat(),
        "started_at": _utc(run.started_at),
        "finished_at": _utc(run.finished_at),
        "contacts": run.contacts,
        "planned": run.statuses.get("planned", 0),
        "deferred": run.statuses.get("deferred", 0),
        "dropped": run.statuses.get("dropped", 0),
    }


def _year_json(plan: YearPlan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {"year": plan.year, "planned": plan.planned, "last_run": _plan_json(plan.run)}


def _send_json(run: SendRunState | None) -> dict[str, Any] | None:
    if run is None:
        return None
    record = run.record
    return {
        "id": record.id,
        "host": record.host,
        "pid": record.pid,
        "as_of": record.as_of.isoformat(),
        "started_at": _utc(record.started_at),
        "ended_at": _utc(record.ended_at),
        "outcome": run.state,
        "counts": record.summary,
    }


__all__ = [
    "NEXT_YEAR_MONTH",
    "OVERDUE_DAYS",
    "WINDOW_DAYS",
    "Attention",
    "MailCounts",
    "SendRunState",
    "Status",
    "YearPlan",
    "gather_status",
    "masked_url",
]

"""`trouw demo`: generate a shop's data and run the pipeline on it.

The demo works in a database of its own (see `demo/database.py`) and writes
its files under `.trouw/demo/`; running it again replaces what the previous
run made there and nothing else.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select

from trouw.campaigns import campaign_names, load_campaigns
from trouw.demo.database import DemoDatabase, claim, demo_folder
from trouw.demo.generator import DemoFiles, write_demo_files
from trouw.demo.responses import RESPONSE_DAYS, write_responses
from trouw.importing import ImportReport, Kind, import_file
from trouw.planning import DROPPED, PlanSummary, plan_year
from trouw.planning.calendar_data import project_calendar
from trouw.planning.calendar_page import calendar_html
from trouw.planning.views import calendar_ics, year_view
from trouw.project import Project
from trouw.reports.experiments import report_experiments
from trouw.reports.figures import build_report
from trouw.reports.html import report_html
from trouw.scaffold import plan_year_for
from trouw.segments import Clock, count_members, load_catalog
from trouw.sending import OutboxTransport, SendSummary, send_day
from trouw.sending.ledger import SENT
from trouw.store import atomic, contacts, events, ledger, plan
from trouw.templates.preview_run import preview_mails, write_mail_files

# Opens a progress display for a stage of `total` bytes; yields the advance function.
Stage = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class DemoResult:
    files: DemoFiles
    contacts: ImportReport
    events: ImportReport
    channels: dict[str, int]
    event_types: dict[str, int]
    example_contact: str | None
    segment_sizes: dict[str, int]
    previews: list[Path]
    plan: PlanSummary
    dropped: dict[str, int]  # the plan's dropped sends by reason, most first
    calendar_html: Path
    calendar_ics: Path
    sent: SendSummary | None  # the plan's first send day, delivered to the outbox
    delivered: dict[str, int]  # that day's sent rows in the ledger, by channel (email, post)
    outbox: Path
    report_html: Path  # the report of the send day's year, as of `report_day`
    responses: int = 0  # events generated for the weeks after the send (demo/responses.py)
    report_day: date | None = None  # the send day, or the end of the generated weeks after


def _no_progress(_label: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda _size: None)


def run_demo(
    engine: Engine,
    project: Project,
    database: DemoDatabase,
    *,
    contacts_count: int,
    as_of: date,
    seed: int = 42,
    stage: Stage = _no_progress,
) -> DemoResult:
    """Generate, import, count, preview, plan, send a day and report, in `engine`'s database.

    Refuses (UserError) before writing anything when that database holds data
    the demo did not make; the previous run's rows and files are replaced.
    """
    with atomic(engine) as connection:
        claim(connection, database)
    folder = demo_folder(project)
    if folder.exists():
        shutil.rmtree(folder)  # the previous run's previews, outbox and letters
    files = write_demo_files(folder, contacts=contacts_count, as_of=as_of, seed=seed)
    timezone = project.settings.timezone
    contacts_report = _import(engine, files.contacts_path, "contacts", timezone, stage)
    events_report = _import(engine, files.events_path, "events", timezone, stage)
    with engine.connect() as connection:
        channels: dict[str, int] = dict(
            connection.execute(
                select(contacts.c.channel, func.count()).group_by(contacts.c.channel)
            ).all()
        )
        event_types: dict[str, int] = dict(
            connection.execute(
                select(events.c.type, func.count())
                .group_by(events.c.type)
                .order_by(func.count().desc())
            ).all()
        )
        example = connection.execute(
            select(events.c.contact_id)
            .where(events.c.type == "click", events.c.tag == "fire-safety")
            .order_by(events.c.contact_id)
            .limit(1)
        ).scalar()
    with engine.connect() as connection:
        sizes = segment_sizes(connection, project, as_of)
        previews = write_previews(connection, project, as_of, folder / "previews")
    year = plan_year_for(as_of)
    with atomic(engine) as connection:
        summary = plan_year(connection, project, year=year, as_of=as_of)
        view = year_view(connection, year)
        page = project_calendar(connection, project, year)
        dropped = dropped_by_reason(connection, year)
    html_path, ics_path = folder / f"calendar-{year}.html", folder / f"calendar-{year}.ics"
    html_path.write_text(calendar_html(page), encoding="utf-8")
    ics_path.write_bytes(calendar_ics(view, name=project.settings.name))
    outbox = folder / "outbox"
    first_day = min(view.per_day, default=None)
    sent = None
    delivered: dict[str, int] = {}
    if first_day is not None:
        # Sent as at 15:00 of that day: 10:00 on Curaçao, inside every demo contact's window.
        moment = datetime.combine(first_day, time(15), project.settings.tz)
        now = moment.astimezone(UTC).replace(tzinfo=None)
        sent = send_day(engine, project, first_day, OutboxTransport(outbox), now=now)
        with engine.connect() as connection:
            delivered = sent_by_channel(connection, first_day)
    report_day = first_day or as_of
    responses = 0
    if first_day is not None:  # an A/B test or a holdout on the day: the weeks after, too
        responses_path = folder / "responses.csv"
        with engine.connect() as connection:
            responses = write_responses(
                connection, load_campaigns(project.campaigns_dir), first_day, responses_path,
                seed=seed,
            )  # fmt: skip
        if responses:
            _import(engine, responses_path, "events", timezone, stage)
            report_day = first_day + timedelta(days=RESPONSE_DAYS)
    report_path = folder / f"report-{report_day.year}.html"
    with engine.connect() as connection:
        report = build_report(
            connection,
            name=project.settings.name,
            year=report_day.year,
            as_of=report_day,
            timezone=project.settings.tz,
            caps=project.settings.policy,
        )
        experiments = report_experiments(connection, report, project)
    report_path.write_text(report_html(report, experiments), encoding="utf-8")
    return DemoResult(
        files=files,
        contacts=contacts_report,
        events=events_report,
        channels=channels,
        event_types=event_types,
        example_contact=example,
        segment_sizes=sizes,
        previews=previews,
        plan=summary,
        dropped=dropped,
        calendar_html=html_path,
        calendar_ics=ics_path,
        sent=sent,
        delivered=delivered,
        outbox=outbox,
        report_html=report_path,
        responses=responses,
        report_day=report_day,
    )


def segment_sizes(connection: Connection, project: Project, as_of: date) -> dict[str, int]:
    """Every segment of the project, counted as of `as_of` (one SQL statement each)."""
    catalog = load_catalog(project.segments_dir)
    clock = Clock(as_of, project.settings.tz)
    return {
        name: count_members(connection, catalog.get(name), catalog, clock)
        for name in sorted(catalog.segments)
    }


def write_previews(
    connection: Connection, project: Project, as_of: date, folder: Path
) -> list[Path]:
    """A sample mail per variant of every campaign, as .html/.txt/.eml files in `folder`."""
    written: list[Path] = []
    for name in campaign_names(project.campaigns_dir):
        results, mails = preview_mails(
            project, connection, as_of, name, contact_ids=[], segment=None, limit=1
        )
        for result in results:
            if result.mail is not None:
                written.extend(write_mail_files(mails, result, folder))
    return written


def dropped_by_reason(connection: Connection, year: int) -> dict[str, int]:
    """The year plan's dropped sends by reason (unsubscribed, caps, ...), most first."""
    days = plan.c.day.between(date(year, 1, 1), date(year, 12, 31))
    rows = connection.execute(
        select(plan.c.reason, func.count())
        .where(plan.c.status == DROPPED, days)
        .group_by(plan.c.reason)
        .order_by(func.count().desc(), plan.c.reason)
    ).all()
    return {str(reason): int(count) for reason, count in rows}


def sent_by_channel(connection: Connection, day: date) -> dict[str, int]:
    """The ledger's sent rows of `day` by channel: mails (`email`) and letters (`post`).

    Counted in the ledger, not in the outbox: a letter is one .html file and,
    with the `pdf` extra, one .pdf beside it.
    """
    rows = connection.execute(
        select(ledger.c.channel, func.count())
        .where(ledger.c.day == day, ledger.c.status == SENT)
        .group_by(ledger.c.channel)
    ).all()
    return {str(channel): int(count) for channel, count in rows}


def _import(engine: Engine, path: Path, kind: Kind, timezone: str, stage: Stage) -> ImportReport:
    with stage(f"importing {kind}", path.stat().st_size) as advance:
        return import_file(engine, kind, path, timezone=timezone, progress=advance)

"""`trouw demo`: generate a shop's data and run the pipeline on it.

The demo data lives in the project's database under ids starting with
`demo-`; running the demo again replaces exactly those rows and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, func, select

from trouw.campaigns import campaign_names
from trouw.demo.generator import DemoFiles, write_demo_files
from trouw.importing import ImportReport, Kind, import_file
from trouw.planning import PlanSummary, plan_year
from trouw.planning.views import calendar_html, calendar_ics, year_view
from trouw.project import Project
from trouw.reports.figures import build_report
from trouw.reports.html import report_html
from trouw.segments import Clock, count_members, load_catalog
from trouw.sending import OutboxTransport, SendSummary, send_day
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
    calendar_html: Path
    calendar_ics: Path
    sent: SendSummary | None  # the plan's first send day, delivered to the outbox
    outbox: Path
    report_html: Path  # the report of the send day's year, as of that day


def _no_progress(_label: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda _size: None)


def run_demo(
    engine: Engine,
    project: Project,
    *,
    contacts_count: int,
    as_of: date,
    seed: int = 42,
    stage: Stage = _no_progress,
) -> DemoResult:
    folder = project.state_dir / "demo"
    files = write_demo_files(folder, contacts=contacts_count, as_of=as_of, seed=seed)
    remove_demo_data(engine)
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
    html_path, ics_path = folder / f"calendar-{year}.html", folder / f"calendar-{year}.ics"
    html_path.write_text(calendar_html(view, name=project.settings.name), encoding="utf-8")
    ics_path.write_bytes(calendar_ics(view, name=project.settings.name))
    outbox = folder / "outbox"
    first_day = min(view.per_day, default=None)
    sent = None
    if first_day is not None:
        # Sent as at 15:00 of that day: 10:00 on Curaçao, inside every demo contact's window.
        moment = datetime.combine(first_day, time(15), project.settings.tz)
        now = moment.astimezone(UTC).replace(tzinfo=None)
        sent = send_day(engine, project, first_day, OutboxTransport(outbox), now=now)
    report_day = first_day or as_of
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
    report_path.write_text(report_html(report), encoding="utf-8")
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
        calendar_html=html_path,
        calendar_ics=ics_path,
        sent=sent,
        outbox=outbox,
        report_html=report_path,
    )


def plan_year_for(as_of: date) -> int:
    """The year a marketer plans now: the coming one from November on (like the cron job)."""
    return as_of.year + 1 if as_of.month >= 11 else as_of.year


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


def remove_demo_data(engine: Engine) -> None:
    """Delete what an earlier demo run made for its contacts (ids `demo-…`), in one transaction."""
    with atomic(engine) as connection:
        for table in (events, plan, ledger):
            connection.execute(delete(table).where(table.c.contact_id.startswith("demo-")))
        connection.execute(delete(contacts).where(contacts.c.id.startswith("demo-")))


def _import(engine: Engine, path: Path, kind: Kind, timezone: str, stage: Stage) -> ImportReport:
    with stage(f"importing {kind}", path.stat().st_size) as advance:
        return import_file(engine, kind, path, timezone=timezone, progress=advance)

"""`trouw demo`: generate a shop's data and run the pipeline on it.

The demo data lives in the project's database under ids starting with
`demo-`; running the demo again replaces exactly those rows and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, delete, func, select

from trouw.demo.generator import DemoFiles, write_demo_files
from trouw.importing import ImportReport, Kind, import_file
from trouw.project import Project
from trouw.store import atomic, contacts, events

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
    return DemoResult(files, contacts_report, events_report, channels, event_types, example)


def remove_demo_data(engine: Engine) -> None:
    """Delete the rows an earlier demo run imported (ids `demo-…`), in one transaction."""
    with atomic(engine) as connection:
        connection.execute(delete(events).where(events.c.contact_id.startswith("demo-")))
        connection.execute(delete(contacts).where(contacts.c.id.startswith("demo-")))


def _import(engine: Engine, path: Path, kind: Kind, timezone: str, stage: Stage) -> ImportReport:
    with stage(f"importing {kind}", path.stat().st_size) as advance:
        return import_file(engine, kind, path, timezone=timezone, progress=advance)

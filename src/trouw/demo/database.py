"""Where the demo writes, and the rule that it writes only where it may.

The demo works in its own SQLite database, `.trouw/demo.db` in the project,
so a project's own contacts, plan and ledger are never touched. Named with
`--db` it works there instead, but only in a database that is empty or that
the demo made: one that carries the demo's marker (the key `demo` in the
`keys` table, written before its first row) and whose contacts, plan and
ledger rows all belong to ids the generator makes (`demo-…`). Anything else is
refused before a row is written. `--clean` undoes exactly what the demo made.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.engine import make_url

from trouw.errors import UserError
from trouw.project import Project
from trouw.store import (
    atomic,
    contacts,
    ledger,
    open_store,
    plan,
    segment_members,
    segment_snapshots,
    suppressions,
)
from trouw.store.keys import read_key, remember_key
from trouw.store.tables import keys

DEMO_FILE = "demo.db"
DEMO_FOLDER = "demo"  # the demo's files: data, previews, outbox and letters, calendar, report
MARKER = "demo"
PREFIX = "demo-"
# What SQLite and trouw keep beside a database file: journals, the writers' lock, run locks.
_BESIDE = ("-wal", "-shm", "-journal", "-writers.lock", "-runs")


@dataclass(frozen=True)
class DemoDatabase:
    """The database the demo works in: its own file, or the one named with --db."""

    url: str
    own: bool  # the demo's own `.trouw/demo.db`, not named by the user
    path: Path | None  # the SQLite file, when it is one

    @classmethod
    def for_project(cls, project: Project, named: str | None) -> DemoDatabase:
        if named is None:
            path = project.state_dir / DEMO_FILE
            return cls(f"sqlite:///{path}", own=True, path=path)
        parsed = make_url(named) if "://" in named else None
        file = parsed.database if parsed and parsed.get_backend_name() == "sqlite" else None
        return cls(named, own=False, path=Path(file) if file and file != ":memory:" else None)

    @property
    def shown(self) -> str:
        """The URL as messages show it: without a password."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # a URL SQLAlchemy cannot read: open_store names the problem
            return self.url


@dataclass(frozen=True)
class Holdings:
    """What a database holds, as the demo sees it."""

    marked: bool  # carries the demo's marker
    demo_contacts: int
    other_contacts: int
    other_rows: int  # plan and ledger rows of contacts that are not the demo's
    anything: bool  # any contact, plan, ledger or suppression row at all
    example: str | None  # a contact id that is not the demo's

    @property
    def only_the_demos(self) -> bool:
        """Empty, or made by the demo and holding nothing else."""
        if not self.marked:
            return not self.anything
        return self.other_contacts == 0 and self.other_rows == 0


def holdings(connection: Connection) -> Holdings:
    """Count what the database holds: the demo's rows and everybody else's."""
    ours = contacts.c.id.startswith(PREFIX, autoescape=True)
    demo_contacts = connection.execute(select(func.count()).where(ours)).scalar_one()
    other_contacts = connection.execute(select(func.count()).where(~ours)).scalar_one()
    example = connection.execute(
        select(contacts.c.id).where(~ours).order_by(contacts.c.id).limit(1)
    ).scalar()
    other_rows = sum(
        connection.execute(
            select(func.count())
            .select_from(table)
            .where(~table.c.contact_id.startswith(PREFIX, autoescape=True))
        ).scalar_one()
        for table in (plan, ledger)
    )
    anything = demo_contacts + other_contacts + other_rows > 0 or any(
        connection.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (plan, ledger, suppressions)
    )
    return Holdings(
        marked=read_key(connection, MARKER) is not None,
        demo_contacts=demo_contacts,
        other_contacts=other_contacts,
        other_rows=other_rows,
        anything=anything,
        example=example,
    )


def claim(connection: Connection, database: DemoDatabase) -> None:
    """Refuse a database that holds data the demo did not make; else mark it as the demo's
    and clear what an earlier run made, so the next run starts afresh."""
    found = holdings(connection)
    if not found.only_the_demos:
        raise _refusal(database, found)
    remember_key(connection, MARKER, f"trouw demo, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    remove_demo_rows(connection)
    # Saved segment sizes describe the earlier run's contacts; in the demo's database they
    # are all the demo's (members go with them).
    connection.execute(delete(segment_snapshots))


def _refusal(database: DemoDatabase, found: Holdings) -> UserError:
    if found.other_contacts:
        what = f"{_contacts(found.other_contacts)} the demo did not make (e.g. '{found.example}')"
    elif found.other_rows:
        what = f"{found.other_rows:,} plan and ledger rows the demo did not make"
    else:
        what = "data (contacts, a plan, a ledger or suppressions) without the demo's marker"
    reason = f"{database.shown} holds {what}; the demo never touches another's data"
    if database.own:
        fix = (
            "that is the demo's own database, yet something else was put in it: "
            f"move {database.path} away to keep it, then run `trouw demo` again"
        )
    else:
        fix = (
            "leave out --db: `trouw demo` then works in its own database, .trouw/demo.db; "
            "or name an empty database with --db"
        )
    return UserError(reason, fix=fix)


def remove_demo_rows(connection: Connection) -> int:
    """Delete every row the demo made for its contacts (ids `demo-…`); returns the contacts.

    Events go with their contact (ON DELETE CASCADE); plan, ledger and saved
    segment members are keyed by the id alone.
    """
    for table in (plan, ledger, segment_members):
        connection.execute(
            delete(table).where(table.c.contact_id.startswith(PREFIX, autoescape=True))
        )
    removed = connection.execute(
        delete(contacts).where(contacts.c.id.startswith(PREFIX, autoescape=True))
    )
    return int(removed.rowcount or 0)


@dataclass
class Cleaned:
    """What `clean_demo` removed, and what it did in a database it kept."""

    files: list[Path] = field(default_factory=list)  # files and folders removed
    note: str | None = None  # what happened in a database that stays


def demo_folder(project: Project) -> Path:
    return project.state_dir / DEMO_FOLDER


def clean_demo(project: Project, database: DemoDatabase) -> Cleaned:
    """Remove the demo's database (or its rows in a named one) and its files, nothing else.

    The demo's own file is deleted when it holds only the demo's data; with
    anything else in it, or in a database named with --db, only the demo's
    rows and marker go. A database without the marker is left as it is.
    """
    cleaned = Cleaned()
    if database.path is None or database.path.exists():  # opening a file would make it
        cleaned.note = _clean_database(database, cleaned.files)
    folder = demo_folder(project)
    if folder.exists():
        shutil.rmtree(folder)
        cleaned.files.append(folder)
    return cleaned


def _clean_database(database: DemoDatabase, removed: list[Path]) -> str | None:
    engine = open_store(database.url)
    try:
        with atomic(engine) as connection:
            found = holdings(connection)
            if not found.marked and found.anything:
                return f"left {database.shown} as it is: it holds no demo data"
            delete_file = database.own and database.path is not None and found.only_the_demos
            if not delete_file:
                count = remove_demo_rows(connection)
                connection.execute(delete(keys).where(keys.c.name == MARKER))
                if found.only_the_demos:
                    connection.execute(delete(segment_snapshots))
    finally:
        engine.dispose()
    if delete_file:
        assert database.path is not None
        removed.extend(_delete_database_files(database.path))
        return None
    note = f"removed the demo's {_contacts(count)} and their rows from {database.shown}"
    if found.other_contacts:
        note += f"; kept the {_contacts(found.other_contacts)} the demo did not make"
    return note


def _contacts(count: int) -> str:
    return f"{count:,} contact" + ("" if count == 1 else "s")


def _delete_database_files(path: Path) -> list[Path]:
    removed = []
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _BESIDE)):
        if candidate.is_dir():
            shutil.rmtree(candidate)
        elif candidate.exists():
            candidate.unlink()
        else:
            continue
        removed.append(candidate)
    return removed

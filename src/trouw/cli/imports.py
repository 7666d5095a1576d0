"""`trouw import contacts|events FILE`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from trouw.cli.params import Env, pass_env

if TYPE_CHECKING:  # the libraries are imported when a command runs: the CLI starts fast
    from trouw.importing import ImportReport, Kind

SHOWN_REJECTS = 20
F = TypeVar("F", bound=Callable[..., Any])


@click.group("import")
def import_group() -> None:
    """Import contacts or events from CSV or JSONL files.

    \b
    Example:
      trouw import contacts customers.csv
      trouw import events clicks.jsonl
    """


def _file_options(function: F) -> F:
    function = click.option(
        "--batch-size",
        type=click.IntRange(1),
        default=5000,
        show_default=True,
        help="Rows per transaction; an interrupted import keeps only whole batches.",
    )(function)
    function = click.option("--strict", is_flag=True, help="Import nothing if any row is bad.")(
        function
    )
    function = click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "jsonl"]),
        help="File format (default: from the extension).",
    )(function)
    return click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))(
        function
    )


@import_group.command("contacts")
@_file_options
@pass_env
def contacts_command(env: Env, file: Path, fmt: str | None, strict: bool, batch_size: int) -> None:
    """Add or update contacts by `id`.

    Known columns: id (required), email, first_name, last_name, locale,
    timezone, birthday, customer_since, channel (email|post|none), street,
    postcode, city, country. Every other column becomes an attribute.
    Empty values keep what is stored. A row with a line break in a text
    value, or a NUL character anywhere, is rejected with its line and column.

    \b
    Example:
      trouw import contacts customers.csv --strict
    """
    _run(env, "contacts", file, fmt, strict, batch_size)


@import_group.command("events")
@_file_options
@pass_env
def events_command(env: Env, file: Path, fmt: str | None, strict: bool, batch_size: int) -> None:
    """Add behaviour events (purchases, clicks, surveys, ...).

    Columns: contact_id, type, occurred_at (ISO 8601; without an offset it is
    read in the project's time zone), and optional id, tag, url, product,
    category, amount, score. Other columns become properties. With an `id`
    column, re-importing the same file adds nothing twice.

    A provider's bounce or complaint export can give `email` instead of
    contact_id (rename its columns to email, type = bounce|complaint,
    occurred_at; tag soft for a soft bounce): the event goes to every contact
    with that address, and a hard bounce or complaint for an address no
    contact has suppresses it, so it is never mailed.

    \b
    Example:
      trouw import events purchases.csv
    """
    _run(env, "events", file, fmt, strict, batch_size)


def _run(env: Env, kind: Kind, file: Path, fmt: str | None, strict: bool, batch: int) -> None:
    from trouw.cli.output import byte_progress
    from trouw.importing import import_file

    with byte_progress(f"importing {file.name}", file.stat().st_size) as advance:
        report = import_file(
            env.engine,
            kind,
            file,
            timezone=env.project.settings.timezone,
            fmt=fmt,
            strict=strict,
            batch_size=batch,
            progress=advance,
        )
    _summarise(report)


def _summarise(report: ImportReport) -> None:
    from trouw.cli.output import console, errors

    for rejected in report.rejected[:SHOWN_REJECTS]:
        errors.print(f"rejected: {rejected.describe(report.path)}", markup=False)
    hidden = report.rejected_count - min(len(report.rejected), SHOWN_REJECTS)
    if hidden:
        errors.print(f"... and {hidden} more rejected rows")
    if not report.applied:
        raise click.exceptions.Exit(
            _fail(
                f"{report.rejected_count} of {report.rows} rows are bad; "
                "--strict: nothing imported. Fix the rows above and import again."
            )
        )
    line = f"{report.path.name}: {report.written} {report.kind} imported"
    if report.unchanged:
        line += f", {report.unchanged} already known (skipped)"
    if report.rejected_count:
        line += f", {report.rejected_count} rejected"
    console.print(line, markup=False)
    if report.suppressed:
        console.print(
            f"{report.suppressed} addresses were forgotten before: they stay suppressed "
            "and are never mailed."
        )
    if report.rejected_count:
        raise click.exceptions.Exit(_fail("fix the rejected rows and import them again"))


def _fail(message: str) -> int:
    from trouw.cli.output import errors

    errors.print(f"Error: {message}", markup=False)
    return 2

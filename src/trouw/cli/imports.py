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
DELIMITER_NAMES = {",": ",", ";": ";", "tab": "\t", "comma": ",", "semicolon": ";"}
READING_HELP = """
    \b
    Reading a spreadsheet's export (Excel, LibreOffice, a web shop):
      --delimiter  , ; or tab: found from the header line when not given.
      --date-format DD-MM-YYYY  the order of DD, MM, YYYY with - / or . between
                   (MM/DD/YYYY, DD.MM.YYYY); ISO dates (1990-02-01) always read.
                   Without it 01-02-1990 is refused: 1 February or January 2?
      --decimal-comma  4,5 is 4.5 and 4.500 is 4500 (a dot groups thousands).
      --decimal-point  4.500 is 4.5.
                   Without either, 12.50 is a number but 4.500 (4.5 or 4500?)
                   and 4,5 are not: an extra column keeps them as text (the
                   import says so), amount and score refuse the row.
      --rejects FILE  every refused row, with its reason in the first column
                   reject_reason: fix the rows in FILE and import FILE itself
                   (the reason column is ignored on import).
"""


@click.group("import")
def import_group() -> None:
    """Import contacts or events from CSV or JSONL files.

    \b
    Example:
      trouw import contacts customers.csv
      trouw import events clicks.jsonl
    """


def _date_format(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from trouw.notation import DateFormat

    try:
        return DateFormat.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _file_options(function: F) -> F:
    function = click.option(
        "--rejects",
        type=click.Path(dir_okay=False, writable=True, path_type=Path),
        help="Write every refused row to this file, reason first, to fix and import again.",
    )(function)
    function = click.option(
        "--decimal-comma/--decimal-point",
        "decimal_comma",
        default=None,
        help="4,5 and 4.500 (= 4500) / 4.500 (= 4.5); without either, both are ambiguous.",
    )(function)
    function = click.option(
        "--date-format",
        callback=_date_format,
        metavar="DD-MM-YYYY",
        help="How the file writes dates that are not YYYY-MM-DD (DD-MM-YYYY, MM/DD/YYYY...).",
    )(function)
    function = click.option(
        "--delimiter",
        type=click.Choice(sorted(DELIMITER_NAMES)),
        help="The CSV delimiter (default: found from the header line).",
    )(function)
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


@import_group.command(
    "contacts",
    help=f"""Add or update contacts by `id`.

    Known columns: id (required), email, first_name, last_name, locale,
    timezone, birthday, customer_since, channel (email|post|none), street,
    postcode, city, country. Every other column becomes an attribute.
    Empty values keep what is stored. A row with a line break in a text
    value, or a NUL character anywhere, is rejected with its line and column.
    A file whose first line has no `id` column (a file without a header) is
    refused as a whole.
    {READING_HELP}
    \b
    Example:
      trouw import contacts customers.csv --strict
      trouw import contacts excel.csv --date-format DD-MM-YYYY --decimal-comma --rejects bad.csv
    """,
)
@_file_options
@pass_env
def contacts_command(env: Env, /, **options: Any) -> None:
    _run(env, "contacts", **options)


@import_group.command(
    "events",
    help=f"""Add behaviour events (purchases, clicks, surveys, ...).

    Columns: contact_id, type, occurred_at (ISO 8601; without an offset it is
    read in the project's time zone), and optional id, tag, url, product,
    category, amount, score. Other columns become properties. With an `id`
    column, re-importing the same file adds nothing twice.

    A provider's bounce or complaint export can give `email` instead of
    contact_id (rename its columns to email, type = bounce|complaint,
    occurred_at; tag soft for a soft bounce): the event goes to every contact
    with that address, and a hard bounce or complaint for an address no
    contact has suppresses it, so it is never mailed.

    --date-format also reads occurred_at written as 02-04-2027 or
    02-04-2027 10:30 (read in the project's time zone).
    {READING_HELP}
    \b
    Example:
      trouw import events purchases.csv
      trouw import events orders.csv --date-format DD-MM-YYYY --decimal-comma
    """,
)
@_file_options
@pass_env
def events_command(env: Env, /, **options: Any) -> None:
    _run(env, "events", **options)


def _run(
    env: Env,
    kind: Kind,
    *,
    file: Path,
    fmt: str | None,
    strict: bool,
    batch_size: int,
    delimiter: str | None,
    date_format: Any,
    decimal_comma: bool | None,
    rejects: Path | None,
) -> None:
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
            batch_size=batch_size,
            progress=advance,
            delimiter=DELIMITER_NAMES[delimiter] if delimiter else None,
            date_format=date_format,
            decimal_mark=None if decimal_comma is None else "," if decimal_comma else ".",
            rejects=rejects,
            local_part=env.project.settings.bounces.local_part,
        )
    _summarise(report, rejects)


def _summarise(report: ImportReport, rejects: Path | None) -> None:
    from trouw.cli.output import console, errors
    from trouw.importing import DELIMITERS

    if report.delimiter not in (None, ","):
        console.print(
            f"{report.path.name}: columns separated by {DELIMITERS[report.delimiter or ',']}s",
            markup=False,
        )
    for column, (count, why) in report.doubts.items():
        errors.print(
            f"note: {report.path}, column '{column}': {why} ({count} rows kept this as text)",
            markup=False,
        )
    for rejected in report.rejected[:SHOWN_REJECTS]:
        errors.print(f"rejected: {rejected.describe(report.path)}", markup=False)
    hidden = report.rejected_count - min(len(report.rejected), SHOWN_REJECTS)
    if hidden:
        errors.print(f"... and {hidden} more rejected rows")
    if rejects is not None and report.rejected_count:
        errors.print(
            f"the {report.rejected_count} rejected rows are in {rejects}, the reason first: "
            f"fix them there and import that file",
            markup=False,
        )
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
    suppressed = [(line, email) for line, email, hard in report.strangers if hard]
    if suppressed:
        shown = ", ".join(f"'{email}' (line {line})" for line, email in suppressed[:5])
        more = f" and {len(suppressed) - 5} more" if len(suppressed) > 5 else ""
        console.print(
            f"{len(suppressed)} bounced or complaining addresses belong to no contact: "
            f"{shown}{more}; they are suppressed and never mailed.",
            markup=False,
        )
    if len(report.strangers) > len(suppressed):
        console.print(
            f"{len(report.strangers) - len(suppressed)} soft bounces of addresses no contact "
            "has: nothing to do.",
            markup=False,
        )
    if report.rejected_count:
        raise click.exceptions.Exit(_fail("fix the rejected rows and import them again"))


def _fail(message: str) -> int:
    from trouw.cli.output import errors

    errors.print(f"Error: {message}", markup=False)
    return 2

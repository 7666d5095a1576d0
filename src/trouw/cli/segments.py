"""`trouw segments list|count|members|explain|sql`."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url

from trouw.cli.output import console
from trouw.cli.params import Env, as_of_option, format_option, pass_env
from trouw.segments import (
    MEMBER_COLUMNS,
    Catalog,
    Clock,
    SegmentError,
    count_members,
    load_catalog,
    member_rows,
    save_snapshot,
    segment_sql,
)
from trouw.segments.explain import explain
from trouw.store import atomic


def _catalog(env: Env) -> Catalog:
    return load_catalog(env.project.segments_dir)


def _clock(env: Env, as_of: date | None) -> Clock:
    return Clock(as_of or env.today(), env.project.settings.tz)


@click.group("segments")
def segments_group() -> None:
    """Define audiences in segments/NAME.yaml; count, list and explain them.

    \b
    Example:
      trouw segments count --as-of 2027-03-01
    """


@segments_group.command("list")
@pass_env
def list_command(env: Env) -> None:
    """Show every segment with its description, or what is wrong with it.

    Exits 2 if any segment is invalid, after listing them all.

    \b
    Example:
      trouw segments list
    """
    catalog = _catalog(env)
    table = Table(title_justify="left")
    table.add_column("segment")
    table.add_column("description")
    for name in catalog.names:
        if name in catalog.errors:
            table.add_row(name, f"[red]invalid:[/red] {escape(str(catalog.errors[name]))}")
        else:
            table.add_row(name, escape(catalog.segments[name].description))
    console.print(table)
    if catalog.errors:
        first = next(iter(catalog.errors.values()))
        raise SegmentError(
            f"{len(catalog.errors)} invalid segment(s); the first: {first.reason}",
            path=first.path,
            line=first.line,
            key=first.key,
            fix=first.fix,
        )


@segments_group.command("count")
@click.argument("names", nargs=-1, metavar="[NAME ...]")
@as_of_option
@click.option(
    "--save",
    is_flag=True,
    help="Store the members as a snapshot (who entered and left since the last one).",
)
@pass_env
def count_command(env: Env, names: tuple[str, ...], as_of: date | None, save: bool) -> None:
    """Count the members of some or all segments as of a day.

    With --save, each segment's members are stored in one transaction, with
    how many entered and left since the previous snapshot.

    \b
    Example:
      trouw segments count
      trouw segments count families singles --as-of 2027-04-01 --save
    """
    catalog = _catalog(env)
    chosen = [catalog.get(name) for name in (names or catalog.names)]
    clock = _clock(env, as_of)
    table = Table(title=f"segments as of {clock.as_of}", title_justify="left")
    table.add_column("segment")
    table.add_column("members", justify="right")
    if save:
        table.add_column("entered", justify="right")
        table.add_column("left", justify="right")
        with atomic(env.engine) as connection:
            for segment in chosen:
                snapshot = save_snapshot(connection, segment, catalog, clock)
                table.add_row(
                    segment.name, str(snapshot.size), str(snapshot.entered), str(snapshot.left)
                )
    else:
        with env.engine.connect() as connection:
            for segment in chosen:
                size = count_members(connection, segment, catalog, clock)
                table.add_row(segment.name, str(size))
    console.print(table)


@segments_group.command("members")
@click.argument("name")
@as_of_option
@format_option("table", "csv", "json", default="table")
@pass_env
def members_command(env: Env, name: str, as_of: date | None, fmt: str) -> None:
    """List a segment's members: id, email, name and channel.

    \b
    Example:
      trouw segments members families --format csv > families.csv
    """
    catalog = _catalog(env)
    segment = catalog.get(name)
    clock = _clock(env, as_of)
    with env.engine.connect() as connection:
        rows = member_rows(connection, segment, catalog, clock)
        if fmt == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(MEMBER_COLUMNS)
            for row in rows:
                writer.writerow(["" if row[c] is None else row[c] for c in MEMBER_COLUMNS])
        elif fmt == "json":
            click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
        else:
            table = Table(title=f"{name} as of {clock.as_of}", title_justify="left")
            for column in MEMBER_COLUMNS:
                table.add_column(column)
            count = 0
            for row in rows:
                table.add_row(
                    *(escape("" if row[c] is None else str(row[c])) for c in MEMBER_COLUMNS)
                )
                count += 1
            console.print(table)
            console.print(f"{count} member{'s' if count != 1 else ''}")


@segments_group.command("explain")
@click.argument("name")
@click.option("--contact", "contact_id", required=True, metavar="ID", help="The contact's id.")
@as_of_option
@pass_env
def explain_command(env: Env, name: str, contact_id: str, as_of: date | None) -> None:
    """Show why a contact is or is not in a segment, condition by condition.

    \b
    Example:
      trouw segments explain fire-safety-prospects --contact demo-000050
    """
    catalog = _catalog(env)
    segment = catalog.get(name)
    clock = _clock(env, as_of)
    with env.engine.connect() as connection:
        result = explain(connection, segment, catalog, clock, contact_id)
    verdict = "is a member" if result.member else "is not a member"
    console.print(f"{contact_id} {verdict} of {name} as of {clock.as_of}")
    for finding in result.findings:
        mark = "[green]✓[/green]" if finding.met else "[red]✗[/red]"
        console.print(f"{'  ' * finding.depth}{mark} {escape(finding.text)}")


@segments_group.command("sql")
@click.argument("name")
@as_of_option
@pass_env
def sql_command(env: Env, name: str, as_of: date | None) -> None:
    """Print the one SQL statement a segment compiles to, for the configured database.

    The as-of boundaries are written in, so it runs as is in sqlite3 or psql.

    \b
    Example:
      trouw segments sql lapsed-buyers --as-of 2027-03-01
    """
    catalog = _catalog(env)
    segment = catalog.get(name)
    # The dialect is known from the URL alone: no need to connect or migrate.
    dialect = make_url(env.database_url).get_dialect()()
    click.echo(segment_sql(segment, catalog, _clock(env, as_of), dialect) + ";")

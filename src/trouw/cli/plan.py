"""`trouw plan YEAR`, `trouw plan export` and `trouw plan explain`."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import exists, select

from trouw.cli.output import console, count_progress
from trouw.cli.params import Env, as_of_option, format_option, pass_env
from trouw.errors import ContactNotFound, UserError
from trouw.planning import DEFERRED, DROPPED, PLANNED, plan_year
from trouw.planning.parallel import default_workers
from trouw.planning.planner import CHUNK_SIZE, count_contacts, plan_year_together
from trouw.planning.views import EXPORT_COLUMNS, contact_plan, export_rows
from trouw.store import atomic, contacts

STATUS_STYLE = {PLANNED: "green", DEFERRED: "yellow", DROPPED: "red"}


class PlanGroup(click.Group):
    """`trouw plan YEAR` plans; `trouw plan export|explain` read the plan.

    Click groups take no positional argument before a subcommand, so a leading
    year is taken out of the arguments here and handed to the group's callback.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        valued = {
            name for param in self.params if not getattr(param, "is_flag", False)
            for name in param.opts
        }  # fmt: skip
        rest = list(args)
        for index, arg in enumerate(rest):
            if index and rest[index - 1] in valued:
                continue
            if arg.startswith("-"):
                continue
            if arg.isdigit():
                ctx.meta["plan_year"] = int(arg)
                del rest[index]
            break
        return super().parse_args(ctx, rest)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "YEAR [--as-of D] | COMMAND [ARGS]...")


@click.group("plan", cls=PlanGroup, invoke_without_command=True)
@as_of_option
@click.option(
    "--chunk-size",
    type=click.IntRange(100, 1_000_000),
    default=CHUNK_SIZE,
    show_default=True,
    help="Contacts planned per batch (memory grows with it, not with the contacts).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=default_workers(),
    show_default=True,
    help="Processes planning batches on this machine (1: all in this process).",
)
@click.pass_context
def plan_group(ctx: click.Context, as_of: date | None, chunk_size: int, workers: int) -> None:
    """Compute the year plan: for every contact, the dated sends of YEAR.

    Candidates come from every campaign with a schedule or trigger; quiet days
    move sends to the next allowed day; when max_per_week, max_per_month or
    min_gap bind, the higher priority wins and the other send is deferred
    within defer_for or dropped with a reason. Re-planning replaces the
    year's plan in one transaction. Sends due before --as-of are left out
    (recent ones within defer_for are caught up on --as-of).

    \b
    Example:
      trouw plan 2027 --as-of 2026-12-01
      trouw plan export --format csv > plan.csv
      trouw plan explain --contact demo-000042
    """
    if ctx.invoked_subcommand is not None:
        return
    year = ctx.meta.get("plan_year")
    if year is None:
        raise UserError(
            "give the year to plan, or a command",
            fix="write e.g. `trouw plan 2027`, `trouw plan export` or `trouw plan explain`",
        )
    if not 1900 < year < 3000:
        raise UserError(f"{year} is not a year to plan", fix="write e.g. `trouw plan 2027`")
    env: Env = ctx.ensure_object(Env)
    day = as_of or env.today()
    if env.engine.dialect.name == "postgresql":  # every run of the year plans it together
        with env.engine.connect() as connection:
            total = count_contacts(connection)
        with count_progress(f"planning {year}", total) as done:
            summary = plan_year_together(
                env.engine,
                env.project,
                year=year,
                as_of=day,
                chunk_size=chunk_size,
                workers=workers,
                progress=done,
            )
        day = summary.as_of
    else:
        with atomic(env.engine) as connection:
            total = count_contacts(connection)
            with count_progress(f"planning {year}", total) as done:
                summary = plan_year(
                    connection,
                    env.project,
                    year=year,
                    as_of=day,
                    chunk_size=chunk_size,
                    workers=workers,
                    progress=done,
                )
    table = Table(title=f"plan {year} as of {day}", title_justify="left")
    table.add_column("campaign")
    for status in (PLANNED, DEFERRED, DROPPED):
        table.add_column(status, justify="right")
    for name in sorted(summary.campaigns):
        counts = summary.campaigns[name]
        table.add_row(name, *(str(counts[s]) for s in (PLANNED, DEFERRED, DROPPED)))
    table.add_row(
        "[b]total[/b]", *(f"[b]{summary.statuses[s]}[/b]" for s in (PLANNED, DEFERRED, DROPPED))
    )
    console.print(table)
    for name in summary.unscheduled:
        console.print(
            f"[yellow]note:[/yellow] campaign '{escape(name)}' has no day in {year} on its "
            f"schedule: nobody gets it this year (see campaigns/{escape(name)}.yaml)"
        )
    per_contact = summary.sends / summary.contacts if summary.contacts else 0.0
    share = (
        " planned by this run" if summary.runs > 1 or summary.joined or not summary.finished else ""
    )
    console.print(
        f"{summary.contacts} contacts, {summary.sends} sends ({per_contact:.1f} per contact)"
        f"{share}; see `trouw calendar {year}` and `trouw plan explain --contact ID`"
    )
    if summary.joined:
        console.print(f"joined the plan of {year} as of {day} another `trouw plan` had started")
    if not summary.finished:
        console.print(f"another `trouw plan {year}` wrote the year's plan, with these rows in it")
    elif summary.runs > 1:
        console.print(
            f"wrote the plan of {year}: {summary.year_contacts} contacts, planned by "
            f"{summary.runs} processes together"
        )


def _year_option(function: Any) -> Any:
    return click.option("--year", type=int, help="Only this year's rows (default: all).")(function)


@plan_group.command("export")
@format_option("csv", "json", default="csv")
@_year_option
@pass_env
def export_command(env: Env, fmt: str, year: int | None) -> None:
    """Write the plan, one row per (contact, send), to standard output.

    Columns: contact_id, date, campaign, step, template, channel, priority,
    status (planned, deferred or dropped) and reason. Rows are streamed.

    \b
    Example:
      trouw plan export --format csv --year 2027 > plan-2027.csv
    """
    out = sys.stdout
    with env.engine.connect() as connection:
        rows = export_rows(connection, year=year)
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(EXPORT_COLUMNS)
            for row in rows:
                writer.writerow(["" if row[c] is None else row[c] for c in EXPORT_COLUMNS])
            return
        # A JSON array written row by row: the plan of a big shop does not fit in memory.
        out.write("[")
        written = 0
        for row in rows:
            out.write(",\n  " if written else "\n  ")
            out.write(json.dumps(row, ensure_ascii=False))
            written += 1
        out.write("\n]\n" if written else "]\n")


@plan_group.command("explain")
@click.option("--contact", "contact_id", required=True, metavar="ID", help="The contact's id.")
@_year_option
@pass_env
def explain_command(env: Env, contact_id: str, year: int | None) -> None:
    """Show one contact's plan: each planned, deferred and dropped send with its reason.

    \b
    Example:
      trouw plan explain --contact demo-000042 --year 2027
    """
    with env.engine.connect() as connection:
        known = connection.execute(select(exists().where(contacts.c.id == contact_id))).scalar()
        if not known:
            raise ContactNotFound(
                f"no contact '{contact_id}'", fix="check the id with `trouw contacts show ID`"
            )
        rows = contact_plan(connection, contact_id, year=year)
    if not rows:
        console.print(
            f"{escape(contact_id)} has no plan rows"
            + (f" in {year}" if year else "")
            + ": no campaign wants them, or the year is not planned (run `trouw plan YEAR`)"
        )
        return
    # One line per send rather than a table: reasons are long, and lines grep well.
    console.print(f"plan of {escape(contact_id)}:")
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "")
        line = (
            f"  {row['day'].isoformat()}  [{style}]{row['status']:<8}[/{style}]  "
            f"{escape(row['campaign'])}:{escape(row['step'])}  {escape(row['template'] or '')}"
            f"  by {row['channel']}  (occurrence {escape(row['occurrence'])})"
        )
        if row["reason"]:
            line += f"\n      {escape(row['reason'])}"
        console.print(line)
    sends = sum(1 for row in rows if row["status"] != DROPPED)
    console.print(f"{sends} sends, {len(rows) - sends} dropped")

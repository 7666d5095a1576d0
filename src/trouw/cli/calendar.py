"""`trouw calendar YEAR`: the year plan as a month-grid heatmap, an HTML page or an ICS feed."""

from __future__ import annotations

import calendar as months
from datetime import date, timedelta
from pathlib import Path

import click
from rich.columns import Columns
from rich.markup import escape
from rich.table import Table

from trouw.cli.output import console
from trouw.cli.params import Env, as_of_option, pass_env
from trouw.errors import ContactNotFound, WorkFailed
from trouw.planning.calendar_data import CalendarPage, project_calendar
from trouw.planning.calendar_page import calendar_html
from trouw.planning.runs import year_planned
from trouw.planning.views import LogScale, calendar_ics

# Per level of LogScale: a background with a foreground chosen for it, so the digits read
# the same on a dark and a light terminal (the terminal's own colours are never relied on).
LEVELS = (
    "",
    "#0b1f33 on #d6e6f5",
    "#0b1f33 on #8fbce6",
    "#ffffff on #2f74b5",
    "#ffffff on #0b3d73",
)
QUIET = "dim"  # a quiet day: no sends; dim reads on either background
HOLIDAY = "dim underline"


def _month_grid(page: CalendarPage, scale: LogScale, month: int) -> Table:
    view = page.view
    grid = Table(
        title=months.month_name[month],
        title_justify="left",
        box=None,
        padding=(0, 0),
        pad_edge=False,
    )
    for name in ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"):
        grid.add_column(name, justify="right", width=3)
    cells: list[str] = [""] * date(view.year, month, 1).weekday()
    day = date(view.year, month, 1)
    while day.month == month:
        style = LEVELS[scale.level(view.sends_on(day))]
        if style:  # a block of colour, the padding included
            cells.append(f"[{style}]{day.day:>3}[/]")
        elif day in page.quiet:  # only the digits: an underline should not run under spaces
            quiet = HOLIDAY if day in page.holidays else QUIET
            cells.append(f"{'':>{3 - len(str(day.day))}}[{quiet}]{day.day}[/]")
        else:
            cells.append(f"{day.day:>3}")
        day += timedelta(days=1)
    while len(cells) % 7:
        cells.append("")
    for start in range(0, len(cells), 7):
        grid.add_row(*cells[start : start + 7])
    return grid


def _legend(scale: LogScale) -> str:
    levels = " ".join(
        f"[{LEVELS[level]}] {f'{low:,}' if low == high else f'{low:,}-{high:,}'} [/]"
        for level, low, high in scale.ranges()
    )
    return (
        f"sends per day (log scale): {levels or 'none'}   "
        f"[{QUIET}]quiet day[/]  [{HOLIDAY}]holiday[/]"
    )


def _campaigns(page: CalendarPage) -> Table:
    table = Table(title=f"busiest campaigns {page.view.year}", title_justify="left")
    table.add_column("campaign")
    table.add_column("when")
    for column in ("planned", "deferred", "dropped", "busiest day"):
        table.add_column(column, justify="right")
    for lane in sorted(page.lanes, key=lambda lane: (-lane.sends, lane.name)):
        busiest = f"{lane.busiest[0]} ({lane.busiest[1]})" if lane.busiest else ""
        table.add_row(
            escape(lane.name),
            escape(lane.when),
            str(lane.planned),
            str(lane.deferred),
            str(lane.dropped),
            busiest,
        )
    return table


def _person_tables(page: CalendarPage, contact_ids: tuple[str, ...]) -> list[Table]:
    tables = []
    for person in page.people:
        if person.id not in contact_ids:
            continue
        who = f"{person.name} ({person.id})" if person.name else person.id
        table = Table(title=f"what {escape(who)} gets in {page.view.year}", title_justify="left")
        for column in ("date", "campaign", "template", "channel", "status"):
            table.add_column(column)
        for day, campaign, template, channel, status, reason in person.rows:
            outcome = status + (f": {reason}" if reason else "")
            table.add_row(day, escape(campaign), escape(template), channel, escape(outcome))
        tables.append(table)
    return tables


@click.command("calendar")
@click.argument("year", type=int)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained page: campaign lanes, months, a day's campaigns and "
    "variants, one contact's year.",
)
@click.option(
    "--ics",
    "ics_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an RFC 5545 calendar of campaign days, to subscribe to.",
)
@click.option(
    "--contact",
    "contact_ids",
    metavar="ID",
    multiple=True,
    help="Show this contact's year (repeatable); the HTML page opens with the first one.",
)
@click.option(
    "--segment",
    metavar="NAME",
    help="Only the plan of this segment's members (as of --as-of): what families get.",
)
@as_of_option
@pass_env
def calendar_command(
    env: Env,
    year: int,
    html_path: Path | None,
    ics_path: Path | None,
    contact_ids: tuple[str, ...],
    segment: str | None,
    as_of: date | None,
) -> None:
    """Show the planned sends of YEAR per day as a heatmap, and every campaign's figures.

    Reads the plan written by `trouw plan YEAR`. Days are coloured on a log
    scale (one busy day does not flatten the rest); quiet days and holidays are
    dim. The HTML page holds every contact's year for a small plan; for a big
    one, the contacts given with --contact and an example contact per variant.
    With --segment, only that segment's members count.

    \b
    Example:
      trouw calendar 2027 --html calendar.html --ics campaigns.ics
      trouw calendar 2027 --contact demo-000042 --html demo-000042.html
      trouw calendar 2027 --segment families --html families.html
    """
    with env.engine.connect() as connection:
        if not year_planned(connection, year):
            raise WorkFailed(f"there is no plan for {year}: run `trouw plan {year}` first")
        page = project_calendar(
            connection,
            env.project,
            year,
            contact_ids=contact_ids,
            segment=segment,
            as_of=as_of or env.today(),
        )
    if page.unknown:
        raise ContactNotFound(
            f"no contact '{page.unknown[0]}'", fix="check the id with `trouw contacts show ID`"
        )
    scale = LogScale(page.view.busiest_day)
    if segment is not None:
        console.print(
            f"segment {escape(segment)} as of {page.as_of}: {page.view.contacts:,} contacts"
        )
    console.print(
        Columns([_month_grid(page, scale, month) for month in range(1, 13)], padding=(1, 3))
    )
    console.print(_legend(scale))
    console.print(_campaigns(page))
    for table in _person_tables(page, contact_ids):
        console.print(table)
    for contact_id in page.missing:
        console.print(f"{escape(contact_id)} has nothing in the plan of {year}")
    if html_path is not None:
        html_path.write_text(calendar_html(page), encoding="utf-8")
        console.print(f"wrote {html_path}")
    if ics_path is not None:
        ics_path.write_bytes(calendar_ics(page.view, name=env.project.settings.name))
        console.print(f"wrote {ics_path}")

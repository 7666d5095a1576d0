"""`trouw simulate --from D --to D`: the period replayed day by day on a scratch copy."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from trouw.cli.output import console, count_progress
from trouw.cli.params import Env, parse_day, pass_env
from trouw.errors import UserError
from trouw.planning.parallel import default_workers
from trouw.planning.planner import CHUNK_SIZE
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import SimulationSummary, simulate_period

# Longest period one run replays: a year and a bit (a plan year from a December start).
MAX_DAYS = 400


@click.command("simulate")
@click.option("--from", "start", required=True, metavar="YYYY-MM-DD", callback=parse_day,
              help="First day to replay.")  # fmt: skip
@click.option("--to", "end", required=True, metavar="YYYY-MM-DD", callback=parse_day,
              help="Last day to replay (inclusive).")  # fmt: skip
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for timeline.csv, weeks.csv and pressure.csv (default: .trouw/simulate/).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(100, 1_000_000),
    default=CHUNK_SIZE,
    show_default=True,
    help="Contacts per batch, read and decided together.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=default_workers(),
    show_default=True,
    help="Processes simulating batches on this machine, day by day (1: all in this process).",
)
@pass_env
def simulate_command(
    env: Env, start: date, end: date, out_dir: Path | None, chunk_size: int, workers: int
) -> None:
    """Replay a period day by day, dry: who would get which mail, and how often.

    Works on a scratch copy of the database (SQLite: a backup-API copy in a
    temporary file; PostgreSQL: a temporary schema), so nothing is sent and
    the real ledger and plan are untouched. Each day, segments are evaluated
    as of that day and every campaign's due sends are decided as the planner
    decides them, with caps counted against the ledger copied and the sends
    simulated so far, so journeys, clicks, win-backs and caps interact as they
    would in reality. Prints sends per week and campaign and the pressure per
    inbox; writes timeline.csv (one row per contact and send), weeks.csv and
    pressure.csv. With --workers N the batches are split over N processes,
    which go through the days together: the same result as one process.

    \b
    Example:
      trouw simulate --from 2027-03-01 --to 2027-03-31 --out simulation/
    """
    if end < start:
        raise UserError(f"--to {end} is before --from {start}", fix="give --from first, then --to")
    if (end - start).days + 1 > MAX_DAYS:
        raise UserError(
            f"{(end - start).days + 1} days is more than the {MAX_DAYS} one run replays",
            fix="simulate a shorter period, e.g. a month or a quarter",
        )
    folder = out_dir or env.project.state_dir / "simulate"
    days = (end - start).days + 1
    progress = count_progress(f"simulating {start} … {end}", days)
    with scratch_copy(env.engine) as scratch, scratch.connect() as connection, progress as done:
        summary = simulate_period(
            connection,
            env.project,
            start=start,
            end=end,
            out_dir=folder,
            chunk_size=chunk_size,
            progress=lambda day: done((day - start).days + 1),
            workers=workers,
        )
    _print_summary(summary)


def _print_summary(summary: SimulationSummary) -> None:
    weeks = Table(title=f"simulated sends {summary.start} … {summary.end}", title_justify="left")
    weeks.add_column("week of")
    weeks.add_column("sends", justify="right")
    weeks.add_column("per campaign")
    for monday in sorted(summary.per_week):
        counts = summary.per_week[monday]
        detail = ", ".join(f"{escape(name)} {n}" for name, n in counts.most_common())
        weeks.add_row(monday.isoformat(), str(sum(counts.values())), detail)
    weeks.add_row("[b]total[/b]", f"[b]{summary.sends}[/b]", "")
    console.print(weeks)
    campaigns = Table(title="per campaign", title_justify="left")
    campaigns.add_column("campaign")
    campaigns.add_column("sends", justify="right")
    for name, count in sorted(summary.per_campaign.items()):
        campaigns.add_row(escape(name), str(count))
    console.print(campaigns)
    pressure = Table(title="mails per contact", title_justify="left")
    for column in ("per", "max", "p99", "mean"):
        pressure.add_column(column, justify="left" if column == "per" else "right")
    for figure in summary.pressure:
        pressure.add_row(figure.period, str(figure.max), str(figure.p99), f"{figure.mean:.2f}")
    console.print(pressure)
    console.print(
        f"{summary.contacts} contacts, {summary.sends} sends (nothing was sent; "
        f"the real database is untouched); files: "
        + ", ".join(escape(str(path)) for path in summary.files)
    )

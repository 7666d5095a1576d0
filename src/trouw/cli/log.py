"""`trouw log`: the send ledger, filtered by contact, campaign, status and day; streamed."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date

import click
from rich.markup import escape

from trouw.cli.output import console
from trouw.cli.params import Env, format_option, parse_day, pass_env
from trouw.sending.ledger import LOG_COLUMNS, STATUSES, log_rows
from trouw.sending.winners import read_winners

# The table's columns and their widths (a longer value pushes the line on; nothing is cut);
# the reason (error) comes last.
_SHOWN = (
    ("day", 10),
    ("contact_id", 14),
    ("campaign", 16),
    ("step", 10),
    ("channel", 7),
    ("status", 10),
    ("sent_at", 19),
)
_COLOURS = {
    "sent": "green",
    "deferred": "yellow",
    "unknown": "magenta",
    "failed": "red",
    "expired": "red",
    "cancelled": "dim",
}


@click.command("log")
@click.option("--contact", "contact_id", metavar="ID", help="Only this contact's sends.")
@click.option("--campaign", metavar="NAME", help="Only this campaign's sends.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only sends in this status (repeat for several).",
)
@click.option("--day", metavar="YYYY-MM-DD", callback=parse_day, help="Only this day's sends.")
@click.option("--since", metavar="YYYY-MM-DD", callback=parse_day, help="Only from this day on.")
@format_option("table", "csv", "json", default="table")
@pass_env
def log_command(
    env: Env,
    contact_id: str | None,
    campaign: str | None,
    statuses: tuple[str, ...],
    day: date | None,
    since: date | None,
    fmt: str,
) -> None:
    """Show the send ledger: every mail sent, deferred, failed, unknown, expired or cancelled.

    Columns: contact_id, campaign, step, occurrence, day (the as-of day of
    the run that last handled it), template, channel, status, message_id,
    sent_at (UTC) and error (the last SMTP reply, or why it did not go).
    Rows are written as they are read, so a large ledger starts at once. The
    table ends with the A/B tests decided (the winner, each arm's numbers).

    \b
    Example:
      trouw log --status deferred --status expired --since 2027-06-01
      trouw log --campaign birthday --format csv > birthday-sends.csv
    """
    out = sys.stdout
    with env.engine.connect() as connection:
        rows = log_rows(
            connection,
            contact_id=contact_id,
            campaign=campaign,
            statuses=statuses,
            day=day,
            since=since,
        )
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(LOG_COLUMNS)
            for row in rows:
                writer.writerow(["" if row[c] is None else row[c] for c in LOG_COLUMNS])
            return
        if fmt == "json":
            out.write("[")
            written = 0
            for row in rows:
                out.write(",\n  " if written else "\n  ")
                out.write(json.dumps(row, ensure_ascii=False))
                written += 1
            out.write("\n]\n" if written else "]\n")
            return
        count = 0
        for row in rows:
            if not count:
                header = " ".join(name.ljust(width) for name, width in _SHOWN)
                console.print(f"[bold]{header} error[/bold]", highlight=False)
            count += 1
            cells = []
            for name, width in _SHOWN:
                value = str(row[name] or "")
                if name == "sent_at":  # to the second, as people read it
                    value = value[:19].replace("T", " ")
                text = value.ljust(width)
                if name == "status" and row[name] in _COLOURS:
                    text = f"[{_COLOURS[row[name]]}]{escape(text)}[/]"
                else:
                    text = escape(text)
                cells.append(text)
            cells.append(escape(str(row["error"] or "")))
            console.print(" ".join(cells), highlight=False, soft_wrap=True)
        # The A/B tests whose winner decided what the rest got, with their numbers.
        decided = [w for w in read_winners(connection) if campaign in (None, w.campaign)]
    if not count:
        console.print("the ledger has no such rows")
    for winner in decided if count else []:
        console.print(escape(winner.describe()), highlight=False, soft_wrap=True)

"""`trouw log`: the send ledger, filtered by contact or campaign."""

from __future__ import annotations

import csv
import json
import sys

import click
from rich.markup import escape
from rich.table import Table

from trouw.cli.output import console
from trouw.cli.params import Env, format_option, pass_env
from trouw.sending.ledger import LOG_COLUMNS, log_rows


@click.command("log")
@click.option("--contact", "contact_id", metavar="ID", help="Only this contact's sends.")
@click.option("--campaign", metavar="NAME", help="Only this campaign's sends.")
@format_option("table", "csv", "json", default="table")
@pass_env
def log_command(env: Env, contact_id: str | None, campaign: str | None, fmt: str) -> None:
    """Show the send ledger: every reserved, sent, failed, unknown or suppressed mail.

    Columns: contact_id, campaign, step, occurrence, day (the as-of day of
    the run), template, channel, status, message_id and sent_at (UTC).

    \b
    Example:
      trouw log --campaign birthday --format csv > birthday-sends.csv
    """
    out = sys.stdout
    with env.engine.connect() as connection:
        rows = log_rows(connection, contact_id=contact_id, campaign=campaign)
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
        table = Table(title="send ledger", title_justify="left")
        shown = ("day", "contact_id", "campaign", "step", "channel", "status", "sent_at")
        for column in shown:
            table.add_column(column)
        count = 0
        for row in rows:
            table.add_row(*(escape(str(row[c] or "")) for c in shown))
            count += 1
    if not count:
        console.print("the ledger has no such rows")
        return
    console.print(table)

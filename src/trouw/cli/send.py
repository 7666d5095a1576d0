"""`trouw send`: the day's due mails, checked again, through SMTP or into an outbox."""

from __future__ import annotations

import os
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import click
from rich.markup import escape

from trouw.cli.output import console, count_progress
from trouw.cli.params import Env, as_of_option, pass_env
from trouw.errors import UserError, WorkFailed
from trouw.sending import OutboxTransport, SendSummary
from trouw.sending.ledger import STALE_AFTER
from trouw.sending.run import CHUNK_CONTACTS
from trouw.sending.transports import SmtpAddress, SmtpPool
from trouw.sending.workers import TransportMaker, send_with_workers


@click.command("send")
@as_of_option
@click.option("--dry-run", is_flag=True, help="Check and render, but reserve and send nothing.")
@click.option(
    "--outbox",
    "outbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a .eml per mail into DIR, and letters for post contacts into DIR/letters/.",
)
@click.option(
    "--smtp",
    "smtp_url",
    metavar="URL",
    help="smtp://user:password@host:587 or smtps://host:465 (default: TROUW_SMTP_URL).",
)
@click.option("--limit", type=click.IntRange(min=0), help="Send at most N mails in this run.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="SMTP: at most N mails a second in all (shared by the workers; your provider's limit).",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again the day's mails whose fate is unknown (a run died mid-send).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Send with N worker processes (rendering is CPU work); runs on other machines "
    "share the day too.",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="SMTP connections each worker keeps busy at once.",
)
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0),
    default=STALE_AFTER.total_seconds(),
    hidden=True,
    help="Seconds after which another run's unconfirmed reservations count as dead (tests).",
)
@click.option(
    "--chunk-contacts",
    type=click.IntRange(min=1),
    default=CHUNK_CONTACTS,
    hidden=True,
    help="Contacts decided per transaction (tests).",
)
@pass_env
def send_command(
    env: Env,
    as_of: date | None,
    dry_run: bool,
    outbox: Path | None,
    smtp_url: str | None,
    limit: int | None,
    rate: float | None,
    retry_unknown: bool,
    workers: int,
    connections: int,
    stale_after: float,
    chunk_contacts: int,
) -> None:
    """Send the day's planned mails, each at most once.

    Every due send of the day (planned or deferred to it) is checked again:
    the contact still exists, has not unsubscribed, bounced or complained,
    and the caps hold against the ledger of what was really sent. Each mail
    is reserved in the ledger before it leaves and confirmed after, so a
    second run for the same day sends nothing new, and a mail whose run died
    mid-send is reported as unknown and only sent again with --retry-unknown.

    \b
    Example:
      trouw send --as-of 2027-03-01 --smtp smtps://shop:secret@mail.example.com:465
      trouw send --outbox outbox/ --limit 100
      trouw send --smtp smtp://relay:25 --workers 4   # on each of several machines (PostgreSQL)
    """
    chosen = [flag for flag, on in (("--dry-run", dry_run), ("--outbox", outbox),
              ("--smtp", smtp_url)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise UserError(f"{' and '.join(chosen)} exclude each other", fix="give one of them")
    if not chosen:
        smtp_url = os.environ.get("TROUW_SMTP_URL") or None
        if smtp_url is None:
            raise UserError(
                "nowhere to send to",
                fix="give --smtp URL (or set TROUW_SMTP_URL), --outbox DIR or --dry-run",
            )
    if rate is not None and smtp_url is None:
        raise UserError("--rate paces SMTP sending", key="--rate", fix="use it with --smtp")
    if workers > 1 and (limit is not None or dry_run):
        raise UserError(
            "--workers runs several senders at once", fix="drop --limit and --dry-run, or --workers"
        )
    make_transport: TransportMaker = None  # a dry run
    if outbox is not None:
        make_transport = partial(OutboxTransport, outbox)
    elif smtp_url is not None:
        SmtpAddress.parse(smtp_url)  # a bad URL is bad input, before any work
        share = rate / workers if rate else None
        make_transport = partial(SmtpPool, smtp_url, connections=connections, rate=share)
    day = as_of or env.today()
    with count_progress(f"sending {day}", 0) as done:
        summary = send_with_workers(
            env.engine,
            env.project,
            day,
            make_transport,
            workers=workers,
            limit=limit,
            dry_run=dry_run,
            retry_unknown=retry_unknown,
            stale_after=timedelta(seconds=stale_after),
            chunk_contacts=chunk_contacts,
            progress=lambda finished, total: done(finished),
        )
    _print_summary(summary)
    troubled = summary.failed + summary.unknown + summary.released
    if not summary.dry_run and summary.sent == 0 and troubled:
        # Every mail refused is a broken setup (sender not allowed, relay closed), not bounces.
        raise WorkFailed(
            f"none of the {troubled} mails was accepted: check the SMTP server's answers "
            "above and its log, then run again"
        )


def _print_summary(summary: SendSummary) -> None:
    verb = "would send" if summary.dry_run else "sent"
    count = summary.would_send if summary.dry_run else summary.sent
    console.print(f"{summary.day}: {summary.due} due, {verb} {count}")
    if summary.triggered:
        console.print(f"  {summary.triggered} of them triggered since the plan was made")
    if summary.stale:
        console.print(f"  {summary.stale} mails of a run that died mid-send are now unknown")
    if summary.stale_released:
        console.print(
            f"  {summary.stale_released} reservations of a run that died had not left: made again"
        )
    for reason, n in sorted(summary.skipped.items(), key=lambda item: (-item[1], item[0])):
        console.print(f"  skipped {n}: {escape(reason)}")
    if summary.released:
        console.print(f"  {summary.released} refused for now (4xx): left for the next run")
    if summary.suppressed:
        console.print(f"  {summary.suppressed} addresses suppressed after a hard bounce")
    for key, error in summary.failures:
        console.print(f"  failed {escape(':'.join(key))}: {escape(error)}")
    if summary.unknown_waiting:
        console.print(
            f"  {summary.unknown_waiting} mails of {summary.day} have an unknown fate; "
            f"check the SMTP server's log, then `trouw send --as-of {summary.day} "
            "--retry-unknown` sends them again"
        )

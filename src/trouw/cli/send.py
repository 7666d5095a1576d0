"""`trouw send`: the day's due mails, checked again, through SMTP or into an outbox."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import click
from rich.markup import escape

from trouw.cli.output import console, count_progress
from trouw.cli.params import Env, as_of_option, pass_env
from trouw.errors import WorkFailed
from trouw.sending import SendSummary
from trouw.sending.destinations import choose_destination
from trouw.sending.run import CHUNK_CONTACTS
from trouw.sending.transports import CONNECTIONS
from trouw.sending.workers import send_with_workers, stop_on_signal


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
@click.option(
    "--letters",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write letters for post contacts into DIR in the same run (default: [letters] dir).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help="Send at most N mails in this run, then stop: the rest stays owed to the next run.",
)
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
    default=CONNECTIONS,
    show_default=True,
    help="SMTP connections each worker keeps busy at once.",
)
@click.option(
    "--now",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    hidden=True,
    help="Judge the send windows as if it were this UTC time (tests, replays).",
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
    letters: Path | None,
    limit: int | None,
    rate: float | None,
    retry_unknown: bool,
    workers: int,
    connections: int,
    now: datetime | None,
    chunk_contacts: int,
) -> None:
    """Send every mail owed up to the day, each at most once.

    Owed are the plan's sends of the day and of earlier days that no run
    finished (a killed run, a skipped day), and mails a server refused for
    now (4xx), once their next try has come; a send past its validity
    (valid_for) is recorded as expired instead. Each is checked again: the
    contact still exists, has not unsubscribed, bounced or complained, and
    the caps hold against the ledger of what was really sent. Each mail is
    reserved in the ledger before it leaves and confirmed after, so a second
    run sends nothing twice; a mail whose run died on the wire is reported as
    unknown and only sent again with --retry-unknown. Each mail waits for its
    contact's send_window; letters for post contacts go to --letters DIR (or
    [letters] dir) in the same run. Ctrl-C and SIGTERM finish the mails on the
    wire and give the rest back.

    \b
    Example:
      trouw send --as-of 2027-03-01 --smtp smtps://shop:secret@mail.example.com:465
      trouw send --smtp smtp://relay:25 --letters /srv/print/letters
      trouw send --outbox outbox/ --limit 100
      trouw send --smtp smtp://relay:25 --workers 4   # on each of several machines (PostgreSQL)
    """
    destination = choose_destination(
        dry_run=dry_run,
        outbox=outbox,
        smtp_url=smtp_url,
        letters=letters or env.project.letters_dir,
        default_smtp_url=os.environ.get("TROUW_SMTP_URL") or None,
        rate=rate,
        workers=workers,
        connections=connections,
        limited=limit is not None,
    )
    day = as_of or env.today()
    with count_progress(f"sending {day}", 0) as done, _stop_on_sigterm():
        summary = send_with_workers(
            env.engine,
            env.project,
            day,
            destination,
            workers=workers,
            limit=limit,
            dry_run=dry_run,
            retry_unknown=retry_unknown,
            chunk_contacts=chunk_contacts,
            now=now,
            progress=lambda finished, total: done(finished),
        )
    _print_summary(summary)
    if summary.interrupted:
        raise SystemExit(128 + signal.Signals[summary.interrupted].value)
    if summary.unplanned:
        year = summary.day.year
        raise WorkFailed(
            f"there is no plan for {year}: the day's mail was decided and sent, but the "
            f"calendar, `plan explain` and `status` show nothing for it; run `trouw plan {year}` "
            "(did the plan job fail?)"
        )
    if not summary.dry_run and summary.sent == 0 and summary.failed + summary.unknown:
        # Every mail refused is a broken setup (sender not allowed, relay closed), not bounces.
        raise WorkFailed(
            f"none of the {summary.failed + summary.unknown} mails was accepted: check the "
            "SMTP server's answers above and its log, then run again"
        )


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (systemd, docker, kill) stops the run as Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_summary(summary: SendSummary) -> None:
    verb = "would send" if summary.dry_run else "sent"
    count = summary.would_send if summary.dry_run else summary.sent
    console.print(f"{summary.day}: {summary.due} owed, {verb} {count}")
    line = console.print
    for winner in summary.winners:  # A/B tests this run decided, before the mails it sent
        line(f"  {escape(winner)}")
    if summary.earlier:
        days = ", ".join(f"{n} from {day}" for day, n in summary.earlier.items())
        line(f"  owed from earlier days: {days}")
    if summary.triggered:
        line(f"  {summary.triggered} of them not in the plan: triggered or changed since")
    if summary.taken_over:
        line(f"  {summary.taken_over} mails a run that died had not sent: owed again")
    if summary.stale:
        line(f"  {summary.stale} mails were on the wire when a run died: now unknown")
    for run, n in summary.held:
        line(f"  {n} mails are being sent by {escape(str(run))} (pid {run.pid}): left to it")
    if summary.deferred:
        line(f"  {summary.deferred} refused for now (4xx): deferred, tried again later")
    if summary.released:
        line(f"  {summary.released} not sent before the run stopped: owed to the next run")
    if summary.limited:
        line("  stopped at --limit: the rest stays owed to the next run (not decided)")
    for reason, n in sorted(summary.waiting.items(), key=lambda item: (-item[1], item[0])):
        line(f"  waiting {n}: {escape(reason)}")
    for reason, n in sorted(summary.cancelled.items(), key=lambda item: (-item[1], item[0])):
        line(f"  cancelled {n}: {escape(reason)}")
    for campaign, n in sorted(summary.expired.items()):
        line(f"  expired {n} of {escape(campaign)}: not sent within their validity")
    for reason, n in sorted(summary.skipped.items(), key=lambda item: (-item[1], item[0])):
        line(f"  skipped {n}: {escape(reason)}")
    for key, message_id in summary.retried:
        line(f"  sent again (was unknown): {escape(message_id)} {escape(':'.join(key))}")
    if summary.suppressed:
        line(f"  {summary.suppressed} addresses suppressed after a hard bounce")
    for key, error in summary.failures:
        line(f"  failed {escape(':'.join(key))}: {escape(error)}")
    if summary.unknown_waiting:
        line(
            f"  {summary.unknown_waiting} mails of {summary.day} have an unknown fate; "
            f"check the SMTP server's log, then `trouw send --as-of {summary.day} "
            "--retry-unknown` sends them again"
        )
    if summary.signed_with:
        line(f"  links signed with key {summary.signed_with}")
    if summary.interrupted:
        line(f"  stopped by {summary.interrupted}: nothing is left half-sent")

"""`trouw status`: plan coverage, owed and stuck mail, the last runs; an exit code to alert on."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any, NoReturn

import click

from trouw.cli.params import Env, as_of_option, format_option, pass_env

if TYPE_CHECKING:
    from trouw.planning.runs import PlanRun
    from trouw.status import SendRunState, Status, YearPlan

FINE, ATTENTION = 0, 3
WINDOW_DAYS = 7  # trouw.status.WINDOW_DAYS, repeated so that --help imports no library


@click.command("status")
@as_of_option
@format_option("table", "json", default="table")
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=WINDOW_DAYS,
    show_default=True,
    help="Report unknown, expired and failed mail of this many days, up to the day.",
)
@pass_env
def status_command(env: Env, as_of: date | None, fmt: str, days: int) -> None:
    """Tell a monitor whether all is well: exit 0 fine, 3 needs attention, 1 no database.

    Reports whether the plan covers today and the year (and, from 1 December,
    next year), the mail a send run would work now (owed; overdue when no run
    handled it for over a day), deferred mail, unknown, expired and failed
    mail of the last --days days, mail held by live send runs, how the last
    plan and send runs ended, the signing key's fingerprint and the database.
    Each problem is an attention line with its fix; any makes the exit code 3:
    no plan covering today, no plan for next year in December, unknown or
    expired mail, a last send run that failed or died, overdue mail, mail held
    by dead runs, a signing key that cannot be used. Exit 1: the database
    cannot be reached; 2: bad input.

    --format json writes one object: ok, as_of, checked_at, database,
    signing_key {fingerprint, source, problem}, plan {covers_today,
    this_year, next_year (each {year, planned, last_run}), next_year_needed,
    last_run {year, as_of, started_at, finished_at, contacts, planned,
    deferred, dropped}}, mail {owed, owed_since, overdue, overdue_since,
    expiring, deferred, days, since, unknown, expired, failed, held,
    held_by_dead_runs}, send {last_run, live_runs (each {id, host, pid,
    as_of, started_at, ended_at, outcome: finished, interrupted, failed,
    died or running, counts})}, attention [{problem, fix}]. Times are UTC,
    days YYYY-MM-DD. When the database cannot be reached: only ok, as_of,
    database and attention.

    \b
    Example:
      trouw status
      trouw status --format json || notify-ops "trouw needs attention"
    """
    from datetime import UTC, datetime

    from sqlalchemy.exc import OperationalError

    from trouw.status import gather_status, masked_url

    day = as_of or env.today()
    url = env.database_url
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with env.engine.connect() as connection:
            status = gather_status(
                connection, env.project, as_of=day, now=now, database_url=url, days=days
            )
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        _unreachable(fmt, masked_url(url), day, reason)
    if fmt == "json":
        click.echo(json.dumps(status.to_json(), indent=2, ensure_ascii=False))
    else:
        _print(status)
    click.get_current_context().exit(FINE if status.ok else ATTENTION)


def _unreachable(fmt: str, database: str, day: date, reason: str) -> NoReturn:
    problem = f"the database {database} cannot be reached: {reason}"
    fix = "check that the database server runs and the URL (--db, TROUW_DATABASE_URL) is right"
    if fmt == "json":
        facts = {
            "ok": False,
            "as_of": day.isoformat(),
            "database": database,
            "attention": [{"problem": problem, "fix": fix}],
        }
        click.echo(json.dumps(facts, indent=2, ensure_ascii=False))
        click.get_current_context().exit(1)
    raise click.ClickException(f"{problem}\n  fix: {fix}")


def _print(status: Status) -> None:
    from rich.markup import escape

    from trouw.cli.output import console

    mail = status.mail
    count = len(status.attention)
    verdict = "[green]ok[/green]"
    if count:
        verdict = f"[red]{count} {'needs' if count == 1 else 'need'} attention[/red]"
    console.print(
        f"[bold]trouw status as of {status.as_of}[/bold] "
        f"(checked {status.checked_at:%Y-%m-%d %H:%M:%S} UTC): {verdict}"
    )
    rows: list[tuple[str, str]] = [
        ("database", escape(status.database)),
        ("signing key", _key(status)),
    ]
    for year in (status.this_year, status.next_year):
        if year is not None:
            rows.append((f"plan {year.year}", _year(year, status)))
    owed = f"{mail.owed} now"
    if mail.owed_since is not None:
        owed += f" (owed since {mail.owed_since})"
    owed += f", {mail.overdue} overdue"
    if mail.overdue_since is not None:
        owed += f" (no run since {mail.overdue_since})"
    if mail.expiring:
        owed += f", {mail.expiring} past their validity"
    since = f"last {status.days} days" if status.days > 1 else "the day"
    rows += [
        ("owed", owed),
        ("deferred", str(mail.deferred)),
        (since, f"unknown {mail.unknown}, expired {mail.expired}, failed {mail.failed}"),
        ("held", f"{mail.held} by live runs, {mail.held_by_dead_runs} by runs that died"),
        ("last plan", _plan_run(status.last_plan) if status.last_plan else "none recorded"),
        ("last send", _send_run(status.last_send) if status.last_send else "none yet"),
    ]
    rows += [("running", _send_run(run)) for run in status.live_sends]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:  # lines, not a table: a monitor's mail shows them as they are
        console.print(f"[bold]{name.ljust(width)}[/bold]  {value}")
    if status.attention:
        console.print("[bold red]attention:[/bold red]")
        for item in status.attention:
            console.print(f"  [red]-[/red] {escape(item.problem)}")
            if item.fix:
                console.print(f"    fix: {escape(item.fix)}")


def _key(status: Status) -> str:
    from rich.markup import escape

    if status.key_problem is not None:
        return f"[red]{escape(status.key_problem)}[/red]"
    return f"{status.key_fingerprint} ({escape(status.key_source or '')})"


def _year(year: YearPlan, status: Status) -> str:
    if not year.planned:
        needed = year.year == status.as_of.year or status.next_year_needed
        return "[red]not planned[/red]" if needed else "not planned yet (due by 1 December)"
    text = "planned"
    if year.run is not None:
        run = year.run
        text += f" as of {run.as_of} ({run.finished_at:%Y-%m-%d %H:%M} UTC)"
    if year.year == status.as_of.year:
        text += "; covers today" if status.covers_today else "; [red]does not cover today[/red]"
    return text


def _plan_run(run: PlanRun) -> str:
    sends = run.statuses.get("planned", 0) + run.statuses.get("deferred", 0)
    return (
        f"{run.year} as of {run.as_of}, finished {run.finished_at:%Y-%m-%d %H:%M} UTC "
        f"in {(run.finished_at - run.started_at).total_seconds():.0f} s: "
        f"{run.contacts} contacts, {sends} sends, {run.statuses.get('dropped', 0)} dropped"
    )


_STATE_STYLE = {"finished": "green", "running": "cyan", "failed": "red", "died": "red"}


def _send_run(run: SendRunState) -> str:
    from rich.markup import escape

    record = run.record
    style = _STATE_STYLE.get(run.state, "yellow")
    text = (
        f"#{record.id} [{style}]{run.state}[/{style}]: for {record.as_of}, started "
        f"{record.started_at:%Y-%m-%d %H:%M} UTC on {escape(record.host)} (pid {record.pid})"
    )
    counts = _counts(record.summary)
    return f"{text}: {counts}" if counts else text


def _counts(summary: dict[str, Any]) -> str:
    return ", ".join(f"{name} {n}" for name, n in summary.items() if isinstance(n, int) and n)

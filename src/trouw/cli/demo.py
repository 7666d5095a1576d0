"""`trouw demo`: the showcase, in a database of its own."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import click

from trouw.cli.params import Env, as_of_option, pass_env

if TYPE_CHECKING:
    from trouw.demo.database import DemoDatabase
    from trouw.demo.run import DemoResult


@click.command("demo")
@click.option(
    "--contacts",
    "count",
    type=click.IntRange(1),
    default=2000,
    show_default=True,
    help="How many customers to generate.",
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Random seed; the same seed and --as-of give the same data.",
)
@click.option(
    "--clean",
    is_flag=True,
    help="Remove the demo's database and files (.trouw/demo.db, .trouw/demo/), nothing else.",
)
@as_of_option
@pass_env
def demo_command(env: Env, count: int, seed: int, clean: bool, as_of: date | None) -> None:
    """Generate a Dutch home & garden shop's customers and run the pipeline.

    The demo works in its own database, .trouw/demo.db in the project, and
    never in the project's own: your contacts, plan and ledger stay as they
    are. With --db it works in that database instead, but only if it is
    empty or the demo's (a database holding other contacts is refused). Its
    files (the generated data, sample mails, outbox, letters, calendar and
    report) go to .trouw/demo/. Run again, it replaces what it made; --clean
    removes it.

    \b
    Example:
      trouw demo --contacts 10000
      export TROUW_DATABASE_URL=sqlite:///$PWD/.trouw/demo.db   # look around
      trouw demo --clean
    """
    from trouw.cli.output import byte_progress, console
    from trouw.demo.database import DemoDatabase, clean_demo
    from trouw.demo.run import run_demo  # the generator loads only for the demo
    from trouw.store import open_store

    project = env.project
    database = DemoDatabase.for_project(project, env.db_override)
    if clean:
        cleaned = clean_demo(project, database)
        for path in cleaned.files:
            console.print(f"removed  {path}")
        if cleaned.note:
            console.print(cleaned.note)
        if not cleaned.files and not cleaned.note:
            console.print(f"nothing to remove: no demo database or files in {project.state_dir}")
        return

    day = as_of or env.today()
    console.print(f"[bold]trouw demo[/bold] for {project.settings.name}, as of {day}")
    engine = open_store(database.url)
    try:
        result = run_demo(
            engine, project, database, contacts_count=count, as_of=day, seed=seed,
            stage=byte_progress,
        )  # fmt: skip
    finally:
        engine.dispose()
    _print_result(result, database)
    _print_hints(result, database, project_url=project.database_url())


def _print_result(result: DemoResult, database: DemoDatabase) -> None:
    from trouw.cli.output import console

    console.print(
        f"  generated   {result.files.contacts} contacts, {result.files.events} events "
        f"in {result.files.contacts_path.parent}"
    )
    into = "its own database" if database.own else "the database"
    console.print(
        f"  imported    {result.contacts.written} contacts, {result.events.written} events "
        f"into {into}, {database.shown}"
    )
    channels = ", ".join(
        f"{n} {'want no mail' if name == 'none' else f'by {name}'}"
        for name, n in sorted(result.channels.items())
    )
    console.print(f"  channels    {channels}")
    kinds = ", ".join(f"{n} {name}" for name, n in result.event_types.items())
    console.print(f"  behaviour   {kinds}")
    width = max((len(name) for name in result.segment_sizes), default=0)
    for index, (name, size) in enumerate(result.segment_sizes.items()):
        console.print(f"  {'segments' if index == 0 else '':<10}  {name:<{width}}  {size:>7,}")
    if result.previews:
        folder = result.previews[0].parent
        mails = len([path for path in result.previews if path.suffix == ".eml"])
        console.print(f"  previews    {mails} sample mails (.html, .txt, .eml) in {folder}")
    plan = result.plan
    per_contact = plan.sends / plan.contacts if plan.contacts else 0.0
    dropped = sum(result.dropped.values())
    why = ", ".join(f"{n:,} {reason}" for reason, n in list(result.dropped.items())[:3])
    more = ", ..." if len(result.dropped) > 3 else ""
    console.print(
        f"  plan {plan.year}   {plan.sends:,} sends for {plan.contacts:,} contacts "
        f"({per_contact:.1f} each), {dropped:,} dropped" + (f" ({why}{more})" if why else "")
    )
    console.print(f"  calendar    {result.calendar_html}  (and .ics to subscribe to)")
    if result.sent is not None:
        mails = sum(n for channel, n in result.delivered.items() if channel != "post")
        letters = result.delivered.get("post", 0)
        console.print(
            f"  sent        {result.sent.day}: {mails:,} mails and {letters:,} letters by post "
            f"to {result.outbox} (letters in letters/), logged in the ledger"
        )
    if result.responses:
        console.print(
            f"  responses   {result.responses:,} opens, clicks and purchases generated for the "
            f"weeks after, to {result.report_day}: mailed contacts buy again 5 points more "
            "often than held-out ones, the second subject line is clicked more"
        )
    console.print(
        f"  report      {result.report_html}  (campaign results, mails per inbox against "
        "the caps, loyalty figures, A/B tests and the lift, with charts)"
    )


def _print_hints(result: DemoResult, database: DemoDatabase, *, project_url: str) -> None:
    from trouw.cli.output import console

    contact = result.example_contact
    segment = next(iter(result.segment_sizes), None)
    if "fire-safety-prospects" in result.segment_sizes:
        segment = "fire-safety-prospects"
    plan = result.plan
    hints: list[tuple[str, str]] = []
    if project_url != database.url:
        # The project's own database is another one: point this shell at the demo's.
        hints.append(
            (
                f"export TROUW_DATABASE_URL={database.url}",
                "the commands below look at the demo's database (`unset` it to go back)",
            )
        )
    hints.append(("trouw segments count --save", "segment sizes, kept as a snapshot"))
    if contact:
        hints.append((f"trouw contacts show {contact}", "a customer who clicked fire safety"))
        if segment:
            hints.append(
                (f"trouw segments explain {segment} --contact {contact}", "why (not) a member")
            )
        hints.append((f"trouw plan explain --contact {contact}", "their year: sent, deferred, why"))
    report = result.report_day if result.sent is not None else None
    hints += [
        (f"trouw calendar {plan.year}", "the year as a heatmap, busiest campaigns"),
        ("trouw log --format csv", "every send in the ledger"),
        (
            f"trouw report --year {report.year} --as-of {report}" if report else "trouw report",
            "campaign results, churn, repurchase, upsell, NPS, CSAT, loyalty, the lift",
        ),
        ("trouw serve", "the tracking server the mails' links point at"),
        ("trouw preview --serve", "every campaign's mails per contact, in your browser"),
        (
            "trouw demo --clean" if database.own else f"trouw --db {database.url} demo --clean",
            "remove the demo's database and files, nothing else",
        ),
        ("trouw --help", "every command, with an example"),
    ]
    console.print("\n[bold]Where to look next[/bold]")
    width = max(len(command) for command, _ in hints)
    for command, why in hints:
        console.print(f"  {command:<{width}}   [dim]{why}[/dim]")

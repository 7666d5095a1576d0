"""`trouw demo`: the showcase."""

from __future__ import annotations

from datetime import date

import click

from trouw.cli.output import byte_progress, console
from trouw.cli.params import Env, as_of_option, pass_env


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
@as_of_option
@pass_env
def demo_command(env: Env, count: int, seed: int, as_of: date | None) -> None:
    """Generate a Dutch home & garden shop's customers and run the pipeline.

    Writes the data as files to .trouw/demo/, imports them into the project's
    database (replacing an earlier demo's rows) and shows what it found.

    \b
    Example:
      trouw demo --contacts 10000
    """
    from trouw.demo.run import run_demo  # the generator loads only for the demo

    day = as_of or env.today()
    console.print(f"[bold]trouw demo[/bold] for {env.project.settings.name}, as of {day}")
    result = run_demo(
        env.engine,
        env.project,
        contacts_count=count,
        as_of=day,
        seed=seed,
        stage=byte_progress,
    )
    console.print(
        f"  generated   {result.files.contacts} contacts, {result.files.events} events "
        f"in {result.files.contacts_path.parent}"
    )
    console.print(
        f"  imported    {result.contacts.written} contacts, {result.events.written} events "
        f"into {env.database_url}"
    )
    channels = ", ".join(f"{n} by {name}" for name, n in sorted(result.channels.items()))
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
    console.print(
        f"  plan {plan.year}   {plan.sends:,} sends for {plan.contacts:,} contacts "
        f"({per_contact:.1f} each), {plan.statuses['dropped']:,} dropped by the caps"
    )
    console.print(f"  calendar    {result.calendar_html}  (and .ics to subscribe to)")
    if result.sent is not None:
        letters = len(list((result.outbox / "letters").glob("*"))) if result.outbox.exists() else 0
        console.print(
            f"  sent        {result.sent.day}: {result.sent.sent} mails and letters to "
            f"{result.outbox} ({letters} letters by post), logged in the ledger"
        )
    console.print(
        f"  report      {result.report_html}  (campaign results, mails per inbox against "
        "the caps, loyalty figures, with charts)"
    )

    contact = result.example_contact
    segment = next(iter(result.segment_sizes), None)
    if "fire-safety-prospects" in result.segment_sizes:
        segment = "fire-safety-prospects"
    hints = [("trouw segments count --save", "segment sizes, kept as a snapshot")]
    if contact:
        hints.append((f"trouw contacts show {contact}", "a customer who clicked fire safety"))
        if segment:
            hints.append(
                (f"trouw segments explain {segment} --contact {contact}", "why (not) a member")
            )
        hints.append((f"trouw plan explain --contact {contact}", "their year: sent, deferred, why"))
    hints += [
        (f"trouw calendar {plan.year}", "the year as a heatmap, busiest campaigns"),
        ("trouw log --format csv", "every send in the ledger"),
        ("trouw report", "this year so far: churn, repurchase, upsell, NPS, CSAT, loyalty"),
        ("trouw serve", "the tracking server the mails' links point at"),
        ("trouw preview --serve", "every campaign's mails per contact, in your browser"),
        ("trouw --help", "every command, with an example"),
    ]
    console.print("\n[bold]Where to look next[/bold]")
    width = max(len(command) for command, _ in hints)
    for command, why in hints:
        console.print(f"  {command:<{width}}   [dim]{why}[/dim]")

"""`trouw demo`: the showcase."""

from __future__ import annotations

from datetime import date

import click
from rich.table import Table

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
    table = Table(box=None, padding=(0, 1), show_header=False)
    for name, size in result.segment_sizes.items():
        table.add_row(f"  {'segments' if not table.rows else ''}  ", name, str(size))
    console.print(table)
    if result.previews:
        folder = result.previews[0].parent
        mails = len([path for path in result.previews if path.suffix == ".eml"])
        console.print(f"  previews    {mails} sample mails (.html, .txt, .eml) in {folder}")
    console.print("\n[bold]Where to look next[/bold]")
    if result.example_contact:
        console.print(
            f"  trouw contacts show {result.example_contact}   "
            "a customer who clicked a fire-safety link"
        )
    console.print(
        "  trouw segments explain fire-safety-prospects --contact ID   why (not) a member"
    )
    console.print("  trouw preview --serve   the mails per campaign and contact, in your browser")
    console.print(f"  {result.files.contacts_path}   the generated customers (CSV)")
    console.print("  trouw --help   every command, with examples")

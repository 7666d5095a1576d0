"""`trouw contacts show|export|forget ID`."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import click

from trouw.cli.params import Env, pass_env


@click.group("contacts")
def contacts_group() -> None:
    """Look up, export or erase one contact.

    \b
    Example:
      trouw contacts show demo-000042
    """


@contacts_group.command("show")
@click.argument("contact_id", metavar="ID")
@click.option(
    "--events",
    "limit",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="How many recent events to show.",
)
@pass_env
def show_command(env: Env, contact_id: str, limit: int) -> None:
    """Show a contact's fields, attributes and recent events.

    \b
    Example:
      trouw contacts show demo-000042 --events 20
    """
    from rich.table import Table

    from trouw.cli.output import console
    from trouw.contacts import get_contact, is_suppressed, recent_events
    from trouw.importing import CONTACT_FIELDS

    with env.engine.connect() as connection:
        contact = get_contact(connection, contact_id)
        suppressed = is_suppressed(connection, contact["email"])
        latest = recent_events(connection, contact_id, limit)
    table = Table(title=f"contact {contact_id}", show_header=False, title_justify="left")
    for name in CONTACT_FIELDS[1:]:  # everything but the id, which is the title
        value = contact[name]
        table.add_row(name, "" if value is None else str(value))
    for name, value in sorted(contact["attributes"].items()):
        table.add_row(f"[dim]{name}[/dim]", str(value))
    if suppressed:
        table.add_row("suppressed", "yes: this address is never mailed")
    console.print(table)
    if latest:
        zone = env.project.settings.tz
        events = Table(title=f"recent events ({zone.key})", title_justify="left")
        for column in ("when", "type", "tag", "product", "category", "amount", "score"):
            events.add_column(column, no_wrap=column == "when")
        for event in latest:
            when = event["occurred_at"].replace(tzinfo=UTC).astimezone(zone)
            events.add_row(
                when.strftime("%Y-%m-%d %H:%M"),
                *(
                    "" if event[key] is None else str(event[key])
                    for key in ("type", "tag", "product", "category", "amount", "score")
                ),
            )
        console.print(events)


@contacts_group.command("export")
@click.argument("contact_id", metavar="ID")
@pass_env
def export_command(env: Env, contact_id: str) -> None:
    """Print everything stored about a contact as JSON (a data access request).

    \b
    Example:
      trouw contacts export demo-000042 > demo-000042.json
    """
    from trouw.contacts import export_contact

    with env.engine.connect() as connection:
        data = export_contact(connection, contact_id)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


@contacts_group.command("forget")
@click.argument("contact_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--outbox",
    "outboxes",
    metavar="DIR",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="An outbox folder of `send --outbox`: delete their mails and letters in it too "
    "(repeatable).",
)
@pass_env
def forget_command(env: Env, contact_id: str, yes: bool, outboxes: tuple[Path, ...]) -> None:
    """Erase a contact and their events; keep only a suppression record.

    The address is kept as a one-way hash, so a later import of the same
    address is never mailed again. Links in mail already sent to them stop
    counting, also for a contact imported later under the same id. Their
    letters in the letters folder ([letters] dir) and, with --outbox, their
    mails and letters in that folder are deleted, and a day's letters.pdf and
    addresses.csv that held one of their letters are made again without it;
    files not found are named, so you can delete copies elsewhere.

    \b
    Example:
      trouw contacts forget demo-000042 --yes
      trouw contacts forget demo-000042 --yes --outbox outbox/
    """
    from trouw.cli.output import console
    from trouw.contacts import forget_contact, remove_sent_files
    from trouw.store import atomic

    if not yes:
        click.confirm(f"Erase everything about contact {contact_id}?", abort=True)
    with atomic(env.engine) as connection:
        forgotten = forget_contact(connection, contact_id)
    files = remove_sent_files(forgotten, outboxes, env.project.letters_dir)
    counts = forgotten.counts
    removed = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    lines = [f"forgot contact {contact_id} ({removed}); the address stays suppressed."]
    lines += [f"deleted {path}" for path in files.removed]
    lines += [f"made the letters of {day} again without theirs" for day in files.days]
    if files.unsearched:
        lines.append(
            f"{files.unsearched} mails were sent to them: if to an outbox folder "
            "(send --outbox), name it with --outbox DIR to delete them there."
        )
    if files.missing:
        lines.append("not found, delete any copies elsewhere (.eml, .html or .pdf):")
        lines += [f"  {name}" for name in files.missing]
    console.print("\n".join(lines), markup=False, highlight=False)

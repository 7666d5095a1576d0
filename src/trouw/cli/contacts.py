"""`trouw contacts show|export|forget ID`."""

from __future__ import annotations

import json
from datetime import UTC

import click
from rich.table import Table

from trouw.cli.output import console
from trouw.cli.params import Env, pass_env
from trouw.contacts import (
    export_contact,
    forget_contact,
    get_contact,
    is_suppressed,
    recent_events,
)
from trouw.importing import CONTACT_FIELDS
from trouw.store import atomic

PROFILE_FIELDS = CONTACT_FIELDS[1:]  # everything but the id, which is the title


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
    with env.engine.connect() as connection:
        contact = get_contact(connection, contact_id)
        suppressed = is_suppressed(connection, contact["email"])
        latest = recent_events(connection, contact_id, limit)
    table = Table(title=f"contact {contact_id}", show_header=False, title_justify="left")
    for name in PROFILE_FIELDS:
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
    with env.engine.connect() as connection:
        data = export_contact(connection, contact_id)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


@contacts_group.command("forget")
@click.argument("contact_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def forget_command(env: Env, contact_id: str, yes: bool) -> None:
    """Erase a contact and their events; keep only a suppression record.

    The address is kept as a one-way hash, so a later import of the same
    address is never mailed again.

    \b
    Example:
      trouw contacts forget demo-000042 --yes
    """
    if not yes:
        click.confirm(f"Erase everything about contact {contact_id}?", abort=True)
    with atomic(env.engine) as connection:
        counts = forget_contact(connection, contact_id)
    removed = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    console.print(f"forgot contact {contact_id} ({removed}); the address stays suppressed.")

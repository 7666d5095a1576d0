"""`trouw keys rotate`: a new key for the links in mails, the old one accepted a while longer.
`trouw keys create | list | revoke`: the bearer keys of POST /api/events and /api/contacts."""

from __future__ import annotations

import click

from trouw.cli.params import Env, pass_env


@click.group("keys")
def keys_group() -> None:
    """The project's keys: the one that signs the links in mails, and the API keys.

    \b
    Example:
      trouw keys rotate
      trouw keys create shop-web
    """


@keys_group.command("rotate")
@click.option(
    "--grace",
    default="90d",
    show_default=True,
    metavar="DURATION",
    help="How long links signed with the old key still count (0d: not at all).",
)
@pass_env
def rotate_command(env: Env, grace: str) -> None:
    """Replace the project key that signs links with a new random one.

    Mail sent from now on, on every machine that shares the database, is
    signed with the new key. Links in mail sent before keep working for the
    grace period, then get 404; a running tracking server learns the new key
    at the first link it does not know. With TROUW_SECRET set, that secret
    signs instead: to rotate it, set the new secret in TROUW_SECRET and the
    old one in TROUW_SECRET_OLD (comma-separated, on every machine), and
    remove it from there when the grace period is over.

    \b
    Example:
      trouw keys rotate
      trouw keys rotate --grace 0d    # the old key leaked: its links stop now
    """
    from datetime import timedelta

    from trouw.cli.output import console
    from trouw.durations import parse_duration
    from trouw.errors import UserError
    from trouw.store import atomic
    from trouw.templates.links import rotate_project_key

    try:
        days = parse_duration(grace).approx_days()
    except ValueError as exc:
        raise UserError(
            str(exc), key="--grace", fix="give a duration such as 30d, 6w or 3mo"
        ) from exc
    with atomic(env.engine) as connection:
        rotation = rotate_project_key(connection, timedelta(days=days))
    console.print(
        f"links are signed with key {rotation.new} from now on; links signed with key "
        f"{rotation.retired} count until {rotation.until:%Y-%m-%d %H:%M} UTC",
        markup=False,
        highlight=False,
    )


@keys_group.command("create")
@click.argument("name")
@pass_env
def create_command(env: Env, name: str) -> None:
    """Make an API key called NAME for POST /api/events and /api/contacts on `trouw serve`.

    The key is printed once and stored only as a hash: keep it in the shop's
    secrets, and send it as `Authorization: Bearer KEY`. A running server
    accepts it within a second.

    \b
    Example:
      trouw keys create shop-web
    """
    from trouw.cli.output import console
    from trouw.store import atomic
    from trouw.store.apikeys import create_api_key

    with atomic(env.engine) as connection:
        key = create_api_key(connection, name)
    console.print(key, markup=False, highlight=False)


@keys_group.command("list")
@pass_env
def list_command(env: Env) -> None:
    """The API keys: name, first characters, when made and when revoked.

    \b
    Example:
      trouw keys list
    """
    from trouw.cli.output import console
    from trouw.store.apikeys import list_api_keys

    with env.engine.connect() as connection:
        found = list_api_keys(connection)
    for key in found:
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        console.print(
            f"{key.name}\t{key.hint}...\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{revoked}",
            markup=False,
            highlight=False,
        )


@keys_group.command("revoke")
@click.argument("name")
@pass_env
def revoke_command(env: Env, name: str) -> None:
    """Revoke the API key called NAME: a running server refuses it (401) within a second.

    \b
    Example:
      trouw keys revoke shop-web
    """
    from trouw.cli.output import console
    from trouw.store import atomic
    from trouw.store.apikeys import revoke_api_key

    with atomic(env.engine) as connection:
        revoked = revoke_api_key(connection, name)
    console.print(
        f"key {name} revoked" if revoked else f"key {name} was revoked before",
        markup=False,
        highlight=False,
    )

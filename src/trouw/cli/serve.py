"""`trouw serve`: the tracking server for clicks, opens and unsubscribes, for local use."""

from __future__ import annotations

import socket

import click

from trouw.cli.output import console, errors
from trouw.cli.params import Env, pass_env
from trouw.errors import UserError


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@pass_env
def serve_command(env: Env, host: str, port: int) -> None:
    """Answer the tracked links in sent mails: clicks, the open pixel, unsubscribes.

    A click (/c/TOKEN) is recorded as a `click` event with its tag and
    redirected to its link; the open pixel (/o/TOKEN) records an `open`;
    /u/TOKEN asks before unsubscribing and takes one-click unsubscribes
    (RFC 8058) by POST. Tokens are checked against TROUW_SECRET: a forged or
    altered link records nothing. The events feed the segments, and the next
    `trouw send` skips whoever unsubscribed. The links in mails point at
    `[tracking] base_url` in trouw.toml, which must reach this server.

    Mail providers configured in `[webhooks]` report bounces and complaints
    to /hooks/ses, /hooks/postmark, /hooks/sendgrid and /hooks/mailgun, each
    request's signature checked (see the README, "Webhooks").

    This is the server for trying it out and small shops; for production run
    `gunicorn trouw.tracking.wsgi:app` (see the README).

    \b
    Example:
      trouw serve --port 8080
      TROUW_SECRET=... trouw --project shop serve --host 0.0.0.0 --port 8080
    """
    from werkzeug.serving import make_server, select_address_family

    from trouw.templates.links import signing_key
    from trouw.tracking import create_app

    with env.engine.connect() as connection:
        key = signing_key(connection)
    app = create_app(env.project, env.engine, secret=key.secret)
    errors.print(f"links are checked with key {key}", markup=False)
    # The socket is bound here, not by werkzeug, which would exit on a port in use
    # instead of raising: a usage error should read like every other one.
    family = select_address_family(host, port)
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            fix="choose another --port or --host, or stop the program that uses the port",
        ) from exc
    with listener:  # werkzeug serves a duplicate of it
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"tracking {env.project.settings.name} on http://{shown}:{server.port}/ "
        f"(links in mails point at {env.project.settings.tracking_base_url}; Ctrl-C stops)",
        markup=False,
        highlight=False,
    )
    server.serve_forever()  # returns on Ctrl-C and closes the socket

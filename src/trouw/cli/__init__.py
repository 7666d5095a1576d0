"""The command line: thin Click commands over the trouw library.

Each command resolves its context (project, database), calls one library
function and prints. Library errors become messages here: bad input exits 2,
a failure of the work exits 1.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from trouw import __version__
from trouw.cli.params import Env
from trouw.errors import TrouwError, UserError

# Every command: where it lives and its line in `trouw --help`. A command's module is imported
# only when that command runs (or its own --help is asked for), so the CLI starts in a blink.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("project:init_command", "Create a new campaign project in DIRECTORY."),
    "demo": ("demo:demo_command", "Generate a Dutch home & garden shop and run the pipeline."),
    "check": ("check:check_command", "Validate the whole project, every problem at once."),
    "import": ("imports:import_group", "Import contacts or events from CSV or JSONL files."),
    "contacts": ("contacts:contacts_group", "Look up, export or erase one contact."),
    "segments": ("segments:segments_group", "Count, list and explain the segments."),
    "templates": ("templates:templates_group", "Check the mail templates in templates/."),
    "preview": ("preview:preview_command", "Show the mail a campaign sends, here or in a browser."),
    "plan": ("plan:plan_group", "Compute the year plan: every contact's dated sends."),
    "calendar": ("calendar:calendar_command", "The year plan per day, and the busiest campaigns."),
    "simulate": ("simulate:simulate_command", "Replay a period day by day, dry."),
    "send": ("send:send_command", "Send every mail owed up to the day, each at most once."),
    "log": ("log:log_command", "Show the send ledger: every mail and how it ended."),
    "status": ("status:status_command", "Plan coverage, owed and stuck mail, the last runs."),
    "report": ("report:report_command", "Report on a year: funnels, mails per inbox, loyalty."),
    "serve": ("serve:serve_command", "Answer the tracked links: clicks, opens, unsubscribes."),
    "bounces": ("bounces:bounces_group", "Read bounces and complaints from a mailbox."),
    "keys": ("keys:keys_group", "API keys for /api/events and /api/contacts; the link key."),
}


class BadInput(click.ClickException):
    exit_code = 2  # ClickException's own exit code, 1, means the work failed


class TrouwGroup(click.Group):
    """Loads commands when used; turns trouw's named errors into messages with the right exit
    code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        where, summary = COMMANDS[cmd_name]
        module, name = where.split(":")
        command: click.Command = getattr(importlib.import_module(f"trouw.cli.{module}"), name)
        command.short_help = summary
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise BadInput(str(exc)) from exc
        except TrouwError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            if not _from_the_database(exc):
                raise
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(f"database error: {reason}") from exc


def _from_the_database(exc: Exception) -> bool:
    """A SQLAlchemy error, told without importing SQLAlchemy where no command did."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


@click.group(cls=TrouwGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The project folder (default: the nearest folder upwards with trouw.toml).",
)
@click.option(
    "--db",
    "db",
    metavar="URL",
    help="Database URL (default: TROUW_DATABASE_URL, trouw.toml, then .trouw/trouw.db).",
)
@click.version_option(__version__, prog_name="trouw")
@click.pass_context
def main(ctx: click.Context, project_dir: Path | None, db: str | None) -> None:
    """trouw: personal mail campaigns from plain files, a year at a time.

    \b
    Example:
      trouw demo                      generate a shop and run the whole pipeline
      trouw --project shop import contacts customers.csv
    """
    ctx.obj = env = Env(project_dir=project_dir, db_override=db)
    ctx.call_on_close(env.close)

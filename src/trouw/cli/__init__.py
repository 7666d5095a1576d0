"""The command line: thin Click commands over the trouw library.

Each command resolves its context (project, database), calls one library
function and prints. Library errors become messages here: bad input exits 2,
a failure of the work exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from trouw import __version__
from trouw.cli.calendar import calendar_command
from trouw.cli.contacts import contacts_group
from trouw.cli.demo import demo_command
from trouw.cli.imports import import_group
from trouw.cli.log import log_command
from trouw.cli.params import Env
from trouw.cli.plan import plan_group
from trouw.cli.preview import preview_command
from trouw.cli.project import init_command
from trouw.cli.report import report_command
from trouw.cli.segments import segments_group
from trouw.cli.send import send_command
from trouw.cli.serve import serve_command
from trouw.cli.simulate import simulate_command
from trouw.cli.templates import templates_group
from trouw.errors import TrouwError, UserError


class BadInput(click.ClickException):
    exit_code = 2  # ClickException's own exit code, 1, means the work failed


class TrouwGroup(click.Group):
    """Turns trouw's named errors into messages with the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise BadInput(str(exc)) from exc
        except TrouwError as exc:
            raise click.ClickException(str(exc)) from exc
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(f"database error: {reason}") from exc


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


main.add_command(init_command)
main.add_command(demo_command)
main.add_command(import_group)
main.add_command(contacts_group)
main.add_command(segments_group)
main.add_command(templates_group)
main.add_command(preview_command)
main.add_command(plan_group)
main.add_command(calendar_command)
main.add_command(simulate_command)
main.add_command(send_command)
main.add_command(log_command)
main.add_command(report_command)
main.add_command(serve_command)

"""`trouw templates check`."""

from __future__ import annotations

from datetime import date

import click
from rich.table import Table

from trouw.cli.output import console, errors
from trouw.cli.params import Env, as_of_option, pass_env


@click.group("templates")
def templates_group() -> None:
    """Check the mail templates in templates/.

    \b
    Example:
      trouw templates check
    """


@templates_group.command("check")
@click.option(
    "--samples",
    type=click.IntRange(1, 50),
    default=2,
    show_default=True,
    help="Sample contacts per variant and locale.",
)
@as_of_option
@pass_env
def check_command(env: Env, samples: int, as_of: date | None) -> None:
    """Render every template for sample contacts and report what is wrong.

    Every campaign variant is rendered for members of its segment in each
    locale in use (a made-up contact where a segment has none), and every
    other mail template for a made-up contact. Errors: syntax errors and
    missing variables (file and line), links without a target, images
    without alt text, no unsubscribe link, HTML over 100 KB. Exit code 2 on
    any error.

    \b
    Example:
      trouw templates check --as-of 2027-04-02
    """
    from trouw.templates.check import check_templates

    day = as_of or env.today()
    with env.engine.connect() as connection:
        report = check_templates(env.project, connection, day, samples=samples)
    if report.errors:
        table = Table(title="template problems", title_justify="left", show_lines=True)
        for column in ("where", "contact", "problem"):
            table.add_column(column, overflow="fold")
        for finding in report.errors:
            table.add_row(finding.where, finding.contact, finding.message)
        errors.print(table)
    summary = (
        f"{report.rendered} mails rendered from {len(report.templates)} templates "
        f"({'; '.join(report.notes)}), {len(report.errors)} problems"
    )
    if report.errors:
        errors.print(f"Error: {summary}", markup=False)
        raise click.exceptions.Exit(2)
    console.print(f"ok: {summary}", markup=False)

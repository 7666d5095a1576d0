"""`trouw check`."""

from __future__ import annotations

from datetime import date

import click

from trouw.cli.params import Env, as_of_option, pass_env


@click.command("check")
@as_of_option
@pass_env
def check_command(env: Env, as_of: date | None) -> None:
    """Validate the whole project, every problem at once.

    Reads trouw.toml, every segment, campaign and template without any data
    (no database is opened or made) and lists every problem with its file,
    line, key and the fix: settings and caps that make no sense, the sender
    address and tracking base_url, Jinja syntax, layouts and includes that do
    not exist, segments and templates a campaign names that do not exist,
    segment references to no segment and cycles, and schedules with no day
    in the coming year (from --as-of). Exit code 2 when there is a problem,
    0 with a one-line summary when there is none.

    Meant for a git pre-commit hook (`exec trouw check` in
    .git/hooks/pre-commit) and for CI (`trouw --project shop check`).

    \b
    Example:
      trouw check
      trouw --project shop check --as-of 2027-01-01
    """
    from trouw.checking import check_project
    from trouw.project import find_root

    # Plain lines through click, not the rich console: a hook waits for every import.
    report = check_project(find_root(env.project_dir), today=as_of)
    if report.fine:
        click.echo(f"project is fine: {report.summary}")
        return
    for message in report.messages():
        click.echo(message, err=True)
    count = len(report.problems)
    files = len(report.files())
    click.echo(
        f"Error: {count} problem{'s' * (count != 1)} in {files} file{'s' * (files != 1)} "
        f"({report.summary})",
        err=True,
    )
    raise click.exceptions.Exit(2)

"""`trouw templates check`."""

from __future__ import annotations

from datetime import date

import click

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
    missing variables, links without a target, images without alt text, no
    unsubscribe link, HTML over 100 KB, and layouts wider than a phone (a
    fixed width over 375 px with no max-width in % and no @media rule that
    narrows it; found in the files, not by a browser). Each problem is shown
    once with its file and line, and where and for how many samples it was
    seen. Exit code 2 on any error.

    \b
    Example:
      trouw templates check --as-of 2027-04-02
    """
    from trouw.templates.check import check_templates

    day = as_of or env.today()
    with env.engine.connect() as connection:
        report = check_templates(env.project, connection, day, samples=samples)
    for finding in report.errors:
        errors.print(finding.message, markup=False, highlight=False, soft_wrap=True)
        seen = _seen(finding.wheres, finding.contacts)
        errors.print(f"  seen in: {seen}", markup=False, highlight=False, soft_wrap=True)
    summary = (
        f"{report.rendered} mails rendered from {len(report.templates)} templates "
        f"({'; '.join(report.notes)}), {len(report.errors)} problems"
    )
    if report.errors:
        errors.print(f"Error: {summary}", markup=False)
        raise click.exceptions.Exit(2)
    console.print(f"ok: {summary}", markup=False)


def _seen(wheres: list[str], contacts: list[str]) -> str:
    """`spring-outing → spring/generic, welcome:1 → ... · 4 samples (demo-000001, ...)`."""
    shown = ", ".join(wheres[:3]) + (f" and {len(wheres) - 3} more" if len(wheres) > 3 else "")
    if not contacts:
        return shown
    samples = f"{len(contacts)} sample{'s' if len(contacts) != 1 else ''}"
    return f"{shown} · {samples} ({', '.join(contacts[:2])}{', ...' if len(contacts) > 2 else ''})"

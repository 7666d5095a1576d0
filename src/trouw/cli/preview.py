"""`trouw preview CAMPAIGN[:STEP]` and `trouw preview --serve`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from trouw.cli.params import Env, as_of_option, pass_env


@click.command("preview")
@click.argument("target", metavar="CAMPAIGN[:STEP]", required=False)
@click.option(
    "--contact",
    "contact_ids",
    metavar="ID",
    multiple=True,
    help="Preview for this contact (repeatable).",
)
@click.option("--segment", metavar="NAME", help="Preview for a sample of this segment's members.")
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Sample size per variant or segment.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write .html, .txt and a complete .eml per mail into this folder.",
)
@click.option("--serve", is_flag=True, help="Start the local preview web page instead.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8026,
    show_default=True,
    help="Port for --serve.",
)
@as_of_option
@pass_env
def preview_command(
    env: Env,
    target: str | None,
    contact_ids: tuple[str, ...],
    segment: str | None,
    limit: int,
    out_dir: Path | None,
    serve: bool,
    port: int,
    as_of: date | None,
) -> None:
    """Show the mail a campaign sends: subject and text here, files with --out.

    Without --contact or --segment, a few members of each variant's segment
    are shown. A journey's step is named CAMPAIGN:STEP (its number or name);
    without a step every step is shown. Contacts matching no variant are
    reported as skipped. With --serve, a local web page (127.0.0.1 only) shows
    campaigns, variants and sample contacts with the rendered mail, its text
    part and headers; reload it after editing a template. The page answers
    only when reached as 127.0.0.1, localhost or [::1]: another web site
    cannot read it through your browser.

    \b
    Example:
      trouw preview spring-outing --segment families --out previews/
      trouw preview welcome:2 --contact demo-000042
      trouw preview --serve --port 8026
    """
    from trouw.cli.output import console, errors
    from trouw.errors import UserError

    day = as_of or env.today()
    if serve:
        from trouw.preview.app import serve_preview

        console.print(
            f"preview of {env.project.settings.name} on http://127.0.0.1:{port}/ (Ctrl-C stops)"
        )
        serve_preview(env.project, env.database_url, as_of=day, port=port)
        return
    if target is None:
        raise UserError(
            "name a campaign, e.g. `trouw preview welcome`, or use --serve", key="CAMPAIGN"
        )
    if contact_ids and segment:
        raise UserError("give --contact or --segment, not both", key="--segment")
    from trouw.templates.preview_run import preview_mails, write_mail_files

    with env.engine.connect() as connection:
        results, mails = preview_mails(
            env.project,
            connection,
            day,
            target,
            contact_ids=list(contact_ids),
            segment=segment,
            limit=limit,
        )
        shown = 0
        for result in results:
            where = result.campaign.name + (
                f":{result.step.name}" if result.campaign.is_journey else ""
            )
            name = result.contact.get("full_name") or "-"
            who = f"{result.contact_id} ({name}, {result.contact['locale']})"
            template = result.variant.template if result.variant else "no variant"
            console.rule(f"{where} → {template} · {who}", align="left")
            for note in result.notes:
                console.print(f"[yellow]note:[/yellow] {note}")
            if result.error is not None:
                errors.print(f"Error: {result.error}", markup=False)
                continue
            if result.mail is None:
                continue
            shown += 1
            console.print(
                f"[bold]Subject:[/bold] {result.mail.subject}", highlight=False, markup=True
            )
            console.print(result.mail.text, markup=False)
            if out_dir is not None:
                written = write_mail_files(mails, result, out_dir)
                console.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/dim]")
        if not results:
            console.print("no contacts to preview: import contacts, or name one with --contact")
    if any(result.error is not None for result in results):
        raise click.exceptions.Exit(2)
    if shown == 0 and results:
        console.print("no mail rendered: every contact shown was skipped")

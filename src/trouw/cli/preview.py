"""`trouw preview CAMPAIGN[:STEP]` and `trouw preview --serve`."""

from __future__ import annotations

import os
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
@click.option(
    "--send-test",
    "send_test",
    metavar="ADDRESS",
    help="Send the first contact's mail to ADDRESS (yours, never a contact's), marked [test].",
)
@click.option(
    "--smtp",
    "smtp_url",
    metavar="URL",
    help="SMTP server for --send-test and the page's test button (default: TROUW_SMTP_URL).",
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
    send_test: str | None,
    smtp_url: str | None,
    serve: bool,
    port: int,
    as_of: date | None,
) -> None:
    """Show the mail a campaign sends: subject and text here, files with --out.

    Without --contact or --segment, a few members of each variant's segment
    are shown. A journey's step is named CAMPAIGN:STEP (its number or name);
    without a step every step is shown. Contacts matching no variant are
    reported as skipped. Each mail is dated as of its contact's planned day
    (the plan; else the schedule's next day or their next birthday), so
    "valid until" reads as they will read it; --as-of D dates every mail D.

    --send-test ADDRESS sends the first contact's mail (per step) to ADDRESS
    over SMTP (--smtp, else TROUW_SMTP_URL): the contact's data, your address,
    "[test]" in the subject, nothing in the ledger, links that record nothing.
    An address a contact has is refused.

    With --serve, a local web page (127.0.0.1 only) lists the campaigns with
    their schedule or trigger and next send day, and shows each variant's
    sample contacts with the mail at phone and desktop width, its text part
    and headers, a day to date it and (with an SMTP server) a test button;
    reload it after editing a template. The page answers only when reached as
    127.0.0.1, localhost or [::1]: another web site cannot read it through
    your browser, nor send a test through it.

    \b
    Example:
      trouw preview spring-outing --segment families --out previews/
      trouw preview birthday --contact demo-000042 --as-of 2027-03-12
      trouw preview welcome:2 --contact demo-000042 --send-test me@shop.example
      trouw preview --serve --port 8026 --smtp smtp://relay.shop.example:587
    """
    from trouw.cli.output import console, errors
    from trouw.errors import UserError

    day = as_of or env.today()
    smtp_url = smtp_url or os.environ.get("TROUW_SMTP_URL") or None
    if smtp_url is not None:
        from trouw.sending.transports import SmtpAddress

        SmtpAddress.parse(smtp_url)  # a bad URL is bad input, before any work
    if serve:
        from trouw.preview.app import serve_preview

        console.print(
            f"preview of {env.project.settings.name} on http://127.0.0.1:{port}/ (Ctrl-C stops)"
            + ("" if smtp_url else "; give --smtp URL to send tests")
        )
        serve_preview(env.project, env.database_url, as_of=day, port=port, smtp_url=smtp_url)
        return
    if target is None:
        raise UserError(
            "name a campaign, e.g. `trouw preview welcome`, or use --serve", key="CAMPAIGN"
        )
    if contact_ids and segment:
        raise UserError("give --contact or --segment, not both", key="--segment")
    if send_test is not None and smtp_url is None:
        raise UserError(
            "--send-test needs an SMTP server",
            key="--send-test",
            fix="give --smtp URL (or set TROUW_SMTP_URL)",
        )
    from trouw.templates.preview_run import DatedMail, dated_previews, write_mail_files

    with env.engine.connect() as connection:
        previews = dated_previews(
            env.project,
            connection,
            day,
            target,
            contact_ids=list(contact_ids),
            segment=segment,
            limit=limit,
            fixed=as_of is not None,
        )
        results = [preview.result for preview in previews]
        shown = 0
        tests: dict[str, DatedMail] = {}
        for preview in previews:
            result, mails = preview.result, preview.mails
            where = result.campaign.name + (
                f":{result.step.name}" if result.campaign.is_journey else ""
            )
            name = result.contact.get("full_name") or "-"
            who = f"{result.contact_id} ({name}, {result.contact['locale']})"
            template = result.variant.template if result.variant else "no variant"
            console.rule(f"{where} → {template} · {who}", align="left")
            why = "--as-of" if as_of else _WHY[preview.why]
            console.print(f"[dim]dated {preview.day} ({why})[/dim]", highlight=False)
            for note in result.notes:
                console.print(f"[yellow]note:[/yellow] {note}")
            if result.error is not None:
                errors.print(f"Error: {result.error}", markup=False)
                continue
            if result.mail is None:
                continue
            shown += 1
            tests.setdefault(result.step.name, preview)
            console.print(
                f"[bold]Subject:[/bold] {result.mail.subject}", highlight=False, markup=True
            )
            console.print(result.mail.text, markup=False)
            if out_dir is not None:
                written = write_mail_files(mails, result, out_dir)
                console.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/dim]")
        if not results:
            console.print("no contacts to preview: import contacts, or name one with --contact")
        if send_test is not None and smtp_url is not None:
            from trouw.preview.testmail import send_test_mail

            if not tests:
                errors.print("no test sent: no mail was rendered", markup=False)

            for preview in tests.values():
                sent = send_test_mail(
                    env.project,
                    connection,
                    preview.day,
                    preview.result.campaign,
                    preview.result.step,
                    preview.result.contact_id,
                    send_test,
                    smtp_url,
                    template=preview.result.variant.template if preview.result.variant else None,
                )
                console.print(
                    f"sent a test to {sent.address}: {sent.subject!r} "
                    f"({sent.template} for {sent.contact_id}, dated {sent.day})",
                    markup=False,
                )
    if any(result.error is not None for result in results):
        raise click.exceptions.Exit(2)
    if shown == 0 and results:
        console.print("no mail rendered: every contact shown was skipped")


# Why a mail is dated as it is, as the command says it.
_WHY = {
    "planned": "their planned day",
    "scheduled": "the next scheduled day",
    "birthday": "their next birthday",
    "anniversary": "their next anniversary",
    "signup": "their signup day plus the step's delay",
    "as of": "no planned day: today",
}

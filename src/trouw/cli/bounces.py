"""`trouw bounces fetch`: bounces, complaints and mailto unsubscribes from a mailbox."""

from __future__ import annotations

from pathlib import Path

import click

from trouw.cli.params import Env, pass_env


@click.group("bounces")
def bounces_group() -> None:
    """Read bounces and complaints from the bounce mailbox.

    \b
    Example:
      trouw bounces fetch --imap imaps://bounces:secret@mail.shop.example/INBOX
    """


@bounces_group.command("fetch")
@click.option("--imap", "imap", metavar="URL", help="imap(s)://user:password@host[:port][/FOLDER]")
@click.option("--pop3", "pop3", metavar="URL", help="pop3(s)://user:password@host[:port]")
@click.option(
    "--mbox", "mbox", type=click.Path(dir_okay=False, path_type=Path), help="An mbox file."
)
@click.option(
    "--maildir", "maildir", type=click.Path(file_okay=False, path_type=Path), help="A maildir."
)
@pass_env
def fetch_command(
    env: Env, imap: str | None, pop3: str | None, mbox: Path | None, maildir: Path | None
) -> None:
    """Act on every new bounce, complaint and mailto unsubscribe in a mailbox.

    Understands RFC 3464 delivery status notifications (failed 5.x.x: a hard
    bounce; failed 4.x.x or delayed: a soft one), RFC 5965 abuse reports (a
    complaint) and the mails the List-Unsubscribe mailto link makes (subject
    "unsubscribe", from the recipient). Each is matched to the mail it is
    about by the signed token of the return path it was delivered to
    ([sender] return_path: bounce+TOKEN@), else by the original Message-ID,
    else to the contacts with the address. A forged token is reported.

    A hard bounce or complaint suppresses the address and records a bounce
    (tag hard) or complaint event; a soft bounce records a bounce event tagged
    soft, and [bounces] soft_limit of them within soft_window (default: 3 in
    30d) suppress the address; an unsubscribe records an unsubscribe event.
    The mail's ledger row stays `sent`. An address no contact has is reported.

    Each message is acted on once: the database remembers it, in the same
    transaction as its effects. IMAP messages are then flagged \\Seen and moved
    to the folder [bounces] folder (default trouw-processed), maildir messages
    to that sub-folder; POP3 messages are deleted; an mbox is left as it is.

    \b
    Example:
      trouw bounces fetch --imap imaps://bounces:secret@mail.shop.example/INBOX
      trouw bounces fetch --maildir ~/Maildir
    """
    from trouw.bounces.apply import fetch_bounces
    from trouw.bounces.mailboxes import Source, open_mailbox
    from trouw.cli.output import console
    from trouw.errors import UserError

    given = [
        Source(kind, str(value))  # type: ignore[arg-type]
        for kind, value in (("imap", imap), ("pop3", pop3), ("mbox", mbox), ("maildir", maildir))
        if value is not None
    ]
    if len(given) != 1:
        raise UserError(
            "name one mailbox" if not given else "name only one mailbox",
            fix="give one of --imap URL, --pop3 URL, --mbox FILE, --maildir DIR",
        )
    source = given[0]
    rules = env.project.settings.bounces
    with open_mailbox(source, rules.folder) as reader:
        summary = fetch_bounces(env.engine, reader, rules)
    for what in summary.unmatched_shown:
        console.print(f"unmatched: no contact and no sent mail for {what}", markup=False)
    for token in summary.forged_shown:
        console.print(f"forged: return path token {token} is not signed by this project")
    forged = f", {summary.forged} to a forged return path" if summary.forged else ""
    console.print(
        f"{source.describe()}: {summary.read} messages read, {summary.known} processed before; "
        f"{summary.hard} hard bounces, {summary.soft} soft bounces, "
        f"{summary.complaints} complaints, {summary.unsubscribes} unsubscribes, "
        f"{summary.unmatched} unmatched{forged}, {summary.skipped} skipped (no report); "
        f"{summary.suppressed} addresses suppressed",
        markup=False,
    )

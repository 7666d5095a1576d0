"""Where a send run delivers, chosen from the command's flags and the project's settings.

Mail goes to an SMTP server (`--smtp URL`, else TROUW_SMTP_URL) or into an
outbox folder; letters for `post` contacts go into the letters folder
(`--letters DIR`, else `[letters] dir`), in the same run and under the same
caps, or into the outbox's `letters/`. A dry run delivers nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trouw.errors import UserError
from trouw.sending.transports import (
    CONNECTIONS,
    LetterBox,
    OutboxTransport,
    Routed,
    SmtpAddress,
    SmtpPool,
    Transport,
)


@dataclass(frozen=True)
class Destination:
    """A picklable maker of one worker's transport."""

    smtp_url: str | None = None
    outbox: Path | None = None
    letters: Path | None = None
    connections: int = CONNECTIONS
    rate: float | None = None  # this worker's share of --rate

    def __call__(self) -> Transport:
        mail: Transport
        if self.outbox is not None:
            mail = OutboxTransport(self.outbox)
        else:
            assert self.smtp_url is not None
            mail = SmtpPool(self.smtp_url, connections=self.connections, rate=self.rate)
        if self.letters is None:
            return mail
        return Routed(mail, LetterBox(self.letters))


def choose_destination(
    *,
    dry_run: bool,
    outbox: Path | None,
    smtp_url: str | None,
    letters: Path | None,
    default_smtp_url: str | None,
    rate: float | None,
    workers: int,
    connections: int,
    limited: bool,
) -> Destination | None:
    """The run's destination (None: a dry run), or a UserError naming the flags to fix."""
    chosen = [flag for flag, on in (("--dry-run", dry_run), ("--outbox", outbox),
              ("--smtp", smtp_url)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise UserError(f"{' and '.join(chosen)} exclude each other", fix="give one of them")
    if not chosen:
        smtp_url = default_smtp_url
        if smtp_url is None:
            raise UserError(
                "nowhere to send to",
                fix="give --smtp URL (or set TROUW_SMTP_URL), --outbox DIR or --dry-run",
            )
    if rate is not None and smtp_url is None:
        raise UserError("--rate paces SMTP sending", key="--rate", fix="use it with --smtp")
    if workers > 1 and (limited or dry_run):
        raise UserError(
            "--workers runs several senders at once", fix="drop --limit and --dry-run, or --workers"
        )
    if dry_run:
        return None
    if smtp_url is not None:
        SmtpAddress.parse(smtp_url)  # a bad URL is bad input, before any work
    share = rate / workers if rate else None
    return Destination(smtp_url, outbox, letters, connections, share)


__all__ = ["Destination", "choose_destination"]

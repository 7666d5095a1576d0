"""What a send run did, for the terminal, the run's record and a monitor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from trouw.sending import ledger as book
from trouw.sending.owed import Due
from trouw.sending.runs import RunInfo


@dataclass
class SendSummary:
    """What a run did: sent, deferred, cancelled, expired, skipped, with reasons."""

    day: date
    dry_run: bool = False
    due: int = 0
    triggered: int = 0  # of `due`: not in the plan (triggered or changed since it was made)
    earlier: dict[date, int] = field(default_factory=dict)  # of `due`: owed from earlier days
    sent: int = 0
    would_send: int = 0
    failed: int = 0
    unknown: int = 0  # lost during DATA in this run
    deferred: int = 0  # refused for now (4xx) in this run: tried again later
    released: int = 0  # not sent because the run stopped or the server went away: owed again
    taken_over: int = 0  # reservations of dead runs that had not left: owed again
    stale: int = 0  # mails of dead runs on the wire when they died: now unknown
    held: list[tuple[RunInfo, int]] = field(default_factory=list)  # rows live runs hold
    unknown_waiting: int = 0  # the day's unknown rows not retried
    suppressed: int = 0  # addresses suppressed after a hard bounce
    expired: Counter[str] = field(default_factory=Counter)  # by campaign
    # Owed sends that did not go, and why: cancelled, or deferred (waiting for a later run).
    settled: dict[book.Key, tuple[str, str]] = field(default_factory=dict)
    limited: bool = False
    interrupted: str | None = None  # the signal that stopped the run (SIGTERM, SIGINT)
    signed_with: str | None = None  # the signing key's fingerprint and source
    unplanned: bool = False  # the plan has nothing in the day's year: `trouw plan` did not run
    skips: dict[book.Key, str] = field(default_factory=dict)  # why each unsent due was skipped
    failures: list[tuple[book.Key, str]] = field(default_factory=list)
    retried: list[tuple[book.Key, str]] = field(default_factory=list)  # unknown, sent again
    winners: list[str] = field(default_factory=list)  # A/B tests decided by this run, described

    def skip(self, dues: Iterable[Due], reason: str) -> None:
        for due in dues:
            self.skips[due.send.key] = reason

    def settle(self, due: Due, status: str, reason: str) -> None:
        self.settled[due.send.key] = (status, reason)

    @property
    def cancelled(self) -> Counter[str]:
        """How many were cancelled for each reason."""
        return Counter(why for status, why in self.settled.values() if status == book.CANCELLED)

    @property
    def waiting(self) -> Counter[str]:
        """How many stay owed for a later run, for each reason."""
        return Counter(why for status, why in self.settled.values() if status == book.DEFERRED)

    @property
    def skipped(self) -> Counter[str]:
        """How many were skipped for each reason (two workers meeting one send count it once)."""
        return Counter(self.skips.values())

    def record(self) -> dict[str, Any]:
        """The counts, as JSON for the run's row."""
        return {
            "due": self.due,
            "sent": self.sent,
            "failed": self.failed,
            "unknown": self.unknown,
            "deferred": self.deferred,
            "released": self.released,
            "expired": sum(self.expired.values()),
            "cancelled": sum(self.cancelled.values()),
            "waiting": sum(self.waiting.values()),
            "earlier": sum(self.earlier.values()),
        }


__all__ = ["SendSummary"]

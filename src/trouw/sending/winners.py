"""The winner of an A/B test with a `share:`: picked once, by a send run, from the first wave.

A step's `test: {share: 20%, pick_by: click_rate, after: 24h}` sends its arms
to the share of the audience (experiments.in_first_wave) on the scheduled day;
the rest is due `after` later (whole days, at least one) and waits for the
winner. The first send run at least `after` past the first wave's first mail
picks it: per arm, the first wave's sent mails and those that were opened
(an open or a click), clicked, or followed by a purchase (conversion), up to
the run's moment; the highest rate wins, a tie goes to the arm listed first.
The pick is written once to `test_winners` with its numbers (each arm's
rate with a 95% Wilson interval, and a chi-square p-value over the arms), so
every later run, re-plan and report sees the same winner.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from trouw.campaigns import Campaign, Step
from trouw.experiments import wait_days
from trouw.planning.candidates import winners_of
from trouw.sending.ledger import SENT
from trouw.store import events, ledger, test_winners

Key = tuple[str, str, str]  # (campaign, step, occurrence)
HITS = {"open_rate": ("open", "click"), "click_rate": ("click",), "conversion": ("purchase",)}


@dataclass(frozen=True)
class Arm:
    template: str
    sent: int
    hits: int
    rate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Winner:
    campaign: str
    step: str
    occurrence: str
    winner: str
    pick_by: str
    decided_at: datetime
    p_value: float | None
    arms: tuple[Arm, ...]

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < 0.05

    def describe(self) -> str:
        """One line: the winner, each arm's rate with its interval, and the p-value."""
        what = self.pick_by.replace("_", " ")
        arms = "; ".join(
            f"{a.template} {_percent(a.rate)} ({_percent(a.low)}-{_percent(a.high)}) of {a.sent}"
            for a in self.arms
        )
        p = "p n/a" if self.p_value is None else f"p = {self.p_value:.3g}"
        verdict = "significant" if self.significant else "not significant"
        return (
            f"test {self.campaign}:{self.step} ({self.occurrence}): {self.winner} wins by {what}"
            f" - {arms}; {p}, {verdict}"
        )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def share_tests(campaigns: Iterable[Campaign]) -> list[tuple[Campaign, Step]]:
    """The steps whose test sends a first wave and then the winner."""
    return [
        (campaign, step)
        for campaign in campaigns
        for step in campaign.steps
        if step.test is not None and step.test.share is not None
    ]


def read_winners(connection: Connection) -> list[Winner]:
    """The decided tests with their numbers, in the order they were decided."""
    query = select(test_winners).order_by(test_winners.c.decided_at, test_winners.c.campaign)
    found = []
    for row in connection.execute(query):
        arms = tuple(Arm(**arm) for arm in json.loads(row.numbers))
        found.append(
            Winner(row.campaign, row.step, row.occurrence, row.winner, row.pick_by,
                   row.decided_at, row.p_value, arms)
        )  # fmt: skip
    return found


def decide_winners(
    connection: Connection, campaigns: Iterable[Campaign], now: datetime, as_of: date
) -> list[Winner]:
    """Pick and record the winner of every test whose first wave has run its `after` by
    `now` (naive UTC) and has none yet; the winners picked now are returned. Never before
    the rest's day (`as_of`, the run's day): a run's `now` may be given (`--now`) apart
    from the real time its mails' `sent_at` holds."""
    tests = share_tests(campaigns)
    if not tests:
        return []
    known = winners_of(connection)
    picked = []
    for campaign, step in tests:
        test = step.test
        assert test is not None and test.pick_by is not None
        arms = [arm.template for arm in test.arms]
        waves = connection.execute(
            select(ledger.c.occurrence, func.min(ledger.c.sent_at), func.min(ledger.c.day))
            .where(
                ledger.c.campaign == campaign.name,
                ledger.c.step == step.name,
                ledger.c.status == SENT,
                ledger.c.template.in_(arms),
                ledger.c.sent_at.is_not(None),
            )
            .group_by(ledger.c.occurrence)
        ).all()
        for occurrence, first_sent, first_day in waves:
            key = (campaign.name, step.name, str(occurrence))
            if key in known or first_sent is None:
                continue
            if isinstance(first_sent, str):  # SQLite hands an aggregate back as text
                first_sent = datetime.fromisoformat(first_sent)
            if isinstance(first_day, str):
                first_day = date.fromisoformat(first_day)
            if as_of < first_day + timedelta(days=wait_days(test.after_hours)):
                continue  # the rest is not due yet
            if now < first_sent + timedelta(hours=test.after_hours):
                continue
            winner = _pick(connection, key, arms, test.pick_by, now)
            connection.execute(
                insert(test_winners).values(
                    campaign=winner.campaign, step=winner.step, occurrence=winner.occurrence,
                    winner=winner.winner, pick_by=winner.pick_by, decided_at=winner.decided_at,
                    p_value=winner.p_value,
                    numbers=json.dumps([arm.__dict__ for arm in winner.arms]),
                )
            )  # fmt: skip
            picked.append(winner)
    return picked


def _pick(
    connection: Connection, key: Key, arms: Sequence[str], pick_by: str, now: datetime
) -> Winner:
    campaign, step, occurrence = key
    sends = connection.execute(
        select(ledger.c.id, ledger.c.contact_id, ledger.c.template, ledger.c.sent_at).where(
            ledger.c.campaign == campaign,
            ledger.c.step == step,
            ledger.c.occurrence == occurrence,
            ledger.c.status == SENT,
            ledger.c.template.in_(arms),
        )
    ).all()
    first = min(row.sent_at for row in sends)
    kinds = HITS[pick_by]
    responses: dict[str, list[tuple[datetime, Any]]] = {}
    wave = select(ledger.c.contact_id).where(
        ledger.c.campaign == campaign,
        ledger.c.step == step,
        ledger.c.occurrence == occurrence,
        ledger.c.status == SENT,
    )
    for contact_id, moment, properties in connection.execute(
        select(events.c.contact_id, events.c.occurred_at, events.c.properties).where(
            events.c.contact_id.in_(wave),
            events.c.type.in_(kinds),
            events.c.occurred_at >= first,
            events.c.occurred_at < now,
        )
    ):
        responses.setdefault(str(contact_id), []).append((moment, _properties(properties)))
    sent = dict.fromkeys(arms, 0)
    hits = dict.fromkeys(arms, 0)
    for row in sends:
        sent[row.template] += 1
        for moment, properties in responses.get(str(row.contact_id), []):
            if moment < row.sent_at:
                continue
            if pick_by != "conversion":  # an open or click names the mail it came from
                if properties.get("ledger_id") not in (None, row.id):
                    continue
                if properties.get("campaign") not in (None, campaign):
                    continue
            hits[row.template] += 1
            break
    from scipy import stats  # type: ignore[import-untyped]  # only when a test is decided

    results = []
    for template in arms:
        n, k = sent[template], hits[template]
        low = high = rate = None
        if n:
            rate = k / n
            interval = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
            low, high = float(interval.low), float(interval.high)
        results.append(Arm(template, n, k, rate, low, high))
    p_value = None
    table = [[a.hits, a.sent - a.hits] for a in results if a.sent]
    if len(table) > 1 and 0 < sum(r[0] for r in table) < sum(a.sent for a in results):
        p_value = float(stats.chi2_contingency(table).pvalue)
    best = max(
        results, key=lambda a: (a.rate if a.rate is not None else -1.0, -arms.index(a.template))
    )
    return Winner(campaign, step, occurrence, best.template, pick_by, now, p_value, tuple(results))


def _properties(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


__all__ = ["Arm", "Winner", "decide_winners", "read_winners", "share_tests"]

"""The lift: treated against held-out contacts, with intervals that keep their promise.

On generated outcomes with a known true effect (treated contacts repurchase 5
points more, spend 5 more per contact) the 95% interval covers the true lift
in nearly every one of 20 seeds, and with no effect nearly none is called
significant; the seeds are fixed, so the test is deterministic. End to end, a
shop with a campaign holdout and a control group is sent its day, buys
afterwards, and the report counts each group and the lift from the ledger.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.conftest import Cli
from tests.planning.shop import make_shop, policy
from trouw.experiments import fraction, held_out, in_control_group
from trouw.importing import import_events
from trouw.project import load_project
from trouw.reports.lift import PROGRAM, lift_figures, means, proportions
from trouw.sending import send_day
from trouw.sending.ledger import SENT
from trouw.sending.transports import OutboxTransport
from trouw.store import ledger

SEEDS = range(20)
N = 2000  # contacts per group


def _shares(seed: int, effect: float) -> tuple[list[int], list[int]]:
    draw = random.Random(seed)
    treated = [1 if draw.random() < 0.20 + effect else 0 for _ in range(N)]
    held = [1 if draw.random() < 0.20 else 0 for _ in range(N)]
    return treated, held


def _spend(seed: int, effect: float) -> tuple[list[float], list[float]]:
    """Revenue per contact: most buy nothing, buyers spend ~ exponential around 50."""
    draw = random.Random(1000 + seed)

    def one(extra: float) -> float:
        return draw.expovariate(1 / (50 + extra / 0.3)) if draw.random() < 0.3 else 0.0

    return [one(effect) for _ in range(N)], [one(0.0) for _ in range(N)]


def test_repurchase_interval_covers_a_true_lift_of_five_points() -> None:
    covered = significant = 0
    for seed in SEEDS:
        found = proportions(*_shares(seed, 0.05))
        assert found.low is not None and found.high is not None
        covered += found.low <= 0.05 <= found.high
        significant += found.significant
    assert covered >= 17  # 95% intervals: 19 of 20 expected
    assert significant >= 10  # n = 2000 a group gives 5 points a fair power


def test_without_an_effect_the_difference_is_rarely_significant() -> None:
    repurchase = sum(proportions(*_shares(seed, 0.0)).significant for seed in SEEDS)
    revenue = sum(means(*_spend(seed, 0.0)).significant for seed in SEEDS)
    assert repurchase <= 3 and revenue <= 3  # 1 of 20 expected each


def test_revenue_interval_covers_the_true_lift() -> None:
    covered = 0
    for seed in SEEDS:
        found = means(*_spend(seed, 5.0))
        assert found.low is not None and found.high is not None
        covered += found.low <= 5.0 <= found.high
    assert covered >= 17


def test_no_contacts_no_interval() -> None:
    empty = proportions([], [1, 0])
    assert (empty.treated, empty.held, empty.lift, empty.significant) == (None, 0.5, None, False)
    flat = means([10.0, 10.0], [10.0, 10.0])
    assert (flat.lift, flat.low, flat.significant) == (0.0, None, False)


# -------------------------------------------------------------------- end to end

DAY = date(2027, 4, 6)
ZONE = ZoneInfo("Europe/Amsterdam")
PEOPLE = [f"p{index:03d}" for index in range(300)]
CAMPAIGNS = {
    "spring": "priority: 50\nholdout: 30%\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
}


def _buys(contact_id: str, treated: bool) -> bool:
    """Treated contacts buy in the month after with chance 0.6, the others 0.3 (fixed draws)."""
    return fraction("buys", contact_id) < (0.6 if treated else 0.3)


def test_report_compares_held_out_with_treated_contacts_after_the_send(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    contacts = "id,email,channel\n" + "".join(f"{c},{c}@x.example,email\n" for c in PEOPLE)
    history = "contact_id,type,occurred_at,amount,tag,score\n" + "".join(
        f"{c},purchase,2026-06-01T10:00:00,20,,\n"
        for c in PEOPLE[:100]  # customers before
    )
    make_shop(
        project_dir, engine, campaigns=CAMPAIGNS, contacts=contacts, events=history,
        settings=policy() + 'control_group = "10%"\n',
    )  # fmt: skip
    noon = datetime.combine(DAY, time(12), ZONE).astimezone(UTC).replace(tzinfo=None)
    send_day(engine, load_project(project_dir), DAY, OutboxTransport(tmp_path / "out"), now=noon)

    control = {c for c in PEOPLE if in_control_group(c, 2027, 0.1)}
    out = {c for c in PEOPLE if c not in control and held_out(c, "spring", 0.3)}
    treated = set(PEOPLE) - control - out
    later = ["contact_id,type,occurred_at,amount,tag,score"]
    for c in PEOPLE:
        if _buys(c, c in treated):
            later.append(f"{c},purchase,{DAY + timedelta(days=10)}T10:00:00,40,,")
        if c in ("p000", "p001", "p002"):
            later.append(f"{c},survey,{DAY + timedelta(days=5)}T10:00:00,,nps,10")
    (project_dir / "later.csv").write_text("\n".join(later) + "\n", encoding="utf-8")
    import_events(engine, project_dir / "later.csv", timezone="Europe/Amsterdam")

    with engine.connect() as connection:
        program, spring = lift_figures(
            connection, first=date(2027, 1, 1), as_of=date(2027, 6, 30), timezone=ZONE
        )
    assert (program.name, program.treated, program.held) == (PROGRAM, len(treated), len(control))
    assert (spring.name, spring.treated, spring.held) == ("spring", len(treated), len(out))
    bought = sum(_buys(c, True) for c in treated) / len(treated)
    assert spring.repurchase.treated == bought
    assert spring.repurchase.held == sum(_buys(c, False) for c in out) / len(out)
    assert spring.revenue.treated == pytest.approx(40 * bought)
    low, high = spring.repurchase.low, spring.repurchase.high
    assert low is not None and high is not None and low <= 0.3 <= high
    assert spring.repurchase.significant
    # churn: of the customers at the send, those who did not buy again within 12 months
    customers = [c for c in PEOPLE[:100] if c in treated]
    churned = sum(not _buys(c, True) for c in customers) / len(customers)
    assert spring.churn.treated_n == len(customers)
    assert spring.churn.treated == churned  # their purchase of June 2026 aged out by July 2027
    answered = [c for c in ("p000", "p001", "p002") if c in treated]
    assert spring.nps.treated_n == len(answered)


def test_trouw_report_shows_arms_and_the_lift(
    project_dir: Path, engine: Engine, tmp_path: Path, cli: Cli, browser: Any
) -> None:
    """The terminal, JSON and HTML report of a sent A/B test with a holdout and a control
    group: each arm's rates with intervals, and the lift of the campaign and the program."""
    contacts = "id,email,channel\n" + "".join(f"{c},{c}@x.example,email\n" for c in PEOPLE)
    tested = CAMPAIGNS["spring"].replace(
        "template: mail\n", "test:\n  arms: [{template: mail}, {template: other}]\n"
    )
    make_shop(project_dir, engine, campaigns={"spring": tested}, contacts=contacts,
              settings=policy() + 'control_group = "10%"\n')  # fmt: skip
    noon = datetime.combine(DAY, time(12), ZONE).astimezone(UTC).replace(tzinfo=None)
    send_day(engine, load_project(project_dir), DAY, OutboxTransport(tmp_path / "out"), now=noon)
    later = ["contact_id,type,occurred_at,amount,tag,score"]
    with engine.connect() as connection:
        sent = connection.execute(
            select(ledger.c.contact_id, ledger.c.status).where(ledger.c.status == SENT)
        ).all()
    treated = {str(r[0]) for r in sent}
    for c in PEOPLE:
        if _buys(c, c in treated):
            later.append(f"{c},purchase,{DAY + timedelta(days=10)}T10:00:00,40,,")
    (project_dir / "later.csv").write_text("\n".join(later) + "\n", encoding="utf-8")
    import_events(engine, project_dir / "later.csv", timezone="Europe/Amsterdam")

    table = cli("report", "--as-of", "2027-06-30")
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert "A/B tests: each arm's rates (95% interval)" in text
    assert "lift: treated - held out, 90 days after the send" in text
    assert "Newcombe" in text and "Welch" in text

    result = cli("report", "--as-of", "2027-06-30", "--format", "json")
    data = json.loads(result.output)["experiments"]
    (test,) = data["tests"]
    assert [arm["template"] for arm in test["arms"]] == ["mail", "other"]
    assert sum(arm["delivered"] for arm in test["arms"]) == len(treated)
    program, spring = data["lift"]
    assert (program["name"], spring["name"]) == ("program", "spring")
    assert spring["treated"] == len(treated) and spring["repurchase"]["significant"]

    page_path = tmp_path / "report.html"
    assert cli("report", "--as-of", "2027-06-30", "--html", str(page_path)).exit_code == 0
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(page_path.as_uri())
    section = page.locator("#experiments")
    assert section.locator("svg.lift").count() >= 2  # repurchase and revenue at least
    assert "significant" in section.inner_text()
    section.screenshot(path=str(tmp_path / "experiments.png"))
    page.close()

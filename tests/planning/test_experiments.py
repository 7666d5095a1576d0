"""Experiments: A/B arms, campaign holdouts and the control group, by stable hashes.

The hashes are pure functions (shares on 10,000 contacts within a tolerance
of five standard errors); end to end, plan, re-plan, simulate and send agree
on who gets which arm and who is held out, service mail still reaches the
control group, and held-out sends are recorded in the plan and the ledger
with their reason.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.conftest import write_files
from tests.planning.shop import make_shop, policy, run_plan, timeline_rows
from trouw.campaigns import CampaignError, find_campaign, load_campaign
from trouw.experiments import (
    CAMPAIGN_HOLDOUT,
    CONTROL_GROUP,
    arm_index,
    held_out,
    in_control_group,
    parse_share,
)
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import simulate_period
from trouw.project import load_project
from trouw.sending import send_day
from trouw.sending.ledger import CANCELLED, SENT
from trouw.sending.transports import OutboxTransport
from trouw.store import atomic, ledger, plan
from trouw.templates.campaign_mails import CampaignMails

IDS = [f"c{index:05d}" for index in range(10_000)]
ZONE = ZoneInfo("Europe/Amsterdam")


def _within(count: int, share: float, n: int = len(IDS)) -> bool:
    """Whether `count` of `n` is within five standard errors of the share (a false alarm
    about once in 3.5 million; the hashes are fixed, so the test is deterministic anyway)."""
    return abs(count - share * n) <= 5 * math.sqrt(n * share * (1 - share))


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 2.0, 1.0), (9.0, 1.0)])
def test_arms_get_their_weighted_share_of_contacts(weights: tuple[float, ...]) -> None:
    counts = Counter(arm_index(cid, "spring", "main", weights) for cid in IDS)
    for index, weight in enumerate(weights):
        assert _within(counts[index], weight / sum(weights))
    # stable: the same contact, campaign and step always get the same arm
    assert [arm_index(cid, "spring", "main", weights) for cid in IDS[:50]] == [
        arm_index(cid, "spring", "main", weights) for cid in IDS[:50]
    ]


def test_holdout_and_control_group_shares_and_independence() -> None:
    out = {cid for cid in IDS if held_out(cid, "spring", 0.1)}
    control = {cid for cid in IDS if in_control_group(cid, 2027, 0.05)}
    assert _within(len(out), 0.1) and _within(len(control), 0.05)
    # independent draws: the held out are split over the arms as everyone is
    first_arm = sum(1 for cid in out if arm_index(cid, "spring", "main", (1.0, 1.0)) == 0)
    assert _within(first_arm, 0.5, len(out))
    assert _within(len(out & control), 0.1 * 0.05)
    # another campaign holds out other contacts; another year has another control group
    assert _within(len(out & {c for c in IDS if held_out(c, "summer", 0.1)}), 0.01)
    assert _within(len(control & {c for c in IDS if in_control_group(c, 2028, 0.05)}), 0.0025)


def test_shares_are_read_as_percentages() -> None:
    assert parse_share("10%") == 0.1 and parse_share(" 2.5 % ") == 0.025
    for bad in ("10", 0.1, "0%", "100%", "ten%"):
        with pytest.raises(ValueError):
            parse_share(bad)


def _problem(tmp_path: Path, text: str) -> CampaignError:
    write_files(tmp_path, {"campaigns/c.yaml": text})
    with pytest.raises(CampaignError) as caught:
        load_campaign(tmp_path / "campaigns" / "c.yaml")
    return caught.value


SCHEDULED = "schedule:\n  dates: [2027-04-06]\n"


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (SCHEDULED + "template: mail\nholdout: 10\n", 4, "holdout", "share such as 10%"),
        (SCHEDULED + "kind: service\ntemplate: mail\nholdout: 5%\n", 5, "holdout", "service"),
        (SCHEDULED + "template: mail\nsend_time: early\n", 4, "send_time", "send_time: best"),
        (SCHEDULED + "test:\n  arms:\n    - {template: a}\n", 4, "arms", "at least two arms"),
        (
            SCHEDULED + "test:\n  arms:\n    - {template: a}\n    - {template: b, weight: 0}\n",
            6, "weight", "positive number",
        ),
        (
            SCHEDULED + "test:\n  arms: [{template: a}, {template: b}]\n  pick_by: click_rate\n",
            5, "pick_by", "share",
        ),
        (
            SCHEDULED + "test:\n  arms: [{template: a}, {template: b}]\n  share: 20%\n"
            "  pick_by: clicks\n",
            6, "pick_by", "click_rate",
        ),
        (
            "trigger: signup\ntest:\n  arms: [{template: a}, {template: b}]\n  share: 20%\n"
            "  pick_by: click_rate\n",
            4, "share", "schedule",
        ),
        (
            "trigger: signup\nsteps:\n  - after: 0d\n    template: a\n"
            "    test: {arms: [{template: a}, {template: b}]}\n",
            5, "test", "arms",
        ),
    ],
)  # fmt: skip
def test_bad_experiment_keys_name_line_key_and_fix(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    error = _problem(tmp_path, text)
    assert (error.line, error.key) == (line, key)
    assert words in f"{error}"


def test_a_test_reads_arms_weights_and_winner_settings(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "campaigns/c.yaml": SCHEDULED + "holdout: 10%\nsend_time: best\ntest:\n"
            "  arms:\n    - {template: a}\n    - {template: b, weight: 3}\n"
            "  share: 20%\n  pick_by: open_rate\n  after: 2d\n"
        },
    )
    campaign = load_campaign(tmp_path / "campaigns" / "c.yaml")
    (step,) = campaign.steps
    assert step.test is not None and step.templates == ["a", "b"]
    assert (step.test.weights, step.test.share, step.test.pick_by, step.test.after_hours) == (
        (1.0, 3.0), 0.2, "open_rate", 48,
    )  # fmt: skip
    assert (campaign.holdout, campaign.send_time) == (0.1, "best")


# -------------------------------------------------------------------- end to end

DAY = date(2027, 4, 6)  # a Tuesday
CAMPAIGNS = {
    "spring": (
        "priority: 50\nholdout: 20%\nschedule:\n  dates: [2027-04-06]\n"
        "test:\n  arms:\n    - {template: mail}\n    - {template: other}\n"
    ),
    "orders": "kind: service\npriority: 1\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
}
PEOPLE = [f"p{index:03d}" for index in range(120)]
CONTACTS = "id,email,channel\n" + "".join(f"{cid},{cid}@x.example,email\n" for cid in PEOPLE)
CONTROL = 0.1


def _expected() -> dict[tuple[str, str], tuple[str, str | None]]:
    """(contact, campaign) -> (status, template or reason), by the hashes alone."""
    found: dict[tuple[str, str], tuple[str, str | None]] = {}
    for cid in PEOPLE:
        found[(cid, "orders")] = ("sent", "mail")
        if in_control_group(cid, DAY.year, CONTROL):
            found[(cid, "spring")] = ("held", CONTROL_GROUP)
        elif held_out(cid, "spring", 0.2):
            found[(cid, "spring")] = ("held", CAMPAIGN_HOLDOUT)
        else:
            arm = arm_index(cid, "spring", "main", (1.0, 1.0))
            found[(cid, "spring")] = ("sent", ("mail", "other")[arm])
    return found


def _ledger(engine: Engine) -> dict[tuple[str, str], tuple[str, str | None]]:
    query = select(
        ledger.c.contact_id, ledger.c.campaign, ledger.c.status, ledger.c.template,
        ledger.c.error,
    )  # fmt: skip
    with engine.connect() as connection:
        return {
            (r.contact_id, r.campaign): (
                ("sent", r.template) if r.status == SENT else ("held", r.error)
            )
            for r in connection.execute(query)
            if r.status in (SENT, CANCELLED)
        }


def test_plan_simulate_and_send_agree_on_arms_and_holdouts(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    make_shop(
        project_dir, engine, campaigns=CAMPAIGNS, contacts=CONTACTS,
        settings=policy(gap="0d") + f'control_group = "{CONTROL * 100:g}%"\n',
    )  # fmt: skip
    expected = _expected()
    statuses = Counter(status for status, _ in expected.values())
    assert statuses["held"] > 10 and statuses["sent"] > 150  # the draw holds some of each

    run_plan(project_dir, engine, 2027, "2027-04-01")
    query = select(
        plan.c.contact_id, plan.c.campaign, plan.c.status, plan.c.template, plan.c.reason
    )
    with engine.connect() as connection:
        first = sorted(tuple(r) for r in connection.execute(query))
    planned = {(r[0], r[1]): ("sent", r[3]) if r[2] == "planned" else ("held", r[4]) for r in first}
    assert planned == expected
    run_plan(project_dir, engine, 2027, "2027-04-03")  # a re-plan draws no one anew
    with engine.connect() as connection:
        assert sorted(tuple(r) for r in connection.execute(query)) == first

    # The preview picks each contact's mail, and its samples per arm, by the same rule.
    project = load_project(project_dir)
    spring = find_campaign(project.campaigns_dir, "spring")
    (step,) = spring.steps
    with engine.connect() as connection:
        mails = CampaignMails(project, connection, DAY)
        rendered = mails.render_for(spring, step, PEOPLE[:12])
        samples = {arm.template: mails.samples_of(spring, step, arm, 3) for arm in step.variants}
    arm_of = {cid: template for (cid, name), (_, template) in planned.items() if name == "spring"}
    for mail in rendered:
        if planned[(mail.contact_id, "spring")][0] == "sent":
            assert mail.mail is not None and mail.mail.template == arm_of[mail.contact_id]
    for template, ids in samples.items():
        assert ids and all(arm_index(c, "spring", "main", (1.0, 1.0)) ==
                           ("mail", "other").index(template) for c in ids)  # fmt: skip

    with scratch_copy(engine) as scratch, atomic(scratch) as connection:
        simulate_period(
            connection, load_project(project_dir), start=DAY, end=DAY,
            out_dir=tmp_path / "simulated",
        )  # fmt: skip
    simulated = {(r[0], r[1]): ("sent", r[5]) for r in timeline_rows(tmp_path / "simulated")}
    # the same arms; the held out and the control group get nothing
    assert simulated == {k: v for k, v in expected.items() if v[0] == "sent"}

    noon = datetime.combine(DAY, time(12), ZONE).astimezone(UTC).replace(tzinfo=None)
    project = load_project(project_dir)
    send_day(engine, project, DAY, OutboxTransport(tmp_path / "outbox"), now=noon)
    assert _ledger(engine) == expected  # held-out sends end cancelled, with their reason
    # a later run sends nobody in the holdout or the control group after all
    send_day(engine, project, DAY, OutboxTransport(tmp_path / "outbox"), now=noon)
    assert _ledger(engine) == expected

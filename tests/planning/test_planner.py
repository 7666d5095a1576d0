"""The planner end to end on random shops: the stored plan keeps every rule."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from tests.planning.shop import make_shop, plan_rows, policy, run_plan
from trouw.planning import QuietDays
from trouw.store import open_store, plan

CAMPAIGNS = {
    "welcome": (
        "kind: lifecycle\npriority: 90\ntrigger: signup\nsteps:\n"
        "  - {after: 0d, template: mail}\n  - {after: 14d, template: other}\n"
    ),
    "birthday": "kind: lifecycle\npriority: 80\ntrigger: birthday\ntemplate: mail\n",
    "anniversary": "kind: lifecycle\npriority: 70\ntrigger: anniversary\ntemplate: mail\n",
    "spring": 'priority: 50\nschedule:\n  rrule: "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=2"\n'
    "template: mail\n",
    "weekly": 'priority: 20\nschedule:\n  rrule: "FREQ=WEEKLY;BYDAY=WE"\ntemplate: other\n',
    "orders": "kind: service\npriority: 1\nschedule:\n  dates: [2027-04-02, 2027-04-03]\n"
    "template: mail\n",
    "follow": "priority: 60\ntrigger: {event: click, tag: x}\ntemplate: mail\n",
    "lapsed": "priority: 40\ntrigger: {inactive: 90d}\ntemplate: other\n",
}

day_in_range = st.integers(0, 3 * 365).map(lambda n: date(2025, 1, 1) + timedelta(days=n))
contact = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["email", "email", "post", "none"]),
        "birthday": st.one_of(st.none(), day_in_range.map(lambda d: d.replace(year=1990))),
        "since": st.one_of(st.none(), day_in_range),
        "stop": st.sampled_from([None, None, "unsubscribe", "complaint", "bounce"]),
        "click": st.one_of(st.none(), st.integers(0, 200)),
    }
)


def _shop_files(people: list[dict[str, object]]) -> tuple[str, str]:
    contacts = ["id,email,channel,birthday,customer_since"]
    events = ["contact_id,type,occurred_at,tag"]
    for index, person in enumerate(people):
        cid = f"c{index:03d}"
        birthday = person["birthday"] or ""
        since = person["since"] or ""
        contacts.append(f"{cid},{cid}@x.example,{person['channel']},{birthday},{since}")
        if person["stop"]:
            events.append(f"{cid},{person['stop']},2026-06-01T10:00:00,hard")
        if person["click"] is not None:
            clicked = date(2027, 1, 1) + timedelta(days=int(str(person["click"])))
            events.append(f"{cid},click,{clicked}T12:00:00,x")
            events.append(f"{cid},purchase,{clicked}T12:05:00,")
    return "\n".join(contacts) + "\n", "\n".join(events) + "\n"


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    people=st.lists(contact, min_size=1, max_size=25),
    week=st.integers(1, 3),
    month=st.integers(2, 8),
    gap=st.integers(0, 4),
    defer=st.integers(0, 10),
    quiet=st.sampled_from(['["sunday"]', '["sunday", "holidays:NL"]', "[]", '["saturday"]']),
    as_of=st.sampled_from(["2026-12-01", "2027-05-01", "2027-09-15"]),
)
def test_random_shops_get_plans_that_keep_every_rule(
    people: list[dict[str, object]],
    week: int,
    month: int,
    gap: int,
    defer: int,
    quiet: str,
    as_of: str,
) -> None:
    contacts, events = _shop_files(people)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engine = open_store(f"sqlite:///{root / 'trouw.db'}")
        try:
            make_shop(
                root,
                engine,
                campaigns=CAMPAIGNS,
                contacts=contacts,
                events=events,
                settings=policy(
                    week=week, month=month, gap=f"{gap}d", quiet=quiet, defer=f"{defer}d"
                ),
            )
            run_plan(root, engine, 2027, as_of)
            first = _rows(engine)
            run_plan(root, engine, 2027, as_of)
            assert _rows(engine) == first, "same input, same plan"
        finally:
            engine.dispose()
    quiet_days = QuietDays(json.loads(quiet))
    kinds = {"orders": "service"}
    seen = Counter((r[0], r[2], r[3], r[4]) for r in first)
    assert max(seen.values(), default=1) == 1, "a (contact, campaign, step, occurrence) twice"
    stopped = {f"c{i:03d}" for i, p in enumerate(people) if p["stop"] or p["channel"] == "none"}
    per_contact: dict[str, list[tuple[date, str]]] = {}
    for contact_id, day, campaign, _step, _occ, status in first:
        assert day.year == 2027 and day >= date.fromisoformat(as_of)
        if status == "dropped":
            continue
        kind = kinds.get(campaign, "other")
        assert not quiet_days.is_quiet(day), f"{campaign} on quiet day {day}"
        if contact_id in stopped:
            assert kind == "service", f"{campaign} to a stopped contact {contact_id}"
        per_contact.setdefault(contact_id, []).append((day, kind))
    for sends in per_contact.values():
        others = [d for d, k in sends if k != "service"]
        assert max(Counter(d.isocalendar()[:2] for d in others).values(), default=0) <= week
        assert max(Counter(d.month for d in others).values(), default=0) <= month
        days = sorted(sends)
        for i, (day, kind) in enumerate(days):
            for other_day, other_kind in days[i + 1 :]:
                if (other_day - day).days >= gap:
                    break
                assert kind == other_kind == "service"


def _rows(engine: Engine) -> list[tuple[str, date, str, str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                plan.c.contact_id, plan.c.day, plan.c.campaign, plan.c.step, plan.c.occurrence,
                plan.c.status,
            ).order_by(plan.c.contact_id, plan.c.campaign, plan.c.step, plan.c.occurrence)
        )  # fmt: skip
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_plan_on_both_databases_with_exclusions_and_channels(
    tmp_path: Path, engine: Engine
) -> None:
    root = make_shop(
        tmp_path,
        engine,
        campaigns=CAMPAIGNS,
        contacts=(
            "id,email,channel,birthday,customer_since\n"
            "mail,m@x.example,email,1990-05-05,2020-06-06\n"
            "letter,l@x.example,post,1990-05-05,2020-06-06\n"
            "quiet,q@x.example,none,1990-05-05,2020-06-06\n"
            "gone,g@x.example,email,1990-05-05,2020-06-06\n"
        ),
        events="contact_id,type,occurred_at,tag\ngone,unsubscribe,2026-01-01T10:00:00,\n",
    )
    summary = run_plan(root, engine, 2027, "2026-12-01")
    assert summary.contacts == 4
    rows = {cid: plan_rows(engine, cid) for cid in ("mail", "letter", "quiet", "gone")}
    assert ("2027-05-05", "birthday", "main", "birthday:2027", "planned") in rows["mail"]
    assert ("2027-05-05", "birthday", "main", "birthday:2027", "planned") in rows["letter"]
    for cid in ("quiet", "gone"):
        sends = [r for r in rows[cid] if r[4] != "dropped"]
        assert {r[1] for r in sends} == {"orders"}
    with engine.connect() as connection:
        channels = dict(
            connection.execute(
                select(plan.c.contact_id, func.min(plan.c.channel)).group_by(plan.c.contact_id)
            ).all()
        )
        reasons = set(
            connection.execute(
                select(plan.c.reason).where(plan.c.contact_id == "gone", plan.c.status == "dropped")
            ).scalars()
        )
    assert channels["letter"] == "post" and channels["mail"] == "email"
    assert reasons == {"unsubscribed"}

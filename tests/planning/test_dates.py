"""Date edge cases: 29 February, 31 March rules, DST weeks, holidays on Mondays, year ends."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import Engine, select

from tests.planning.shop import make_shop, plan_rows, policy, run_plan
from trouw.campaigns import Schedule
from trouw.planning.candidates import day_in_year
from trouw.store import plan

NO_QUIET = policy(quiet="[]", gap="0d", week=7, month=31)


def test_29_february_birthdays_fall_on_28_february_in_other_years(
    tmp_path: Path, engine: Engine
) -> None:
    root = make_shop(
        tmp_path,
        engine,
        campaigns={"birthday": "trigger: birthday\nkind: lifecycle\ntemplate: mail\n"},
        contacts="id,email,birthday\nleap,l@x.example,2000-02-29\n",
        settings=NO_QUIET,
    )
    run_plan(root, engine, 2027, "2026-12-01")
    run_plan(root, engine, 2028, "2027-12-01")
    assert plan_rows(engine) == [
        ("2027-02-28", "birthday", "main", "birthday:2027", "planned"),
        ("2028-02-29", "birthday", "main", "birthday:2028", "planned"),
    ]
    assert day_in_year(date(2000, 2, 29), 2029) == date(2029, 2, 28)


def test_a_yearly_rule_on_31_march_and_its_sunday_shift(tmp_path: Path, engine: Engine) -> None:
    rule = Schedule(rrule="FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=31")
    assert [rule.days_in(year) for year in (2027, 2030)] == [
        [date(2027, 3, 31)],
        [date(2030, 3, 31)],
    ]
    anchored = Schedule(rrule="DTSTART:20270331\nRRULE:FREQ=YEARLY")
    assert anchored.days_in(2026) == [] and anchored.days_in(2031) == [date(2031, 3, 31)]
    monthly = Schedule(rrule="FREQ=MONTHLY;BYMONTHDAY=31")  # RFC 5545: months without a 31st skip
    assert len(monthly.days_in(2027)) == 7
    root = make_shop(
        tmp_path,
        engine,
        campaigns={
            "quarter": 'schedule:\n  rrule: "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=31"\ntemplate: mail\n'
        },
        contacts="id,email\na,a@x.example\n",
        settings=policy(quiet='["sunday"]'),
    )
    run_plan(root, engine, 2030, "2029-12-01")
    # 31 March 2030 is a Sunday: the send moves to Monday 1 April, across the month end.
    assert plan_rows(engine) == [("2030-04-01", "quarter", "main", "quarter:2030-03-31", "planned")]


def test_a_holiday_on_a_monday_shifts_to_tuesday(tmp_path: Path, engine: Engine) -> None:
    root = make_shop(
        tmp_path,
        engine,
        campaigns={"easter": "schedule:\n  dates: [2027-03-29]\ntemplate: mail\n"},
        contacts="id,email\na,a@x.example\n",
    )
    run_plan(root, engine, 2027, "2026-12-01")
    assert plan_rows(engine) == [("2027-03-30", "easter", "main", "easter:2027-03-29", "planned")]
    with engine.connect() as connection:
        reason = connection.execute(select(plan.c.reason)).scalar_one()
    assert reason == "moved from 2027-03-29 (Easter Monday (NL))"


def test_dst_change_week_is_still_monday_to_sunday(tmp_path: Path, engine: Engine) -> None:
    """Summer time starts on Sunday 28 March 2027; the week of 22-28 March has 7 days all the same.

    A click late on the evening of the DST Sunday (stored in UTC on that day) and one just
    after midnight when summer time ends (stored in UTC on the day before) count on their
    local days.
    """
    root = make_shop(
        tmp_path,
        engine,
        campaigns={
            "early": "priority: 90\nschedule:\n  dates: [2027-03-22]\ntemplate: mail\n",
            "late": "priority: 10\nschedule:\n  dates: [2027-03-27]\ntemplate: mail\n",
            "follow": "trigger: {event: click, tag: dst}\ntemplate: other\n",
        },
        contacts="id,email\na,a@x.example\nb,b@x.example\n",
        events=(
            "contact_id,type,occurred_at,tag\n"
            "b,click,2027-03-28T23:30:00,dst\n"
            "a,click,2027-10-31T00:30:00,dst\n"
        ),
        settings=policy(week=1, gap="0d", quiet='["sunday", "holidays:NL"]'),
    )
    run_plan(root, engine, 2027, "2027-03-01")
    # One per week: `late` (Saturday) waits for the next week; Monday 29 March is
    # Easter Monday, so it goes out on Tuesday 30 March.
    rows = plan_rows(engine, "a")
    assert ("2027-03-22", "early", "main", "early:2027-03-22", "planned") in rows
    assert ("2027-03-30", "late", "main", "late:2027-03-27", "deferred") in rows
    # The click events are after as-of for this plan; as of 1 November they count.
    run_plan(root, engine, 2027, "2027-11-01")
    follow = [r for r in plan_rows(engine) if r[1] == "follow"]
    assert follow == [("2027-11-01", "follow", "main", "follow:2027-10-31", "planned")]


def test_a_journey_started_in_december_continues_in_january(tmp_path: Path, engine: Engine) -> None:
    root = make_shop(
        tmp_path,
        engine,
        campaigns={
            "welcome": (
                "kind: lifecycle\ntrigger: signup\nsteps:\n"
                "  - {after: 0d, template: mail}\n"
                "  - {after: 14d, template: mail}\n"
                "  - {after: 60d, template: other}\n"
            )
        },
        contacts="id,email,customer_since\nnew,n@x.example,2026-12-20\n",
    )
    run_plan(root, engine, 2026, "2026-12-01")
    run_plan(root, engine, 2027, "2026-12-01")
    assert plan_rows(engine) == [
        # 20 December 2026 is a Sunday.
        ("2026-12-21", "welcome", "1", "welcome:2026-12-20", "planned"),
        # 3 January 2027 is a Sunday too.
        ("2027-01-04", "welcome", "2", "welcome:2026-12-20", "planned"),
        ("2027-02-18", "welcome", "3", "welcome:2026-12-20", "planned"),
    ]
    # Re-planning 2027 replaces 2027's rows and leaves 2026's alone.
    run_plan(root, engine, 2027, "2026-12-01")
    assert len(plan_rows(engine)) == 3

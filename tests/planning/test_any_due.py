"""A send run asks of every contact whether anything is due by its day
(`decision.anything_due`, from `CandidateFinder.due_keys`) before it makes their candidates;
those it passes over get nothing that day. The quick answer must be the one the
candidates give, over random shops and days: scheduled steps due or caught up, an A/B
test's rest, yearly triggers across the new year, steps months after a start, a lasting
win-back, entries, and customers who join later."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.planning.shop import make_shop, policy
from tests.planning.test_simulate_incremental import SHOP_CAMPAIGNS, SHOP_SEGMENTS
from tests.sending.test_send_is_simulate import START, _shop_files, person
from trouw.planning.candidates import CandidateFinder, contact_chunks
from trouw.planning.decision import anything_due, open_candidates
from trouw.planning.planner import calendar_campaigns
from trouw.planning.policy import Candidate, Rules
from trouw.project import load_project
from trouw.segments import Clock, load_catalog
from trouw.store import atomic, open_store

CAMPAIGNS = {
    **SHOP_CAMPAIGNS,
    # a service mail is caught up for weeks by default: it would make everyone due then
    "orders": "kind: service\npriority: 1\nschedule:\n  dates: [2027-03-05]\nvalid_for: 2d\n"
    "template: mail\n",
    "yearly": "priority: 45\ntrigger: anniversary\nvalid_for: 5d\ntemplate: mail\n",
    "halves": (  # a test's rest gets the winner a day after the first wave
        "priority: 35\nschedule:\n  dates: [2027-03-12, 2027-03-26]\ntest:\n"
        "  arms: [{template: mail}, {template: other}]\n  share: 40%\n  pick_by: click_rate\n"
        "  after: 24h\n"
    ),
    "later": (  # a step months after the start: no whole number of days
        "priority: 30\ntrigger: {event: click, tag: x}\nsteps:\n"
        "  - {after: 1d, template: mail}\n  - {after: 1mo, template: other}\n"
    ),
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    people=st.lists(person, min_size=1, max_size=12),
    later=st.lists(st.integers(41, 320), max_size=4, unique=True),  # into the next year
    defer=st.integers(0, 8),
    seed=st.integers(0, 2**32),  # for the ledger's keys (a plain Random: cheap to draw from)
)
def test_anything_due_says_what_the_candidates_say(
    people: list[dict[str, object]], later: list[int], defer: int, seed: int
) -> None:
    """Also with the ledger's keys (`made`): some of the contact's candidates, often all
    of those due by the day (a send run's second question)."""
    chance = Random(seed)
    days = [*range(-10, 41), *later]  # every day the people's dates fall on, and some after
    contacts_csv, events_csv = _shop_files(people)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engine = open_store(f"sqlite:///{root / 'trouw.db'}")
        try:
            make_shop(
                root, engine, campaigns=CAMPAIGNS, contacts=contacts_csv, events=events_csv,
                segments=SHOP_SEGMENTS, settings=policy(defer=f"{defer}d"),
            )  # fmt: skip
            project = load_project(root)
            catalog = load_catalog(project.segments_dir)
            campaigns = calendar_campaigns(project, catalog)
            defer_days = Rules.from_policy(project.settings.policy).defer_days
            with atomic(engine, write=False) as connection:
                for offset in days:
                    day = START + timedelta(days=offset)
                    # `trouw plan` of the next year asks on a day of this one now and then
                    for year in (day.year, day.year + 1) if offset % 7 == 0 else (day.year,):
                        clock = Clock(day, project.settings.tz)
                        finder = CandidateFinder(campaigns, catalog, clock, year, defer_days)
                        for chunk in contact_chunks(connection, 5):
                            facts = finder.gather(connection, chunk)
                            for contact in chunk:
                                candidates = open_candidates(finder, contact, facts)
                                expected = any(c.due <= day for c in candidates)
                                found = anything_due(finder, contact, facts)
                                assert found == expected, (contact.id, day, year)
                                made = _some_made(candidates, day, chance)
                                expected = any(
                                    c.due <= day and c.key not in made for c in candidates
                                )
                                found = anything_due(finder, contact, facts, made)
                                assert found == expected, (contact.id, day, year, made)
        finally:
            engine.dispose()


def _some_made(candidates: list[Candidate], day: date, chance: Random) -> set[tuple[str, str, str]]:
    """Keys the ledger might hold: each candidate's at random, or all of those due by `day`
    (then nothing is left due), and now and then one no candidate has."""
    if chance.random() < 0.4:
        made = {c.key for c in candidates if c.due <= day}
    else:
        made = {c.key for c in candidates if chance.random() < 0.5}
    if chance.random() < 0.2:
        made.add(("birthday", "mail", "birthday:1999"))
    return made


def test_a_scheduled_day_wakes_its_audience_and_a_birthday_one_contact(tmp_path: Path) -> None:
    people: list[dict[str, object]] = [
        {"channel": "email", "birthday": b, "since": -300, "purchases": [], "clicks": [],
         "stop": None}
        for b in (3, 40, 80)  # 4 March, 10 April, 20 May
    ]  # fmt: skip
    contacts_csv, events_csv = _shop_files(people)
    campaigns = {
        "birthday": CAMPAIGNS["birthday"],  # valid for 3 days
        "orders": "kind: service\npriority: 1\nschedule:\n  dates: [2027-03-05]\n"
        "valid_for: 1d\ntemplate: mail\n",
    }
    engine = open_store(f"sqlite:///{tmp_path / 'trouw.db'}")
    make_shop(tmp_path, engine, campaigns=campaigns, contacts=contacts_csv, events=events_csv)
    project = load_project(tmp_path)
    catalog = load_catalog(project.segments_dir)

    def due_on(day: date) -> list[str]:
        finder = CandidateFinder(
            calendar_campaigns(project, catalog), catalog, Clock(day, project.settings.tz),
            day.year, 7,
        )  # fmt: skip
        with atomic(engine, write=False) as connection:
            return [
                str(contact.id)
                for chunk in contact_chunks(connection, 10)
                for contact in chunk
                if anything_due(finder, contact, finder.gather(connection, chunk))
            ]

    assert due_on(date(2027, 3, 5)) == ["p00", "p01", "p02"]  # `orders` (and a birthday)
    assert due_on(date(2027, 3, 7)) == ["p00"]  # the birthday caught up; `orders` expired
    assert due_on(date(2027, 3, 8)) == []  # both past
    assert due_on(date(2027, 4, 13)) == ["p01"]
    engine.dispose()

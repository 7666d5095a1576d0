"""The demo data: deterministic, inside its time bounds, and shaped for every campaign."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from trouw.demo.generator import (
    CONTACT_COLUMNS,
    DemoFiles,
    contact_rows,
    demo_contact,
    event_rows,
    write_demo_files,
)

AS_OF = date(2026, 3, 15)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
EVENT_KEYS = {
    "id", "contact_id", "type", "occurred_at", "tag", "url", "product", "category", "amount",
    "score",
}  # fmt: skip
EVENT_TYPES = {
    "signup", "purchase", "click", "open", "add_to_cart", "page_view", "survey", "complaint",
    "unsubscribe", "bounce",
}  # fmt: skip


@dataclass
class Demo:
    files: DemoFiles
    contacts: list[dict[str, str]]
    events: list[dict[str, Any]]
    by_contact: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """2000 contacts: enough for every kind of customer to turn up at least once."""
    files = write_demo_files(tmp_path_factory.mktemp("demo"), contacts=2000, as_of=AS_OF)
    with files.contacts_path.open(encoding="utf-8", newline="") as handle:
        contacts = list(csv.DictReader(handle))
    with files.events_path.open(encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle]
    by_contact: dict[str, list[dict[str, Any]]] = {row["id"]: [] for row in contacts}
    for event in events:
        by_contact[event["contact_id"]].append(event)
    return Demo(files, contacts, events, by_contact)


def _day(event: dict[str, Any]) -> date:
    return date.fromisoformat(event["occurred_at"][:10])


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    first = write_demo_files(tmp_path / "a", contacts=300, as_of=AS_OF, seed=7)
    second = write_demo_files(tmp_path / "b", contacts=300, as_of=AS_OF, seed=7)
    assert first.contacts_path.read_bytes() == second.contacts_path.read_bytes()
    assert first.events_path.read_bytes() == second.events_path.read_bytes()
    assert first.events == second.events
    other = write_demo_files(tmp_path / "c", contacts=300, as_of=AS_OF, seed=8)
    assert other.contacts_path.read_bytes() != first.contacts_path.read_bytes()


def test_a_contact_does_not_depend_on_how_many_are_generated() -> None:
    few = list(contact_rows(40, AS_OF))
    many = list(contact_rows(120, AS_OF))
    assert many[:40] == few
    row, events = demo_contact(40, AS_OF)
    assert row == few[39]
    assert events == [e for e in event_rows(40, AS_OF) if e["contact_id"] == "demo-000040"]


def test_counts_match_the_files(demo: Demo) -> None:
    assert demo.files.contacts == len(demo.contacts) == 2000
    assert demo.files.events == len(demo.events)
    assert 8 <= len(demo.events) / len(demo.contacts) <= 13  # about ten per contact
    assert demo.files.contacts_path.name == "contacts.csv"
    assert demo.files.events_path.name == "events.jsonl"
    assert not list(demo.files.contacts_path.parent.glob("*.partial"))


def test_zero_contacts_gives_a_header_and_no_events(tmp_path: Path) -> None:
    files = write_demo_files(tmp_path, contacts=0, as_of=AS_OF)
    assert files.contacts_path.read_text(encoding="utf-8") == ",".join(CONTACT_COLUMNS) + "\n"
    assert files.events_path.read_bytes() == b""
    assert files.events == 0


def test_contact_columns_and_ids(demo: Demo) -> None:
    header = demo.files.contacts_path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert header.split(",") == list(CONTACT_COLUMNS)
    assert [row["id"] for row in demo.contacts[:3]] == ["demo-000001", "demo-000002", "demo-000003"]
    for row in demo.contacts:
        assert row["first_name"] and row["last_name"]
        assert row["locale"] in ("nl", "en")
        assert row["country"] in ("NL", "BE")
        if row["country"] == "NL":
            assert re.fullmatch(r"[1-9]\d{3} [A-Z]{2}", row["postcode"]), row
        assert int(row["points"]) >= 0
        children = int(row["children"])
        if row["household"] == "family":
            assert 1 <= children <= 4
        else:
            assert row["household"] in ("couple", "single")
            assert children == 0
    assert any(" " in row["last_name"] for row in demo.contacts)  # "van der Meer"
    locales = Counter(row["locale"] for row in demo.contacts)
    assert 0.06 < locales["en"] / 2000 < 0.14
    zones = Counter(row["timezone"] for row in demo.contacts)
    assert zones[""] > 1800 and len(zones) > 1


def test_emails_are_unique_valid_and_at_example_domains(demo: Demo) -> None:
    emails = [row["email"] for row in demo.contacts if row["email"]]
    assert len(emails) == len(set(emails))
    for email in emails:
        assert re.fullmatch(r"[a-z0-9.-]+@example\.(nl|com|net|org)", email), email
    # Only some of those who asked for letters left an address.
    post = [row for row in demo.contacts if row["channel"] == "post"]
    assert any(row["email"] for row in post) and any(not row["email"] for row in post)


def test_channels(demo: Demo) -> None:
    channels = Counter(row["channel"] for row in demo.contacts)
    assert set(channels) == {"email", "post", "none"}
    assert 0.03 < channels["post"] / 2000 < 0.075
    assert 0.002 < channels["none"] / 2000 < 0.025


def test_birthdays_are_adults_and_include_29_february(demo: Demo) -> None:
    for row in demo.contacts:
        born = date.fromisoformat(row["birthday"])
        assert date(AS_OF.year - 86, AS_OF.month, AS_OF.day) < born
        assert born <= date(AS_OF.year - 18, AS_OF.month, AS_OF.day)
    assert any(row["birthday"].endswith("-02-29") for row in demo.contacts)
    assert any(row["birthday"].endswith("-02-29") for row in contact_rows(50, AS_OF))


def test_ages_hold_when_as_of_is_a_leap_day() -> None:
    as_of = date(2028, 2, 29)
    for row in contact_rows(300, as_of):
        born = date.fromisoformat(row["birthday"])
        assert date(1942, 2, 28) < born <= date(2010, 2, 28)
        assert date.fromisoformat(row["customer_since"]) <= as_of


def test_customer_since_spread_with_new_customers(demo: Demo) -> None:
    since = [date.fromisoformat(row["customer_since"]) for row in demo.contacts]
    assert max(since) <= AS_OF
    assert min(since) >= AS_OF - timedelta(days=8 * 366)
    new = sum(day > AS_OF - timedelta(days=90) for day in since)
    assert 0.05 < new / 2000 < 0.12
    assert min(since) < AS_OF - timedelta(days=6 * 365)


def test_events_fall_between_customer_since_and_the_end_of_as_of(demo: Demo) -> None:
    end = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time(), AMSTERDAM)
    for row in demo.contacts:
        start = datetime.combine(
            date.fromisoformat(row["customer_since"]), datetime.min.time(), AMSTERDAM
        )
        events = demo.by_contact[row["id"]]
        assert [e["type"] for e in events].count("signup") == 1
        assert events[0]["type"] == "signup"
        assert events[0]["occurred_at"][:10] == row["customer_since"]
        moments = [datetime.fromisoformat(e["occurred_at"]) for e in events]
        assert moments == sorted(moments)
        for moment in moments:
            assert start <= moment < end
            # The offset is Amsterdam's own at that local time (+01:00 or +02:00).
            local = moment.replace(tzinfo=AMSTERDAM)
            assert moment.utcoffset() == local.utcoffset(), moment


def test_event_shape(demo: Demo) -> None:
    ids = [event["id"] for event in demo.events]
    assert len(ids) == len(set(ids))
    assert ids[0] == "demo-000001-0001"
    for event in demo.events:
        assert set(event) <= EVENT_KEYS
        assert re.fullmatch(r"[a-z][a-z0-9_]*", event["type"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", event["occurred_at"]), (
            event
        )
        if "url" in event:
            assert event["url"].startswith("https://www.huisentuin.example/")
        if event["type"] == "purchase":
            assert event["product"] and event["category"]
            assert isinstance(event["amount"], float | int) and event["amount"] > 0
        if event["type"] == "survey":
            low, high = {"nps": (0, 10), "csat": (1, 5)}[event["tag"]]
            assert isinstance(event["score"], int) and low <= event["score"] <= high
    # Amounts are written with two decimals, as a shop would.
    raw = demo.files.events_path.read_text(encoding="utf-8")
    assert re.findall(r'"amount":[^,}]*', raw)
    assert all(re.fullmatch(r'"amount":\d+\.\d\d', m) for m in re.findall(r'"amount":[^,}]*', raw))


def test_every_event_type_turns_up(demo: Demo) -> None:
    types = Counter(event["type"] for event in demo.events)
    assert set(types) == EVENT_TYPES
    tags = Counter(e["tag"] for e in demo.events if e["type"] == "survey")
    assert tags["nps"] and tags["csat"]
    scores = {e["score"] for e in demo.events if e.get("tag") == "nps"}
    assert {0, 6, 7, 8, 9, 10} <= scores  # detractors, passives and promoters


def test_no_line_breaks_inside_any_field(demo: Demo) -> None:
    for path in (demo.files.contacts_path, demo.files.events_path):
        raw = path.read_bytes()
        assert b"\r" not in raw
    with demo.files.contacts_path.open(encoding="utf-8", newline="") as handle:
        assert all(len(row) == len(CONTACT_COLUMNS) for row in csv.reader(handle))
    for row in demo.contacts:
        assert not any("\n" in value or "\r" in value for value in row.values())
    for event in demo.events:
        assert not any("\n" in str(value) for value in event.values())


def test_the_campaigns_find_their_audiences(demo: Demo) -> None:
    """Fire-safety clickers with and without a detector, lapsed buyers, cart abandoners."""
    clickers_without = clickers_with = lapsed = abandoners = 0
    recent = AS_OF - timedelta(days=13)
    for events in demo.by_contact.values():
        purchases = [e for e in events if e["type"] == "purchase"]
        if any(e["type"] == "click" and e.get("tag") == "fire-safety" for e in events):
            if any(e["product"] == "smoke-detector" for e in purchases):
                clickers_with += 1
            else:
                clickers_without += 1
        days = [_day(e) for e in purchases]
        if len(days) >= 2 and max(days) < AS_OF - timedelta(days=179):
            lapsed += 1
        carts = [e for e in events if e["type"] == "add_to_cart" and _day(e) >= recent]
        if carts and all(day < recent for day in days):
            abandoners += 1
    assert clickers_without > clickers_with > 10
    assert lapsed > 100
    assert abandoners > 40


def test_families_buy_more_for_kids(demo: Demo) -> None:
    households = {row["id"]: row["household"] for row in demo.contacts}
    kids: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for event in demo.events:
        if event["type"] == "purchase":
            household = households[event["contact_id"]]
            total[household] += 1
            kids[household] += event["category"] == "kids"
    assert kids["family"] / total["family"] > 3 * kids["single"] / total["single"]


def test_rare_events_are_rare(demo: Demo) -> None:
    def share(kind: str) -> float:
        return sum(any(e["type"] == kind for e in es) for es in demo.by_contact.values()) / 2000

    assert 0 < share("complaint") < 0.02
    assert 0.01 < share("unsubscribe") < 0.04
    assert 0 < share("bounce") < 0.02


def test_negative_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0 or more"):
        write_demo_files(tmp_path, contacts=-1, as_of=AS_OF)

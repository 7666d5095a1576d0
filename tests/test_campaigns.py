"""Campaign files and variant choice per segment."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from tests.conftest import write_files
from trouw.campaigns import (
    Campaign,
    CampaignError,
    check_references,
    choose_variants,
    load_campaign,
    load_campaigns,
    project_topics,
)
from trouw.facts import compute_facts
from trouw.importing import import_contacts, import_events
from trouw.segments import Clock, load_catalog
from trouw.templates import load_contacts

ZONE = ZoneInfo("Europe/Amsterdam")
REPO = Path(__file__).resolve().parents[1]

SPRING = """\
description: Spring outing
kind: promotional
priority: 50
segment: active
schedule:
  rrule: "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=2"
variants:
  - segment: families
    template: spring/family
  - segment: singles
    template: spring/single
  - template: spring/generic
"""


def load(tmp_path: Path, text: str) -> Campaign:
    write_files(tmp_path, {"campaigns/c.yaml": text})
    return load_campaign(tmp_path / "campaigns" / "c.yaml")


def test_variants_with_fallback_and_unknown_keys_kept(tmp_path: Path) -> None:
    campaign = load(tmp_path, SPRING)
    assert (campaign.kind, campaign.priority, campaign.segment) == ("promotional", 50, "active")
    (step,) = campaign.steps
    assert not campaign.is_journey and step.name == "main"
    assert [(v.segment, v.template) for v in step.variants] == [
        ("families", "spring/family"),
        ("singles", "spring/single"),
        (None, "spring/generic"),
    ]
    assert step.variants[0].line == 8
    assert campaign.raw["schedule"]["rrule"].startswith("FREQ=YEARLY")
    assert campaign.segments() == {"active", "families", "singles"}


def test_journey_steps(tmp_path: Path) -> None:
    campaign = load(
        tmp_path,
        "kind: lifecycle\ntrigger: signup\nsteps:\n"
        "  - {after: 0d, template: welcome/thanks}\n"
        "  - {after: 60d, template: welcome/survey, unless: {segment: detractors}}\n",
    )
    assert campaign.is_journey
    assert [s.name for s in campaign.steps] == ["1", "2"]
    assert campaign.step("2").unless == "detractors"
    assert str(campaign.step("2").after) == "60d"
    with pytest.raises(CampaignError, match="no step '3'"):
        campaign.step("3")
    with pytest.raises(CampaignError, match="journey of 2 steps"):
        campaign.step(None)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("kind: loud\ntemplate: a\n", 1, "unknown kind 'loud'"),
        ("template: a\npriority: high\n", 2, "whole number"),
        (
            "variants:\n  - template: a\n  - segment: s\n    template: b\n",
            3,
            "follows the fallback",
        ),
        ("steps:\n  - {after: 2m, template: a}\n", 2, "ambiguous"),
        ("steps:\n  - {after: 1d, templat: a}\n", 2, "unknown key 'templat'"),
        ("template: a\nvariants: []\n", 2, "exactly one of"),
        ("description: [\n", 2, "not valid YAML"),
        ("steps:\n  - {after: 1d, template: a, unless: detractors}\n", 2, "segment: NAME"),
        ("template: a.html\n", 1, "not a template name"),
        ("template: a\nvalid_for: 3m\n", 2, "ambiguous"),
        ("template: a\nvalid_for: soon\n", 2, "expected a duration"),
        ("template: a\non_defer: later\n", 2, "unknown choice 'later'"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(CampaignError, match=message) as caught:
        load(tmp_path, text)
    assert caught.value.line == line
    assert caught.value.path == tmp_path / "campaigns" / "c.yaml"


def test_references_to_missing_segments_and_templates(tmp_path: Path) -> None:
    campaign = load(tmp_path, SPRING)
    problems = check_references(
        campaign, segments=["active", "families"], template_exists=lambda n: n != "spring/single"
    )
    messages = [str(p) for p in problems]
    assert any("no segment 'singles'" in m and "line 10" in m for m in messages)
    assert any("no template 'spring/single'" in m for m in messages)


def test_the_example_project_campaigns_load_and_reference_what_exists() -> None:
    campaigns = load_campaigns(REPO / "campaigns")
    names = {c.name for c in campaigns}
    assert {"welcome", "birthday", "spring-outing", "fire-safety", "win-back"} <= names
    segments = {p.stem for p in (REPO / "segments").glob("*.yaml")}
    for campaign in campaigns:
        assert (
            check_references(
                campaign,
                segments=segments,
                template_exists=lambda n: (REPO / "templates" / f"{n}.html").is_file(),
            )
            == []
        )
    welcome = next(c for c in campaigns if c.name == "welcome")
    assert len(welcome.steps) == 3


CONTACTS = """\
id,first_name,locale,customer_since,household,points
fam,Femke,nl,2020-03-01,family,120
sin,Sem,en,2024-06-01,single,
cou,Cor,nl,2019-01-01,couple,
"""
EVENTS = """\
contact_id,type,occurred_at,product,category,amount,tag,score
fam,purchase,2027-01-10T10:00:00,lawn-mower,garden,199.00,,
fam,purchase,2027-03-01T10:00:00,seeds,garden,4.50,,
fam,purchase,2027-03-20T10:00:00,kettle,kitchen,25.00,,
fam,purchase,2027-05-01T10:00:00,ladder,tools,99.00,,
sin,survey,2027-02-01T10:00:00,,,,nps,9
sin,survey,2027-03-01T10:00:00,,,,nps,3
"""
SEGMENTS = {
    "segments/families.yaml": "where:\n  attribute: household\n  equals: family\n",
    "segments/singles.yaml": "where:\n  attribute: household\n  equals: single\n",
    "segments/active.yaml": "where:\n  event: purchase\n  within: 1y\n",
}


def _shop(tmp_path: Path, engine: Engine) -> Path:
    root = write_files(tmp_path, {"contacts.csv": CONTACTS, "events.csv": EVENTS, **SEGMENTS})
    import_contacts(engine, root / "contacts.csv", timezone="Europe/Amsterdam")
    import_events(engine, root / "events.csv", timezone="Europe/Amsterdam")
    return root


def test_variant_choice_per_segment(tmp_path: Path, engine: Engine) -> None:
    root = _shop(tmp_path, engine)
    campaign = load(root, SPRING)
    catalog = load_catalog(root / "segments")
    clock = Clock(date(2027, 4, 2), ZONE)
    with engine.connect() as connection:
        choices = choose_variants(
            connection,
            campaign,
            campaign.steps[0],
            ["fam", "sin", "cou"],
            catalog=catalog,
            clock=clock,
        )
    assert choices["fam"].variant.template == "spring/family"  # type: ignore[union-attr]
    assert choices["sin"].variant.template == "spring/single"  # type: ignore[union-attr]
    assert choices["cou"].variant.template == "spring/generic"  # type: ignore[union-attr]
    assert choices["fam"].in_audience and not choices["sin"].in_audience


def test_without_fallback_a_contact_matches_no_variant(tmp_path: Path, engine: Engine) -> None:
    root = _shop(tmp_path, engine)
    campaign = load(root, SPRING.replace("  - template: spring/generic\n", ""))
    clock = Clock(date(2027, 4, 2), ZONE)
    with engine.connect() as connection:
        choices = choose_variants(
            connection,
            campaign,
            campaign.steps[0],
            ["cou", "fam"],
            catalog=load_catalog(root / "segments"),
            clock=clock,
        )
    assert choices["cou"].variant is None
    assert choices["fam"].variant is not None


def test_facts_for_a_batch(tmp_path: Path, engine: Engine) -> None:
    _shop(tmp_path, engine)
    with engine.connect() as connection:
        rows = load_contacts(connection, ["fam", "sin", "cou"])
        facts = compute_facts(connection, rows, as_of=date(2027, 4, 2), tz=ZONE)
    fam = facts["fam"]
    # The May purchase is after as-of: ignored.
    assert (fam.order_count, fam.total_spent) == (3, 228.5)
    assert (fam.last_purchase_date, fam.last_purchase_product) == (date(2027, 3, 20), "kettle")
    assert fam.favourite_category == "garden"
    assert fam.years_as_customer == 7
    assert fam.points == 120
    assert (facts["sin"].nps_score, facts["sin"].nps_class) == (3, "detractor")
    assert facts["sin"].order_count == 0 and facts["sin"].last_purchase_date is None
    assert facts["cou"].nps_class is None and facts["cou"].points is None


# ---------------------------------------------------------------------- calendar keys


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("template: a\nschedule:\n  rrule: FREQ=SOMETIMES\n", 3, "rrule", "not an RFC 5545"),
        ("template: a\nschedule:\n  rrule: FREQ=HOURLY\n", 3, "rrule", "finer than daily"),
        ("template: a\nschedule:\n  dates: [2027-04-02, soon]\n", 3, "dates", "'soon' is not"),
        ("template: a\nschedule:\n  when: 2027-04-02\n", 3, "when", "unknown key 'when'"),
        ("template: a\ntrigger: payday\n", 2, "trigger", "unknown trigger 'payday'"),
        ("template: a\ntrigger: {inactive: 6m}\n", 2, "inactive", "ambiguous"),
        ("template: a\ntrigger: {event: click, tags: x}\n", 2, "tags", "unknown key 'tags'"),
        (
            "template: a\ntrigger: birthday\nschedule:\n  dates: [2027-01-01]\n",
            2,
            "trigger",
            "not both",
        ),
        ("template: a\nschedul: {}\n", 2, "schedul", "unknown key 'schedul'"),
        ("template: a\nschedule:\n  rrule: FREQ=YEARLY;BYMONTH=13\n", 3, "rrule", "no day"),
        ("template: a\nschedule:\n  dates: [2027-02-30]\n", 3, "dates", "'2027-02-30' is not"),
        (
            "template: a\nschedule:\n  rrule: FREQ=YEARLY;BYMONTH=6;BYMONTHDAY=31\n",
            3,
            "rrule",
            "matches no day at all",
        ),
    ],
)
def test_calendar_errors_name_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    with pytest.raises(CampaignError, match=message) as caught:
        load(tmp_path, text)
    assert (caught.value.line, caught.value.key) == (line, key)
    assert caught.value.path == tmp_path / "campaigns" / "c.yaml"


def test_schedules_and_triggers_are_read(tmp_path: Path) -> None:
    spring = load(tmp_path, SPRING)
    assert spring.schedule is not None and spring.trigger is None and spring.on_calendar
    assert spring.schedule.days_in(2027) == [date(2027, 4, 2)]
    dated = load(tmp_path, "template: a\nschedule:\n  dates: ['2027-05-01', 2027-01-02]\n")
    assert dated.schedule is not None
    assert dated.schedule.days_in(2027) == [date(2027, 1, 2), date(2027, 5, 1)]
    for text, kind, detail in [
        ("trigger: signup", "signup", None),
        ("trigger: {event: click, tag: fire-safety}", "event", ("click", "fire-safety")),
        ("trigger: {inactive: 180d}", "inactive", "180d"),
        ("trigger: {entered: promoters}", "entered", "promoters"),
    ]:
        campaign = load(tmp_path, f"template: a\n{text}\n")
        trigger = campaign.trigger
        assert trigger is not None and trigger.kind == kind
        if kind == "event":
            assert (trigger.event, trigger.tag) == detail
        elif kind == "inactive":
            assert str(trigger.duration) == detail
        elif kind == "entered":
            assert trigger.segment == detail and "promoters" in campaign.segments()
    assert not load(tmp_path, "template: a\n").on_calendar


def test_an_entered_trigger_on_a_missing_segment_is_reported(tmp_path: Path) -> None:
    campaign = load(tmp_path, "template: a\ntrigger: {entered: vips}\n")
    problems = check_references(campaign, segments=[], template_exists=lambda _n: True)
    assert [(p.line, p.key) for p in problems] == [(2, "trigger")]
    assert "no segment 'vips'" in str(problems[0])


def test_an_rrule_without_dtstart_works_for_any_year_and_keeps_its_rhythm(tmp_path: Path) -> None:
    monthly = load(tmp_path, "template: a\nschedule:\n  rrule: FREQ=MONTHLY;BYMONTHDAY=1\n")
    assert monthly.schedule is not None
    assert len(monthly.schedule.days_in(1998)) == 12
    assert monthly.schedule.days_in(1900)[0] == date(1900, 1, 1)
    every_other = load(tmp_path, "template: a\nschedule:\n  rrule: FREQ=YEARLY;INTERVAL=2\n")
    assert every_other.schedule is not None
    years = [y for y in range(1990, 2031) if every_other.schedule.days_in(y)]
    assert years == list(range(1990, 2031, 2))  # the same even years before and after 2000


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('""', "expected a topic name"),
        ("", "expected a topic name"),
        ("[tips]", "expected a topic name"),
        ("Tips & Tricks", "is not a topic name"),
    ],
)
def test_a_topic_must_be_a_name(tmp_path: Path, value: str, reason: str) -> None:
    path = tmp_path / "tips.yaml"
    path.write_text(f"template: mail\nschedule:\n  dates: [2027-04-02]\ntopic: {value}\n")
    with pytest.raises(CampaignError, match=reason) as raised:
        load_campaign(path)
    assert raised.value.key == "topic" and raised.value.line == 4


def test_a_topic_is_read_and_listed_and_service_mail_has_none(tmp_path: Path) -> None:
    write = (tmp_path / "tips.yaml").write_text
    write("template: mail\nschedule:\n  dates: [2027-04-02]\ntopic: garden-tips\n")
    assert load_campaign(tmp_path / "tips.yaml").topic == "garden-tips"
    (tmp_path / "orders.yaml").write_text("kind: service\ntemplate: mail\ntopic: orders\n")
    with pytest.raises(CampaignError, match="a service campaign has no topic"):
        load_campaign(tmp_path / "orders.yaml")
    assert project_topics(tmp_path) == ["garden-tips"]  # the one in error is left out


def test_a_rule_dateutil_fails_on_is_refused_in_every_file_that_has_it(tmp_path: Path) -> None:
    # dateutil fails half-way through BYMONTH=13;BYDAY=1FR; the broken rule must not be
    # reused from the cache: the second file looped forever in `trouw check`.
    text = 'template: a\nschedule:\n  rrule: "FREQ=YEARLY;BYMONTH=13;BYDAY=1FR"\n'
    write_files(tmp_path, {"campaigns/one.yaml": text, "campaigns/two.yaml": text})
    for name in ("one", "two"):
        with pytest.raises(CampaignError, match="not an RFC 5545 rule"):
            load_campaign(tmp_path / "campaigns" / f"{name}.yaml")

"""Campaign files (campaigns/NAME.yaml): what to send, to whom, with which template.

This loader reads what rendering needs: description, kind, priority, the
audience `segment`, and the mails: one `template`, or `variants` chosen per
segment (first match wins, an entry without `segment` is the fallback), or a
journey of `steps` (`after`, `template` or `variants`, optional `unless` /
`only_if: {segment: NAME}`). Errors name the file, the line and the key.
For the year calendar it also reads when a campaign goes out: a `schedule`
(`dates: [...]` or an RFC 5545 `rrule`) or a `trigger` (signup, birthday,
anniversary, `{event: TYPE, tag: ...}`, `{inactive: DURATION}`,
`{entered: SEGMENT}`). A campaign with neither is sent only on demand and
never planned. The whole file stays available in `Campaign.raw`.
Experiments (experiments.py): `test:` on a campaign or a step (A/B arms with
weights; with `share:`, `pick_by:` and `after:` the winner goes to the rest),
`holdout: 10%` and `send_time: best` on a campaign.

Every campaign has at least one step: a single-mail campaign has one step
named `main`; journey steps are named by their `name:` or their number (1, 2, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dateutil.rrule import rrule, rruleset, rrulestr

from trouw.durations import Duration, parse_duration
from trouw.errors import UserError
from trouw.experiments import arm_index, parse_share
from trouw.problems import Problems
from trouw.yamlfile import LineDict, item_line, read_yaml

if TYPE_CHECKING:  # `trouw check` reads campaigns without SQLAlchemy
    from sqlalchemy import Connection

    from trouw.segments import Catalog, Clock

T = TypeVar("T")
D = TypeVar("D")

KINDS = ("service", "lifecycle", "promotional")
SINGLE_STEP = "main"
DEFAULT_PRIORITY = 50
# How long a `service` mail (an order follow-up) may still go out, unless it says.
SERVICE_VALIDITY_DAYS = 30
TRIGGERS = ("signup", "birthday", "anniversary", "event", "inactive", "entered")
TOP_LEVEL_KEYS = (
    "description",
    "kind",
    "priority",
    "segment",
    "schedule",
    "trigger",
    "template",
    "variants",
    "steps",
    "valid_for",
    "on_defer",
    "topic",
    "test",
    "holdout",
    "send_time",
)
# A topic is a name the preference centre offers to unsubscribe from (`topic:NAME` tags).
TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
ON_DEFER = ("supersede", "keep")
# An A/B test (`test:` on a campaign or a step), its arms, and what a test with a `share:`
# picks its winner by; `send_time:` choices.
TEST_KEYS = ("arms", "share", "pick_by", "after")
ARM_KEYS = ("template", "weight")
PICK_BY = ("click_rate", "open_rate", "conversion")
SEND_TIMES = ("best",)
_HOURS = re.compile(r"^\s*(\d+)\s*(h|d)\s*$")
# The keys of a journey step, a variant and a schedule, and each trigger form's keys
# (a bare word for signup, birthday, anniversary; a mapping for the others).
STEP_KEYS = ("name", "after", "template", "variants", "test", "unless", "only_if")
VARIANT_KEYS = ("segment", "template")
SCHEDULE_KEYS = ("dates", "rrule")
TRIGGER_WORDS = ("signup", "birthday", "anniversary")
TRIGGER_KEYS = {"event": ("event", "tag"), "inactive": ("inactive",), "entered": ("entered",)}
# An rrule is anchored here when it names no DTSTART, so it yields days for any year from
# 1900 on and INTERVAL=2 means the same years (months, weeks) whichever year is planned.
RRULE_ANCHOR = datetime(1900, 1, 1)
# A rule that matches no day in this many years from its start matches none at all
# (BYMONTH=13, 31 June): 28 years hold every combination of weekday and leap year.
RRULE_PROBE_YEARS = 28
# Finer rules than daily would be millions of sends per contact: surely a typo.
_TOO_FINE = ("HOURLY", "MINUTELY", "SECONDLY")


class CampaignError(UserError):
    """A campaign file is invalid, or a campaign or step that does not exist was named."""


@dataclass(frozen=True)
class Variant:
    """A template for the members of `segment`; `segment` None is the fallback."""

    template: str
    segment: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Test:
    """A step's A/B test: its arms (templates with weights), each contact's by a stable hash
    (experiments.arm_index). With `share`, only that share gets the arms and the rest the
    arm that wins by `pick_by`, `after_hours` after the first wave went out."""

    arms: tuple[Variant, ...]
    weights: tuple[float, ...]
    share: float | None = None
    pick_by: str | None = None
    after_hours: int = 24
    line: int | None = None


@dataclass(frozen=True)
class Step:
    """One mail of a campaign: its variants, and for journeys when and for whom."""

    name: str
    variants: tuple[Variant, ...]
    after: Duration | None = None
    unless: str | None = None  # skip members of this segment
    only_if: str | None = None  # send only to members of this segment
    line: int | None = None
    test: Test | None = None  # an A/B test: `variants` are then its arms

    @property
    def templates(self) -> list[str]:
        return [variant.template for variant in self.variants]

    @property
    def has_fallback(self) -> bool:
        return any(variant.segment is None for variant in self.variants)


@dataclass(frozen=True)
class Schedule:
    """Calendar days a campaign goes out: fixed `dates`, or an RFC 5545 `rrule`."""

    dates: tuple[date, ...] = ()
    rrule: str | None = None
    line: int | None = None

    def days_in(self, year: int) -> list[date]:
        """The scheduled days that fall in `year`, sorted."""
        if self.rrule is None:
            return sorted(day for day in self.dates if day.year == year)
        return list(_rrule_days(self.rrule, year))

    def days_between(self, first: date, last: date) -> list[date]:
        """The scheduled days from `first` to `last`, both included (per year, as planned)."""
        years = range(first.year, last.year + 1)
        return [day for year in years for day in self.days_in(year) if first <= day <= last]


@dataclass(frozen=True)
class Trigger:
    """What starts a journey for one contact.

    `kind` is one of TRIGGERS; `event` and `tag` belong to event triggers,
    `duration` to `inactive`, `segment` to `entered`.
    """

    kind: str
    event: str | None = None
    tag: str | None = None
    duration: Duration | None = None
    segment: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "event":
            return f"event {self.event}" + (f" tagged {self.tag}" if self.tag else "")
        if self.kind == "inactive":
            return f"inactive {self.duration}"
        if self.kind == "entered":
            return f"entered {self.segment}"
        return self.kind

    @property
    def lasting(self) -> bool:
        """Whether it starts a send from a state that lasts (inactivity), not a moment: the
        send is owed, however late, for as long as the state holds (a purchase ends it),
        so it is caught up at any time and never expires by its validity."""
        return self.kind == "inactive"


@dataclass(frozen=True)
class Campaign:
    name: str
    path: Path
    description: str
    kind: str
    priority: int
    segment: str | None
    steps: tuple[Step, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    schedule: Schedule | None = None
    trigger: Trigger | None = None
    valid_for: Duration | None = None  # how late a send may still go out (default: policy)
    on_defer: str | None = None  # supersede | keep; None: the default for its kind
    topic: str | None = None  # for the preference centre: contacts may leave one topic
    holdout: float | None = None  # the share of its audience held out (experiments.py)
    send_time: str | None = None  # "best": each contact's own best hour (in the send window)

    def validity_days(self, defer_days: int) -> int:
        """Days after its due day a send may still go out (and be caught up): `valid_for`,
        else `defer_days` (the policy's `defer_for`), at least a month for a service mail."""
        if self.valid_for is not None:
            return self.valid_for.approx_days()
        if self.kind == "service":
            return max(defer_days, SERVICE_VALIDITY_DAYS)
        return defer_days

    @property
    def supersedes(self) -> bool:
        """Whether a deferred occurrence gives way to the next one (the fresher wins).

        The default: yes for a promotional schedule (a newsletter), no otherwise.
        """
        if self.on_defer is not None:
            return self.on_defer == "supersede"
        return self.schedule is not None and self.kind == "promotional"

    @property
    def on_calendar(self) -> bool:
        """Whether the planner dates this campaign (it has a schedule or a trigger)."""
        return self.schedule is not None or self.trigger is not None

    @property
    def is_journey(self) -> bool:
        return not (len(self.steps) == 1 and self.steps[0].name == SINGLE_STEP)

    def step(self, name: str | None) -> Step:
        """The step called `name` (its name or number); the only step when None."""
        if name is None:
            if len(self.steps) == 1:
                return self.steps[0]
            raise CampaignError(
                f"campaign '{self.name}' is a journey of {len(self.steps)} steps",
                path=self.path,
                fix=f"name a step: {', '.join(f'{self.name}:{s.name}' for s in self.steps)}",
            )
        for step in self.steps:
            if step.name == name:
                return step
        raise CampaignError(
            f"campaign '{self.name}' has no step '{name}'",
            path=self.path,
            fix=f"steps: {', '.join(f'{self.name}:{s.name}' for s in self.steps)}",
        )

    def segments(self) -> set[str]:
        """Every segment this campaign names (audience, variants, step conditions)."""
        names = {self.segment} if self.segment else set()
        for step in self.steps:
            names.update(v.segment for v in step.variants if v.segment)
            names.update(n for n in (step.unless, step.only_if) if n)
        if self.trigger is not None and self.trigger.segment:
            names.add(self.trigger.segment)
        return names


@lru_cache(maxsize=64)
def _parse_rrule(text: str) -> rrule | rruleset:
    """An rrule string, anchored at RRULE_ANCHOR unless it carries its own DTSTART.

    Kept once per text with dateutil's own cache of the moments it yielded: a rule walks
    from its start (1900) to the year asked, so the next year continues where it stopped.
    """
    # Calendar days are what count: a time in UTC (a trailing Z) is read as a local one; an
    # aware rule could not be compared with the planner's naive year bounds.
    if "DTSTART" in text.upper():
        return rrulestr(text, forceset=False, ignoretz=True, cache=True)
    return rrulestr(text, dtstart=RRULE_ANCHOR, ignoretz=True, cache=True)


@lru_cache(maxsize=256)
def _rrule_days(text: str, year: int) -> tuple[date, ...]:
    """The days of `year` an rrule yields (cached: the planner asks per year, not per contact)."""
    rule = _parse_rrule(text)
    found = rule.between(datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59), inc=True)
    return tuple(sorted({moment.date() for moment in found}))


def _probe_rrule(text: str) -> bool:
    """Whether the rule `text` matches some day; its error is raised as dateutil's.

    A rule whose walk failed half-way stays broken in dateutil's cache of moments (the
    next walk of BYMONTH=13;BYDAY=1FR loops forever), so it is not kept: another
    campaign with the same text parses it anew and gets the same error.
    """
    try:
        return _matches_some_day(_parse_rrule(text))
    except Exception:
        _parse_rrule.cache_clear()
        raise


def _matches_some_day(rule: rrule | rruleset) -> bool:
    """Whether the rule yields a day within RRULE_PROBE_YEARS of its start."""
    start = getattr(rule, "_dtstart", None) or RRULE_ANCHOR
    # Naive bounds, as the planner asks: a rule still aware of a time zone fails here (TypeError).
    start = start.replace(tzinfo=None)
    end = start.replace(year=start.year + RRULE_PROBE_YEARS)
    return bool(rule.between(start, end, inc=True))


# ---------------------------------------------------------------------- loading


def campaign_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.yaml"))


def load_campaigns(folder: Path) -> list[Campaign]:
    """Every campaign in the folder, sorted by name."""
    return [load_campaign(folder / f"{name}.yaml") for name in campaign_names(folder)]


def find_campaign(folder: Path, name: str) -> Campaign:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(campaign_names(folder)) or "none yet"
        raise CampaignError(
            f"no campaign '{name}'",
            path=path,
            fix=f"campaigns in {folder}: {known}",
        )
    return load_campaign(path)


def load_campaign(path: Path) -> Campaign:
    """The campaign in `path`; its first problem is raised as a CampaignError."""
    campaign = read_campaign(path, Problems.first())
    assert campaign is not None  # a file that cannot be read raised instead
    return campaign


def read_campaign(path: Path, problems: Problems) -> Campaign | None:
    """The campaign in `path`, every problem reported to `problems`: a part in error is left
    out (a variant, a step, a date) or keeps its default, so the parts after it are still
    checked. None when the file is no campaign at all (unreadable, not a mapping)."""
    try:
        raw = read_yaml(path, CampaignError)
    except CampaignError as exc:
        problems.add(exc)
        return None
    return _Reader(path, problems).campaign(raw)


def check_references(
    campaign: Campaign, *, segments: Iterable[str], template_exists: Any
) -> list[CampaignError]:
    """Segments and templates the campaign names that do not exist, as errors."""
    known = set(segments)
    problems = []
    lines = _Lines(campaign.raw)
    if campaign.segment and campaign.segment not in known:
        problems.append(
            CampaignError(
                f"no segment '{campaign.segment}'",
                path=campaign.path,
                line=lines.of("segment"),
                key="segment",
                fix=f"create segments/{campaign.segment}.yaml, or use one of: "
                + ", ".join(sorted(known)),
            )
        )
    trigger = campaign.trigger
    if trigger is not None and trigger.segment and trigger.segment not in known:
        problems.append(
            CampaignError(
                f"no segment '{trigger.segment}'",
                path=campaign.path,
                line=trigger.line,
                key="trigger",
                fix=f"create segments/{trigger.segment}.yaml, or correct the name",
            )
        )
    for step in campaign.steps:
        for name in (step.unless, step.only_if):
            if name and name not in known:
                problems.append(
                    CampaignError(
                        f"no segment '{name}'",
                        path=campaign.path,
                        line=step.line,
                        fix=f"create segments/{name}.yaml, or correct the name",
                    )
                )
        for variant in step.variants:
            if variant.segment and variant.segment not in known:
                problems.append(
                    CampaignError(
                        f"no segment '{variant.segment}'",
                        path=campaign.path,
                        line=variant.line,
                        key="segment",
                        fix=f"create segments/{variant.segment}.yaml, or correct the name",
                    )
                )
            if not template_exists(variant.template):
                problems.append(
                    CampaignError(
                        f"no template '{variant.template}'",
                        path=campaign.path,
                        line=variant.line,
                        key="template",
                        fix=f"create templates/{variant.template}.html, or correct the name",
                    )
                )
    return problems


class _Lines:
    def __init__(self, mapping: Any) -> None:
        self.key_lines: dict[Any, int] = getattr(mapping, "key_lines", {})
        self.line: int | None = getattr(mapping, "line", None)

    def of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class _Reader:
    """Validates one campaign file, naming the line and key of what is wrong.

    Every problem goes to `problems` (which raises the first when loading). The
    independent parts of a file (each top-level key, step, variant and date) are
    read one by one, so a checker hears of every bad part, not just the first.
    """

    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.problems = problems

    def error(self, mapping: Any, key: str | None, reason: str, fix: str) -> CampaignError:
        line = _Lines(mapping).of(key) if key else getattr(mapping, "line", None)
        return CampaignError(reason, path=self.path, line=line, key=key, fix=fix)

    def attempt(self, work: Callable[[], T], default: D) -> T | D:
        return self.problems.attempt(work, default, CampaignError)

    def campaign(self, raw: Any) -> Campaign | None:
        if not isinstance(raw, LineDict):
            self.problems.add(
                CampaignError(
                    "a campaign file must be a mapping of keys",
                    path=self.path,
                    line=1,
                    fix="start with `description: ...` and `template: NAME`",
                )
            )
            return None
        self.only(raw, TOP_LEVEL_KEYS, "a campaign")
        description = self.attempt(lambda: self.text(raw, "description", required=False), None)
        kind = self.attempt(lambda: self.kind(raw), "promotional")
        priority = self.attempt(lambda: self.priority(raw), DEFAULT_PRIORITY)
        segment = self.attempt(lambda: self.text(raw, "segment", required=False), None)
        steps: tuple[Step, ...] = self.attempt(lambda: self.mail_steps(raw), ())
        if "schedule" in raw and "trigger" in raw:
            self.problems.add(
                self.error(
                    raw,
                    "trigger",
                    "a campaign has a schedule or a trigger, not both",
                    "use `schedule:` for calendar days, `trigger:` for a journey per contact",
                )
            )
        valid_for = self.attempt(lambda: self.valid_for(raw), None)
        on_defer = self.attempt(lambda: self.on_defer(raw), None)
        topic = self.attempt(lambda: self.topic(raw, kind), None)
        holdout = self.attempt(lambda: self.holdout(raw, kind), None)
        send_time = self.attempt(lambda: self.send_time(raw), None)
        schedule = self.attempt(lambda: self.schedule(raw), None) if "schedule" in raw else None
        trigger = self.attempt(lambda: self.trigger(raw), None) if "trigger" in raw else None
        return Campaign(
            valid_for=valid_for,
            on_defer=on_defer,
            topic=topic,
            holdout=holdout,
            send_time=send_time,
            name=self.path.stem,
            path=self.path,
            description=description or "",
            kind=kind,
            priority=priority,
            segment=segment,
            steps=steps,
            raw=raw,
            schedule=schedule,
            trigger=trigger,
        )

    def kind(self, raw: Any) -> str:
        kind = self.text(raw, "kind", required=False) or "promotional"
        if kind not in KINDS:
            raise self.error(
                raw, "kind", f"unknown kind '{kind}'", f"use one of: {', '.join(KINDS)}"
            )
        return kind

    def priority(self, raw: Any) -> int:
        priority = raw.get("priority", DEFAULT_PRIORITY)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise self.error(
                raw, "priority", f"expected a whole number, got {priority!r}", "write e.g. 50"
            )
        return priority

    def mail_steps(self, raw: Any) -> tuple[Step, ...]:
        """The journey's `steps`, or the one step `main` of `template` / `variants`."""
        forms = [key for key in ("template", "variants", "steps", "test") if key in raw]
        if len(forms) != 1:
            raise self.error(
                raw,
                forms[1] if len(forms) > 1 else None,
                "a campaign needs exactly one of template, variants, test or steps"
                + (f" (found {', '.join(forms)})" if forms else ""),
                "write `template: NAME` for one mail, `variants:` per segment, `test:` with "
                "arms for an A/B test, or `steps:` for a journey (a step may have a `test:`)",
            )
        if forms[0] == "steps":
            return self.steps(raw)
        line = _Lines(raw).of(forms[0])
        if forms[0] == "test":
            test = self.test(raw, one_off="schedule" in raw)
            return (Step(SINGLE_STEP, test.arms, line=line, test=test),)
        return (Step(SINGLE_STEP, self.mails(raw), line=line),)

    def valid_for(self, raw: Any) -> Duration | None:
        if "valid_for" not in raw:
            return None
        try:
            valid_for = parse_duration(raw["valid_for"])
        except ValueError as exc:
            raise self.error(raw, "valid_for", str(exc), "write e.g. `valid_for: 3d`") from None
        if valid_for.amount == 0:
            self.problems.add(
                self.error(
                    raw,
                    "valid_for",
                    f"valid_for: {valid_for} lets a send go out on its own day only: one "
                    "deferred by a cap or a server's 'try later' expires at once",
                    "write at least `valid_for: 1d`",
                ),
                loads=True,
            )
        return valid_for

    def on_defer(self, raw: Any) -> str | None:
        on_defer = self.text(raw, "on_defer", required=False)
        if on_defer is not None and on_defer not in ON_DEFER:
            raise self.error(
                raw, "on_defer", f"unknown choice '{on_defer}'", "use supersede or keep"
            )
        return on_defer

    def topic(self, raw: Any, kind: str) -> str | None:
        """`topic: tips`: a lower-case name, the same for every campaign on that subject."""
        if "topic" not in raw:
            return None
        value = raw["topic"]
        fix = "write e.g. `topic: tips` (lower-case letters, digits, - and _)"
        if not isinstance(value, str) or not value.strip():
            raise self.error(raw, "topic", f"expected a topic name, got {value!r}", fix)
        if not TOPIC_NAME.fullmatch(value.strip()):
            raise self.error(raw, "topic", f"'{value}' is not a topic name", fix)
        if kind == "service":
            raise self.error(
                raw,
                "topic",
                "a service campaign has no topic: service mails reach every contact",
                "remove `topic:`, or make the campaign lifecycle or promotional",
            )
        return value.strip()

    def holdout(self, raw: Any, kind: str) -> float | None:
        """`holdout: 10%`: the share of the campaign's audience that gets none of it."""
        if "holdout" not in raw:
            return None
        try:
            share = parse_share(raw["holdout"])
        except ValueError as exc:
            raise self.error(raw, "holdout", str(exc), "write e.g. `holdout: 10%`") from None
        if kind == "service":
            raise self.error(
                raw,
                "holdout",
                "a service campaign holds nobody out: service mails reach every contact",
                "remove `holdout:`, or make the campaign lifecycle or promotional",
            )
        return share

    def send_time(self, raw: Any) -> str | None:
        """`send_time: best`: each contact's mail at the hour they most often open or click."""
        value = self.text(raw, "send_time", required=False)
        if value is not None and value not in SEND_TIMES:
            raise self.error(
                raw,
                "send_time",
                f"unknown send_time '{value}'",
                "write `send_time: best`, or leave it out to send at the run's hour",
            )
        return value

    def test(self, mapping: Any, *, one_off: bool) -> Test:
        """`test: {arms: [...], share: 20%, pick_by: click_rate, after: 24h}`."""
        value = mapping["test"]
        fix = "write `test: {arms: [{template: NAME}, {template: OTHER, weight: 2}]}`"
        if not isinstance(value, LineDict):
            raise self.error(mapping, "test", f"expected a test with arms, got {value!r}", fix)
        self.only(value, TEST_KEYS, "a test")
        items = value.get("arms")
        if not isinstance(items, list) or len(items) < 2:
            raise self.error(
                value, "arms" if "arms" in value else None, "a test needs at least two arms", fix
            )
        arms: list[tuple[Variant, float]] = []
        for index, item in enumerate(items):
            arm = self.attempt(partial(self.arm, items, index, item), None)
            if arm is not None:
                arms.append(arm)
        share = None
        if "share" in value:
            try:
                share = parse_share(value["share"])
            except ValueError as exc:
                raise self.error(value, "share", str(exc), "write e.g. `share: 20%`") from None
            if not one_off:
                raise self.error(
                    value,
                    "share",
                    "a test with a share (the winner to the rest) needs a scheduled send",
                    "give the campaign a `schedule:`, or remove `share:` to test on everyone",
                )
        pick_by, hours = None, 24
        if share is None:
            for key in ("pick_by", "after"):
                if key in value:
                    raise self.error(
                        value,
                        key,
                        f"`{key}` belongs to a test with a `share:` (the winner to the rest)",
                        "add e.g. `share: 20%`, or remove it: every contact gets their arm",
                    )
        else:
            pick_by = self.text(value, "pick_by")
            if pick_by not in PICK_BY:
                raise self.error(
                    value, "pick_by", f"unknown pick_by '{pick_by}'", f"use {', '.join(PICK_BY)}"
                )
            if "after" in value:
                match = _HOURS.match(str(value["after"]))
                if match is None or int(match.group(1)) < 1:
                    raise self.error(
                        value,
                        "after",
                        f"expected hours or days such as 24h or 2d, got {value['after']!r}",
                        "write e.g. `after: 24h`: how long the arms run before a winner is picked",
                    )
                hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
        return Test(
            arms=tuple(variant for variant, _ in arms),
            weights=tuple(weight for _, weight in arms),
            share=share,
            pick_by=pick_by,
            after_hours=hours,
            line=value.line,
        )

    def arm(self, items: Any, index: int, item: Any) -> tuple[Variant, float]:
        if not isinstance(item, LineDict):
            raise CampaignError(
                f"arm {index + 1} must be a mapping",
                path=self.path,
                line=item_line(items, index),
                key="arms",
                fix="write `- {template: NAME}` or `- {template: NAME, weight: 2}`",
            )
        self.only(item, ARM_KEYS, "an arm")
        template = self.text(item, "template")
        assert template is not None
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise self.error(
                item,
                "weight",
                f"expected a positive number, got {weight!r}",
                "write e.g. `weight: 2` (arms get contacts in proportion to their weights)",
            )
        return Variant(self.template_name(item, template), None, item.line), float(weight)

    def schedule(self, raw: Any) -> Schedule:
        """`schedule: {dates: [...]}` or `schedule: {rrule: "FREQ=..."}`."""
        value = raw["schedule"]
        fix = 'write `schedule: {rrule: "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=2"}` or `dates: [...]`'
        if not isinstance(value, LineDict) or len(value) != 1:
            raise self.error(raw, "schedule", "expected one of `dates` or `rrule`", fix)
        self.only(value, SCHEDULE_KEYS, "a schedule")
        line = _Lines(value).of(next(iter(value)))
        if "rrule" in value:
            return Schedule(rrule=self.rrule(value, fix), line=line)
        if "dates" not in value:  # its one key is unknown: reported by `only` above
            return Schedule(line=line)
        items = value["dates"]
        if not isinstance(items, list) or not items:
            raise self.error(value, "dates", "expected a list of dates", "write `[2027-04-02]`")
        days: list[date] = []
        for index, item in enumerate(items):
            day = item if isinstance(item, date) and not isinstance(item, datetime) else None
            if isinstance(item, str):
                try:
                    day = date.fromisoformat(item.strip())
                except ValueError:
                    day = None
            if day is None:
                self.problems.add(
                    CampaignError(
                        f"'{item}' is not a date",
                        path=self.path,
                        line=item_line(items, index) or line,
                        key="dates",
                        fix="write dates as YYYY-MM-DD",
                    )
                )
                continue
            days.append(day)
        return Schedule(dates=tuple(sorted(set(days))), line=line)

    def rrule(self, value: LineDict, fix: str) -> str:
        """The rule text, checked: RFC 5545, daily or coarser, matching some day."""
        text = value["rrule"]
        if not isinstance(text, str) or not text.strip():
            raise self.error(value, "rrule", f"expected an rrule text, got {text!r}", fix)
        text = text.strip()
        if any(f"FREQ={freq}" in text.upper() for freq in _TOO_FINE):
            raise self.error(value, "rrule", "a rule finer than daily", "use FREQ=DAILY or coarser")
        for interval in re.findall(r"INTERVAL=([^;\s]*)", text.upper()):
            # dateutil loops forever on INTERVAL=0 and fails late on a negative one
            if not interval.isdigit() or int(interval) < 1:
                raise self.error(
                    value,
                    "rrule",
                    f"INTERVAL={interval} is not a whole number of 1 or more",
                    "write e.g. INTERVAL=2 for every other period, or leave it out",
                )
        try:
            matches = _probe_rrule(text)
        except TypeError as exc:  # an aware DTSTART (TZID=...) beside naive bounds
            raise self.error(
                value,
                "rrule",
                f"a time zone in the rule is not supported ({exc})",
                "write DTSTART:20270101 without TZID: the contact's own time zone applies",
            ) from exc
        except (ValueError, OverflowError) as exc:
            raise self.error(
                value,
                "rrule",
                f"not an RFC 5545 rule: {exc}",
                'write e.g. "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=31"',
            ) from exc
        if not matches:
            raise self.error(
                value,
                "rrule",
                f"the rule '{text}' matches no day at all (a 13th month, a 31 June?)",
                "check BYMONTH (1-12) and BYMONTHDAY against the month's length",
            )
        return text

    def trigger(self, raw: Any) -> Trigger:
        """`signup`, `birthday`, `anniversary`, or a mapping for event/inactive/entered."""
        value = raw["trigger"]
        line = _Lines(raw).of("trigger")
        fix = (
            "write `trigger: signup`, `birthday`, `anniversary`, "
            "`{event: click, tag: fire-safety}`, `{inactive: 180d}` or `{entered: SEGMENT}`"
        )
        if isinstance(value, str):
            if value in TRIGGER_WORDS:
                return Trigger(value, line=line)
            raise self.error(raw, "trigger", f"unknown trigger '{value}'", fix)
        if not isinstance(value, LineDict):
            raise self.error(raw, "trigger", f"expected a trigger, got {value!r}", fix)
        line = value.line
        if "event" in value:
            self.only(value, TRIGGER_KEYS["event"], "an event trigger")
            event = self.text(value, "event")
            tag = self.text(value, "tag", required=False)
            return Trigger("event", event=event, tag=tag, line=line)
        if "inactive" in value:
            self.only(value, TRIGGER_KEYS["inactive"], "an inactive trigger")
            try:
                duration = parse_duration(value["inactive"])
            except ValueError as exc:
                raise self.error(
                    value, "inactive", str(exc), "write e.g. `inactive: 180d`"
                ) from exc
            return Trigger("inactive", duration=duration, line=line)
        if "entered" in value:
            self.only(value, TRIGGER_KEYS["entered"], "an entered trigger")
            return Trigger("entered", segment=self.text(value, "entered"), line=line)
        raise self.error(raw, "trigger", "expected event, inactive or entered", fix)

    def text(self, mapping: Any, key: str, *, required: bool = True) -> str | None:
        if key not in mapping:
            if required:
                raise self.error(mapping, None, f"'{key}' is missing", f"add `{key}: ...`")
            return None
        value = mapping[key]
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                mapping, key, f"expected text, got {value!r}", f"write `{key}: some-name`"
            )
        return value.strip()

    def mails(self, mapping: Any) -> tuple[Variant, ...]:
        """`template: NAME` or `variants: [...]` of a campaign or a step."""
        if "template" in mapping:
            if "variants" in mapping:
                raise self.error(
                    mapping,
                    "variants",
                    "both template and variants are given",
                    "keep one: `template` for everyone, `variants` per segment",
                )
            name = self.text(mapping, "template")
            assert name is not None
            return (
                Variant(self.template_name(mapping, name), None, _Lines(mapping).of("template")),
            )
        items = mapping.get("variants")
        if not isinstance(items, list) or not items:
            raise self.error(
                mapping,
                "variants" if "variants" in mapping else None,
                "expected a list of variants",
                "write `variants:` with items `- {segment: NAME, template: NAME}`, "
                "optionally ending with `- {template: NAME}` as fallback",
            )
        variants: list[Variant] = []
        for index, item in enumerate(items):
            variant = self.attempt(partial(self.variant, items, index, item, variants), None)
            if variant is not None:
                variants.append(variant)
        return tuple(variants)

    def variant(self, items: Any, index: int, item: Any, before: list[Variant]) -> Variant:
        if not isinstance(item, LineDict):
            raise CampaignError(
                f"variant {index + 1} must be a mapping",
                path=self.path,
                line=item_line(items, index),
                key="variants",
                fix="write `- {segment: NAME, template: NAME}`",
            )
        self.only(item, VARIANT_KEYS, "a variant")
        template = self.text(item, "template")
        assert template is not None
        segment = self.text(item, "segment", required=False)
        if before and before[-1].segment is None:
            raise self.error(
                item,
                None,
                "a variant follows the fallback (the entry without a segment)",
                "put the fallback last: variants after it would never be chosen",
            )
        return Variant(self.template_name(item, template), segment, item.line)

    def template_name(self, mapping: Any, name: str) -> str:
        if name.endswith((".html", ".txt")) or name.startswith("/") or ".." in name.split("/"):
            raise self.error(
                mapping,
                "template",
                f"'{name}' is not a template name",
                "write the path under templates/ without the extension, e.g. spring/generic",
            )
        return name

    def steps(self, raw: Any) -> tuple[Step, ...]:
        items = raw["steps"]
        if not isinstance(items, list) or not items:
            raise self.error(
                raw, "steps", "expected a list of steps", "write `- {after: 0d, template: NAME}`"
            )
        steps: list[Step] = []
        for index, item in enumerate(items):
            step = self.attempt(partial(self.step, items, index, item, steps), None)
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def step(self, items: Any, index: int, item: Any, before: list[Step]) -> Step:
        if not isinstance(item, LineDict):
            raise CampaignError(
                f"step {index + 1} must be a mapping",
                path=self.path,
                line=item_line(items, index),
                key="steps",
                fix="write `- {after: 14d, template: NAME}`",
            )
        self.only(item, STEP_KEYS, "a step")
        name = self.text(item, "name", required=False) or str(index + 1)
        if any(step.name == name for step in before):
            raise self.error(item, "name", f"two steps are called '{name}'", "rename one")
        if "after" not in item:
            raise self.error(item, None, "the step has no `after`", "add e.g. `after: 14d`")
        try:
            after = parse_duration(item["after"])
        except ValueError as exc:
            raise self.error(item, "after", str(exc), "write e.g. `after: 14d`") from exc
        test = None
        if "test" in item:
            if "template" in item or "variants" in item:
                raise self.error(
                    item,
                    "test",
                    "a step with a test takes its templates from the test's arms",
                    "remove `template`/`variants`: list the templates under `test: {arms: ...}`",
                )
            test = self.test(item, one_off=False)
        return Step(
            name=name,
            variants=test.arms if test is not None else self.mails(item),
            test=test,
            after=after,
            unless=self.attempt(lambda: self.segment_condition(item, "unless"), None),
            only_if=self.attempt(lambda: self.segment_condition(item, "only_if"), None),
            line=item.line,
        )

    def segment_condition(self, mapping: Any, key: str) -> str | None:
        if key not in mapping:
            return None
        value = mapping[key]
        if isinstance(value, LineDict) and set(value) == {"segment"}:
            name = value["segment"]
            if isinstance(name, str) and name.strip():
                return name.strip()
        raise self.error(
            mapping,
            key,
            f"expected {{segment: NAME}}, got {value!r}",
            f"write `{key}: {{segment: NAME}}`",
        )

    def only(self, mapping: Any, allowed: tuple[str, ...], what: str) -> None:
        """Report each unknown key (the known ones are still read)."""
        for key in mapping:
            if key not in allowed:
                self.problems.add(
                    self.error(
                        mapping,
                        str(key),
                        f"unknown key '{key}' in {what}",
                        f"known keys: {', '.join(allowed)}",
                    )
                )


# ---------------------------------------------------------------------- variant choice


@dataclass(frozen=True)
class Choice:
    """What one contact gets from a step: a variant or None, and why."""

    contact_id: str
    variant: Variant | None
    in_audience: bool = True
    skipped_because: str | None = None  # e.g. "member of 'detractors' (unless)"

    @property
    def template(self) -> str | None:
        """The template the contact gets, or None when the step does not send them one."""
        if not self.in_audience or self.skipped_because or self.variant is None:
            return None
        return self.variant.template

    @property
    def why_not(self) -> str | None:
        """Why the step sends this contact nothing, or None when it sends them a mail."""
        if not self.in_audience:
            return "not in the campaign's audience"
        if self.skipped_because:
            return self.skipped_because
        if self.variant is None:
            return "matches no variant and the campaign has no fallback"
        return None


def choose_variant(
    campaign: Campaign, step: Step, contact_id: str, members: Mapping[str, set[str]]
) -> Choice:
    """The one rule of who gets which mail of a step: in the campaign's audience, not
    excluded by `unless` or `only_if`, and the first variant whose segment they are in
    (the fallback has none), or, for a step with a `test:`, their arm (experiments.py).
    `members` holds the members of every segment named."""
    in_audience = campaign.segment is None or contact_id in members[campaign.segment]
    skipped = None
    if step.unless and contact_id in members[step.unless]:
        skipped = f"member of '{step.unless}' (unless)"
    elif step.only_if and contact_id not in members[step.only_if]:
        skipped = f"not a member of '{step.only_if}' (only_if)"
    if step.test is not None:  # an A/B test: the contact's arm, by a stable hash
        test = step.test
        chosen: Variant | None = test.arms[
            arm_index(contact_id, campaign.name, step.name, test.weights)
        ]
    else:
        chosen = None
        for variant in step.variants:  # a loop, not next(generator): runs for every contact
            if variant.segment is None or contact_id in members[variant.segment]:
                chosen = variant
                break
    return Choice(contact_id, chosen, in_audience, skipped)


def members_among(
    connection: Connection,
    names: Iterable[str],
    contact_ids: list[str],
    catalog: Catalog,
    clock: Clock,
) -> dict[str, set[str]]:
    """For each segment name: which of `contact_ids` are members, one query per segment."""
    from trouw.segments import members_query
    from trouw.store import contacts
    from trouw.store.among import among

    result: dict[str, set[str]] = {}
    dialect = connection.dialect.name
    for name in names:
        query = members_query(catalog.get(name), catalog, clock, dialect)
        rows = connection.execute(query.where(among(contacts.c.id, dialect)), {"ids": contact_ids})
        result[name] = {str(row[0]) for row in rows}
    return result


def sample_members(
    connection: Connection, name: str, catalog: Catalog, clock: Clock, *, limit: int
) -> list[str]:
    """Up to `limit` members of a segment, the first ids in order (reproducible samples)."""
    from trouw.segments import members_query
    from trouw.store import contacts

    query = members_query(catalog.get(name), catalog, clock, connection.dialect.name)
    rows = connection.execute(query.order_by(contacts.c.id).limit(limit))
    return [str(row[0]) for row in rows]


def choose_variants(
    connection: Connection,
    campaign: Campaign,
    step: Step,
    contact_ids: list[str],
    *,
    catalog: Catalog,
    clock: Clock,
) -> dict[str, Choice]:
    """For each contact: the first variant whose segment they are in, as of the clock's day.

    One query per segment named (the audience, each variant's, unless/only_if),
    each restricted to the given contacts; a segment is never evaluated per contact.
    """
    names = [v.segment for v in step.variants if v.segment]
    names += [n for n in (campaign.segment, step.unless, step.only_if) if n]
    members = members_among(connection, sorted(set(names)), contact_ids, catalog, clock)
    return {cid: choose_variant(campaign, step, cid, members) for cid in contact_ids}


def project_topics(folder: Path) -> list[str]:
    """The topics the project's campaigns name, sorted: what the preference centre offers.

    A campaign file in error is left out here (`trouw check` reports it), so a
    typo in one campaign does not take the preference centre down.
    """
    found = set()
    for name in campaign_names(folder):
        campaign = read_campaign(folder / f"{name}.yaml", Problems())
        if campaign is not None and campaign.topic:
            found.add(campaign.topic)
    return sorted(found)

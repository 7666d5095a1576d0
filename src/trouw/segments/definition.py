"""The condition language: segments/NAME.yaml validated into a typed condition tree.

Validation is complete before anything touches the database: unknown keys,
wrong types, unknown operators, bad durations, references to segments that do
not exist and reference cycles are all SegmentErrors naming file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from trouw.durations import Duration, parse_duration
from trouw.errors import UserError
from trouw.problems import Problems
from trouw.yamlfile import LineDict, LineList, read_yaml


class SegmentError(UserError):
    """A segment definition is invalid, or a segment that does not exist was named."""


# Contact columns by kind; every other attribute name is looked up in `attributes`.
TEXT_COLUMNS = (
    "id", "email", "first_name", "last_name", "locale", "timezone", "channel", "street",
    "postcode", "city", "country",
)  # fmt: skip
DATE_COLUMNS = ("birthday", "customer_since")
# Event columns usable in an event's `where`; others are looked up in `properties`.
EVENT_TEXT_COLUMNS = ("tag", "url", "product", "category")
EVENT_NUMBER_COLUMNS = ("amount", "score")

OPERATORS = (
    "equals", "exactly", "not_equals", "in", "not_in", "at_least", "at_most", "before",
    "after", "exists", "contains",
)  # fmt: skip
AGGREGATES = ("count", "sum", "days_since_last", "days_since_first")
# Aggregates compare numbers: only these operators make sense for them.
AGGREGATE_OPERATORS = ("equals", "exactly", "not_equals", "in", "not_in", "at_least", "at_most")
NPS_CLASSES = {"promoter": (9, 10), "passive": (7, 8), "detractor": (0, 6)}
FORMS = (
    "all", "any", "not", "attribute", "event", "segment", "birthday_within",
    "anniversary_within", "nps",
)  # fmt: skip
EVENT_KEYS = ("event", "within", "tag", "product", "category", "where", *AGGREGATES)
SEGMENT_KEYS = ("description", "where")  # the keys of a segment file
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")

Scalar = str | int | float | bool | date
Value = Scalar | Duration | tuple[Scalar, ...]


@dataclass(frozen=True)
class Op:
    """One comparison: `name` is normalised (`exactly` becomes `equals`)."""

    name: str
    value: Value
    line: int

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, tuple):
            shown = "[" + ", ".join(_show(v) for v in value) + "]"
        else:
            shown = _show(value)
        return f"{self.name} {shown}"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]
    line: int


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]
    line: int


@dataclass(frozen=True)
class Not:
    item: Condition
    line: int


@dataclass(frozen=True)
class Attribute:
    """A contact column (kind `text` or `date`) or a custom attribute (kind `json`)."""

    name: str
    kind: str
    ops: tuple[Op, ...]
    line: int


@dataclass(frozen=True)
class Property:
    """A filter on an event column (kind `text`/`number`) or property (kind `json`)."""

    name: str
    kind: str
    ops: tuple[Op, ...]
    line: int


@dataclass(frozen=True)
class Event:
    type: str
    within: Duration | None
    tag: tuple[str, ...] | None
    product: tuple[str, ...] | None
    category: tuple[str, ...] | None
    where: tuple[Property, ...]
    aggregate: str
    ops: tuple[Op, ...]
    line: int


@dataclass(frozen=True)
class SegmentRef:
    name: str
    line: int


@dataclass(frozen=True)
class DateWithin:
    """`birthday_within` / `anniversary_within`: the date's yearly return in D … D+days-1."""

    key: str
    column: str
    duration: Duration
    days: int
    line: int


@dataclass(frozen=True)
class Nps:
    klass: str
    low: int
    high: int
    line: int


Condition = AllOf | AnyOf | Not | Attribute | Event | SegmentRef | DateWithin | Nps


@dataclass(frozen=True)
class Segment:
    name: str
    path: Path
    description: str
    where: Condition


@dataclass
class Catalog:
    """Every segment of a project: the valid ones and, by name, the errors of the others."""

    folder: Path
    segments: dict[str, Segment] = field(default_factory=dict)
    errors: dict[str, SegmentError] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted({*self.segments, *self.errors})

    def get(self, name: str) -> Segment:
        """The valid segment `name`; its SegmentError if it is invalid or missing."""
        if name in self.errors:
            raise self.errors[name]
        if name not in self.segments:
            known = ", ".join(self.names) or "none yet"
            raise SegmentError(
                f"no segment named '{name}'",
                path=self.folder,
                fix=f"create {self.folder / (name + '.yaml')}, or use one of: {known}",
            )
        return self.segments[name]


def load_catalog(folder: Path, problems: Problems | None = None) -> Catalog:
    """Load every segments/*.yaml; invalid ones are kept as errors, not raised.

    With `problems`, every problem of every file is reported there too (a file's
    first one is its error in the catalog), and of the references between
    segments the ones to no segment and the cycles (not: to an invalid one).
    """
    catalog = Catalog(folder)
    partial: list[Segment] = []  # what could be read of the segments with problems
    paths = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    for path in paths:
        name = path.stem
        found = Problems()
        try:
            segment = read_segment(path, Problems.first() if problems is None else found)
        except SegmentError as exc:
            catalog.errors[name] = exc
            continue
        if problems is not None:
            for error in found:
                problems.add(error)
        first = next(iter(found), None)
        if segment is None or first is not None:
            if not isinstance(first, SegmentError):  # the reader reports only SegmentErrors
                first = SegmentError("the segment is invalid", path=path)
            catalog.errors[name] = first
            if segment is not None:
                partial.append(segment)
            continue
        catalog.segments[name] = segment
        catalog.descriptions[name] = segment.description
    _check_references(catalog, problems)
    if problems is not None:  # what was read of an invalid segment may name no segment too
        known = {*catalog.segments, *catalog.errors}
        for segment in partial:
            for error in _unknown_references(segment, known):
                problems.add(error)
    return catalog


def parse_segment(path: Path) -> Segment:
    """The segment in `path`; its first problem is raised as a SegmentError."""
    segment = read_segment(path, Problems.first())
    assert segment is not None  # a file that is no segment raised instead
    return segment


def read_segment(path: Path, problems: Problems) -> Segment | None:
    """The segment in `path`, every problem reported to `problems` (a condition in error
    is left out of its `all`/`any`); None when the file holds no condition to read."""
    try:
        raw = read_yaml(path, SegmentError)
    except SegmentError as exc:
        problems.add(exc)
        return None
    reader = _Reader(path, problems)
    if not isinstance(raw, LineDict):
        problems.add(
            SegmentError(
                "expected a mapping with `description` and `where`",
                path=path,
                line=1,
                fix="start the file with `description: ...` and `where:`",
            )
        )
        return None
    reader.only(raw, SEGMENT_KEYS, "")
    if "where" not in raw:
        problems.add(
            SegmentError(
                "the segment has no `where`",
                path=path,
                line=raw.line,
                key="where",
                fix="add `where:` with a condition, e.g. `where: {event: purchase, within: 1y}`",
            )
        )
        return None
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.add(
            reader.error(raw, "description", "expected text", "write the description as text")
        )
        description = ""
    where = problems.attempt(
        lambda: reader.condition(raw["where"], raw.key_lines["where"], "where"), None, SegmentError
    )
    if where is None:
        return None
    return Segment(path.stem, path, description.strip(), where)


def references(condition: Condition) -> Iterator[SegmentRef]:
    """Every `segment:` reference inside a condition."""
    if isinstance(condition, AllOf | AnyOf):
        for item in condition.items:
            yield from references(item)
    elif isinstance(condition, Not):
        yield from references(condition.item)
    elif isinstance(condition, SegmentRef):
        yield condition


def _check_references(catalog: Catalog, problems: Problems | None = None) -> None:
    """Move segments with unknown references or reference cycles to the errors (and report
    each such reference to `problems`)."""
    known = {*catalog.segments, *catalog.errors}
    for name, segment in list(catalog.segments.items()):
        for error in _unknown_references(segment, known):
            catalog.errors.setdefault(name, error)
            if problems is not None:
                problems.add(error)
    for name in list(catalog.segments):
        cycle = _find_cycle(catalog, name, [])
        if cycle is not None:
            segment = catalog.segments[name]
            ref = next(r for r in references(segment.where) if r.name == cycle[1])
            error = SegmentError(
                "segment references form a cycle: " + " -> ".join(cycle),
                path=segment.path,
                line=ref.line,
                key="segment",
                fix="a segment cannot (indirectly) contain itself; remove one of these references",
            )
            catalog.errors[name] = error
            if problems is not None:
                problems.add(error)
    # A segment that uses an invalid one cannot be evaluated either.
    changed = True
    while changed:
        changed = False
        for name, segment in list(catalog.segments.items()):
            if name in catalog.errors:
                del catalog.segments[name]
                changed = True
                continue
            for ref in references(segment.where):
                if ref.name in catalog.errors:
                    catalog.errors[name] = SegmentError(
                        f"refers to segment '{ref.name}', which is invalid",
                        path=segment.path,
                        line=ref.line,
                        key="segment",
                        fix=f"fix segments/{ref.name} first (see `trouw segments list`)",
                    )
                    del catalog.segments[name]
                    changed = True
                    break


def _unknown_references(segment: Segment, known: set[str]) -> Iterator[SegmentError]:
    for ref in references(segment.where):
        if ref.name not in known:
            yield SegmentError(
                f"refers to segment '{ref.name}', which does not exist",
                path=segment.path,
                line=ref.line,
                key="segment",
                fix=f"create segments/{ref.name}.yaml or use one of: " + ", ".join(sorted(known)),
            )


def _find_cycle(catalog: Catalog, name: str, trail: list[str]) -> list[str] | None:
    """A reference path from `name` back to itself, if there is one."""
    if name in trail:
        return [*trail[trail.index(name) :], name] if trail[0] == name else None
    segment = catalog.segments.get(name)
    if segment is None:
        return None
    for ref in references(segment.where):
        found = _find_cycle(catalog, ref.name, [*trail, name])
        if found is not None:
            return found
    return None


class _Reader:
    """Turns one file's parsed YAML into conditions, raising SegmentErrors with lines.

    Unknown keys and operators are reported to `problems` one by one (the known
    ones are still read); each condition of an `all`/`any` is read on its own.
    """

    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.problems = problems

    def error(self, mapping: LineDict, key: str, reason: str, fix: str) -> SegmentError:
        line = mapping.key_lines.get(key, mapping.line)
        return SegmentError(reason, path=self.path, line=line, key=key, fix=fix)

    def only(self, mapping: LineDict, allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                suffix = f" in {what}" if what else ""
                self.problems.add(
                    self.error(
                        mapping,
                        str(key),
                        f"unknown key '{key}'{suffix}",
                        "known keys here: " + ", ".join(allowed),
                    )
                )

    def condition(self, raw: Any, line: int, key: str) -> Condition:
        if not isinstance(raw, LineDict):
            raise SegmentError(
                f"expected a condition (a mapping), got {_kind(raw)}",
                path=self.path,
                line=line,
                key=key,
                fix="write a condition such as `{event: purchase, within: 30d}` "
                "or `{attribute: household, equals: family}`",
            )
        forms = [k for k in raw if k in FORMS]
        if len(forms) != 1:
            if forms:
                raise self.error(
                    raw,
                    forms[1],
                    f"a condition has one form, found {', '.join(forms)}",
                    "split them into separate conditions under `all:` or `any:`",
                )
            first = next(iter(raw), None)
            if first in OPERATORS or first in AGGREGATES:
                reason = f"'{first}' needs an `attribute:` or `event:` to apply to"
            elif first is None:
                reason = "the condition is empty"
            else:
                reason = f"unknown key '{first}'"
            raise SegmentError(
                reason,
                path=self.path,
                line=raw.key_lines.get(first, raw.line),
                key=str(first) if first is not None else key,
                fix="a condition starts with one of: " + ", ".join(FORMS),
            )
        form = forms[0]
        if form in ("all", "any"):
            self.only(raw, (form,), f"an `{form}` condition")
            items = raw[form]
            if not isinstance(items, LineList) or not items:
                raise self.error(
                    raw,
                    form,
                    f"`{form}` expects a non-empty list of conditions, got " + _kind(items),
                    f"write `{form}:` followed by `- condition` lines",
                )
            read = (
                self.problems.attempt(
                    partial(self.condition, item, items.item_lines[i], form), None, SegmentError
                )
                for i, item in enumerate(items)
            )
            parsed = tuple(condition for condition in read if condition is not None)
            cls = AllOf if form == "all" else AnyOf
            return cls(parsed, raw.key_lines[form])
        if form == "not":
            self.only(raw, ("not",), "a `not` condition")
            line = raw.key_lines["not"]
            return Not(self.condition(raw["not"], line, "not"), line)
        if form == "attribute":
            return self.attribute(raw)
        if form == "event":
            return self.event(raw)
        if form == "segment":
            self.only(raw, ("segment",), "a `segment` condition")
            name = raw["segment"]
            if not isinstance(name, str) or not name:
                raise self.error(
                    raw,
                    "segment",
                    "expected a segment name",
                    "write the file name without .yaml, e.g. `segment: families`",
                )
            return SegmentRef(name, raw.key_lines["segment"])
        if form in ("birthday_within", "anniversary_within"):
            self.only(raw, (form,), f"a `{form}` condition")
            duration = self.duration(raw, form)
            if duration.unit not in ("d", "w"):
                raise self.error(
                    raw,
                    form,
                    f"`{form}` takes days or weeks, got {duration}",
                    "write e.g. `7d` or `2w`",
                )
            days = duration.approx_days()
            if days < 1:
                raise self.error(raw, form, "the window must be at least one day", "write e.g. 7d")
            column = "birthday" if form == "birthday_within" else "customer_since"
            return DateWithin(form, column, duration, days, raw.key_lines[form])
        # nps
        self.only(raw, ("nps",), "an `nps` condition")
        klass = raw["nps"]
        if klass not in NPS_CLASSES:
            raise self.error(
                raw,
                "nps",
                f"unknown NPS class {klass!r}",
                "use promoter (9-10), passive (7-8) or detractor (0-6)",
            )
        low, high = NPS_CLASSES[klass]
        return Nps(klass, low, high, raw.key_lines["nps"])

    def duration(self, mapping: LineDict, key: str) -> Duration:
        try:
            return parse_duration(mapping[key])
        except ValueError as exc:
            raise self.error(mapping, key, str(exc), "write e.g. 30d, 6w, 3mo or 1y") from exc

    def attribute(self, raw: LineDict) -> Attribute:
        name = raw["attribute"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.error(
                raw,
                "attribute",
                f"expected an attribute name, got {name!r}",
                "write a column such as `city` or an imported attribute name",
            )
        if name in DATE_COLUMNS:
            kind = "date"
        elif name in TEXT_COLUMNS:
            kind = "text"
        else:
            kind = "json"
        op_keys = [k for k in raw if k != "attribute"]
        for key in op_keys:
            if key not in OPERATORS or key == "exactly":
                self.problems.add(
                    self.error(
                        raw,
                        str(key),
                        f"unknown operator '{key}' for an attribute",
                        "use one of: " + ", ".join(o for o in OPERATORS if o != "exactly"),
                    )
                )
        if not op_keys:
            raise self.error(
                raw,
                "attribute",
                f"attribute '{name}' has no operator",
                "add one, e.g. `equals: family` or `exists: true`",
            )
        ops = tuple(
            self.op(raw, str(k), kind, name) for k in op_keys if k in OPERATORS and k != "exactly"
        )
        return Attribute(name, kind, ops, raw.key_lines["attribute"])

    def event(self, raw: LineDict) -> Event:
        self.only(raw, EVENT_KEYS, "an `event` condition")
        event_type = raw["event"]
        if not isinstance(event_type, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", event_type):
            raise self.error(
                raw,
                "event",
                f"expected an event type, got {event_type!r}",
                "write e.g. `event: purchase`, `event: click` or `event: add_to_cart`",
            )
        within = self.duration(raw, "within") if "within" in raw else None
        filters: dict[str, tuple[str, ...] | None] = {}
        for key in ("tag", "product", "category"):
            filters[key] = self.texts(raw, key) if key in raw else None
        where: list[Property] = []
        if "where" in raw:
            props = raw["where"]
            if not isinstance(props, LineDict) or not props:
                raise self.error(
                    raw,
                    "where",
                    f"expected a mapping of properties, got {_kind(props)}",
                    "write e.g. `where: {amount: {at_least: 50}}`",
                )
            for prop, value in props.items():
                where.append(self.property(props, prop, value))
        aggregates = [k for k in raw if k in AGGREGATES]
        if len(aggregates) > 1:
            raise self.error(
                raw,
                aggregates[1],
                "an event condition has one aggregate",
                "combine two aggregates with `all:`",
            )
        aggregate = aggregates[0] if aggregates else "count"
        if aggregates:
            ops = self.op_map(raw, aggregate, aggregate)
        else:
            ops = (Op("at_least", 1, raw.line),)
        return Event(
            event_type,
            within,
            filters["tag"],
            filters["product"],
            filters["category"],
            tuple(where),
            aggregate,
            ops,
            raw.key_lines["event"],
        )

    def property(self, props: LineDict, name: Any, value: Any) -> Property:
        if not isinstance(name, str) or not _NAME.match(name) or name in ("type", "occurred_at"):
            raise self.error(
                props,
                str(name),
                f"'{name}' cannot be filtered in `where`",
                "name an event column (tag, url, product, category, amount, "
                "score) or property; use `event:` and `within:` for type and time",
            )
        if name in EVENT_TEXT_COLUMNS:
            kind = "text"
        elif name in EVENT_NUMBER_COLUMNS:
            kind = "number"
        else:
            kind = "json"
        line = props.key_lines[name]
        if isinstance(value, LineDict):
            return Property(name, kind, self.op_map(props, name, kind), line)
        if isinstance(value, LineList):
            return Property(
                name,
                kind,
                (self.check(Op("in", self.scalars(props, name, value), line), kind, props, name),),
                line,
            )
        op = Op("equals", self.scalar(props, name, value), line)
        return Property(name, kind, (self.check(op, kind, props, name),), line)

    def op_map(self, mapping: LineDict, key: str, kind: str) -> tuple[Op, ...]:
        value = mapping[key]
        if not isinstance(value, LineDict) or not value:
            raise self.error(
                mapping,
                key,
                f"expected an operator map, got {_kind(value)}",
                f"write e.g. `{key}: {{at_least: 2}}`",
            )
        allowed = AGGREGATE_OPERATORS if kind in AGGREGATES else OPERATORS
        shown = [o for o in allowed if o != "exactly" or kind in AGGREGATES]
        for op_key in value:
            if op_key not in shown:
                self.problems.add(
                    self.error(
                        value,
                        str(op_key),
                        f"unknown operator '{op_key}' for {key}",
                        "use one of: " + ", ".join(shown),
                    )
                )
        return tuple(self.op(value, str(k), kind, key) for k in value if k in shown)

    def op(self, mapping: LineDict, key: str, kind: str, subject: str) -> Op:
        """Read operator `key` of `mapping` and check its value suits a `kind` subject."""
        raw = mapping[key]
        line = mapping.key_lines[key]
        name = "equals" if key == "exactly" else key
        if name in ("in", "not_in"):
            if not isinstance(raw, LineList) or not raw:
                raise self.error(
                    mapping,
                    key,
                    f"`{key}` expects a non-empty list, got " + _kind(raw),
                    f"write e.g. `{key}: [a, b]`",
                )
            value: Value = self.scalars(mapping, key, raw)
        elif name == "exists":
            if not isinstance(raw, bool):
                raise self.error(
                    mapping,
                    key,
                    f"`exists` expects true or false, got {raw!r}",
                    "write `exists: true` or `exists: false`",
                )
            value = raw
        elif name in ("before", "after") and isinstance(raw, str):
            try:
                value = parse_duration(raw)
            except ValueError as exc:
                raise self.error(
                    mapping,
                    key,
                    str(exc),
                    f"write a date (YYYY-MM-DD) or a duration before as-of, e.g. `{key}: 90d`",
                ) from exc
        else:
            value = self.scalar(mapping, key, raw)
        return self.check(Op(name, value, line), kind, mapping, key, subject)

    def check(
        self, op: Op, kind: str, mapping: LineDict, key: str, subject: str | None = None
    ) -> Op:
        """Refuse operator/value combinations that cannot mean anything for this subject."""
        subject = subject or key
        values = op.value if isinstance(op.value, tuple) else (op.value,)

        def refuse(expected: str, fix: str) -> SegmentError:
            return self.error(
                mapping,
                key,
                f"`{op.name}` on {subject} expects {expected}, got {_show_value(op.value)}",
                fix,
            )

        if op.name == "exists":
            return op
        if kind in AGGREGATES:
            for v in values:
                is_number = isinstance(v, int | float) and not isinstance(v, bool)
                if not is_number or (kind != "sum" and (not isinstance(v, int) or v < 0)):
                    wanted = "a number" if kind == "sum" else "a whole number, 0 or more"
                    raise refuse(wanted, f"write e.g. `{op.name}: 2`")
            return op
        if op.name in ("before", "after"):
            if kind not in ("date", "json") or not all(
                isinstance(v, date | Duration) for v in values
            ):
                raise refuse(
                    "a date or a duration (on a date attribute)",
                    f"write e.g. `{op.name}: 2027-01-01` or `{op.name}: 90d`",
                )
            return op
        if op.name == "contains":
            if kind not in ("text", "json") or not isinstance(op.value, str):
                raise refuse("text (on a text attribute)", "write e.g. `contains: fire`")
            return op
        for v in values:
            if isinstance(v, Duration):
                raise refuse("a value, not a duration", "durations work with before and after")
        if op.name in ("at_least", "at_most"):
            v = values[0]
            if kind == "text" or isinstance(v, bool | str):
                raise refuse("a number or a date", f"write e.g. `{op.name}: 100`")
            if kind == "date" and not isinstance(v, date):
                raise refuse("a date", f"write e.g. `{op.name}: 2027-01-01`")
            if kind == "number" and not isinstance(v, int | float):
                raise refuse("a number", f"write e.g. `{op.name}: 100`")
            return op
        # equals, not_equals, in, not_in
        for v in values:
            if kind == "text" and not isinstance(v, str):
                raise refuse("text", f'put the value in quotes, e.g. `{op.name}: "{v}"`')
            if kind == "date" and not isinstance(v, date):
                raise refuse("a date", f"write e.g. `{op.name}: 2027-01-01`")
            if kind == "number" and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise refuse("a number", f"write e.g. `{op.name}: 10`")
        return op

    def scalar(self, mapping: LineDict, key: str, raw: Any) -> Scalar:
        if isinstance(raw, str | int | float | bool | date) and not isinstance(raw, LineDict):
            return raw
        raise self.error(
            mapping,
            key,
            f"expected a single value, got {_kind(raw)}",
            "write a text, number, date or true/false",
        )

    def scalars(self, mapping: LineDict, key: str, raw: LineList) -> tuple[Scalar, ...]:
        return tuple(self.scalar(mapping, key, item) for item in raw)

    def texts(self, mapping: LineDict, key: str) -> tuple[str, ...]:
        raw = mapping[key]
        items = list(raw) if isinstance(raw, LineList) else [raw]
        if not items or not all(isinstance(item, str) for item in items):
            raise self.error(
                mapping,
                key,
                f"`{key}` expects text or a list of texts, got " + _kind(raw),
                f"write e.g. `{key}: fire-safety` (quote numbers)",
            )
        return tuple(items)


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _show_value(value: Value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    if isinstance(value, Duration):
        return str(value)
    return repr(value)

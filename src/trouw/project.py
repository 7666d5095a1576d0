"""A campaign project: find `trouw.toml`, load and validate its settings.

A project is a folder with `trouw.toml`, `segments/`, `templates/` and
`campaigns/`. It is found from the current directory upwards, or named
explicitly. Every setting has its default here, in one place.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trouw.durations import parse_duration
from trouw.errors import ProjectError

SETTINGS_FILE = "trouw.toml"
DEFAULT_DATABASE = ".trouw/trouw.db"
DATABASE_ENV = "TROUW_DATABASE_URL"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Sender:
    from_address: str = "trouw <noreply@example.com>"
    reply_to: str | None = None
    postal_address: str = ""


@dataclass(frozen=True)
class Policy:
    max_per_week: int = 2
    max_per_month: int = 6
    min_gap: str = "2d"
    quiet_days: tuple[str, ...] = ("sunday",)
    defer_for: str = "7d"
    send_window: str | None = None  # HH:MM-HH:MM in the contact's time zone; None: any hour


@dataclass(frozen=True)
class Settings:
    name: str
    timezone: str = "Europe/Amsterdam"
    locale: str = "nl"
    database: str | None = None
    sender: Sender = field(default_factory=Sender)
    tracking_base_url: str = "http://127.0.0.1:8025"
    policy: Policy = field(default_factory=Policy)
    letters_dir: str | None = None  # where `send` writes letters for post contacts

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Project:
    root: Path
    settings: Settings

    @property
    def settings_path(self) -> Path:
        return self.root / SETTINGS_FILE

    @property
    def segments_dir(self) -> Path:
        return self.root / "segments"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def campaigns_dir(self) -> Path:
        return self.root / "campaigns"

    @property
    def letters_dir(self) -> Path | None:
        """`[letters] dir`, relative to the project."""
        folder = self.settings.letters_dir
        return self.root / folder if folder else None

    @property
    def state_dir(self) -> Path:
        """Where trouw keeps its own files (the default database, demo data)."""
        return self.root / ".trouw"

    def database_url(self, override: str | None = None) -> str:
        """--db, else TROUW_DATABASE_URL, else `database` in trouw.toml, else SQLite."""
        url = override or os.environ.get(DATABASE_ENV) or self.settings.database
        if url:
            return url
        return f"sqlite:///{self.root / DEFAULT_DATABASE}"


def find_project(explicit: Path | None = None, start: Path | None = None) -> Project:
    """Load the project named by `explicit`, or the nearest one above `start`."""
    if explicit is not None:
        root = explicit.resolve()
        if not (root / SETTINGS_FILE).is_file():
            raise ProjectError(
                f"no {SETTINGS_FILE} in {root}",
                fix=f"run `trouw init {explicit}` to create a project there",
            )
        return load_project(root)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).is_file():
            return load_project(folder)
    raise ProjectError(
        f"no {SETTINGS_FILE} found in {here} or any folder above it",
        fix="cd into a project, pass --project DIR, or run `trouw init DIR`",
    )


def load_project(root: Path) -> Project:
    path = root / SETTINGS_FILE
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise ProjectError(
            f"not valid TOML: {exc}", path=path, line=line, fix="correct the TOML syntax"
        ) from exc
    return Project(root=root, settings=_SettingsReader(path, text).read(raw, root.name))


class _SettingsReader:
    """Validates trouw.toml section by section, naming file, line and key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def read(self, raw: dict[str, Any], default_name: str) -> Settings:
        self._only(raw, "", {"project", "sender", "tracking", "policy", "letters"})
        project = self._table(raw, "project")
        sender = self._table(raw, "sender")
        tracking = self._table(raw, "tracking")
        policy = self._table(raw, "policy")
        letters = self._table(raw, "letters")
        self._only(letters, "letters", {"dir"})
        self._only(project, "project", {"name", "timezone", "locale", "database"})
        self._only(sender, "sender", {"from", "reply_to", "postal_address"})
        self._only(tracking, "tracking", {"base_url"})
        self._only(
            policy,
            "policy",
            {"max_per_week", "max_per_month", "min_gap", "quiet_days", "defer_for", "send_window"},
        )
        defaults = Settings(name=default_name)
        timezone = self._get(project, "project", "timezone", str, defaults.timezone)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise self._error(
                "project",
                "timezone",
                f"unknown time zone '{timezone}'",
                "use an IANA name such as Europe/Amsterdam",
            ) from exc
        return Settings(
            name=self._get(project, "project", "name", str, default_name),
            timezone=timezone,
            locale=self._get(project, "project", "locale", str, defaults.locale),
            database=self._get(project, "project", "database", str, None),
            sender=Sender(
                from_address=self._get(sender, "sender", "from", str, Sender.from_address),
                reply_to=self._get(sender, "sender", "reply_to", str, None),
                postal_address=self._get(
                    sender, "sender", "postal_address", str, Sender.postal_address
                ),
            ),
            tracking_base_url=self._get(
                tracking, "tracking", "base_url", str, defaults.tracking_base_url
            ),
            policy=self._policy(policy),
            letters_dir=self._get(letters, "letters", "dir", str, None),
        )

    def _policy(self, table: dict[str, Any]) -> Policy:
        base = Policy()
        for key in ("min_gap", "defer_for"):
            value = self._get(table, "policy", key, str, getattr(base, key))
            try:
                parse_duration(value)
            except ValueError as exc:
                raise self._error("policy", key, str(exc), 'write e.g. "2d" or "1w"') from exc
        window = self._get(table, "policy", "send_window", str, None)
        hours = r"([01]\d|2[0-3]):[0-5]\d"
        if window is not None and not re.fullmatch(f"{hours}-{hours}", window):
            raise self._error(
                "policy",
                "send_window",
                f"expected HH:MM-HH:MM, got '{window}'",
                'write e.g. "09:00-17:00"',
            )
        quiet = self._get(table, "policy", "quiet_days", list, list(base.quiet_days))
        for day in quiet:
            if not isinstance(day, str) or not (
                day.lower() in WEEKDAYS or re.fullmatch(r"holidays:[A-Z]{2}", day)
            ):
                raise self._error(
                    "policy",
                    "quiet_days",
                    f"'{day}' is not a weekday or holidays:CC",
                    'use weekday names and public holidays, e.g. ["sunday", "holidays:NL"]',
                )
        caps = {}
        for key in ("max_per_week", "max_per_month"):
            caps[key] = self._get(table, "policy", key, int, getattr(base, key))
            if caps[key] < 1:
                raise self._error(
                    "policy",
                    key,
                    f"{key} = {caps[key]} would let no promotional mail through at all",
                    "write at least 1 (service mails ignore the caps anyway)",
                )
        for day in quiet:
            if isinstance(day, str) and day.startswith("holidays:"):
                import holidays  # only when holidays are named: it takes a while to import

                country = day.split(":", 1)[1]
                if country not in holidays.list_supported_countries():
                    raise self._error(
                        "policy",
                        "quiet_days",
                        f"no public holidays are known for '{country}'",
                        "use a two-letter country code such as holidays:NL or holidays:BE",
                    )
        return Policy(
            max_per_week=caps["max_per_week"],
            max_per_month=caps["max_per_month"],
            min_gap=table.get("min_gap", base.min_gap),
            quiet_days=tuple(d.lower() if d.lower() in WEEKDAYS else d for d in quiet),
            defer_for=table.get("defer_for", base.defer_for),
            send_window=window,
        )

    def _table(self, raw: dict[str, Any], name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise self._error("", name, "expected a table", f"write it as a [{name}] section")
        return value

    def _only(self, table: dict[str, Any], section: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                raise self._error(
                    section,
                    key,
                    "unknown setting",
                    f"known keys{' in [' + section + ']' if section else ''}: "
                    + ", ".join(sorted(known)),
                )

    def _get(self, table: dict[str, Any], section: str, key: str, kind: type, default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        # bool is an int in Python; a setting that wants a number must not take `true`.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = {str: "a string", int: "a whole number", list: "a list"}[kind]
            raise self._error(
                section,
                key,
                f"expected {expected}, got {type(value).__name__} {value!r}",
                f"write {key} as {expected}",
            )
        return value

    def _error(self, section: str, key: str, reason: str, fix: str) -> ProjectError:
        dotted = f"{section}.{key}" if section else key
        return ProjectError(
            reason, path=self.path, line=self._line_of(section, key), key=dotted, fix=fix
        )

    def _line_of(self, section: str, key: str) -> int | None:
        """The line where `key` is set inside `[section]` (tomllib keeps no positions)."""
        current = ""
        for number, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped)
            if header:
                current = header.group(1)
                if not section and current == key:
                    return number
                continue
            if current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        return None

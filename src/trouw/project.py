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
from email.headerregistry import AddressHeader, HeaderRegistry
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trouw.bounces.verp import MAX_LOCAL_PART
from trouw.durations import parse_duration
from trouw.errors import ProjectError
from trouw.experiments import parse_share
from trouw.problems import Problems
from trouw.yamlfile import read_text

SETTINGS_FILE = "trouw.toml"
DEFAULT_DATABASE = ".trouw/trouw.db"
DATABASE_ENV = "TROUW_DATABASE_URL"
DAYS_IN_A_YEAR = 366  # a duration longer than this (min_gap, defer_for) is surely a typo
# Where Amazon SNS keeps the certificates it signs messages with (`[webhooks]
# sns_cert_url_pattern` replaces it, for a test server).
SNS_CERT_URL_PATTERN = r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9._/-]+\.pem"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Sender:
    from_address: str = "trouw <noreply@example.com>"
    reply_to: str | None = None
    postal_address: str = ""
    # The country of the postal address (ISO 3166 code): a letter to an address there
    # gets no country line. Empty: the country of the project's locale (nl -> NL).
    country: str = ""
    # The bounce mailbox, e.g. bounce@shop.example: each mail's envelope sender is then
    # bounce+TOKEN@shop.example, signed and naming the mail (bounces/verp.py). None: From.
    return_path: str | None = None


@dataclass(frozen=True)
class Policy:
    max_per_week: int = 2
    max_per_month: int = 6
    min_gap: str = "2d"
    quiet_days: tuple[str, ...] = ("sunday",)
    defer_for: str = "7d"
    send_window: str | None = None  # HH:MM-HH:MM in the contact's time zone; None: any hour
    # The share of contacts (by a stable hash per year) that gets no promotional or lifecycle
    # mail that year, only service mail: what the program's lift is measured against.
    control_group: float | None = None
    # "best": every promotional and lifecycle campaign sends at each contact's best hour
    # (planning/send_time.py), as a campaign's own `send_time: best` does.
    send_time: str | None = None


@dataclass(frozen=True)
class Webhooks:
    """`[webhooks]`: which provider endpoints `trouw serve` answers, and how each is verified.

    Secrets are named by environment variable, never written in the file; a
    provider with nothing configured has no endpoint (404).
    """

    ses_topic_arns: tuple[str, ...] = ()  # the SNS topics whose SES feedback is taken
    sns_cert_url_pattern: str = SNS_CERT_URL_PATTERN
    sns_confirm_subscriptions: bool = False  # fetch a SubscribeURL instead of logging it
    postmark_user: str | None = None
    postmark_password_env: str | None = None
    sendgrid_public_key: str | None = None  # base64 DER (as SendGrid shows it) or PEM
    mailgun_signing_key_env: str | None = None


@dataclass(frozen=True)
class Brand:
    """`[brand]`: how the pages contacts see on `trouw serve` look (unsubscribe and preferences,
    survey thanks)."""

    color: str = "#2f6b3a"  # buttons and headings, as #rgb or #rrggbb


@dataclass(frozen=True)
class Bounces:
    """`[bounces]`: how `trouw bounces fetch` reads a bounce mailbox."""

    soft_limit: int = 3  # soft bounces of one contact within soft_window that suppress it
    soft_window: str = "30d"
    # "any-case": Frank@shop.example is frank@shop.example (what mailbox providers do);
    # "exact": the local part is case-sensitive, as RFC 5321 allows. Domains never are.
    local_part: str = "any-case"
    folder: str = "trouw-processed"  # where processed messages go (IMAP, maildir)


LOCAL_PART_RULES = ("any-case", "exact")
# Every section of trouw.toml and the keys it takes: what the reader accepts (and what
# docs/trouw-toml.md must describe, tests/test_reference.py checks).
SETTINGS_KEYS: dict[str, tuple[str, ...]] = {
    "project": ("name", "timezone", "locale", "database"),
    "sender": ("from", "reply_to", "postal_address", "country", "return_path"),
    "tracking": ("base_url",),
    "policy": (
        "max_per_week", "max_per_month", "min_gap", "quiet_days", "defer_for", "send_window",
        "control_group", "send_time",
    ),
    "letters": ("dir",),
    "webhooks": tuple(Webhooks.__dataclass_fields__),
    "brand": ("color",),
    "bounces": ("soft_limit", "soft_window", "local_part", "folder"),
}  # fmt: skip


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
    bounces: Bounces = field(default_factory=Bounces)
    brand: Brand = field(default_factory=Brand)
    webhooks: Webhooks = field(default_factory=Webhooks)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def home_country(self) -> str:
        """The sender's country: `[sender] country`, else the one of the project's locale."""
        return self.sender.country or locale_country(self.locale)


def locale_country(locale: str) -> str:
    """The country a language code most likely means (nl -> NL, de -> DE, en -> US), or ''."""
    parts = locale.replace("-", "_").split("_")
    if len(parts) > 1 and len(parts[-1]) == 2 and parts[-1].isalpha():
        return parts[-1].upper()
    from babel.core import get_global

    likely = str(get_global("likely_subtags").get(parts[0].lower(), ""))
    territory = likely.rpartition("_")[2]
    return territory if len(territory) == 2 and territory.isalpha() else ""


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


def find_root(explicit: Path | None = None, start: Path | None = None) -> Path:
    """The folder of the project named by `explicit`, or of the nearest one above `start`."""
    if explicit is not None:
        root = explicit.resolve()
        if not (root / SETTINGS_FILE).is_file():
            raise ProjectError(
                f"no {SETTINGS_FILE} in {root}",
                fix=f"run `trouw init {explicit}` to create a project there",
            )
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).is_file():
            return folder
    raise ProjectError(
        f"no {SETTINGS_FILE} found in {here} or any folder above it",
        fix="cd into a project, pass --project DIR, or run `trouw init DIR`",
    )


def find_project(explicit: Path | None = None, start: Path | None = None) -> Project:
    """Load the project named by `explicit`, or the nearest one above `start`."""
    return load_project(find_root(explicit, start))


def load_project(root: Path, problems: Problems | None = None) -> Project:
    """The project at `root`. Its first problem is raised; with `problems`, every problem of
    trouw.toml is reported there instead and a setting in error keeps its default."""
    report = Problems.first() if problems is None else problems
    path = root / SETTINGS_FILE
    try:
        text = read_text(path, ProjectError)
    except ProjectError as exc:
        report.add(exc)
        return Project(root=root, settings=Settings(name=root.name))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 names the line; before, only the message does: "(at line 3, column 9)".
        found = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        report.add(
            ProjectError(
                f"not valid TOML: {exc}", path=path, line=line, fix="correct the TOML syntax"
            )
        )
        return Project(root=root, settings=Settings(name=root.name))
    return Project(root=root, settings=_SettingsReader(path, text, report).read(raw, root.name))


def address_problem(value: str) -> str | None:
    """What is wrong with a From or Reply-To address (`Name <box@domain>`), or None."""
    if any(char in value for char in "\r\n"):
        return "it contains a line break"
    try:
        header = HeaderRegistry()("From", value)
    except Exception:  # the standard library's parser trips over some garbage (AttributeError)
        return "it cannot be read as an address"
    boxes = header.addresses if isinstance(header, AddressHeader) else ()
    if len(boxes) != 1:
        return "expected one address" if boxes else "there is no address"
    box = boxes[0]
    if header.defects or not box.username or not box.domain:
        return "it is not a valid address (write `Name <box@domain.example>`)"
    return None


def url_problem(value: str) -> str | None:
    """What is wrong with a base URL links are made from (absolute http or https), or None."""
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 host
        return f"it cannot be read as a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "expected an absolute http(s) URL"
    if parts.query or parts.fragment or any(char.isspace() for char in value):
        return "a base URL has no spaces, query (?) or fragment (#)"
    return None


class _SettingsReader:
    """Validates trouw.toml section by section, naming file, line and key.

    A problem is reported to `problems` (which raises the first when loading) and
    the setting keeps its default, so every other setting is still checked.
    """

    def __init__(self, path: Path, text: str, problems: Problems) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.problems = problems

    def read(self, raw: dict[str, Any], default_name: str) -> Settings:
        self._only(raw, "", set(SETTINGS_KEYS))
        project = self._table(raw, "project")
        sender = self._table(raw, "sender")
        tracking = self._table(raw, "tracking")
        policy = self._table(raw, "policy")
        letters = self._table(raw, "letters")
        for section, table in (
            ("letters", letters),
            ("project", project),
            ("sender", sender),
            ("tracking", tracking),
            ("policy", policy),
        ):
            self._only(table, section, set(SETTINGS_KEYS[section]))
        defaults = Settings(name=default_name)
        timezone = self._get(project, "project", "timezone", str, defaults.timezone)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self._report(
                "project",
                "timezone",
                f"unknown time zone '{timezone}'",
                "use an IANA name such as Europe/Amsterdam",
            )
            timezone = defaults.timezone
        return Settings(
            name=self._get(project, "project", "name", str, default_name),
            timezone=timezone,
            locale=self._get(project, "project", "locale", str, defaults.locale),
            database=self._get(project, "project", "database", str, None),
            sender=self._sender(sender),
            tracking_base_url=self._base_url(tracking, defaults.tracking_base_url),
            policy=self._policy(policy),
            letters_dir=self._get(letters, "letters", "dir", str, None),
            bounces=self._bounces(self._table(raw, "bounces")),
            brand=self._brand(self._table(raw, "brand")),
            webhooks=self._webhooks(self._table(raw, "webhooks")),
        )

    def _bounces(self, table: dict[str, Any]) -> Bounces:
        base = Bounces()
        self._only(table, "bounces", set(SETTINGS_KEYS["bounces"]))
        limit = self._get(table, "bounces", "soft_limit", int, base.soft_limit)
        if limit < 1:
            self._report(
                "bounces",
                "soft_limit",
                f"soft_limit = {limit}: at least one soft bounce must be counted",
                "write how many soft bounces within soft_window suppress an address, e.g. 3",
            )
            limit = base.soft_limit
        window = self._get(table, "bounces", "soft_window", str, base.soft_window)
        try:
            days = parse_duration(window).approx_days()
        except ValueError as exc:
            self._report("bounces", "soft_window", str(exc), 'write e.g. "30d" or "4w"')
            window, days = base.soft_window, 1
        if not 1 <= days <= DAYS_IN_A_YEAR:
            self._report(
                "bounces",
                "soft_window",
                f"soft_window = {window}: expected a day to a year",
                'write e.g. "30d" or "4w"',
            )
            window = base.soft_window
        rule = self._get(table, "bounces", "local_part", str, base.local_part)
        if rule not in LOCAL_PART_RULES:
            self._report(
                "bounces",
                "local_part",
                f"'{rule}' is not one of {', '.join(LOCAL_PART_RULES)}",
                'write local_part = "any-case" (Frank@ is frank@) or "exact"',
            )
            rule = base.local_part
        folder = self._get(table, "bounces", "folder", str, base.folder)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", folder):
            self._report(
                "bounces",
                "folder",
                f"'{folder}' cannot name a mailbox folder",
                "use letters, digits, '-', '_' and '.', e.g. trouw-processed",
            )
            folder = base.folder
        return Bounces(soft_limit=limit, soft_window=window, local_part=rule, folder=folder)

    def _sender(self, table: dict[str, Any]) -> Sender:
        base = Sender()
        values = {}
        for key, header in (("from", "From"), ("reply_to", "Reply-To")):
            value = values[key] = self._get(table, "sender", key, str, None)
            problem = address_problem(value) if value is not None else None
            if problem:
                self._report(
                    "sender",
                    key,
                    f"'{value}' cannot be the {header} address: {problem}",
                    'write e.g. "Shop name <hello@shop.example>"',
                    loads=True,
                )
        return Sender(
            from_address=values["from"] or base.from_address,
            reply_to=values["reply_to"],
            postal_address=self._get(table, "sender", "postal_address", str, base.postal_address),
            country=self._country(table),
            return_path=self._return_path(table),
        )

    def _return_path(self, table: dict[str, Any]) -> str | None:
        value = self._get(table, "sender", "return_path", str, None)
        if value is None:
            return None
        local, _, domain = value.strip().rpartition("@")
        if not re.fullmatch(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LOCAL_PART - 1}}}", local):
            why = (
                "its local part has a '+'"
                if "+" in local
                else f"the part before @ must be 1 to {MAX_LOCAL_PART} letters, digits, '.', "
                "'_' or '-'"
            )
        elif not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", domain):
            why = "it names no domain"
        else:
            return f"{local}@{domain.lower()}"
        self._report(
            "sender",
            "return_path",
            f"'{value}' cannot be the return path: {why}",
            'write the bounce mailbox\'s bare address, e.g. return_path = "bounce@shop.example"'
            " (its server must deliver bounce+anything@ there)",
        )
        return None

    def _country(self, table: dict[str, Any]) -> str:
        country = str(self._get(table, "sender", "country", str, Sender.country))
        if country and not re.fullmatch(r"[A-Za-z]{2}", country):
            self._report(
                "sender",
                "country",
                f"'{country}' is not a two-letter country code",
                'write the ISO 3166 code of the postal address, e.g. country = "NL"',
            )
            return Sender.country
        return country.upper()

    def _brand(self, table: dict[str, Any]) -> Brand:
        self._only(table, "brand", set(SETTINGS_KEYS["brand"]))
        color = str(self._get(table, "brand", "color", str, Brand.color))
        if not re.fullmatch(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}", color):
            self._report(
                "brand",
                "color",
                f"'{color}' is not a colour",
                'write it as #rrggbb, e.g. color = "#2f6b3a"',
            )
            return Brand()
        return Brand(color=color.lower())

    def _base_url(self, table: dict[str, Any], default: str) -> str:
        value: str = self._get(table, "tracking", "base_url", str, default)
        problem = url_problem(value)
        if problem:
            self._report(
                "tracking",
                "base_url",
                f"'{value}' cannot start the links in mails: {problem}",
                'write where `trouw serve` is reachable, e.g. "https://t.shop.example"',
                loads=True,
            )
        return value

    def _webhooks(self, table: dict[str, Any]) -> Webhooks:
        self._only(table, "webhooks", set(SETTINGS_KEYS["webhooks"]))
        arns = []
        for arn in self._get(table, "webhooks", "ses_topic_arns", list, []):
            if isinstance(arn, str) and _TOPIC_ARN.fullmatch(arn):
                arns.append(arn)
            else:
                self._report(
                    "webhooks",
                    "ses_topic_arns",
                    f"{arn!r} is not the ARN of an SNS topic",
                    'write e.g. ["arn:aws:sns:eu-west-1:123456789012:ses-feedback"]',
                )
        pattern = self._get(table, "webhooks", "sns_cert_url_pattern", str, SNS_CERT_URL_PATTERN)
        try:
            re.compile(pattern)
        except re.error as exc:
            self._report(
                "webhooks",
                "sns_cert_url_pattern",
                f"not a regular expression: {exc}",
                "leave it out: the default allows Amazon's own certificate addresses only",
            )
            pattern = SNS_CERT_URL_PATTERN
        envs = {}
        for key in ("postmark_password_env", "mailgun_signing_key_env"):
            name = envs[key] = self._get(table, "webhooks", key, str, None)
            if name is not None and not _ENV_NAME.fullmatch(name):
                self._report(
                    "webhooks",
                    key,
                    f"'{name}' is not the name of an environment variable",
                    f'name the variable that holds the secret, e.g. {key} = "{key[:-4].upper()}"',
                )
                envs[key] = None
        user = self._get(table, "webhooks", "postmark_user", str, None)
        if (user is None) != (envs["postmark_password_env"] is None):
            self._report(
                "webhooks",
                "postmark_user" if user is None else "postmark_password_env",
                "Postmark's webhook needs both a user and the variable of its password",
                'set postmark_user = "postmark" and postmark_password_env = '
                '"POSTMARK_WEBHOOK_PASSWORD"',
            )
            user = envs["postmark_password_env"] = None
        return Webhooks(
            ses_topic_arns=tuple(arns),
            sns_cert_url_pattern=pattern,
            sns_confirm_subscriptions=self._get(
                table, "webhooks", "sns_confirm_subscriptions", bool, False
            ),
            postmark_user=user,
            postmark_password_env=envs["postmark_password_env"],
            sendgrid_public_key=self._sendgrid_key(table),
            mailgun_signing_key_env=envs["mailgun_signing_key_env"],
        )

    def _sendgrid_key(self, table: dict[str, Any]) -> str | None:
        key: str | None = self._get(table, "webhooks", "sendgrid_public_key", str, None)
        if key is None:
            return None
        # Only when a key is given: cryptography takes a while to import.
        from trouw.signatures import KeyProblem, sendgrid_key

        try:
            sendgrid_key(key)
        except KeyProblem as exc:
            self._report(
                "webhooks",
                "sendgrid_public_key",
                f"not SendGrid's verification key: {exc}",
                "copy the key from Settings > Mail Settings > Event Webhook (signed)",
            )
            return None
        return key

    def _policy(self, table: dict[str, Any]) -> Policy:
        base = Policy()
        durations = {}
        for key in ("min_gap", "defer_for"):
            value = self._get(table, "policy", key, str, getattr(base, key))
            try:
                length = parse_duration(value).approx_days()
            except ValueError as exc:
                self._report("policy", key, str(exc), 'write e.g. "2d" or "1w"')
                value, length = getattr(base, key), 0
            if length > DAYS_IN_A_YEAR:
                what = "between two mails" if key == "min_gap" else "a capped mail may wait"
                self._report(
                    "policy",
                    key,
                    f"{key} = {value} is longer than a year ({what})",
                    'write days or weeks, e.g. "2d" or "1w"',
                    loads=True,
                )
            durations[key] = value
        window = self._get(table, "policy", "send_window", str, None)
        hours = r"([01]\d|2[0-3]):[0-5]\d"
        if window is not None and not re.fullmatch(f"{hours}-{hours}", window):
            self._report(
                "policy",
                "send_window",
                f"expected HH:MM-HH:MM, got '{window}'",
                'write e.g. "09:00-17:00"',
            )
            window = None
        control = self._get(table, "policy", "control_group", str, None)
        share = None
        if control is not None:
            try:
                share = parse_share(control)
            except ValueError as exc:
                self._report("policy", "control_group", str(exc), 'write e.g. "5%"')
        send_time = self._get(table, "policy", "send_time", str, None)
        if send_time is not None and send_time != "best":
            self._report(
                "policy",
                "send_time",
                f"unknown send_time '{send_time}'",
                'write send_time = "best", or leave it out to send at the run\'s hour',
            )
            send_time = None
        quiet = [
            day
            for day in self._get(table, "policy", "quiet_days", list, list(base.quiet_days))
            if self._quiet_day(day)
        ]
        caps = {}
        for key in ("max_per_week", "max_per_month"):
            caps[key] = self._get(table, "policy", key, int, getattr(base, key))
            if caps[key] < 1:
                self._report(
                    "policy",
                    key,
                    f"{key} = {caps[key]} would let no promotional mail through at all",
                    "write at least 1 (service mails ignore the caps anyway)",
                )
                caps[key] = getattr(base, key)
        if caps["max_per_week"] > caps["max_per_month"]:
            self._report(
                "policy",
                "max_per_week",
                f"max_per_week = {caps['max_per_week']} is more than max_per_month = "
                f"{caps['max_per_month']}: the weekly cap can never be reached",
                "make max_per_week at most max_per_month",
                loads=True,
            )
        return Policy(
            max_per_week=caps["max_per_week"],
            max_per_month=caps["max_per_month"],
            min_gap=durations["min_gap"],
            quiet_days=tuple(d.lower() if d.lower() in WEEKDAYS else d for d in quiet),
            defer_for=durations["defer_for"],
            send_window=window,
            control_group=share,
            send_time=send_time,
        )

    def _quiet_day(self, day: Any) -> bool:
        """Whether `day` is a weekday or holidays:CC with holidays known; reported if not."""
        fix = 'use weekday names and public holidays, e.g. ["sunday", "holidays:NL"]'
        if not isinstance(day, str) or not (
            day.lower() in WEEKDAYS or re.fullmatch(r"holidays:[A-Z]{2}", day)
        ):
            self._report("policy", "quiet_days", f"'{day}' is not a weekday or holidays:CC", fix)
            return False
        if day.startswith("holidays:"):
            # Only when holidays are named: it takes a while to import. The registry's codes,
            # not list_supported_countries(), which loads every country's module (0.1 s).
            from holidays.registry import EntityLoader

            country = day.split(":", 1)[1]
            if country not in set(EntityLoader.get_country_codes()):
                self._report(
                    "policy",
                    "quiet_days",
                    f"no public holidays are known for '{country}'",
                    "use a two-letter country code such as holidays:NL or holidays:BE",
                )
                return False
        return True

    def _table(self, raw: dict[str, Any], name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            self._report("", name, "expected a table", f"write it as a [{name}] section")
            return {}
        return value

    def _only(self, table: dict[str, Any], section: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                self._report(
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
            expected = {
                str: "a string",
                int: "a whole number",
                list: "a list",
                bool: "true or false",
            }[kind]
            self._report(
                section,
                key,
                f"expected {expected}, got {type(value).__name__} {value!r}",
                f"write {key} as {expected}",
            )
            return default
        return value

    def _report(
        self, section: str, key: str, reason: str, fix: str, *, loads: bool = False
    ) -> None:
        dotted = f"{section}.{key}" if section else key
        error = ProjectError(
            reason, path=self.path, line=self._line_of(section, key), key=dotted, fix=fix
        )
        self.problems.add(error, loads=loads)

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

"""The preference centre behind the unsubscribe link (`/u/TOKEN`): less mail, not none.

The page offers four choices, each a form that POSTs to the page's own
address (the signed token is the only credential: no cookie, no session):

- all marketing: an `unsubscribe` event tagged with the campaign, as RFC 8058
  one-click does (a POST without a `choice` is always that);
- one topic: `unsubscribe` tagged `topic:NAME`, properties {campaign, topic};
- a pause: `pause` with properties {campaign, until: YYYY-MM-DD};
- letters by post: the contact's channel becomes `post` (and its address is
  set when given), recorded as a `preference` event tagged `channel:post`,
  properties {campaign, channel, previous}.

What these events mean for the plan and the send is decided in one place,
`planning.candidates` (`stop_reason`, `held_back`). This module only records
the choice, and every field is checked first: a bad one shows the page again
with the message. The page speaks Dutch or English and wears `[brand] color`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from babel.dates import format_date
from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection, Engine, and_, insert, select, update

from trouw.campaigns import TOPIC_NAME
from trouw.planning.candidates import PAUSE, pause_until
from trouw.project import Project
from trouw.store import atomic, contacts, events
from trouw.tracking.chrome import render, template
from trouw.tracking.pages import language
from trouw.tracking.record import TOPIC_TAG, UNSUBSCRIBE, is_unsubscribed

PREFERENCE = "preference"  # the event of a channel switch
LONGEST_PAUSE_DAYS = 365
PAUSE_MONTHS = (1, 3)
# Bounds of the address form: the columns allow more, a real address needs less.
FIELD_LIMITS = {"street": 100, "postcode": 12, "city": 60, "country": 2}
_POSTCODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

TEXTS: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Je e-mailvoorkeuren",
        "hello": "Hallo {name}, kies wat je van {shop} wilt ontvangen.",
        "intro": "Kies wat je van {shop} wilt ontvangen.",
        "topics": "Minder over één onderwerp",
        "topics_text": "Meld je af voor één onderwerp; de andere mails blijven komen.",
        "topic_button": "Afmelden",
        "topic_left": "afgemeld",
        "pause": "Even pauze",
        "pause_text": "Een tijd geen nieuwsbrieven en aanbiedingen. "
        "Berichten over je bestellingen blijven komen.",
        "paused_now": "Je mail is gepauzeerd tot {until}.",
        "month_1": "1 maand",
        "month_3": "3 maanden",
        "until_label": "Of tot een datum",
        "pause_button": "Pauzeer",
        "post": "Liever per post",
        "post_text": "Ontvang onze post voortaan als brief in plaats van per e-mail.",
        "street": "Straat en huisnummer",
        "postcode": "Postcode",
        "city": "Plaats",
        "country": "Land (bijv. NL)",
        "post_button": "Stuur me brieven",
        "all": "Afmelden",
        "question": "Wil je geen nieuwsbrieven en aanbiedingen meer ontvangen van {shop}?",
        "button": "Ja, meld me af",
        "done_title": "Je bent afgemeld",
        "done": "Je ontvangt geen nieuwsbrieven en aanbiedingen meer van {shop}.",
        "topic_done_title": "Afgemeld voor {topic}",
        "topic_done": "Je ontvangt van {shop} geen mail meer over {topic}. "
        "De andere mails blijven komen.",
        "pause_done_title": "Gepauzeerd",
        "pause_done": "Tot {until} ontvang je geen nieuwsbrieven en aanbiedingen van {shop}. "
        "Berichten over je bestellingen blijven komen.",
        "post_done_title": "Voortaan per post",
        "post_done": "{shop} stuurt je post voortaan als brief naar: {address}.",
        "back": "Terug naar je voorkeuren",
        "bad_choice": "Die keuze kennen we niet. Kies hieronder opnieuw.",
        "bad_topic": "Dat onderwerp kennen we niet. Kies een van de onderwerpen hieronder.",
        "bad_until": "Kies een datum na vandaag en binnen een jaar.",
        "bad_street": "Vul je straat en huisnummer in (hoogstens 100 tekens).",
        "bad_postcode": "Vul een geldige postcode in (hoogstens 12 letters en cijfers).",
        "bad_city": "Vul je woonplaats in (hoogstens 60 tekens).",
        "bad_country": "Vul het land in als code van twee letters, bijv. NL of BE.",
    },
    "en": {
        "title": "Your e-mail preferences",
        "hello": "Hello {name}, choose what you would like to receive from {shop}.",
        "intro": "Choose what you would like to receive from {shop}.",
        "topics": "Less about one topic",
        "topics_text": "Unsubscribe from one topic; the other mails keep coming.",
        "topic_button": "Unsubscribe",
        "topic_left": "unsubscribed",
        "pause": "Take a break",
        "pause_text": "No newsletters and offers for a while. "
        "Messages about your orders keep coming.",
        "paused_now": "Your mail is paused until {until}.",
        "month_1": "1 month",
        "month_3": "3 months",
        "until_label": "Or until a date",
        "pause_button": "Pause",
        "post": "Rather by post",
        "post_text": "Get our mail as a letter from now on, instead of by e-mail.",
        "street": "Street and number",
        "postcode": "Postcode",
        "city": "Town",
        "country": "Country (e.g. NL)",
        "post_button": "Send me letters",
        "all": "Unsubscribe",
        "question": "Would you rather not receive newsletters and offers from {shop}?",
        "button": "Yes, unsubscribe me",
        "done_title": "You are unsubscribed",
        "done": "You will no longer receive newsletters and offers from {shop}.",
        "topic_done_title": "Unsubscribed from {topic}",
        "topic_done": "{shop} will no longer mail you about {topic}. The other mails keep coming.",
        "pause_done_title": "Paused",
        "pause_done": "Until {until} you will get no newsletters and offers from {shop}. "
        "Messages about your orders keep coming.",
        "post_done_title": "By post from now on",
        "post_done": "{shop} will send your mail as a letter to: {address}.",
        "back": "Back to your preferences",
        "bad_choice": "We do not know that choice. Please choose again below.",
        "bad_topic": "We do not know that topic. Choose one of the topics below.",
        "bad_until": "Choose a date after today and within a year.",
        "bad_street": "Fill in your street and number (at most 100 characters).",
        "bad_postcode": "Fill in a valid postcode (at most 12 letters and digits).",
        "bad_city": "Fill in your town (at most 60 characters).",
        "bad_country": "Write the country as a two-letter code, e.g. NL or GB.",
    },
}

PAGE = """\
{% extends "chrome.html" %}
{% block style %}
  .row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: flex-end; }
  ul.topics { list-style: none; padding: 0; margin: 0; }
  ul.topics li { display: flex; justify-content: space-between; align-items: center;
                 gap: .75rem; padding: .5rem 0; border-top: 1px solid #eee; }
  ul.topics li:first-child { border-top: 0; }
  .left { color: #666; font-style: italic; }
  input[type=date] { width: auto; }
  .fields { display: grid; grid-template-columns: 1fr 1fr; gap: 0 .75rem; }
  .fields .wide { grid-column: 1 / -1; }
  .fields + button { margin-top: .9rem; }
  @media (max-width: 30rem) {
    .fields { grid-template-columns: 1fr; }
    .row > * { flex: 1 1 100%; }
    ul.topics li button { width: auto; }
  }
{% endblock %}
{% block main %}
{% if message %}<p class="message" role="alert">{{ message }}</p>{% endif %}
{% if done %}
<section><p>{{ done }}</p>
{% if back %}<p><a href="{{ action }}">{{ t.back }}</a></p>{% endif %}</section>
{% else %}
<p>{{ intro }}</p>
{% if topics %}
<section>
<h2>{{ t.topics }}</h2>
<p class="muted">{{ t.topics_text }}</p>
<ul class="topics">
{% for name, label in topics %}
<li><span>{{ label }}</span>
{% if name in left %}<span class="left">{{ t.topic_left }}</span>{% else %}
<form method="post" action="{{ action }}"><input type="hidden" name="choice" value="topic">
<button class="quiet" name="topic" value="{{ name }}"
  aria-label="{{ t.topic_button }}: {{ label }}">{{ t.topic_button }}</button></form>
{% endif %}</li>
{% endfor %}
</ul>
</section>
{% endif %}
<section>
<h2>{{ t.pause }}</h2>
{% if paused %}<p class="note">{{ paused }}</p>{% endif %}
<p class="muted">{{ t.pause_text }}</p>
<form method="post" action="{{ action }}" class="row">
<input type="hidden" name="choice" value="pause">
{% for label, day in pauses %}
<button class="quiet" name="until" value="{{ day }}">{{ label }}</button>
{% endfor %}
</form>
<form method="post" action="{{ action }}" class="row">
<input type="hidden" name="choice" value="pause">
<div><label for="until">{{ t.until_label }}</label>
<input type="date" id="until" name="until" min="{{ first_day }}" max="{{ last_day }}"
  value="{{ form.until }}" required></div>
<button class="quiet">{{ t.pause_button }}</button>
</form>
</section>
{% if offer_post %}
<section>
<h2>{{ t.post }}</h2>
<p class="muted">{{ t.post_text }}</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="choice" value="post">
<div class="fields">
<div class="wide"><label for="street">{{ t.street }}</label>
<input id="street" name="street" maxlength="100" autocomplete="street-address"
  value="{{ form.street }}" required></div>
<div><label for="postcode">{{ t.postcode }}</label>
<input id="postcode" name="postcode" maxlength="12" autocomplete="postal-code"
  value="{{ form.postcode }}" required></div>
<div><label for="city">{{ t.city }}</label>
<input id="city" name="city" maxlength="60" autocomplete="address-level2"
  value="{{ form.city }}" required></div>
<div><label for="country">{{ t.country }}</label>
<input id="country" name="country" maxlength="2" autocomplete="country"
  value="{{ form.country }}"></div>
</div>
<button>{{ t.post_button }}</button>
</form>
</section>
{% endif %}
<section>
<h2>{{ t.all }}</h2>
<p>{{ question }}</p>
<form method="post" action="{{ action }}">
  <input type="hidden" name="List-Unsubscribe" value="One-Click">
  <button type="submit">{{ t.button }}</button>
</form>
</section>
{% endif %}
{% endblock %}
"""

_page = template(PAGE)


@dataclass(frozen=True)
class Person:
    """The contact as the preference centre needs it."""

    id: str
    locale: str | None
    first_name: str | None
    channel: str
    address: dict[str, str]  # street, postcode, city, country ('' when unknown)
    link_key: str | None

    @property
    def has_address(self) -> bool:
        return all(self.address[key] for key in ("street", "postcode", "city"))


@dataclass
class Answer:
    """A page to show; `status` 400 when the form was refused (the page says why)."""

    html: str
    status: int = 200


@dataclass(frozen=True)
class Look:
    """The shop's name, language default and colour: what every page wears."""

    shop: str
    default_locale: str
    color: str
    topics: tuple[str, ...] = field(default=())


def topic_label(name: str) -> str:
    """`garden-news` -> `Garden news`: a topic name as a page shows it."""
    words = name.replace("_", " ").replace("-", " ")
    return words[:1].upper() + words[1:]


class PreferenceCentre:
    """The pages of /u/TOKEN for one project and database: `show` for GET, `choose` and
    `unsubscribe_all` for POST. Each returns None when the link's contact is gone or is
    another holder of the id (the route answers 404)."""

    def __init__(self, project: Project, engine: Engine, lock: Any, topics: list[str]) -> None:
        settings = project.settings
        self.look = Look(settings.name, settings.locale, settings.brand.color, tuple(topics))
        self.zone = settings.tz
        self.engine = engine
        self.lock = lock

    def today(self) -> date:
        return datetime.now(self.zone).date()

    def language(self, person: Person) -> str:
        return language(person.locale, self.look.default_locale)

    # -- GET

    def show(self, contact_id: str, link_key: str | None, token: str) -> Answer | None:
        with self.engine.connect() as connection:
            person = read_person(connection, contact_id)
            if person is None or person.link_key != link_key:
                return None
            if is_unsubscribed(connection, contact_id):
                return Answer(self.done(person, "all", back=False))
            left, paused = choices_made(connection, contact_id, self.today())
        return Answer(self.page(person, token, left=left, paused=paused))

    def page(
        self,
        person: Person,
        token: str,
        *,
        left: set[str],
        paused: date | None,
        message: str | None = None,
        form: Mapping[str, str] | None = None,
    ) -> str:
        speaks = self.language(person)
        t = TEXTS[speaks]
        shop = self.look.shop
        today = self.today()
        name = (person.first_name or "").strip()
        values = {**person.address, "until": ""}
        values.update({k: v for k, v in (form or {}).items() if k in values})
        pauses = [
            (t[f"month_{months}"], (today + relativedelta(months=months)).isoformat())
            for months in PAUSE_MONTHS
        ]
        return render(
            _page,
            speaks,
            shop,
            t["title"],
            self.look.color,
            t=t,
            intro=(t["hello"] if name else t["intro"]).format(name=name, shop=shop),
            question=t["question"].format(shop=shop),
            topics=[(topic, topic_label(topic)) for topic in self.look.topics],
            left=left,
            paused=t["paused_now"].format(until=self.day(paused, speaks)) if paused else None,
            pauses=pauses,
            first_day=(today + timedelta(days=1)).isoformat(),
            last_day=(today + timedelta(days=LONGEST_PAUSE_DAYS)).isoformat(),
            offer_post=person.channel != "post",
            form=values,
            message=message,
            action=token,
            done=None,
        )

    def done(self, person: Person, kind: str, *, back: bool = True, **values: str) -> str:
        speaks = self.language(person)
        t = TEXTS[speaks]
        prefix = "" if kind == "all" else f"{kind}_"
        title = t[f"{prefix}done_title"].format(**values)
        return render(
            _page,
            speaks,
            self.look.shop,
            title,
            self.look.color,
            t=t,
            done=t[f"{prefix}done"].format(shop=self.look.shop, **values),
            back=back,
            action=values.get("token", ""),
            message=None,
        )

    @staticmethod
    def day(day: date | None, speaks: str) -> str:
        return "" if day is None else str(format_date(day, "long", locale=speaks))

    # -- POST

    def choose(
        self,
        contact_id: str,
        campaign: str,
        link_key: str | None,
        token: str,
        form: Mapping[str, str],
        at: datetime,
    ) -> Answer | None:
        """Record the choice the form names, after checking every field."""
        with self.lock, atomic(self.engine) as connection:
            person = read_person(connection, contact_id, lock=True)
            if person is None or person.link_key != link_key:
                return None
            speaks = self.language(person)
            t = TEXTS[speaks]
            choice = form.get("choice", "")
            problem: str | None
            if choice == "topic":
                topic = form.get("topic", "")
                problem = None if topic in self.look.topics else "bad_topic"
                if problem is None:
                    leave_topic(connection, contact_id, campaign, topic, at)
                    label = topic_label(topic)
                    return Answer(self.done(person, "topic", topic=label, token=token))
            elif choice == "pause":
                until, problem = self.until(form.get("until", ""))
                if until is not None:
                    pause(connection, contact_id, campaign, until, at)
                    shown = self.day(until, speaks)
                    return Answer(self.done(person, "pause", until=shown, token=token))
            elif choice == "post":
                address, problem = read_address(form)
                if address is not None:
                    switch_to_post(connection, person, campaign, address, at)
                    line = ", ".join(v for v in address.values() if v)
                    return Answer(self.done(person, "post", address=line, token=token))
            else:
                problem = "bad_choice"
            left, paused = choices_made(connection, contact_id, self.today())
        assert problem is not None
        page = self.page(person, token, left=left, paused=paused, message=t[problem], form=form)
        return Answer(page, 400)

    def unsubscribed(self, contact_id: str, locale: str | None) -> Answer:
        """The page after unsubscribing from all marketing (one-click or the button)."""
        person = Person(contact_id, locale, None, "email", {}, None)
        return Answer(self.done(person, "all", back=False))

    def until(self, text: str) -> tuple[date | None, str | None]:
        """The pause's last day from the form: after today, within a year; or the problem."""
        try:
            until = date.fromisoformat(text.strip())
        except ValueError:
            return None, "bad_until"
        today = self.today()
        if not today < until <= today + timedelta(days=LONGEST_PAUSE_DAYS):
            return None, "bad_until"
        return until, None


def read_address(form: Mapping[str, str]) -> tuple[dict[str, str] | None, str | None]:
    """The postal address of the letters form, trimmed and checked; or the first problem."""
    address = {key: " ".join(form.get(key, "").split()) for key in FIELD_LIMITS}
    for key, limit in FIELD_LIMITS.items():
        value = address[key]
        raw = form.get(key, "")
        if _CONTROL.search(raw) or len(value) > limit or (not value and key != "country"):
            return None, f"bad_{key}"
    if not _POSTCODE.fullmatch(address["postcode"]):
        return None, "bad_postcode"
    country = address["country"]
    if country and not re.fullmatch(r"[A-Za-z]{2}", country):
        return None, "bad_country"
    address["country"] = country.upper()
    return address, None


# ---------------------------------------------------------------------- the database


def read_person(connection: Connection, contact_id: str, *, lock: bool = False) -> Person | None:
    c = contacts.c
    query = select(
        c.id, c.locale, c.first_name, c.channel, c.street, c.postcode, c.city, c.country,
        c.link_key,
    ).where(c.id == contact_id)  # fmt: skip
    if lock:  # of two choices at once, the second waits and sees the first
        query = query.with_for_update(key_share=True)
    row = connection.execute(query).first()
    if row is None:
        return None
    address = {
        "street": row.street or "",
        "postcode": row.postcode or "",
        "city": row.city or "",
        "country": row.country or "",
    }
    return Person(str(row.id), row.locale, row.first_name, row.channel, address, row.link_key)


def choices_made(
    connection: Connection, contact_id: str, today: date
) -> tuple[set[str], date | None]:
    """The topics the contact left, and the day their pause ends if it is not over."""
    query = (
        select(events.c.type, events.c.tag, events.c.properties)
        .where(events.c.contact_id == contact_id, events.c.type.in_((UNSUBSCRIBE, PAUSE)))
        .order_by(events.c.occurred_at, events.c.id)
    )
    left: set[str] = set()
    paused: date | None = None
    for kind, tag, properties in connection.execute(query):
        if kind == UNSUBSCRIBE and tag and tag.startswith(TOPIC_TAG):
            left.add(tag[len(TOPIC_TAG) :])
        elif kind == PAUSE:
            paused = pause_until(properties)
    return left, paused if paused is not None and paused > today else None


def leave_topic(
    connection: Connection, contact_id: str, campaign: str, topic: str, at: datetime
) -> None:
    """An `unsubscribe` tagged `topic:NAME`, once per contact and topic."""
    assert TOPIC_NAME.fullmatch(topic)
    tag = f"{TOPIC_TAG}{topic}"
    earlier = select(events.c.id).where(
        and_(events.c.contact_id == contact_id, events.c.type == UNSUBSCRIBE, events.c.tag == tag)
    )
    if connection.execute(earlier.limit(1)).first() is None:
        _event(connection, contact_id, UNSUBSCRIBE, at, tag, {"campaign": campaign, "topic": topic})


def pause(
    connection: Connection, contact_id: str, campaign: str, until: date, at: datetime
) -> None:
    """A `pause` event: marketing waits until `until` (the latest pause counts)."""
    _event(
        connection, contact_id, PAUSE, at, None, {"campaign": campaign, "until": until.isoformat()}
    )


def switch_to_post(
    connection: Connection, person: Person, campaign: str, address: dict[str, str], at: datetime
) -> None:
    """The contact gets letters from now on: channel `post`, this address, and a
    `preference` event that says so."""
    connection.execute(
        update(contacts)
        .where(contacts.c.id == person.id)
        .values(channel="post", updated_at=at, **{k: v or None for k, v in address.items()})
    )
    properties = {"campaign": campaign, "channel": "post", "previous": person.channel}
    _event(connection, person.id, PREFERENCE, at, "channel:post", properties)


def _event(
    connection: Connection,
    contact_id: str,
    kind: str,
    at: datetime,
    tag: str | None,
    properties: dict[str, Any],
) -> None:
    connection.execute(
        insert(events).values(
            contact_id=contact_id, type=kind, occurred_at=at, tag=tag, properties=properties
        )
    )

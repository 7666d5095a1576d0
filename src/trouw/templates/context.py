"""What a mail template sees: the contact, their facts, the campaign, links and the shop.

`contact` holds the contact's columns and, beside them, their attributes
(`contact.household`, `contact.points`; a column wins over an attribute of the
same name, and all attributes stay reachable as `contact.attributes`).
`locale` is the contact's locale, else the project's: the filters use it.
`channel` is "email" or "post": a letter's context has no tracking at all
(no open pixel, no unsubscribe link, `track` gives the URL as it is,
`survey_link` an empty string), and a template may branch on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # templates compile without SQLAlchemy or signing (`trouw check`)
    from sqlalchemy import Connection

    from trouw.facts import Facts
    from trouw.project import Settings
    from trouw.templates.links import LinkSigner, MailLinks

INTERNAL_COLUMNS = ("created_at", "updated_at")
# The survey questions a mail can ask with `survey_link`, and their scores (the tag of
# the `survey` event is the question, as the reports and the `nps:` condition read it).
SURVEY_SCALES = {"nps": (0, 10), "csat": (1, 5)}


def load_contacts(connection: Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The contact rows for `ids`, in the order asked; unknown ids are left out."""
    from sqlalchemy import select

    from trouw.store import contacts
    from trouw.store.among import among

    found: dict[str, dict[str, Any]] = {}
    query = select(contacts).where(among(contacts.c.id, connection.dialect.name))
    for row in connection.execute(query, {"ids": list(ids)}).mappings():
        found[row["id"]] = dict(row)
    return [found[contact_id] for contact_id in ids if contact_id in found]


def contact_view(row: Mapping[str, Any], default_locale: str) -> dict[str, Any]:
    """A contact row as templates see it: columns, attributes beside them, a locale."""
    attributes = dict(row.get("attributes") or {})
    view: dict[str, Any] = {name: value for name, value in attributes.items()}
    for name, value in row.items():
        if name not in INTERNAL_COLUMNS:
            view[name] = value
    view["attributes"] = attributes
    view["locale"] = row.get("locale") or default_locale
    names = (row.get("first_name") or "", row.get("last_name") or "")
    view["full_name"] = " ".join(part for part in names if part)
    return view


def shop_view(settings: Settings) -> dict[str, Any]:
    """The sender as templates see it: `shop.name`, `shop.postal_address`, ..."""
    sender = settings.sender
    return {
        "name": settings.name,
        "from": sender.from_address,
        "reply_to": sender.reply_to or "",
        "postal_address": sender.postal_address,
    }


def campaign_view(
    name: str, *, description: str = "", kind: str = "", step: str = "", template: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "kind": kind,
        "step": step,
        "template": template,
    }


class Track:
    """`track(url, tag)` in a template: the signed click link; the tag defaults to the campaign.
    Without links (a letter), the URL as it is: paper has no clicks to count.

    A plain callable with nothing public on it, so the sandbox can call it directly
    (see `MailSandbox.call`) and a template cannot reach the signer through it.
    """

    __slots__ = ("_campaign", "_links")

    def __init__(self, links: MailLinks | None, campaign: str) -> None:
        self._links = links
        self._campaign = campaign

    def __call__(self, url: str, tag: str = "") -> str:
        url = str(url)
        if not url.strip():
            raise ValueError("track() was given an empty URL")
        if self._links is None:
            return url
        return self._links.click_url(url, str(tag) or self._campaign)

    def __repr__(self) -> str:
        return "<track>"


class SurveyLink:
    """`survey_link(question, score)` in a template: the signed link whose click answers the
    question (`nps` 0-10, `csat` 1-5) with that score. A question or score outside the
    scales is a render error, so `templates check` names the file and line. In a letter,
    an empty string: paper has no links to click.

    A plain callable with nothing public on it, as `Track`.
    """

    __slots__ = ("_day", "_links")

    def __init__(self, links: MailLinks | None, day: date) -> None:
        self._links = links
        self._day = day.isoformat()

    def __call__(self, question: str, score: int) -> str:
        scale = SURVEY_SCALES.get(question) if isinstance(question, str) else None
        if scale is None:
            known = ", ".join(repr(name) for name in SURVEY_SCALES)
            raise ValueError(f"survey_link() asks {question!r}, not a known question ({known})")
        low, high = scale
        if type(score) is not int or not low <= score <= high:
            raise ValueError(
                f"survey_link({question!r}, {score!r}): a {question} score is a whole "
                f"number from {low} to {high}"
            )
        if self._links is None:
            return ""
        return self._links.survey_url(question, score, self._day)

    def __repr__(self) -> str:
        return "<survey_link>"


def mail_context(
    *,
    contact: Mapping[str, Any],
    facts: Facts,
    campaign: Mapping[str, Any],
    shop: Mapping[str, Any],
    signer: LinkSigner,
    as_of: date,
    channel: str = "email",
) -> dict[str, Any]:
    """The variables of one mail (or, for `channel` post, one letter) for one contact."""
    campaign_name = str(campaign["name"])
    context = {
        "contact": contact,
        "facts": facts,
        "campaign": campaign,
        "shop": shop,
        "locale": contact["locale"],
        "today": as_of,
        "channel": channel,
    }
    if channel == "post":  # nothing signed, nothing to fetch: a letter is not tracked
        return {
            **context,
            "unsubscribe_url": "",
            "open_pixel_url": "",
            "track": Track(None, ""),
            "survey_link": SurveyLink(None, as_of),
        }
    links = signer.for_mail(str(contact["id"]), campaign_name, contact.get("link_key"))
    return {
        **context,
        "unsubscribe_url": links.unsubscribe_url(),
        "open_pixel_url": links.open_url(),
        "track": Track(links, campaign_name),
        "survey_link": SurveyLink(links, as_of),
    }

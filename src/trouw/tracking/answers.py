"""What a survey answer link records: one `survey` event per mail and question.

A click on `survey_link('nps', 9)` records a `survey` event with tag `nps` and
score 9, an ordinary event: the `nps:` segment condition and the report's NPS
and CSAT read it at once. A mail holds one answer per question: the event's
`external_id` is made from the contact, the campaign, the day the mail was
made and the question, so a second click in the same mail (another score)
replaces the first one's score and time instead of adding an answer. The
latest answer wins, in the segments and in the report alike; a mail of a
later day is a new answer. A comment from the thank-you page is kept in the
event's properties (`comment`), and survives a later change of score.

The event's properties: {"campaign", "question", "mail_day", and when the
ledger has the mail of that day: "step", "occurrence", "template",
"ledger_id"; "comment" when given}.

Like the other link events, nothing is recorded for a contact that no longer
exists or for another holder of its id (the link key differs).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, case, select, update

from trouw.sending.ledger import SENT
from trouw.store import events, ledger
from trouw.templates.links import SurveyToken
from trouw.tracking.record import Contact, find_contact

SURVEY = "survey"
COMMENT_LENGTH = 2000  # a comment longer than this is cut, not refused


def answer_id(answer: SurveyToken) -> str:
    """The `external_id` of the one answer a mail holds to a question."""
    parts = (answer.contact_id, answer.campaign, answer.day, answer.question)
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:40]
    return f"survey:{digest}"


def record_answer(
    connection: Connection, answer: SurveyToken, at: datetime, comment: str | None = None
) -> Contact | None:
    """Record (or replace) the answer, in a write transaction; `comment` is added when given.

    None if the contact is gone or is another holder of the id than the link's.
    """
    # The contact row is locked first (PostgreSQL), so that of two clicks at once the
    # second waits and then finds the first one's event to replace.
    contact = find_contact(connection, answer.contact_id, lock=True)
    if contact is None or not contact.holds(answer.link_key):
        return None
    external_id = answer_id(answer)
    found = connection.execute(
        select(events.c.id, events.c.properties).where(events.c.external_id == external_id)
    ).first()
    properties: dict[str, Any] = dict(found.properties or {}) if found is not None else {}
    if found is None:
        properties.update(_about_the_mail(connection, answer))
    if comment:
        properties["comment"] = comment[:COMMENT_LENGTH]
    if found is None:
        connection.execute(
            events.insert().values(
                external_id=external_id,
                contact_id=answer.contact_id,
                type=SURVEY,
                occurred_at=at,
                tag=answer.question,
                score=answer.score,
                properties=properties,
            )
        )
    else:
        connection.execute(
            update(events)
            .where(events.c.id == found.id)
            .values(occurred_at=at, score=answer.score, properties=properties)
        )
    return contact


def _about_the_mail(connection: Connection, answer: SurveyToken) -> dict[str, Any]:
    """Which mail the answer is about: the ledger row of (contact, campaign) of the mail's
    day (the sent one first), when there is one."""
    about: dict[str, Any] = {
        "campaign": answer.campaign,
        "question": answer.question,
        "mail_day": answer.day,
    }
    try:
        day = date.fromisoformat(answer.day)
    except ValueError:
        return about
    mail = connection.execute(
        select(ledger.c.id, ledger.c.step, ledger.c.occurrence, ledger.c.template)
        .where(
            ledger.c.contact_id == answer.contact_id,
            ledger.c.campaign == answer.campaign,
            ledger.c.day == day,
        )
        .order_by(case((ledger.c.status == SENT, 0), else_=1), ledger.c.id.desc())
        .limit(1)
    ).first()
    if mail is not None:
        about.update(
            step=mail.step, occurrence=mail.occurrence, template=mail.template, ledger_id=mail.id
        )
    return about

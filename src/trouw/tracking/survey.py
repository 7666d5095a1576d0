"""The survey answer route of `trouw serve`: a click on `survey_link(question, score)`.

    GET  /s/TOKEN   record the answer (one per mail and question, the latest
                    wins), show a thank-you page with an optional comment form
    POST /s/TOKEN   the comment form: record the answer with its comment
    HEAD /s/TOKEN   the same answer as GET, nothing recorded (link checkers)

The token is signed like every link (`templates/links.py`, kind `s`): a
forged, altered or wrong-kind token, a question or score outside its scale,
or a contact that is gone (or another holder of its id) gets 404 and nothing
is recorded. What is recorded is `answers.record_answer`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, abort, request
from sqlalchemy import Engine

from trouw.project import Project
from trouw.store import atomic
from trouw.templates.context import SURVEY_SCALES
from trouw.templates.links import SurveyToken
from trouw.tracking.answers import COMMENT_LENGTH, record_answer
from trouw.tracking.chrome import page_response
from trouw.tracking.pages import language
from trouw.tracking.record import find_contact, now_utc
from trouw.tracking.survey_page import comment_page, thanks_page

if TYPE_CHECKING:
    from trouw.tracking.app import LinkKeys


def survey_routes(
    project: Project, engine: Engine, keys: LinkKeys, lock: AbstractContextManager[Any]
) -> Blueprint:
    """The blueprint of /s/TOKEN for one project and database; `lock` is the app's write
    lock (SQLite's writers take turns)."""
    shop = project.settings.name
    color = project.settings.brand.color
    default_locale = project.settings.locale
    blueprint = Blueprint("survey", __name__)

    def read(token: str) -> SurveyToken:
        found = keys.signer.read_survey(token)
        if found is None:
            # A token no key accepts makes LinkKeys read the keys again (a `trouw keys
            # rotate` since the server started, at most once a second); then try again.
            keys.read_link("s", token)
            found = keys.signer.read_survey(token)
        if found is None:
            abort(404)  # forged, altered, truncated, or a token of another kind
        scale = SURVEY_SCALES.get(found.question)
        if scale is None or not scale[0] <= found.score <= scale[1]:
            abort(404)  # signed, but not an answer this version knows
        return found

    @blueprint.route("/s/<token>", methods=["GET", "POST"])
    def answer(token: str) -> Response:
        found = read(token)
        comment = None
        if request.method == "POST":
            comment = request.form.get("comment", "").strip()
        if request.method == "HEAD":
            with engine.connect() as connection:
                contact = find_contact(connection, found.contact_id)
            if contact is not None and not contact.holds(found.link_key):
                contact = None
        else:
            with lock, atomic(engine) as connection:
                contact = record_answer(connection, found, now_utc(), comment or None)
        if contact is None:
            abort(404)
        speaks = language(contact.locale, default_locale)
        if request.method == "POST":
            return page_response(comment_page(speaks, shop, color=color))
        # A relative action: the page posts to its own address, also behind a proxy
        # that serves the app under a path prefix.
        return page_response(
            thanks_page(
                speaks,
                shop,
                question=found.question,
                score=found.score,
                high=SURVEY_SCALES[found.question][1],
                action=token,
                limit=COMMENT_LENGTH,
                color=color,
            )
        )

    return blueprint

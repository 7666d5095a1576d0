"""The tracking server's web app: the signed links of sent mails, answered over HTTP.

    GET  /c/TOKEN   record the click, redirect (302) to the URL signed into the token
    GET  /o/TOKEN   record the open, answer a 1x1 transparent GIF
    GET  /u/TOKEN   the preference centre in the contact's language (preferences.py)
    POST /u/TOKEN   with `choice`: one topic, a pause or letters; any other POST is the
                    one-click unsubscribe from all marketing (RFC 8058): recorded once
    GET  /healthz   "ok", for load balancers; touches nothing

A forged, altered, truncated or wrong-kind token, or one whose contact was
forgotten (or whose id now belongs to a contact imported since: the link key
differs), records nothing and gets 404. Links signed with a retired key
still count during its grace period (`LinkKeys`). Clicks and opens are written in
batches by group commit (`batch.GroupCommit`): a request waits for the commit
of its batch, so an answer still means "recorded", and a failed write answers
503 with nothing recorded. On SQLite the writers of all worker processes take
turns on one lock (`store.writelock`). A valid click or open is answered in
plain WSGI (`TrackingApp`), the rest by the Flask routes. The redirect target
is only ever the URL inside a signed token, so the server is not an open
redirect. The app keeps no session and sets no cookie: the token is the only
credential.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import NotFound, ServiceUnavailable
from werkzeug.urls import iri_to_uri

from trouw.campaigns import project_topics
from trouw.errors import TrouwError, UserError
from trouw.project import Project, find_project
from trouw.store import atomic, open_store
from trouw.store.groupcommit import GroupCommit, WriteFailed
from trouw.store.writelock import WriteLock
from trouw.templates.links import (
    ClickToken,
    LinkSigner,
    LinkToken,
    accepted_secrets,
    signing_key,
)
from trouw.tracking.api import api_blueprint
from trouw.tracking.chrome import NO_CACHE, page_response
from trouw.tracking.preferences import PreferenceCentre
from trouw.tracking.record import (
    Visit,
    VisitRecorder,
    find_contact,
    now_utc,
    record_unsubscribe,
)
from trouw.tracking.survey import survey_routes
from trouw.tracking.webhooks import webhooks_blueprint

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE_ITEMS = list(NO_CACHE.items())
_PIXEL_HEADERS = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL)))]
_REDIRECT_HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "0")]

PROJECT_ENV = "TROUW_PROJECT"
# A token no key accepts makes the server read the keys again (a `trouw keys rotate`
# since it started), at most this often: a flood of forged tokens costs one small
# query a second per worker, and a real link with a new key waits at most this long.
KEYS_REREAD_SECONDS = 1.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

T = TypeVar("T")

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class LinkKeys:
    """The keys the server checks links with: the signing key, and the retired ones still in
    their grace period (TROUW_SECRET_OLD, project keys `trouw keys rotate` replaced).

    They are read when the server starts. A token none of them accepts makes them be
    read again, at most every KEYS_REREAD_SECONDS: after `trouw keys rotate` (on any
    machine) `send` signs with the new key at once, and a running server learns it at
    its first link. A valid link costs one HMAC, as before.
    """

    def __init__(self, base_url: str, engine: Engine, secret: str | None = None) -> None:
        self._base_url = base_url
        self._engine = engine
        self._given = secret  # checks links whatever the database says
        self._lock = threading.Lock()
        self.signer = self._read(strict=secret is None)
        self._read_at = time.monotonic()

    def _read(self, *, strict: bool) -> LinkSigner:
        with self._engine.connect() as connection:
            try:
                signing: str | None = signing_key(connection).secret
            except UserError:
                if strict:
                    raise
                signing = None  # a wrong TROUW_SECRET here: `secret` was given anyway
            accepted = accepted_secrets(connection)
        secret = self._given or signing
        assert secret is not None
        others = [key for key in (signing, *accepted) if key is not None]
        return LinkSigner(self._base_url, secret, old_secrets=others)

    def read_click(self, token: str) -> ClickToken | None:
        found = self.signer.read_click(token)
        if found is None and self._reread():
            found = self.signer.read_click(token)
        return found

    def read_link(self, kind: str, token: str) -> LinkToken | None:
        found = self.signer.read_link(kind, token)
        if found is None and self._reread():
            found = self.signer.read_link(kind, token)
        return found

    def _reread(self) -> bool:
        """Read the keys again, unless that was done a moment ago; whether it was done."""
        if time.monotonic() - self._read_at < KEYS_REREAD_SECONDS:
            return False
        with self._lock:
            if time.monotonic() - self._read_at < KEYS_REREAD_SECONDS:
                return True  # another thread just did
            self._read_at = time.monotonic()
            try:
                self.signer = self._read(strict=False)
            except (SQLAlchemyError, TrouwError):
                return False  # the database is away for a moment: keep the keys known
        return True


def create_app(project: Project, engine: Engine, *, secret: str | None = None) -> TrackingApp:
    """The tracking app for one project and database; `secret` defaults to the signing key
    (TROUW_SECRET, else the project key in the database). Links signed with retired keys in
    their grace period are accepted too."""
    keys = LinkKeys(project.settings.tracking_base_url, engine, secret)
    lock = WriteLock(engine)
    recorder = VisitRecorder(engine, lock)
    visits = GroupCommit(recorder.transaction, recorder.write)
    centre = PreferenceCentre(project, engine, lock, project_topics(project.campaigns_dir))
    app = Flask(__name__)

    def valid(token: T | None) -> T:
        if token is None:
            abort(404)  # forged, altered, truncated, or a token of another kind
        return token

    def known_or_404(contact_id: str, link_key: str | None) -> None:
        """404 unless the contact exists and the link is theirs: for what reaches the /c and
        /o routes.

        A GET with a valid token never gets there: `TrackingApp` records it and
        answers. What does is a bad token (404, 400) or a HEAD request: link
        checkers, not people, get the same answer after a read, and nothing is
        recorded.
        """
        with engine.connect() as connection:
            contact = find_contact(connection, contact_id)
        if contact is None or not contact.holds(link_key):
            abort(404)

    @app.get("/c/<token>")
    def click(token: str) -> Response:
        found = valid(keys.read_click(token))
        if not _is_web_url(found.url):
            abort(400)  # signed, but not a link a browser should be sent to
        known_or_404(found.contact_id, found.link_key)
        response = Response(status=302, headers=NO_CACHE)
        response.headers["Location"] = found.url
        return response

    @app.get("/o/<token>")
    def pixel(token: str) -> Response:
        opened = valid(keys.read_link("o", token))
        known_or_404(opened.contact_id, opened.link_key)
        return Response(PIXEL, mimetype="image/gif", headers=NO_CACHE)

    @app.route("/u/<token>", methods=["GET", "POST"])
    def unsubscribe(token: str) -> Response:
        link = valid(keys.read_link("u", token))
        contact_id = link.contact_id
        if request.method == "POST" and "choice" in request.form:
            # A form of the preference centre: one topic, a pause, letters by post.
            chosen = centre.choose(
                contact_id, link.campaign, link.link_key, token, request.form, now_utc()
            )
            return page_response(valid(chosen).html, valid(chosen).status)
        if request.method == "POST":
            # Any other POST unsubscribes from all marketing: RFC 8058 mail clients
            # send `List-Unsubscribe=One-Click`, the page's button sends the same,
            # and neither can carry a cookie or a CSRF token.
            with lock, atomic(engine) as connection:
                outcome = record_unsubscribe(
                    connection, contact_id, link.campaign, now_utc(), link.link_key
                )
            if outcome is None:
                abort(404)
            return page_response(centre.unsubscribed(contact_id, outcome[0].locale).html)
        # The page's forms post to its own (relative) address, also behind a proxy
        # that serves the app under a path prefix.
        return page_response(valid(centre.show(contact_id, link.link_key, token)).html)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    app.register_blueprint(api_blueprint(project, engine, lock))
    app.register_blueprint(survey_routes(project, engine, keys, lock))
    app.register_blueprint(webhooks_blueprint(project, engine, lock))

    return TrackingApp(app, keys, visits)


class TrackingApp:
    """The WSGI app: clicks and opens answered here, everything else by the Flask app.

    Clicks and opens are nearly all of the traffic (a burst after every send),
    and their answer is fixed: a redirect or the pixel. Flask's request
    context, routing and Response object cost about as much CPU as recording
    the click itself, so a click or open whose token is valid is answered
    here in plain WSGI, with the same headers. Everything else (HEAD requests,
    bad tokens and every other error answer, the unsubscribe pages, /healthz)
    goes to Flask, which checks the token again and answers as the routes say.
    """

    def __init__(self, flask: Flask, keys: LinkKeys, visits: GroupCommit[Visit, bool, Any]) -> None:
        self.flask = flask
        self._keys = keys
        self._visits = visits

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            path: str = environ.get("PATH_INFO", "")
            visit = None
            if path.startswith("/c/"):
                found = self._keys.read_click(path[3:])
                if found is not None and _is_web_url(found.url):
                    visit = Visit.click(
                        found.contact_id, found.campaign, found.tag, found.url, now_utc(),
                        found.link_key,
                    )  # fmt: skip
            elif path.startswith("/o/"):
                opened = self._keys.read_link("o", path[3:])
                if opened is not None:
                    visit = Visit.open(
                        opened.contact_id, opened.campaign, now_utc(), opened.link_key
                    )
            if visit is not None:
                return self._record(visit, environ, start_response)
        return self.flask(environ, start_response)

    def _record(
        self, visit: Visit, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            done = self._visits.submit(visit)
        except WriteFailed:
            return ServiceUnavailable()(environ, start_response)  # nothing was recorded
        if not done:
            return NotFound()(environ, start_response)  # a forgotten contact, or another one
        if visit.url is None:
            start_response("200 OK", [*_PIXEL_HEADERS, *_NO_CACHE_ITEMS])
            return [PIXEL]
        location = visit.url if visit.url.isascii() else iri_to_uri(visit.url)
        start_response("302 FOUND", [("Location", location), *_REDIRECT_HEADERS, *_NO_CACHE_ITEMS])
        return [b""]


def app_from_environment() -> TrackingApp:
    """The app for the project in TROUW_PROJECT and its database, as production runs it.

    The project is the folder in TROUW_PROJECT, else the nearest trouw.toml above
    the working directory; the database is found as every command finds it
    (TROUW_DATABASE_URL, else `database` in trouw.toml, else the project's SQLite
    file). Links are checked with TROUW_SECRET, else the project key in the
    database: the key `trouw send` signed them with on any machine.
    """
    folder = os.environ.get(PROJECT_ENV)
    project = find_project(Path(folder) if folder else None)
    engine = open_store(project.database_url())
    try:
        return create_app(project, engine)  # reads the keys: a wrong TROUW_SECRET stops here
    finally:
        # Close the connections opened here: with `gunicorn --preload` this runs before
        # the workers fork, and a connection must not be shared by two processes. Each
        # worker opens its own on its first request.
        engine.dispose()


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    # Control characters would split the Location header; the signer never makes
    # such a token, but a redirect must be a plain http(s) address to a host.
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.netloc)
        and _CONTROL.search(url) is None
    )

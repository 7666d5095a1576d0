"""A small Flask app for marketers: campaigns -> variants -> sample contacts -> the mail.

It binds to 127.0.0.1 only: it shows customer data and is meant for the
person at this machine. It also answers only requests addressed to this
machine (`Host: 127.0.0.1`, `localhost` or `[::1]`, any port): a web page the
marketer visits could otherwise point its own host name at 127.0.0.1 (DNS
rebinding) and read the previews from the browser. Every request reads the
templates, campaigns and segments afresh, so editing a template and pressing
reload shows the change.

Each mail is dated as of its day: the contact's planned day (the plan), else
the schedule's next day or their next birthday, else the app's day; the page
offers another (`?day=`). It shows the mail at a phone's width (375 px) and a
desktop's (700 px) side by side. With an SMTP URL (`--smtp`, TROUW_SMTP_URL),
"send a test to ..." mails it to a typed address, never to the contact
(preview/testmail.py). That form is a POST, taken only from this page: its
Origin (or Referer) must be this server's own, so another site cannot make the
marketer's browser send mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, redirect, render_template, request, url_for
from sqlalchemy import Engine

from trouw.campaigns import Campaign, load_campaigns
from trouw.errors import TrouwError, UserError
from trouw.planning.calendar_data import calendar_years, project_calendar
from trouw.planning.calendar_page import calendar_fragment
from trouw.planning.next_sends import AS_OF, describe_when, mail_days, next_sends
from trouw.preview.testmail import render_sample, send_test_mail
from trouw.project import Project
from trouw.store import open_store
from trouw.templates.campaign_mails import SYNTHETIC_PREFIX, CampaignMails, RenderedMail
from trouw.templates.context import load_contacts

SAMPLES_PER_VARIANT = 5
PHONE_WIDTH = 375
NO_SMTP = (
    "no SMTP server to send a test with: start the preview with "
    "`trouw preview --serve --smtp URL` (or set TROUW_SMTP_URL)"
)
DESKTOP_WIDTH = 700
# The Host header of a request to this machine: a loopback name, an optional port.
_LOCAL_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)
MISDIRECTED = (
    "421 Misdirected Request: the trouw preview answers only at http://127.0.0.1 "
    "(or localhost), on this machine.\n"
)


def is_local_host(host: str | None) -> bool:
    """Whether a Host header names this machine: 127.0.0.1, localhost or [::1], any port."""
    return host is not None and _LOCAL_HOST.fullmatch(host) is not None


def is_same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """Whether a POST comes from a page of this server: its Origin, else its Referer, names
    this host (a browser sends one of them with every form POST)."""
    source = origin if origin and origin != "null" else referer
    if not source or not host:
        return False
    parts = urlsplit(source)
    return parts.scheme == "http" and parts.netloc.lower() == host.lower()


@dataclass(frozen=True)
class VariantSamples:
    label: str
    template: str
    contact_ids: list[str]
    names: dict[str, str]


def _day_arg(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"'{value}' is not a date", key="day", fix="write YYYY-MM-DD") from None


def create_app(
    project: Project, engine: Engine, *, as_of: date, smtp_url: str | None = None
) -> Flask:
    """The preview app for one project and database, as of a day; `smtp_url` enables tests."""
    app = Flask(__name__)
    app.config["TEMPLATES_AUTO_RELOAD"] = True

    def renderer(connection: Any, day: date = as_of) -> CampaignMails:
        return CampaignMails(project, connection, day)

    def dated(
        connection: Any, campaign: Campaign, step_name: str, contact_id: str
    ) -> tuple[date, str]:
        """The day the page shows the mail as of, and why: `?day=`, else the contact's day."""
        chosen = _day_arg(request.values.get("day"))
        if chosen is not None:
            return chosen, "chosen"
        if not contact_id or contact_id.startswith(SYNTHETIC_PREFIX):
            return as_of, AS_OF
        found = mail_days(connection, campaign, campaign.step(step_name), [contact_id], as_of)
        return found[contact_id].day, found[contact_id].why

    def campaign_or_404(name: str) -> Campaign:
        for campaign in load_campaigns(project.campaigns_dir):
            if campaign.name == name:
                return campaign
        abort(404)

    def render_one(
        mails: CampaignMails, campaign: Campaign, step_name: str, contact_id: str
    ) -> RenderedMail:
        step = campaign.step(step_name)
        found = render_sample(mails, campaign, step, contact_id, request.args.get("template"))
        if found is None:
            abort(404, f"no contact with id '{contact_id}'")
        return found

    @app.before_request
    def this_machine_only() -> Response | None:
        if is_local_host(request.headers.get("Host")):
            return None
        return Response(MISDIRECTED, status=421, mimetype="text/plain")

    @app.errorhandler(UserError)
    def user_error(exc: UserError) -> tuple[str, int]:
        return render_template("error.html", project=project, as_of=as_of, message=str(exc)), 400

    @app.get("/")
    def index() -> str:
        campaigns = load_campaigns(project.campaigns_dir)
        # The year calendar of the plan (as-of's year, else the next; ?year=, ?contact=
        # and ?segment=).
        contact = (request.args.get("contact") or "").strip()
        with engine.connect() as connection:
            upcoming = next_sends(connection, campaigns, as_of)
            years = calendar_years(connection, as_of, request.args.get("year", type=int))
            calendar = None
            if years:
                page = project_calendar(
                    connection,
                    project,
                    years[0],
                    contact_ids=[contact] if contact else (),
                    segment=request.args.get("segment") or None,
                    as_of=as_of,
                )
                calendar = calendar_fragment(page, lookup=url_for("index"))
        return render_template(
            "index.html",
            project=project,
            as_of=as_of,
            campaigns=campaigns,
            when={c.name: describe_when(c) for c in campaigns},
            upcoming=upcoming,
            calendar=calendar,
            calendar_years=sorted(years),
            calendar_year=years[0] if years else None,
        )

    @app.get("/campaign/<name>")
    def campaign_page(name: str) -> tuple[str, int]:
        return show_campaign(name)

    def show_campaign(
        name: str, *, sent: str = "", problem: str = "", status: int = 200
    ) -> tuple[str, int]:
        campaign = campaign_or_404(name)
        step_name = request.values.get("step") or campaign.steps[0].name
        step = campaign.step(step_name)
        with engine.connect() as connection:
            mails = renderer(connection)
            groups = []
            for variant in step.variants:
                ids = mails.samples_of(campaign, step, variant, SAMPLES_PER_VARIANT)
                if not ids:
                    ids = [f"{SYNTHETIC_PREFIX}{locale}" for locale in mails.locales_in_use()]
                label = f"segment {variant.segment}" if variant.segment else "fallback"
                if step.test is not None:  # an A/B test: its arms, each contact's by a hash
                    label = f"A/B test arm {step.variants.index(variant) + 1}"
                groups.append(VariantSamples(label, variant.template, ids, _names(connection, ids)))
            contact_id = request.values.get("contact") or (
                groups[0].contact_ids[0] if groups else ""
            )
            day, why = dated(connection, campaign, step.name, contact_id)
            if day != as_of:
                mails = renderer(connection, day)
            result = render_one(mails, campaign, step.name, contact_id) if contact_id else None
            message = mails.message(result) if result and result.mail else None
        headers = [(k, str(v)) for k, v in message.items()] if message else []
        frame = None
        if result is not None and result.mail is not None:
            frame = url_for(
                "mail_html",
                name=campaign.name,
                step=step.name,
                contact=contact_id,
                template=result.variant.template if result.variant else None,
                day=day.isoformat(),
            )
        page = render_template(
            "campaign.html",
            project=project,
            as_of=as_of,
            campaign=campaign,
            campaigns=load_campaigns(project.campaigns_dir),
            when=describe_when(campaign),
            step=step,
            groups=groups,
            contact_id=contact_id,
            result=result,
            headers=headers,
            frame=frame,
            day=day,
            why=why,
            widths=(PHONE_WIDTH, DESKTOP_WIDTH),
            smtp=smtp_url is not None,
            sent=sent or request.args.get("sent", ""),
            problem=problem,
            address=request.form.get("address", ""),
        )
        return page, status

    @app.post("/campaign/<name>/test")
    def send_test(name: str) -> Any:
        if not is_same_origin(
            request.headers.get("Origin"), request.headers.get("Referer"), request.host
        ):
            return Response(
                "403 Forbidden: a test mail is sent only from the preview page itself.\n",
                status=403,
                mimetype="text/plain",
            )
        campaign = campaign_or_404(name)
        if smtp_url is None:
            return show_campaign(name, problem=NO_SMTP, status=400)
        step = campaign.step(request.form.get("step") or campaign.steps[0].name)
        contact_id = request.form.get("contact", "")
        day = _day_arg(request.form.get("day")) or as_of
        try:
            with engine.connect() as connection:
                sent = send_test_mail(
                    project,
                    connection,
                    day,
                    campaign,
                    step,
                    contact_id,
                    request.form.get("address", ""),
                    smtp_url,
                    template=request.form.get("template") or None,
                    key="address",
                )
        except TrouwError as exc:
            return show_campaign(name, problem=str(exc), status=400)
        target = url_for(
            "campaign_page",
            name=campaign.name,
            step=step.name,
            contact=contact_id,
            template=request.form.get("template") or None,
            day=day.isoformat(),
            sent=sent.address,
        )
        return redirect(target, code=303)

    @app.get("/mail/<name>/<step>/<contact>.html")
    def mail_html(name: str, step: str, contact: str) -> Response:
        campaign = campaign_or_404(name)
        day = _day_arg(request.args.get("day")) or as_of
        with engine.connect() as connection:
            result = render_one(renderer(connection, day), campaign, step, contact)
        if result.error is not None:
            return Response(f"<pre>{_escape(str(result.error))}</pre>", status=500)
        if result.mail is None:
            note = "; ".join(result.notes) or "no mail"
            return Response(f"<p>{_escape(note)}</p>", mimetype="text/html")
        return Response(result.mail.html, mimetype="text/html")

    return app


def _names(connection: Any, ids: list[str]) -> dict[str, str]:
    """Each contact's full name by id (made-up samples have none)."""
    rows = load_contacts(connection, [i for i in ids if not i.startswith(SYNTHETIC_PREFIX)])
    names = {}
    for row in rows:
        parts = (row.get("first_name") or "", row.get("last_name") or "")
        names[str(row["id"])] = " ".join(part for part in parts if part)
    return names


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def serve_preview(
    project: Project, database_url: str, *, as_of: date, port: int, smtp_url: str | None = None
) -> None:
    """Run the preview app on 127.0.0.1:port until interrupted."""
    engine = open_store(database_url)
    try:
        create_app(project, engine, as_of=as_of, smtp_url=smtp_url).run(
            host="127.0.0.1", port=port, debug=False, use_reloader=False, threaded=True
        )
    finally:
        engine.dispose()

"""A small Flask app for marketers: campaigns -> variants -> sample contacts -> the mail.

It binds to 127.0.0.1 only: it shows customer data and is meant for the
person at this machine. It also answers only requests addressed to this
machine (`Host: 127.0.0.1`, `localhost` or `[::1]`, any port): a web page the
marketer visits could otherwise point its own host name at 127.0.0.1 (DNS
rebinding) and read the previews from the browser. Every request reads the
templates, campaigns and segments afresh, so editing a template and pressing
reload shows the change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, Response, abort, render_template, request, url_for
from sqlalchemy import Engine

from trouw.campaigns import Campaign, load_campaigns
from trouw.errors import UserError
from trouw.project import Project
from trouw.store import open_store
from trouw.templates.campaign_mails import SYNTHETIC_PREFIX, CampaignMails, RenderedMail

SAMPLES_PER_VARIANT = 5
# The Host header of a request to this machine: a loopback name, an optional port.
_LOCAL_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)
MISDIRECTED = (
    "421 Misdirected Request: the trouw preview answers only at http://127.0.0.1 "
    "(or localhost), on this machine.\n"
)


def is_local_host(host: str | None) -> bool:
    """Whether a Host header names this machine: 127.0.0.1, localhost or [::1], any port."""
    return host is not None and _LOCAL_HOST.fullmatch(host) is not None


@dataclass(frozen=True)
class VariantSamples:
    label: str
    template: str
    contact_ids: list[str]


def create_app(project: Project, engine: Engine, *, as_of: date) -> Flask:
    """The preview app for one project and database, as of a day."""
    app = Flask(__name__)
    app.config["TEMPLATES_AUTO_RELOAD"] = True

    def renderer(connection: Any) -> CampaignMails:
        return CampaignMails(project, connection, as_of)

    def campaign_or_404(name: str) -> Campaign:
        for campaign in load_campaigns(project.campaigns_dir):
            if campaign.name == name:
                return campaign
        abort(404)

    def render_one(
        mails: CampaignMails, campaign: Campaign, step_name: str, contact_id: str
    ) -> RenderedMail:
        step = campaign.step(step_name)
        if contact_id.startswith(SYNTHETIC_PREFIX):
            locale = contact_id[len(SYNTHETIC_PREFIX) :] or project.settings.locale
            variant = next((v for v in step.variants if v.segment is None), step.variants[0])
            wanted = request.args.get("template")
            variant = next((v for v in step.variants if v.template == wanted), variant)
            return mails.render_synthetic(campaign, step, variant, locale)
        results = mails.render_for(campaign, step, [contact_id])
        if not results:
            abort(404, f"no contact with id '{contact_id}'")
        return results[0]

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
        return render_template(
            "index.html",
            project=project,
            as_of=as_of,
            campaigns=load_campaigns(project.campaigns_dir),
        )

    @app.get("/campaign/<name>")
    def campaign_page(name: str) -> str:
        campaign = campaign_or_404(name)
        step_name = request.args.get("step") or campaign.steps[0].name
        step = campaign.step(step_name)
        with engine.connect() as connection:
            mails = renderer(connection)
            groups = []
            for variant in step.variants:
                ids = mails.samples_of(campaign, step, variant, SAMPLES_PER_VARIANT)
                if not ids:
                    ids = [f"{SYNTHETIC_PREFIX}{locale}" for locale in mails.locales_in_use()]
                label = f"segment {variant.segment}" if variant.segment else "fallback"
                groups.append(VariantSamples(label, variant.template, ids))
            contact_id = request.args.get("contact") or (groups[0].contact_ids[0] if groups else "")
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
            )
        return render_template(
            "campaign.html",
            project=project,
            as_of=as_of,
            campaign=campaign,
            step=step,
            groups=groups,
            contact_id=contact_id,
            result=result,
            headers=headers,
            frame=frame,
        )

    @app.get("/mail/<name>/<step>/<contact>.html")
    def mail_html(name: str, step: str, contact: str) -> Response:
        campaign = campaign_or_404(name)
        with engine.connect() as connection:
            result = render_one(renderer(connection), campaign, step, contact)
        if result.error is not None:
            return Response(f"<pre>{_escape(str(result.error))}</pre>", status=500)
        if result.mail is None:
            note = "; ".join(result.notes) or "no mail"
            return Response(f"<p>{_escape(note)}</p>", mimetype="text/html")
        return Response(result.mail.html, mimetype="text/html")

    return app


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def serve_preview(project: Project, database_url: str, *, as_of: date, port: int) -> None:
    """Run the preview app on 127.0.0.1:port until interrupted."""
    engine = open_store(database_url)
    try:
        create_app(project, engine, as_of=as_of).run(
            host="127.0.0.1", port=port, debug=False, use_reloader=False, threaded=True
        )
    finally:
        engine.dispose()

"""Benchmark: render many personal mails beside raw Jinja2, in the same run.

    python scripts/bench_render.py --mails 100000 --template spring/generic

Generates demo customers for the example project into a temporary SQLite
database, computes their facts in batches (timed), then renders the mail for
contact after contact, cycling through them:

- raw: `jinja2.Template.render` of the same template in a plain Environment
  (no sandbox, no strict undefined) with a context dict prepared beforehand,
  with autoescape (the same HTML as trouw's: the baseline for the target) and
  without (Jinja2's default, which would leave `<script>` in a name unescaped);
- trouw templating: build the context (contact view, facts, signed links) and
  render subject + HTML with the sandboxed, strict environment;
- CSS inlining and text derivation (html2text), each timed on their own,
  because they cost more than the templating itself.

Prints a table and writes JSON (bench-render.json by default). The target is
trouw templating >= 0.7x the raw Jinja2 throughput.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader

from trouw.demo.generator import write_demo_files
from trouw.facts import compute_facts
from trouw.importing import import_contacts, import_events
from trouw.project import load_project
from trouw.store import open_store
from trouw.templates import (
    LinkSigner,
    MailTemplates,
    campaign_view,
    contact_view,
    load_contacts,
    mail_context,
    shop_view,
)
from trouw.templates.environment import BUILTIN_DIR
from trouw.templates.filters import FILTERS

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--template", default="spring/generic")
    parser.add_argument("--as-of", default="2027-04-01")
    parser.add_argument("--json", type=Path, default=Path("bench-render.json"))
    args = parser.parse_args()
    as_of = date.fromisoformat(args.as_of)
    project = load_project(REPO)
    settings = project.settings

    with tempfile.TemporaryDirectory() as folder:
        engine = open_store(f"sqlite:///{folder}/bench.db")
        files = write_demo_files(Path(folder), contacts=args.contacts, as_of=as_of)
        import_contacts(engine, files.contacts_path, timezone=settings.timezone)
        import_events(engine, files.events_path, timezone=settings.timezone)
        with engine.connect() as connection:
            ids = [f"demo-{n:06d}" for n in range(1, args.contacts + 1)]
            rows = load_contacts(connection, ids)
            started = time.perf_counter()
            facts = compute_facts(connection, rows, as_of=as_of, tz=settings.tz)
            facts_seconds = time.perf_counter() - started
        engine.dispose()

    signer = LinkSigner(settings.tracking_base_url, "bench-secret")
    shop = shop_view(settings)
    campaign = campaign_view("bench", kind="promotional", step="main", template=args.template)
    views = [contact_view(row, settings.locale) for row in rows]

    def context_for(index: int) -> dict[str, Any]:
        view = views[index % len(views)]
        return mail_context(
            contact=view,
            facts=facts[view["id"]],
            campaign=campaign,
            shop=shop,
            signer=signer,
            as_of=as_of,
        )

    # Raw Jinja2: same template files and filters, plain environment, prepared dicts; once
    # with autoescape (the same output as trouw's) and once with Jinja2's defaults (none).
    loader = ChoiceLoader([FileSystemLoader(project.templates_dir), FileSystemLoader(BUILTIN_DIR)])
    raw_env = Environment(loader=loader, keep_trailing_newline=True, autoescape=True)
    plain_env = Environment(loader=loader, keep_trailing_newline=True)
    raw_env.filters.update(FILTERS)
    plain_env.filters.update(FILTERS)
    prepared = [context_for(i) for i in range(len(views))]
    templates = MailTemplates(project.templates_dir)
    n = args.mails

    def raw_run(environment: Environment) -> float:
        template = {
            loc: environment.get_template(_file(templates, args.template, loc))
            for loc in ("nl", "en")
        }
        started = time.perf_counter()
        for i in range(n):
            context = prepared[i % len(prepared)]
            template[context["locale"]].render(context)
        return time.perf_counter() - started

    bodies: list[str] = []

    def trouw_run() -> float:
        bodies.clear()
        started = time.perf_counter()
        for i in range(n):
            context = context_for(i)
            compiled = templates.compiled(args.template, context["locale"])
            _subject, body = templates.render_parts(compiled, context)
            if i < len(views):
                bodies.append(body)
        return time.perf_counter() - started

    # Warm up both (compile, caches), then measure in alternation.
    raw_env.get_template(_file(templates, args.template, "nl")).render(prepared[0])
    plain_env.get_template(_file(templates, args.template, "nl")).render(prepared[0])
    templates.render(args.template, prepared[0])
    raw_seconds = raw_run(raw_env)
    trouw_seconds = trouw_run()
    plain_seconds = raw_run(plain_env)

    finisher = templates.finisher
    started = time.perf_counter()
    for i in range(n):
        finisher.inline_css(bodies[i % len(bodies)])
    css_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(n):
        finisher.text_of(bodies[i % len(bodies)])
    text_seconds = time.perf_counter() - started

    ratio = raw_seconds / trouw_seconds
    plain_ratio = plain_seconds / trouw_seconds
    rows_out = [
        ("raw jinja2 render, autoescape (prepared dict)", raw_seconds),
        ("raw jinja2 render, no autoescape (prepared dict)", plain_seconds),
        ("trouw templating (context + subject + HTML)", trouw_seconds),
        ("CSS inlining (css-inline)", css_seconds),
        ("text derivation (html2text)", text_seconds),
        (
            "trouw total per mail (templating + CSS + text)",
            trouw_seconds + css_seconds + text_seconds,
        ),
    ]
    print(f"{n} mails of {args.template}, {len(views)} contacts, facts in {facts_seconds:.3f} s")
    print(f"{'stage':<50} {'seconds':>9} {'mails/s':>10} {'µs/mail':>9}")
    for label, seconds in rows_out:
        print(f"{label:<50} {seconds:9.2f} {n / seconds:10.0f} {seconds / n * 1e6:9.1f}")
    print(f"trouw templating / raw jinja2 (autoescape) throughput: {ratio:.2f}x (target >= 0.7x)")
    print(f"trouw templating / raw jinja2 (no autoescape) throughput: {plain_ratio:.2f}x")
    result = {
        "mails": n,
        "contacts": len(views),
        "template": args.template,
        "facts_seconds": facts_seconds,
        "stages": {label: {"seconds": s, "mails_per_second": n / s} for label, s in rows_out},
        "templating_vs_raw": ratio,
        "templating_vs_raw_without_autoescape": plain_ratio,
        "target": 0.7,
        "met": ratio >= 0.7,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


def _file(templates: MailTemplates, name: str, locale: str) -> str:
    compiled = templates.compiled(name, locale)
    return str(compiled.html.name)


if __name__ == "__main__":
    main()

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
- CSS inlining and text derivation, as `MailFinisher.finish` does them: once
  per shape of a mail with css-inline and html2text, then applied to each
  mail (CSS alone, then CSS + text; text is the difference); and, for
  comparison, css-inline and html2text run on every mail as before (on
  --per-mail-sample mails, scaled up).

Each stage runs --repeat times in alternation and the best run counts, since
the machine may be busy with other work.

Prints a table and writes JSON (bench-render.json by default). The target is
trouw templating >= 0.7x the raw Jinja2 throughput with autoescape on: mails
are HTML and must be escaped, so that is the fair baseline; the ratio against
Jinja2's default (no escaping) is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
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
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best counts")
    parser.add_argument(
        "--per-mail-sample",
        type=int,
        default=5_000,
        help="mails for the slow per-mail css-inline/html2text reference, scaled to --mails",
    )
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

    finisher = templates.finisher

    def css_run() -> float:
        started = time.perf_counter()
        for i in range(n):
            finisher.finish(bodies[i % len(bodies)], text=False)
        return time.perf_counter() - started

    def css_and_text_run() -> float:
        started = time.perf_counter()
        for i in range(n):
            finisher.finish(bodies[i % len(bodies)], text=True)
        return time.perf_counter() - started

    def per_mail_run(work: Callable[[str], object]) -> float:
        count = min(n, args.per_mail_sample)
        started = time.perf_counter()
        for i in range(count):
            work(bodies[i % len(bodies)])
        return (time.perf_counter() - started) * n / count

    # Warm up (compile, caches, one plan per shape), then measure in alternation, best of N.
    raw_env.get_template(_file(templates, args.template, "nl")).render(prepared[0])
    plain_env.get_template(_file(templates, args.template, "nl")).render(prepared[0])
    templates.render(args.template, prepared[0])
    runs: dict[str, list[float]] = {key: [] for key in STAGES}
    for _ in range(args.repeat):
        runs["raw"].append(raw_run(raw_env))
        runs["trouw"].append(trouw_run())
        runs["plain"].append(raw_run(plain_env))
        if not runs["css"]:
            for body in bodies:  # the first mail of each shape builds its plan: not timed
                finisher.finish(body)
        runs["css"].append(css_run())
        runs["css+text"].append(css_and_text_run())
    runs["css per mail"].append(per_mail_run(finisher.inline_css))
    runs["text per mail"].append(per_mail_run(finisher.text_of))
    best = {key: min(values) for key, values in runs.items() if values}
    best["text"] = max(best["css+text"] - best["css"], 0.0)
    best["total"] = best["trouw"] + best["css+text"]
    best["total before"] = best["trouw"] + best["css per mail"] + best["text per mail"]

    ratio = best["raw"] / best["trouw"]
    plain_ratio = best["plain"] / best["trouw"]
    shapes = finisher.shapes
    print(
        f"{n} mails of {args.template}, {len(views)} contacts, facts in {facts_seconds:.3f} s, "
        f"best of {args.repeat}; {shapes.misses} mail shapes planned"
    )
    print(f"{'stage':<58} {'seconds':>8} {'mails/s':>9} {'µs/mail':>8}")
    for key, label in STAGES.items():
        seconds = best[key]
        print(f"{label:<58} {seconds:8.2f} {n / seconds:9.0f} {seconds / n * 1e6:8.1f}")
    print(f"trouw templating / raw jinja2, autoescape on (fair): {ratio:.2f}x (target >= 0.7x)")
    print(f"trouw templating / raw jinja2, autoescape off:      {plain_ratio:.2f}x")
    print(
        f"CSS + text per mail: {best['css+text'] / n * 1e6:.1f} µs "
        f"(per-mail css-inline + html2text: "
        f"{(best['css per mail'] + best['text per mail']) / n * 1e6:.0f} µs)"
    )
    result = {
        "mails": n,
        "contacts": len(views),
        "template": args.template,
        "repeat": args.repeat,
        "per_mail_sample": min(n, args.per_mail_sample),
        "facts_seconds": facts_seconds,
        "shapes_planned": shapes.misses,
        "stages": {
            key: {
                "label": label,
                "seconds": best[key],
                "mails_per_second": n / best[key],
                "us_per_mail": best[key] / n * 1e6,
                "runs": runs.get(key, []),
            }
            for key, label in STAGES.items()
        },
        "templating_vs_raw_autoescape": ratio,
        "templating_vs_raw_without_autoescape": plain_ratio,
        "target": 0.7,
        "met": ratio >= 0.7,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


STAGES = {
    "raw": "raw jinja2 render, autoescape on (prepared dict)",
    "plain": "raw jinja2 render, autoescape off (prepared dict)",
    "trouw": "trouw templating (context + subject + HTML)",
    "css": "CSS inlining (per shape, applied)",
    "text": "text derivation (per shape, filled in)",
    "css+text": "CSS + text together (MailFinisher.finish)",
    "total": "trouw total per mail (templating + CSS + text)",
    "css per mail": "before: css-inline on every mail (sampled)",
    "text per mail": "before: html2text on every mail (sampled)",
    "total before": "before: total with per-mail css-inline + html2text",
}


def _file(templates: MailTemplates, name: str, locale: str) -> str:
    compiled = templates.compiled(name, locale)
    return str(compiled.html.name)


if __name__ == "__main__":
    main()

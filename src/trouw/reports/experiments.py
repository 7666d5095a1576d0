"""The report's experiments section: A/B arms with intervals, test winners, and the lift.

Arms: for every campaign step with a `test:`, each arm's (template's) open
and click rate over its delivered mails, from the report's own funnel (so the
numbers are the campaign table's), with 95% Wilson intervals and a
chi-square test over the arms (significant below p = 0.05). Winners: what
sending/winners.py recorded. The lift: reports/lift.py. `lift_chart` draws
each lift with its interval as an inline SVG (a forest plot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import Connection

from trouw.campaigns import Campaign, campaign_names, read_campaign
from trouw.problems import Problems
from trouw.project import Project
from trouw.reports.charts import nice_ticks
from trouw.reports.figures import Report
from trouw.reports.funnel import CampaignFunnel
from trouw.reports.lift import METHOD, WINDOW_DAYS, Difference, Lift, lift_figures
from trouw.sending.winners import Winner, read_winners

FIGURES = {  # lift figure -> (label, unit: "share" | "money" | "points")
    "repurchase": ("repurchase rate", "share"),
    "revenue": ("revenue per contact", "money"),
    "churn": ("churn rate", "share"),
    "nps": ("NPS", "points"),
}


@dataclass(frozen=True)
class Rate:
    hits: int
    of: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ArmFigures:
    template: str
    delivered: int
    opened: Rate
    clicked: Rate


@dataclass(frozen=True)
class TestFigures:
    campaign: str
    step: str
    arms: tuple[ArmFigures, ...]
    open_p: float | None
    click_p: float | None


@dataclass
class Experiments:
    tests: list[TestFigures] = field(default_factory=list)
    winners: list[Winner] = field(default_factory=list)
    lifts: list[Lift] = field(default_factory=list)
    window_days: int = WINDOW_DAYS
    method: str = METHOD

    def __bool__(self) -> bool:
        return bool(self.tests or self.winners or self.lifts)


def experiment_figures(
    connection: Connection,
    *,
    funnels: Sequence[CampaignFunnel],
    campaigns: Sequence[Campaign],
    first: date,
    as_of: date,
    timezone: ZoneInfo,
) -> Experiments:
    """The year's experiments: arms of the tested steps in `funnels`, winners, the lift."""
    by_name = {f.campaign: f for f in funnels}
    tests = []
    for campaign in campaigns:
        funnel = by_name.get(campaign.name)
        for step in campaign.steps:
            if step.test is None or funnel is None:
                continue
            arms = []
            for arm in step.test.arms:
                variant = funnel.variants.get(arm.template)
                delivered = variant.delivered if variant else 0
                opened = variant.opened_mails if variant else 0
                clicked = variant.clicked_mails if variant else 0
                arms.append(
                    ArmFigures(arm.template, delivered, _rate(opened, delivered),
                               _rate(clicked, delivered))
                )  # fmt: skip
            tests.append(
                TestFigures(
                    campaign.name, step.name, tuple(arms),
                    _chi_square([(a.opened.hits, a.delivered) for a in arms]),
                    _chi_square([(a.clicked.hits, a.delivered) for a in arms]),
                )
            )  # fmt: skip
    return Experiments(
        tests=tests,
        winners=[w for w in read_winners(connection) if _in_year(w.occurrence, first)],
        lifts=lift_figures(connection, first=first, as_of=as_of, timezone=timezone),
    )


def report_experiments(connection: Connection, report: Report, project: Project) -> Experiments:
    """The experiments of a built report's year, for the project's campaigns as they are now
    (a campaign file in error is left out: `trouw check` reports it)."""
    campaigns = []
    for name in campaign_names(project.campaigns_dir):
        campaign = read_campaign(project.campaigns_dir / f"{name}.yaml", Problems())
        if campaign is not None:
            campaigns.append(campaign)
    return experiment_figures(
        connection,
        funnels=report.mail_campaigns,
        campaigns=campaigns,
        first=report.year.first,
        as_of=report.as_of,
        timezone=project.settings.tz,
    )


def _in_year(occurrence: str, first: date) -> bool:
    """Whether a test's occurrence ("launch:2027-04-06") falls in the report's year."""
    try:
        return date.fromisoformat(occurrence.rsplit(":", 1)[-1]).year == first.year
    except ValueError:
        return True


def _rate(hits: int, of: int) -> Rate:
    if not of:
        return Rate(hits, of, None, None, None)
    from scipy import stats  # type: ignore[import-untyped]

    interval = stats.binomtest(hits, of).proportion_ci(0.95, method="wilson")
    return Rate(hits, of, hits / of, float(interval.low), float(interval.high))


def _chi_square(counts: Sequence[tuple[int, int]]) -> float | None:
    """p of a chi-square test that the arms share one rate; None when it cannot be asked."""
    table = [[hits, of - hits] for hits, of in counts if of]
    if len(table) < 2 or not 0 < sum(r[0] for r in table) < sum(sum(r) for r in table):
        return None
    from scipy import stats

    return float(stats.chi2_contingency(table).pvalue)


def significant(p_value: float | None) -> bool:
    return p_value is not None and p_value < 0.05


def format_value(value: float | None, unit: str) -> str:
    """A figure's value or lift: a share in percent points, money, NPS points."""
    if value is None:
        return "-"
    if unit == "share":
        return f"{value * 100:.1f}%"
    if unit == "money":
        return f"{value:,.2f}"
    return f"{value:.0f}"


def format_lift(difference: Difference, unit: str) -> str:
    """The lift with its interval: "+5.1 pts (1.0 to 9.2)"."""
    if difference.lift is None:
        return "-"

    def one(value: float) -> str:
        if unit == "share":
            return f"{value * 100:+.1f}"
        if unit == "money":
            return f"{value:+,.2f}"
        return f"{value:+.0f}"

    suffix = " pts" if unit in ("share", "points") else ""
    if difference.low is None or difference.high is None:
        return f"{one(difference.lift)}{suffix}"
    return f"{one(difference.lift)}{suffix} ({one(difference.low)} to {one(difference.high)})"


def experiments_dict(experiments: Experiments) -> dict[str, Any]:
    """The section as JSON-ready data."""

    def rate(r: Rate) -> dict[str, Any]:
        return {"hits": r.hits, "of": r.of, "rate": r.value, "low": r.low, "high": r.high}

    def difference(d: Difference) -> dict[str, Any]:
        return {
            "treated": d.treated, "held_out": d.held, "treated_n": d.treated_n,
            "held_out_n": d.held_n, "lift": d.lift, "low": d.low, "high": d.high,
            "p_value": d.p_value, "significant": d.significant,
        }  # fmt: skip

    return {
        "method": experiments.method,
        "window_days": experiments.window_days,
        "tests": [
            {
                "campaign": t.campaign, "step": t.step,
                "arms": [
                    {"template": a.template, "delivered": a.delivered,
                     "open": rate(a.opened), "click": rate(a.clicked)}
                    for a in t.arms
                ],
                "open_p": t.open_p, "click_p": t.click_p,
            }
            for t in experiments.tests
        ],
        "winners": [
            {
                "campaign": w.campaign, "step": w.step, "occurrence": w.occurrence,
                "winner": w.winner, "pick_by": w.pick_by,
                "decided_at": w.decided_at.isoformat(), "p_value": w.p_value,
                "arms": [a.__dict__ for a in w.arms],
            }
            for w in experiments.winners
        ],
        "lift": [
            {
                "name": lift.name, "held_out_by": lift.held_by, "treated": lift.treated,
                "held_out": lift.held,
                **{name: difference(d) for name, d in lift.figures().items()},
            }
            for lift in experiments.lifts
        ],
    }  # fmt: skip


def experiments_section(experiments: Experiments) -> Markup:
    """The report page's section (experiments.html): arms, winners, the lift with charts."""
    from importlib.resources import files

    from jinja2 import Environment, StrictUndefined

    environment = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    environment.filters["number"] = lambda n: f"{n:,}"
    source = files("trouw.reports").joinpath("experiments.html").read_text(encoding="utf-8")
    charts = []
    for name, (label, _) in FIGURES.items():
        chart = lift_chart(experiments.lifts, name)
        if chart is not None:
            charts.append((f"Lift on {label}, with 95% interval", chart))

    def rate(r: Rate) -> str:
        if r.value is None or r.low is None or r.high is None:
            return "-"
        return f"{r.value * 100:.1f}% ({r.low * 100:.1f} to {r.high * 100:.1f}%)"

    def verdict(p_value: float | None) -> str:
        if p_value is None:
            return "no test"
        return f"p = {p_value:.3g}, " + (
            "significant" if significant(p_value) else "not significant"
        )

    return Markup(
        environment.from_string(source).render(
            experiments=experiments, charts=charts, figures=FIGURES, rate=rate,
            verdict=verdict, value=format_value, lift_text=format_lift,
        )
    )  # fmt: skip


def lift_chart(lifts: Sequence[Lift], figure: str) -> Markup | None:
    """A forest plot of one figure: per comparison, the lift (dot) and its interval (line)
    around a zero line; None when no comparison has an interval."""
    label, unit = FIGURES[figure]
    rows = [(lift.name, lift.figures()[figure]) for lift in lifts]
    rows = [(n, d) for n, d in rows if d.lift is not None and d.low is not None]
    if not rows:
        return None
    scale = 100.0 if unit == "share" else 1.0
    values = [v * scale for _, d in rows for v in (d.low, d.high) if v is not None] + [0.0]
    reach = max(abs(min(values)), abs(max(values))) or 1.0
    ticks = nice_ticks(-reach, reach, 4)
    reach = max(abs(ticks[0]), abs(ticks[-1]))
    width, left, right, line, top = 640, 150, 20, 34, 24
    height = top + line * len(rows) + 44
    span = width - left - right

    def at(value: float) -> float:
        return left + span * (value + reach) / (2 * reach)

    ident = f"lift-{figure}"
    unit_text = {"share": "percentage points", "money": "per contact", "points": "NPS points"}
    title = f"Lift on {label}: treated - held out, with 95% interval"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart lift" role="img" font-size="14" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">Per comparison, the difference in {escape(label)} between '
        f"treated and held-out contacts ({unit_text[unit]}): the dot, and its 95% interval: "
        "the line. An interval that leaves the zero line out is significant.</desc>",
        f'<line x1="{at(0):.1f}" x2="{at(0):.1f}" y1="{top - 8}" y2="{height - 40}" '
        'stroke="#555"/>',
    ]
    for index, (name, d) in enumerate(rows):
        assert d.lift is not None and d.low is not None and d.high is not None
        y = top + line * index + line / 2
        color = "#2f6db5" if d.significant else "#7f8c8d"
        text = format_lift(d, unit)
        parts += [
            f'<text x="{left - 8}" y="{y + 5:.1f}" text-anchor="end">{escape(name)}</text>',
            f'<line x1="{at(d.low * scale):.1f}" x2="{at(d.high * scale):.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{color}" stroke-width="3"><title>{escape(name)}: '
            f"{escape(text)}</title></line>",
            f'<circle cx="{at(d.lift * scale):.1f}" cy="{y:.1f}" r="6" fill="{color}">'
            f"<title>{escape(name)}: {escape(text)}</title></circle>",
        ]
    bottom = height - 40
    for tick in ticks:
        shown = "0" if tick == 0 else f"{tick:+,g}"
        parts.append(
            f'<text x="{at(tick):.1f}" y="{bottom + 18}" text-anchor="middle" '
            f'fill="#555">{escape(shown)}</text>'
        )
    parts.append(
        f'<text x="{left + span / 2:.1f}" y="{height - 4}" text-anchor="middle" '
        f'class="axis-label">{escape(label)}: treated - held out ({unit_text[unit]})</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


__all__ = [
    "FIGURES",
    "Experiments",
    "experiment_figures",
    "experiments_dict",
    "experiments_section",
    "format_lift",
    "format_value",
    "lift_chart",
    "report_experiments",
    "significant",
]

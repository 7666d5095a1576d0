"""The report as one self-contained HTML page: inline CSS, inline SVG charts, no script.

The page is `report.html` (a Jinja2 template shipped in this package) filled
with the report and the charts drawn by charts.py, so it opens anywhere,
offline, and can be mailed or archived as a single file.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from trouw import __version__
from trouw.reports import formatting
from trouw.reports.charts import (
    NARROW,
    PALETTE,
    WIDTH,
    Series,
    bar_chart,
    line_chart,
    rate_chart,
)
from trouw.reports.export import NO_VARIANT
from trouw.reports.figures import Report

if TYPE_CHECKING:  # the experiments need scipy: imported only when there are some
    from trouw.reports.experiments import Experiments

TEMPLATE = "report.html"
# The funnel's rates as the page's columns say them, in funnel order (funnel.RATES).
RATE_NAMES = {
    "delivered": "delivered",
    "open": "open",
    "click": "click",
    "click_to_open": "click-to-open",
    "unsubscribe": "unsubscribe",
    "bounce": "bounce",
}


def _environment() -> Environment:
    environment = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    environment.filters.update(
        percent=formatting.percent,
        decimal=formatting.decimal,
        signed=formatting.signed,
        number=formatting.count,
    )
    return environment


def _twin(make: Callable[[int, str], Markup | None]) -> Markup | None:
    """A chart drawn for a desktop and again for a phone; the page's CSS shows one of them."""
    wide, narrow = make(WIDTH, ""), make(NARROW, "narrow-")
    return None if wide is None or narrow is None else Markup(wide + "\n" + narrow)


def _weekly_chart(report: Report, width: int = WIDTH, prefix: str = "") -> Markup | None:
    loads = report.weekly.per_period
    if not loads:
        return None
    return bar_chart(
        f"{prefix}weekly",
        f"Mails per contact per week, {report.year.label}",
        "For every ISO week: the most mails one contact got (bars) and the 99th percentile "
        f"(inner bars), against the weekly cap of {report.caps.max_per_week}.",
        # "W09"; the year only for a week that starts in the year before.
        [load.label[5:] if load.label[:4] == report.year.label else load.label for load in loads],
        Series("most to one contact", [load.max for load in loads], "#9bbbe0"),
        inner=Series("99th percentile", [load.p99 for load in loads], PALETTE[0]),
        cap=report.caps.max_per_week,
        cap_label="max_per_week",
        x_label=f"ISO week of {report.year.label}",
        y_label="mails per contact",
        width=width,
    )


def _rate_charts(report: Report) -> list[tuple[str, Markup]]:
    """(caption, chart): the response rates and the loss rates of each e-mail campaign."""
    campaigns = [c for c in report.mail_campaigns if c.total.tried]
    if not campaigns:
        return []
    year = report.year.label
    responses = [
        ("open rate", PALETTE[0]),
        ("click rate", PALETTE[2]),
        ("click-to-open", PALETTE[1]),
    ]
    losses = [("unsubscribe rate", PALETTE[3]), ("bounce rate", PALETTE[4])]

    def rows(*names: str) -> list[tuple[str, list[float | None]]]:
        return [(c.campaign, [c.total.rates()[name] for name in names]) for c in campaigns]

    return [
        (
            "Open, click and click-to-open rate per campaign",
            rate_chart(
                "response-rates",
                f"Open, click and click-to-open rate per e-mail campaign, {year}",
                "Per campaign: opened and clicked mails as a share of the delivered mails, "
                "and clicked mails as a share of the opened mails, in percent.",
                rows("open", "click", "click_to_open"),
                responses,
                x_label="percent of delivered mails (CTOR: of opened)",
            ),
        ),
        (
            "Unsubscribe and bounce rate per campaign",
            rate_chart(
                "loss-rates",
                f"Unsubscribe and bounce rate per e-mail campaign, {year}",
                "Per campaign: mails followed by an unsubscribe, as a share of the delivered "
                "mails, and mails that bounced, as a share of the mails tried, in percent.",
                rows("unsubscribe", "bounce"),
                losses,
                x_label="percent (bounce: of the mails tried)",
            ),
        ),
    ]


def _segment_chart(report: Report, width: int = WIDTH, prefix: str = "") -> Markup | None:
    if not report.segments:
        return None
    days = sorted({size.as_of for size in report.segments})
    names = sorted({size.segment for size in report.segments})
    sizes = {(size.segment, size.as_of): size.size for size in report.segments}
    series = [
        Series(name, [sizes.get((name, day)) for day in days], PALETTE[index % len(PALETTE)])
        for index, name in enumerate(names)
    ]
    return line_chart(
        f"{prefix}segments",
        f"Segment sizes, {report.year.label}",
        "Members per segment on each day a snapshot was saved (trouw segments count --save).",
        [day.strftime("%d %b") for day in days],
        series,
        low=0,
        x_label="snapshot day",
        y_label="members",
        width=width,
    )


def _loyalty_charts(report: Report) -> list[tuple[str, Markup]]:
    """(caption, chart) for the rates, the NPS and the loyalty score per month."""
    wide, narrow = _loyalty_lines(report, WIDTH, ""), _loyalty_lines(report, NARROW, "narrow-")
    return [
        (caption, Markup(a + "\n" + b)) for (caption, a), (_, b) in zip(wide, narrow, strict=True)
    ]


def _loyalty_lines(report: Report, width: int, prefix: str) -> list[tuple[str, Markup]]:
    months = report.loyalty_months
    if not months:
        return []
    labels = [month.period.first.strftime("%b") for month in months]

    def share(values: list[float | None]) -> list[float | None]:
        return [None if v is None else 100 * v for v in values]

    rates = line_chart(
        f"{prefix}rates",
        f"Churn, repurchase, upsell and CSAT per month, {report.year.label}",
        "Monthly churn rate, repurchase rate, upsell rate and CSAT, in percent.",
        labels,
        [
            Series("churn", share([m.churn_rate for m in months]), PALETTE[4]),
            Series("repurchase", share([m.repurchase_rate for m in months]), PALETTE[0]),
            Series("upsell", share([m.upsell_rate for m in months]), PALETTE[2]),
            Series("CSAT", share([m.csat for m in months]), PALETTE[1]),
        ],
        low=0,
        high=100,
        value_format=lambda v: f"{v:.0f}%",
        x_label=f"month of {report.year.label}",
        y_label="percent",
        width=width,
    )
    nps = line_chart(
        f"{prefix}nps",
        f"NPS per month, {report.year.label}",
        "Net promoter score per month: percent promoters minus percent detractors, -100 to 100.",
        labels,
        [Series("NPS", [m.nps for m in months], PALETTE[3])],
        low=-100,
        high=100,
        value_format=lambda v: f"{v:+.0f}" if v else "0",
        x_label=f"month of {report.year.label}",
        y_label="NPS",
        width=width,
    )
    score = line_chart(
        f"{prefix}loyalty-score",
        f"Loyalty score per month, {report.year.label}",
        "Loyalty score per month, 0 to 10: the mean of the average recommend score, "
        "the repurchase rate and the upsell rate, each on a 0-10 scale.",
        labels,
        [
            Series("loyalty score", [m.loyalty_score for m in months], PALETTE[5]),
            Series("average recommend", [m.average_recommend for m in months], PALETTE[6]),
        ],
        low=0,
        high=10,
        x_label=f"month of {report.year.label}",
        y_label="score (0-10)",
        width=width,
    )
    return [
        ("Churn, repurchase, upsell and CSAT per month", rates),
        ("NPS per month", nps),
        ("Loyalty score per month", score),
    ]


def report_html(report: Report, experiments: Experiments | None = None) -> str:
    """The whole page as text; `experiments` (A/B arms, winners, lift) add their section."""
    section = None
    if experiments:
        from trouw.reports.experiments import experiments_section

        section = experiments_section(experiments)
    source = files("trouw.reports").joinpath(TEMPLATE).read_text(encoding="utf-8")
    template = _environment().from_string(source)
    return template.render(
        report=report,
        version=__version__,
        rate_charts=_rate_charts(report),
        rate_names=RATE_NAMES,
        weekly=_twin(lambda width, prefix: _weekly_chart(report, width, prefix)),
        segments=_twin(lambda width, prefix: _segment_chart(report, width, prefix)),
        loyalty_charts=_loyalty_charts(report),
        no_variant=NO_VARIANT,
        experiments=section,
    )

"""The report's figures against the hand-made shop (tests/reports/shop.py), on both databases."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import Engine

from tests.reports.shop import AS_OF, YEAR, ZONE, build_shop
from trouw.errors import UserError
from trouw.project import Policy
from trouw.reports import Report, build_report
from trouw.reports.flooding import nearest_rank
from trouw.reports.funnel import Funnel
from trouw.reports.periods import month_periods, year_period


def _report(engine: Engine, *, year: int = YEAR, as_of: date = AS_OF) -> Report:
    with engine.connect() as connection:
        return build_report(
            connection, name="Test Shop", year=year, as_of=as_of, timezone=ZONE, caps=Policy()
        )


def _funnels(report: Report) -> dict[tuple[str, str | None], Funnel]:
    """(campaign, template) -> funnel; template None is the campaign's total."""
    found: dict[tuple[str, str | None], Funnel] = {}
    for campaign in report.campaigns:
        found[(campaign.campaign, None)] = campaign.total
        for template, funnel in campaign.variants.items():
            found[(campaign.campaign, template)] = funnel
    return found


@pytest.fixture
def shop(engine: Engine) -> Engine:
    build_shop(engine)
    return engine


def test_loyalty_figures_of_the_year(shop: Engine) -> None:
    figures = _report(shop).loyalty
    assert figures.counts() == {
        "customers_at_start": 4,
        "lost": 1,
        "buyers": 5,
        "repeat_buyers": 2,
        "returning_buyers": 4,
        "upsold": 2,
        "nps_answers": 7,
        "promoters": 3,
        "detractors": 2,
        "csat_answers": 5,
        "satisfied": 3,
    }
    assert figures.churn_rate == pytest.approx(1 / 4)
    assert figures.repurchase_rate == pytest.approx(2 / 5)
    assert figures.upsell_rate == pytest.approx(2 / 4)
    assert figures.nps == pytest.approx(100 * (3 - 2) / 7)
    assert figures.average_recommend == pytest.approx(46 / 7)
    assert figures.csat == pytest.approx(3 / 5)
    assert figures.loyalty_score == pytest.approx((46 / 7 + 4 + 5) / 3)


def test_loyalty_figures_per_month(shop: Engine) -> None:
    months = {figures.period.label: figures for figures in _report(shop).loyalty_months}
    assert list(months) == [f"2027-{m:02d}" for m in range(1, 13)]
    # c2's only purchase (2026-06-01) turns 12 months old in June 2027.
    june = months["2027-06"]
    assert (june.customers_at_start, june.lost) == (6, 1)
    assert june.churn_rate == pytest.approx(1 / 6)
    assert sum(m.lost for m in months.values()) == 1
    # April: only c4 bought, twice, and never before: repurchase 1, upsell unknown.
    april = months["2027-04"]
    assert (april.buyers, april.repeat_buyers, april.returning_buyers) == (1, 1, 0)
    assert april.repurchase_rate == 1.0
    assert april.upsell_rate is None
    assert april.loyalty_score is None  # no NPS answer in April either
    # January: c6 at 00:30 on New Year's night (still 2026 in UTC) bought tools, new to them.
    january = months["2027-01"]
    assert (january.buyers, january.returning_buyers, january.upsold) == (1, 1, 1)
    # March: NPS 10, 9 and 7 -> 2 promoters of 3; c3 bought living again: no upsell.
    march = months["2027-03"]
    assert march.nps == pytest.approx(200 / 3)
    assert march.upsell_rate == 0.0
    assert march.loyalty_score == pytest.approx((26 / 3 + 0 + 0) / 3)


def test_churn_counts_only_customers_gone_for_12_months(shop: Engine) -> None:
    """As of 31 March everyone who bought in 2026 bought in the last 12 months: nobody is lost
    yet, although c2 and c5 have not bought in 2027."""
    figures = _report(shop, as_of=date(2027, 3, 31)).loyalty
    assert figures.period.last == date(2027, 3, 31)
    assert (figures.customers_at_start, figures.lost) == (4, 0)
    assert figures.churn_rate == 0.0


def test_campaign_funnels(shop: Engine) -> None:
    funnels = _funnels(_report(shop))
    family = funnels[("spring", "spring/family")]
    assert family.counts() == {
        "planned": 3,  # c1, c2 (deferred), c5; c4's dropped send is no plan
        "sent": 2,
        "failed": 1,
        "delivered": 1,  # c2's mail bounced the next day
        "opened": 2,  # c1 twice, c2 by its ledger id
        "clicked": 1,
        "clicks": 2,
        "unsubscribed": 0,
        "opened_mails": 1,  # c2's mail bounced: bounced, not opened
        "clicked_mails": 1,
        "unsubscribed_mails": 0,
        "bounced": 2,  # c2's bounce event, and c5's 550 at RCPT TO
        "click_to_open": 1.0,
    }
    assert family.rates() == {
        "delivered": 1 / 3,  # of 3 tried: c1's; c2's bounced later, c5's refused
        "open": 1.0,
        "click": 1.0,
        "click_to_open": 1.0,
        "unsubscribe": 0.0,
        "bounce": 2 / 3,
    }
    single = funnels[("spring", "spring/single")]
    assert single.counts() == {
        "planned": 1,
        "sent": 1,
        "failed": 1,  # c6's 554 at DATA: failed, but no hard bounce
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
        "clicks": 1,
        "unsubscribed": 1,  # c3's imported unsubscribe: their last mail was this one
        "opened_mails": 1,
        "clicked_mails": 1,
        "unsubscribed_mails": 1,
        "bounced": 0,
        "click_to_open": 1.0,
    }
    assert single.rates()["delivered"] == 0.5  # c6's 554 failed
    assert single.rates()["unsubscribe"] == 1.0
    spring = funnels[("spring", None)]
    assert (spring.planned, spring.sent, spring.failed, spring.delivered) == (4, 3, 2, 2)
    assert (spring.opened, spring.clicked, spring.clicks, spring.unsubscribed) == (3, 2, 3, 1)
    assert spring.bounced == 2
    assert (spring.opened_mails, spring.clicked_mails) == (2, 2)
    assert spring.rates() == {
        "delivered": 2 / 5,
        "open": 1.0,
        "click": 1.0,
        "click_to_open": 1.0,
        "unsubscribe": 0.5,
        "bounce": 2 / 5,
    }
    # c1's January open belongs to 2026's welcome mail; c6's 2028 click comes after as-of.
    welcome = funnels[("welcome", "welcome/thanks")]
    assert (welcome.planned, welcome.sent, welcome.opened, welcome.clicked) == (2, 2, 2, 0)
    assert welcome.click_to_open == 0.0
    assert welcome.rates()["open"] == 1.0
    assert funnels[("news", None)].sent == 2
    assert funnels[("news", None)].click_to_open is None
    assert set(funnels) == {
        ("spring", None), ("spring", "spring/family"), ("spring", "spring/single"),
        ("welcome", None), ("welcome", "welcome/thanks"),
        ("news", None), ("news", "news/april"), ("news", "news/easter"),
    }  # fmt: skip


def test_nothing_after_as_of_counts(shop: Engine) -> None:
    report = _report(shop, as_of=date(2027, 4, 2))
    funnels = _funnels(report)
    family = funnels[("spring", "spring/family")]
    assert (family.sent, family.opened, family.clicks, family.bounced) == (2, 2, 1, 1)
    assert funnels[("news", None)].sent == 1
    assert report.weekly.max == 2  # c1: news on 1 April, spring on 2 April
    assert [m.period.label for m in report.loyalty_months][-1] == "2027-04"


def test_flooding_per_week_and_month(shop: Engine) -> None:
    report = _report(shop)
    weekly, monthly = report.weekly, report.monthly
    # Contact-weeks: c6 2 (29 Dec and 1 Jan, one ISO week), c1 3, c2 1, c3 1, c4 1.
    assert (weekly.cap, weekly.max, weekly.p99, weekly.contact_periods) == (2, 3, 3, 5)
    assert weekly.mean == pytest.approx(8 / 5)
    assert weekly.over_cap == 1
    assert [load.label for load in weekly.per_period] == ["2026-W53", "2027-W13", "2027-W14"]
    w13 = weekly.per_period[1]
    assert (w13.start, w13.sends, w13.contacts, w13.max) == (date(2027, 3, 29), 5, 3, 3)
    # Contact-months: c6 1 (January; 29 December is 2026's), c1 3, c2 1, c3 1, c4 1.
    assert (monthly.cap, monthly.max, monthly.p99, monthly.contact_periods) == (6, 3, 3, 5)
    assert monthly.mean == pytest.approx(7 / 5)
    assert monthly.over_cap == 0
    assert [load.label for load in monthly.per_period] == ["2027-01", "2027-04"]


def test_segment_sizes_from_snapshots(shop: Engine) -> None:
    sizes = [(s.segment, s.as_of.isoformat(), s.size) for s in _report(shop).segments]
    assert sizes == [
        ("families", "2027-03-01", 10),
        ("families", "2027-06-01", 12),
        ("singles", "2027-03-01", 5),
    ]


def test_an_empty_database_reports_nothing_sent(engine: Engine) -> None:
    report = _report(engine)
    assert report.campaigns == []
    assert report.weekly.contact_periods == 0
    assert not report.loyalty.has_data
    assert report.nothing_sent() is not None
    assert "nothing sent yet" in str(report.nothing_sent())


def test_a_year_after_as_of_is_refused(engine: Engine) -> None:
    with pytest.raises(UserError, match="2029"):
        _report(engine, year=2029, as_of=date(2028, 1, 15))


def test_nearest_rank_percentile() -> None:
    # 98 contact-weeks with 1 mail, 1 with 2 and 1 with 7: the 99th of 100 is 2.
    histogram = Counter({1: 98, 2: 1, 7: 1})
    assert nearest_rank(histogram, 0.99) == 2
    assert nearest_rank(histogram, 1.0) == 7
    assert nearest_rank(Counter({3: 1}), 0.99) == 3
    assert nearest_rank(Counter(), 0.99) == 0


def test_periods_stop_at_as_of() -> None:
    year = year_period(2027, date(2027, 3, 15))
    assert (year.label, year.first, year.last) == ("2027", date(2027, 1, 1), date(2027, 3, 15))
    months = month_periods(2027, date(2027, 3, 15))
    assert [(m.label, m.last) for m in months] == [
        ("2027-01", date(2027, 1, 31)),
        ("2027-02", date(2027, 2, 28)),
        ("2027-03", date(2027, 3, 15)),
    ]
    assert year_period(2026, date(2027, 3, 15)).last == date(2026, 12, 31)

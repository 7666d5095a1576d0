"""The SVG charts: axes that cover the data, escaped text, gaps for unknown values."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from trouw.reports.charts import Series, bar_chart, line_chart, nice_ticks, rate_chart

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("low", "high", "whole", "expected"),
    [
        (0, 12, False, [0, 5, 10, 15]),
        (0, 3.3, True, [0, 1, 2, 3, 4]),
        (0, 1, True, [0, 1]),
        (-100, 100, False, [-100, -50, 0, 50, 100]),
        (0, 0, False, [0, 0.2, 0.4, 0.6, 0.8, 1]),
    ],
)
def test_ticks_are_round_and_cover_the_data(
    low: float, high: float, whole: bool, expected: list[float]
) -> None:
    assert nice_ticks(low, high, whole=whole) == expected


def test_the_top_tick_is_never_below_the_highest_value() -> None:
    for high in (0.7, 3, 9.99, 12, 101, 19_307, 250_001):
        assert nice_ticks(0, high)[-1] >= high


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # also proves the markup is well-formed XML


def test_bar_chart_escapes_text_and_draws_the_cap() -> None:
    svg = _parse(
        bar_chart(
            "t",
            "Mails <per> week",
            "a & b",
            ["W01", "W02"],
            Series("most <b>", [1, 3], "#000"),
            cap=2,
            x_label="week",
            y_label="mails",
        )
    )
    assert svg.get("role") == "img"
    assert svg.findtext(f"{SVG}title") == "Mails <per> week"
    assert svg.findtext(f"{SVG}desc") == "a & b"
    bars = svg.findall(f".//{SVG}rect[@class='bar']")
    assert [bar.findtext(f"{SVG}title") for bar in bars] == ["W01: most <b> 1", "W02: most <b> 3"]
    assert len(svg.findall(f".//{SVG}line[@class='cap']")) == 1


def test_line_chart_breaks_at_unknown_values() -> None:
    svg = _parse(
        line_chart(
            "t",
            "NPS",
            "per month",
            ["Jan", "Feb", "Mar", "Apr", "May"],
            [Series("NPS", [10, 20, None, 30, 40], "#000")],
            low=-100,
            high=100,
            x_label="month",
            y_label="NPS",
        )
    )
    assert len(svg.findall(f".//{SVG}circle")) == 4
    assert len(svg.findall(f".//{SVG}polyline")) == 2


def test_rate_chart_draws_each_rate_to_scale_with_its_percent() -> None:
    svg = _parse(
        rate_chart(
            "t",
            "Rates",
            "open and click rate",
            [("spring", [0.5, 0.25]), ("news", [None, 0.0])],
            [("open rate", "#000"), ("click rate", "#111")],
            x_label="percent",
        )
    )
    bars = svg.findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 3  # no bar for an unknown rate
    widths = [float(bar.get("width", 0)) for bar in bars]
    assert widths[1] == pytest.approx(widths[0] / 2, abs=0.2)
    values = [text.text for text in svg.findall(f".//{SVG}text[@class='value']")]
    assert values == ["50.0%", "25.0%", "no data", "0.0%"]
    ticks = [text.text for text in svg.findall(f".//{SVG}text") if (text.text or "").endswith("%")]
    assert ticks[:5] == ["0%", "25%", "50%", "75%", "100%"]


def test_small_rates_get_their_own_scale() -> None:
    svg = _parse(
        rate_chart("t", "Rates", "bounce", [("spring", [0.02])], [("bounce", "#000")], x_label="%")
    )
    ticks = [text.text for text in svg.findall(f".//{SVG}text") if (text.text or "").endswith("%")]
    assert ticks[:5] == ["0%", "0.5%", "1%", "1.5%", "2%"]  # the bar reaches the top tick

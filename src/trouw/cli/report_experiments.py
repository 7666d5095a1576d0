"""`trouw report`'s experiments tables: A/B arms, test winners and the lift, in the terminal."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from trouw.cli.output import console
from trouw.reports.experiments import (
    FIGURES,
    Experiments,
    Rate,
    format_lift,
    format_value,
    significant,
)


def _rate(rate: Rate) -> str:
    if rate.value is None:
        return "-"
    assert rate.low is not None and rate.high is not None
    return f"{rate.value * 100:.1f}% ({rate.low * 100:.1f}-{rate.high * 100:.1f})"


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "p n/a"
    return f"p = {p_value:.3g}" + (" [bold]significant[/bold]" if significant(p_value) else "")


def print_experiments(experiments: Experiments) -> None:
    """The A/B arms, the winners picked, and the lift per comparison."""
    if experiments.tests:
        table = Table(title="A/B tests: each arm's rates (95% interval)", title_justify="left")
        for column in ("campaign:step / arm", "delivered", "open", "click"):
            table.add_column(column, justify="left" if column.startswith("campaign") else "right")
        for test in experiments.tests:
            table.add_row(
                f"[bold]{escape(test.campaign)}:{escape(test.step)}[/bold]",
                "",
                _p(test.open_p),
                _p(test.click_p),
            )
            for index, arm in enumerate(test.arms):
                table.add_row(
                    f"  {escape(arm.template)}",
                    f"{arm.delivered:,}",
                    _rate(arm.opened),
                    _rate(arm.clicked),
                    end_section=index == len(test.arms) - 1,
                )
        table.caption = "of the delivered mails; p: chi-square test that the arms share one rate"
        console.print(table)
    for winner in experiments.winners:
        console.print(escape(winner.describe()))
    if experiments.lifts:
        table = Table(
            title=f"lift: treated - held out, {experiments.window_days} days after the send",
            title_justify="left",
        )
        table.add_column("comparison")
        table.add_column("contacts", justify="right")
        for label, _ in FIGURES.values():
            table.add_column(label, justify="right")
        for lift in experiments.lifts:
            cells = []
            for name, (_, unit) in FIGURES.items():
                difference = lift.figures()[name]
                text = escape(format_lift(difference, unit))
                if difference.lift is not None:
                    text = (
                        f"{format_value(difference.treated, unit)} vs "
                        f"{format_value(difference.held, unit)}\n{text}"
                    )
                cells.append(f"[bold]{text}[/bold]" if difference.significant else text)
            table.add_row(
                f"{escape(lift.name)}\n[dim]vs {escape(lift.held_by[len('held out: ') :])}[/dim]",
                f"{lift.treated:,} vs {lift.held:,}",
                *cells,
            )
        table.caption = escape(experiments.method) + "; bold: significant"
        console.print(table)

"""The demo shows an experiment: the win-back subject-line test with its holdout, and the
program's lift against the control group, from the weeks after its send day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.demo.test_run import AS_OF, example_project, trouw


@pytest.fixture(autouse=True)
def _no_database_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROUW_DATABASE_URL", raising=False)


def test_the_demo_report_shows_the_ab_test_and_the_lift(tmp_path: Path) -> None:
    project = example_project(tmp_path)
    result = trouw(project, "demo", "--contacts", "1500", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "held out: control group" in text  # the plan's drops name it
    found = next(line for line in result.stdout.splitlines() if "trouw report --year" in line)
    report_args = found.split()[2:6]  # --year 2027 --as-of DAY: after the generated weeks
    page = (project / ".trouw" / "demo" / "report-2027.html").read_text(encoding="utf-8")
    assert 'id="experiments"' in page and "A/B test win-back:main" in page

    db = f"sqlite:///{project.resolve() / '.trouw' / 'demo.db'}"
    report = trouw(project, "report", *report_args, "--format", "json", db=db)
    assert report.exit_code == 0, report.output
    experiments = json.loads(report.stdout)["experiments"]
    (test,) = experiments["tests"]
    assert [arm["template"] for arm in test["arms"]] == [
        "win-back/we-miss-you", "win-back/gift-first",
    ]  # fmt: skip
    assert all(arm["delivered"] > 50 for arm in test["arms"])
    program, win_back = experiments["lift"]
    assert (program["name"], program["held_out_by"]) == ("program", "held out: control group")
    assert win_back["name"] == "win-back" and win_back["held_out"] > 10
    assert program["repurchase"]["low"] < program["repurchase"]["high"]

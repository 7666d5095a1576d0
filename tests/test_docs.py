"""The README's two set-up lines are real, and CI runs the test one verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETUP_LINES = [
    "pip install -e . && trouw demo",
    "pip install -e '.[dev,postgres]' && pytest",
]


def test_readme_has_the_two_setup_lines() -> None:
    block = README.split("## Set up a fresh clone", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    assert block.splitlines() == SETUP_LINES


def test_ci_runs_the_readme_test_line() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert SETUP_LINES[1] in ci

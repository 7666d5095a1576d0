"""`trouw check`: the whole project validated in one pass, without data.

The rules live in the loaders (project.py, segments/definition.py,
campaigns.py, templates/check.py); this module runs them all with one
collecting `Problems`, so every problem of every file is listed at once, and
adds what only the project as a whole can tell: the segments and templates a
campaign names, and a schedule with no day in the coming year (the plan's
"no day in the year" note, asked ahead of time). Nothing here opens a
database or writes a file: it is meant for pre-commit hooks and CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from trouw.campaigns import Campaign, CampaignError, campaign_names, check_references, read_campaign
from trouw.errors import UserError
from trouw.problems import Problems
from trouw.project import SETTINGS_FILE, load_project
from trouw.segments.definition import load_catalog
from trouw.templates.check import check_mail, check_template_files
from trouw.templates.environment import MailTemplates

COMING_DAYS = 365  # "the coming year": today and the 364 days after it
LOOK_FURTHER_YEARS = 10  # how far a schedule's next day is looked for, to name it
# Problems are listed file by file, in the order a reader meets the project.
_ORDER = (SETTINGS_FILE, "segments", "campaigns", "templates")


@dataclass
class ProjectCheck:
    """What `check_project` found: the problems, and what it read."""

    root: Path
    today: date
    problems: list[UserError] = field(default_factory=list)
    segments: int = 0
    campaigns: int = 0
    templates: int = 0

    @property
    def fine(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        counts = (
            (self.segments, "segment"),
            (self.campaigns, "campaign"),
            (self.templates, "template"),
        )
        return ", ".join(f"{n} {what}{'s' * (n != 1)}" for n, what in counts)

    def files(self) -> set[Path]:
        """The files that have a problem."""
        return {problem.path for problem in self.problems if problem.path is not None}

    def messages(self) -> list[str]:
        """Each problem as its message, file by file, with the file relative to the project."""
        return [self._message(problem) for problem in sorted(self.problems, key=self._place)]

    def _relative(self, path: Path | None) -> Path | None:
        if path is not None and path.is_relative_to(self.root):
            return path.relative_to(self.root)
        return path

    def _place(self, problem: UserError) -> tuple[int, str, int]:
        path = self._relative(problem.path)
        top = path.parts[0] if path is not None and path.parts else ""
        rank = _ORDER.index(top) if top in _ORDER else len(_ORDER)
        return (rank, str(path or ""), problem.line or 0)

    def _message(self, problem: UserError) -> str:
        return str(
            UserError(
                problem.reason,
                path=self._relative(problem.path),
                line=problem.line,
                key=problem.key,
                fix=problem.fix,
            )
        )


def check_project(root: Path, *, today: date | None = None) -> ProjectCheck:
    """Every problem of the project at `root`: settings, segments, templates, campaigns and
    the references between them. `today` (default: today in the project's time zone)
    starts the coming year a schedule must have a day in."""
    problems = Problems()
    project = load_project(root, problems)
    day = today or datetime.now(project.settings.tz).date()
    catalog = load_catalog(project.segments_dir, problems)
    templates = MailTemplates(project.templates_dir)
    template_files = check_template_files(templates, problems)
    names = campaign_names(project.campaigns_dir)
    for name in names:
        campaign = read_campaign(project.campaigns_dir / f"{name}.yaml", problems)
        if campaign is None:
            continue
        for error in check_references(
            campaign, segments=catalog.names, template_exists=templates.exists
        ):
            problems.add(error)
        for step in campaign.steps:
            for variant in step.variants:
                check_mail(templates, variant.template, project.settings.locale, problems)
        _check_schedule(campaign, day, problems)
    return ProjectCheck(
        root=root,
        today=day,
        problems=list(problems),
        segments=len(catalog.names),
        campaigns=len(names),
        templates=template_files,  # files: a mail, its text twin and locale siblings, layouts
    )


def _check_schedule(campaign: Campaign, today: date, problems: Problems) -> None:
    """A scheduled campaign with no day in the coming year reaches nobody: the rule the
    plan applies per year (`Schedule.days_in`), asked for the year from today."""
    schedule = campaign.schedule
    if schedule is None or (schedule.rrule is None and not schedule.dates):
        return  # no schedule, or one whose every date was reported as bad
    last = today + timedelta(days=COMING_DAYS - 1)
    if schedule.days_between(today, last):
        return
    later = schedule.days_between(
        last + timedelta(days=1), last.replace(year=last.year + LOOK_FURTHER_YEARS)
    )
    when = f"its next day is {later[0]}" if later else "it has no day after that either"
    what = f"rrule '{schedule.rrule}'" if schedule.rrule else "dates"
    problems.add(
        CampaignError(
            f"the schedule ({what}) has no day from {today} to {last}: nobody gets this "
            f"campaign in the coming year ({when})",
            path=campaign.path,
            line=schedule.line,
            key="schedule",
            fix="add a date in the coming year (dates: [YYYY-MM-DD]) or correct the rrule; "
            "remove the campaign if it is over",
        )
    )

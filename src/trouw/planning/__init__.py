"""The year plan: campaigns, triggers, caps and priorities -> dated sends per contact.

candidates.py asks the database (set-based, per chunk of contacts) who each
campaign wants to mail and when; policy.py decides per contact, without I/O,
what fits the caps, gaps and quiet days; planner.py streams the contacts and
writes the `plan` table; views.py reads it back for export, explain and the
calendar pages.
"""

from trouw.planning.planner import PlanSummary, calendar_campaigns, plan_year
from trouw.planning.policy import (
    DEFERRED,
    DROPPED,
    PLANNED,
    Candidate,
    Decision,
    QuietDays,
    Rules,
    YearCalendar,
    resolve,
)

__all__ = [
    "DEFERRED",
    "DROPPED",
    "PLANNED",
    "Candidate",
    "Decision",
    "PlanSummary",
    "QuietDays",
    "Rules",
    "YearCalendar",
    "calendar_campaigns",
    "plan_year",
    "resolve",
]

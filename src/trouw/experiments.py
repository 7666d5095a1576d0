"""Who is in which arm of a test, who is held out: stable hashes, in one place.

Plan, simulate, send (through planning/decision.py) and the preview (through
campaigns.choose_variant) all ask these functions, so they agree without
sharing any state, and a contact stays in their arm and out of (or in) a
holdout across re-plans and runs. Nothing here does I/O.

- an arm of a step's `test:`: a hash of (contact, campaign, step) against
  the arms' weights;
- a campaign's `holdout: 10%`: a hash of (contact, campaign): held out of
  every step of the campaign, so a journey is compared whole;
- the project's `[policy] control_group = "5%"`: a hash of (contact, year):
  no promotional or lifecycle mail that year, service mail still goes;
- the first wave of a test with a `share:` (the rest gets the winner): a
  hash of (contact, campaign, step), independent of the arm's.

Each rule has its own salt, so being held out says nothing of one's arm.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

# Reasons a held-out send is dropped with, in the plan and the ledger (`reports/lift.py`
# compares the contacts they name with those who got the mail).
HELD_OUT = "held out: "
CONTROL_GROUP = HELD_OUT + "control group"
CAMPAIGN_HOLDOUT = HELD_OUT + "campaign holdout"
# The template of a send to the rest of a test with a `share:` while its winner is not known:
# the plan shows it, and the send waits (sending/winners.py picks the winner).
WINNER_PENDING = "(the test's winner)"
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_SCALE = float(1 << 64)


def fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts`: the same on every machine and run, uniform over
    contacts (the first 8 bytes of their BLAKE2b digest)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def parse_share(value: object) -> float:
    """`"10%"` -> 0.1: a share of contacts, more than 0% and less than 100%.

    Raises ValueError saying what was wrong."""
    match = _SHARE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a share such as 10%, got {value!r}")
    percent = float(match.group(1))
    if not 0 < percent < 100:
        raise ValueError(f"{value} is no share of contacts: it must be above 0% and below 100%")
    return percent / 100


def format_share(share: float) -> str:
    """0.1 -> "10%", 0.025 -> "2.5%"."""
    return f"{share * 100:g}%"


def arm_index(contact_id: str, campaign: str, step: str, weights: Sequence[float]) -> int:
    """The arm (an index into `weights`) a contact gets in a step's test."""
    point = fraction("arm", contact_id, campaign, step) * sum(weights)
    reached = 0.0
    for index, weight in enumerate(weights):
        reached += weight
        if point < reached:
            return index
    return len(weights) - 1  # rounding at the very top


def wait_days(after_hours: int) -> int:
    """Whole days the rest of a test waits after the first wave: `after` rounded up, at least 1."""
    return max(1, -(-after_hours // 24))


def in_first_wave(contact_id: str, campaign: str, step: str, share: float) -> bool:
    """Whether the contact is in the share of a test that gets the arms (the rest waits for
    the winner)."""
    return fraction("wave", contact_id, campaign, step) < share


def held_out(contact_id: str, campaign: str, share: float) -> bool:
    """Whether a campaign's `holdout:` share keeps the contact out of the campaign."""
    return fraction("holdout", contact_id, campaign) < share


@lru_cache(maxsize=1 << 17)
def held_out_of(contact_id: str, holdouts: tuple[tuple[str, float], ...]) -> frozenset[str]:
    """The campaigns of `holdouts` ((name, share) pairs) that hold the contact out: the same
    every day, so a simulation deciding a contact again and again hashes them once."""
    return frozenset(name for name, share in holdouts if held_out(contact_id, name, share))


@lru_cache(maxsize=1 << 17)
def in_control_group(contact_id: str, year: int, share: float) -> bool:
    """Whether the project's control group holds the contact that year (hashed once, as
    `held_out_of`)."""
    return fraction("control", contact_id, str(year)) < share


__all__ = [
    "CAMPAIGN_HOLDOUT",
    "CONTROL_GROUP",
    "HELD_OUT",
    "WINNER_PENDING",
    "arm_index",
    "format_share",
    "fraction",
    "held_out",
    "held_out_of",
    "in_control_group",
    "in_first_wave",
    "parse_share",
    "wait_days",
]

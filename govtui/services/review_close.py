"""Closing an access review: every revoke, shorten and no-answer action applied in one
transaction through the grant lifecycle, the directory removals queued under the campaign,
then followed until the directory confirms every one; only then is the campaign closed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from govtui.models import Operator
from govtui.services import sync
from govtui.services.pause_views import Convergence

# Closing more than this share of a population, or more than this many grants, needs the
# exact count typed back (`--confirm-count N`).
CONFIRM_SHARE = 0.25
CONFIRM_ABOVE = 1_000
DUE_SOON = timedelta(days=3)


@dataclass(frozen=True)
class GroupRemoval:
    target: str
    group_dn: str
    members: int


@dataclass(frozen=True)
class ClosePlan:
    """Exactly what close would do; the real close ends exactly these grants."""

    campaign: str
    population: int
    revoke: list[int]  # grant ids, decided revoke or no-answer revoke, in id order
    shorten: list[tuple[int, datetime]]  # grant id and its new expiry, in id order
    kept: int
    no_answer: int
    ended_before_decision: int
    groups: list[GroupRemoval]  # the directory removals close would queue
    needs_confirm_count: bool

    @property
    def ends(self) -> int:
        return len(self.revoke)


@dataclass(frozen=True)
class Closed:
    campaign: str
    revoked: list[int]
    shortened: list[int]
    expired: list[int]  # shortened to a time already past: ended now, expired
    directory_ops: int


@dataclass(frozen=True)
class DueLine:
    campaign: str
    reviewer: str
    undecided: int
    due_at: datetime
    overdue: bool


def close_plan(session: Session, actor: Operator, *, campaign: str) -> ClosePlan:
    """What close would end and shorten, without writing (the creator or an admin)."""
    raise NotImplementedError


def close(
    session: Session, actor: Operator, *, campaign: str, confirm_count: int | None = None
) -> Closed:
    """Apply the campaign in one transaction and mark it closing (no code: it only removes)."""
    raise NotImplementedError


def directory_state(session: Session, campaign_id: int) -> Convergence:
    """How far the directory has confirmed the removals the campaign's close queued."""
    raise NotImplementedError


def settle(session: Session, *, campaign: str) -> bool:
    """Mark a closing campaign closed if the directory has confirmed every removal."""
    raise NotImplementedError


def follow(engine: Engine, campaign: str, progress: sync.Progress | None = None) -> Convergence:
    """Sync until the campaign's removals are confirmed or the stop rule holds; settle it."""
    raise NotImplementedError


def due(session: Session, *, within: timedelta = DUE_SOON) -> list[DueLine]:
    """Open campaigns' reviewers with undecided items due within `within` or overdue."""
    raise NotImplementedError

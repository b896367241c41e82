"""The read facade of access reviews for the CLI and the TUI: campaigns with progress, and a
campaign's items a window at a time with the decision helpers a reviewer needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlmodel import Session

from govtui.models import Operator
from govtui.services.pause_views import Convergence

ItemSort = Literal["id", "days_left", "project"]


@dataclass(frozen=True)
class ReviewerProgress:
    reviewer: str
    decided: int
    total: int  # items assigned, those ended before decision included
    ended: int


@dataclass(frozen=True)
class CampaignSummary:
    id: int
    name: str
    client: str
    state: str
    created_by: str
    created_at: datetime
    due_at: datetime
    overdue: bool  # open, past due, with undecided items
    if_no_answer: str
    total: int
    decided: int
    ended: int  # items whose grant ended before any decision
    reviewers: list[ReviewerProgress]


@dataclass(frozen=True)
class CampaignDetail:
    summary: CampaignSummary
    population_sha256: str
    despite_drift: str | None
    directory: Convergence | None  # after close: what the directory has confirmed
    unconfirmed: list[str]  # why each still-unconfirmed removal is not confirmed


@dataclass(frozen=True)
class ItemRow:
    item_id: int
    grant_id: int
    contractor: str
    directory_uid: str
    project: str
    scope: str
    access: str
    reviewer: str
    grant_state: str
    decision: str | None
    shorten_days: int | None
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    outcome: str | None
    # The decision helpers.
    days_since_granted: int | None
    days_left: int | None
    contract_end: date
    requester: str
    approvers: tuple[str, ...]
    client_paused: bool
    contractor_offboarded: bool
    peers: int  # other contractors of the same project holding this scope at this level
    previous_decision: str | None  # this grant's decision in the client's previous campaign
    ended_before_decision: bool


@dataclass(frozen=True)
class ItemWindow:
    rows: list[ItemRow]
    total: int  # matching the filters, whatever the window
    offset: int


def campaigns(session: Session) -> list[CampaignSummary]:
    """Every campaign, newest first, with progress per reviewer."""
    raise NotImplementedError


def campaign(session: Session, name: str) -> CampaignDetail:
    """One campaign, its progress, and what its close still waits for."""
    raise NotImplementedError


def items(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    mine: bool = False,
    undecided: bool = False,
    sort: ItemSort = "id",
    offset: int = 0,
    limit: int = 200,
) -> ItemWindow:
    """One window of a campaign's items with their decision helpers."""
    raise NotImplementedError


def iter_items(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    mine: bool = False,
    undecided: bool = False,
    sort: ItemSort = "id",
) -> Iterator[ItemRow]:
    """Every matching item, a window at a time (bounded memory for --json)."""
    raise NotImplementedError

"""Reviewers' decisions on the items of an open campaign: keep and shorten keep access alive
and so need the reviewer's TOTP code (one per batch); revoke never waits for one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from govtui.models import Operator
from govtui.vocabulary import ReviewDecision


@dataclass(frozen=True)
class ItemSelection:
    """Which items a decision is for: item ids, grant ids, or every undecided-or-not item
    assigned to the acting reviewer."""

    item_ids: Sequence[int] = ()
    grant_ids: Sequence[int] = ()
    all_mine: bool = False


@dataclass(frozen=True)
class Decided:
    campaign: str
    decision: ReviewDecision
    item_ids: list[int]  # decided (or changed) by this batch, in id order
    changed: int  # of those, how many had another decision before
    ended: list[int]  # items whose grant had ended: skipped, no decision needed


def decide(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    selection: ItemSelection,
    decision: ReviewDecision,
    reason: str,
    days: int | None = None,
    code: str | None = None,
) -> Decided:
    """Record one decision on every selected item (the actor must be each item's reviewer);
    one audit event for the batch."""
    raise NotImplementedError

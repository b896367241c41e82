"""Moving an open campaign's undecided items from one reviewer to another (an admin, with
their TOTP code): the target must be eligible exactly as at start, and independent of every
item moved, or nothing moves. Also who can no longer decide the items they hold (a reviewer
who lost the role or the client link mid-campaign), for `review show` and `review due`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlmodel import Session

from govtui.db import ident
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import Client, Grant, Operator, ReviewCampaign, ReviewItem, ReviewReviewer
from govtui.services import audit, operators, review_decisions, reviews, second_factor, validation
from govtui.vocabulary import CampaignState, Role

_ITEM: sa.Table = ReviewItem.__table__  # type: ignore[attr-defined]
_GRANT: sa.Table = Grant.__table__  # type: ignore[attr-defined]
_REVIEWER: sa.Table = ReviewReviewer.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Reassigned:
    """What a reassignment moved (or, dry run, would move)."""

    campaign: str
    from_reviewer: str
    to_reviewer: str
    count: int  # items moved
    ids_sha256: str  # audit.id_summary of the moved item ids
    first_ids: list[int]
    decided: list[int]  # items of --from (or named) already decided: not moved
    added_reviewer: bool  # the target was not one of the campaign's reviewers: now is
    from_cannot_decide: str  # why --from may no longer decide ('' when they still may)
    dry_run: bool
    item_ids: list[int] = field(default_factory=list, repr=False)  # moved, in id order


def _named(ids: Sequence[int]) -> str:
    shown = ", ".join(map(str, ids[: reviews.NAMED]))
    more = f" and {len(ids) - reviews.NAMED} more" if len(ids) > reviews.NAMED else ""
    return shown + more


def _ids(session: Session, query: sa.Select[Any]) -> list[int]:
    return [int(i) for i in session.execute(query).scalars()]


def cannot_decide(session: Session, campaign: ReviewCampaign, operator: Operator) -> str:
    """Why the operator may not decide the campaign's items any more ('' when they may):
    removed, lost the reviewer role or the client link, or not one of its reviewers."""
    client = session.get(Client, campaign.client_id)
    assert client is not None
    _op, why = reviews.standing(session, operator.name, client, "reviewer")
    if not why and not review_decisions.of_campaign(session, campaign, operator):
        why = f"reviewer {operator.name!r} is not one of the campaign's reviewers"
    return why


def stranded(session: Session, campaign: ReviewCampaign) -> dict[str, tuple[int, str]]:
    """Reviewers holding undecided items of a live grant that they can no longer decide:
    name -> (how many, why). One grouped query; the rule runs once per reviewer."""
    rows = session.execute(
        sa.select(_ITEM.c.reviewer_id, sa.func.count())
        .select_from(_ITEM.join(_GRANT, _GRANT.c.id == _ITEM.c.grant_id))
        .where(
            _ITEM.c.campaign_id == ident(campaign),
            _ITEM.c.decision.is_(None),
            _ITEM.c.outcome.is_(None),
            _GRANT.c.state.in_(reviews.REVIEWED_STATES),
        )
        .group_by(_ITEM.c.reviewer_id)
    ).all()
    out: dict[str, tuple[int, str]] = {}
    for reviewer_id, n in rows:
        operator = session.get(Operator, reviewer_id)
        assert operator is not None
        why = cannot_decide(session, campaign, operator)
        if why:
            out[operator.name] = (int(n), why)
    return dict(sorted(out.items()))


def stranded_of(session: Session, campaigns: Iterable[ReviewCampaign]) -> set[tuple[str, str]]:
    """(campaign, reviewer) pairs of open campaigns whose reviewer can no longer decide."""
    return {
        (c.name, name)
        for c in campaigns
        if c.state == CampaignState.OPEN
        for name in stranded(session, c)
    }


def _named_items(
    session: Session, campaign: ReviewCampaign, source: Operator, item_ids: Sequence[int]
) -> sa.ColumnElement[bool]:
    """The condition selecting the named items, refusing ids that are not the campaign's or
    not assigned to --from (one line naming them)."""
    for i in item_ids:
        if isinstance(i, bool) or not isinstance(i, int) or i < 1:
            raise InputError(f"item ids are whole numbers from 1: got {i!r}")
    chosen = review_decisions.among(session, _ITEM.c.id, item_ids)
    found = session.execute(
        sa.select(_ITEM.c.id, _ITEM.c.reviewer_id).where(
            _ITEM.c.campaign_id == ident(campaign), chosen
        )
    ).all()
    missing = sorted(set(item_ids) - {int(i) for i, _r in found})
    if missing:
        raise NotFoundError(f"not items of campaign {campaign.name!r}: {_named(missing)}")
    others = sorted(int(i) for i, r in found if r != ident(source))
    if others:
        raise PolicyError(
            f"item(s) {_named(others)} of campaign {campaign.name!r} are not assigned to "
            f"{source.name!r}: only --from's items move"
        )
    return chosen


def reassign(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    from_reviewer: str,
    to_reviewer: str,
    reason: str,
    item_ids: Sequence[int] = (),
    code: str | None = None,
    dry_run: bool = False,
) -> Reassigned:
    """Move --from's undecided items (or only the named ones) to --to, all or nothing; one
    audit event. The dry run checks the same and writes nothing (and needs no code)."""
    operators.require_role(session, actor, Role.ADMIN)
    why = validation.reason(reason, "reassignment")
    given = sorted(set(item_ids))
    # Locked as decide and close lock it: no decision lands on an item while it moves, and no
    # close computes its plan meanwhile. (A dry run reads in a read-only transaction.)
    record = reviews.find_campaign(session, campaign, lock=not dry_run)
    if record.state != CampaignState.OPEN:
        raise ConflictError(
            f"campaign {record.name!r} is {record.state}: items are reassigned only while it "
            "is open"
        )
    client = session.get(Client, record.client_id)
    assert client is not None
    source = operators.find(session, from_reviewer)
    target, problem = reviews.standing(session, to_reviewer, client, "target reviewer")
    if ident(source) == ident(target):
        raise InputError(f"--from and --to are both {source.name!r}: nothing to reassign")
    if problem:
        raise PolicyError(f"{problem} (a reviewer needs the reviewer role and --reviews CLIENT)")
    theirs = [_ITEM.c.campaign_id == ident(record), _ITEM.c.reviewer_id == ident(source)]
    if given:
        theirs.append(_named_items(session, record, source, given))
    decided = _ids(
        session,
        sa.select(_ITEM.c.id).where(*theirs, _ITEM.c.decision.is_not(None)).order_by(_ITEM.c.id),
    )
    moving_where = [*theirs, _ITEM.c.decision.is_(None)]
    moving = _ids(session, sa.select(_ITEM.c.id).where(*moving_where).order_by(_ITEM.c.id))
    if not moving:
        kept = (
            f" ({len(decided)} decided: a decided item stays with its decider)" if decided else ""
        )
        raise ConflictError(
            f"{source.name!r} holds no undecided item{' of those named' if given else ''} in "
            f"campaign {record.name!r}: nothing to reassign{kept}"
        )
    # The same independence rule as start and decide, in SQL, for every item moving.
    free = reviews.independent(ident(target), _GRANT)
    conflicted = session.execute(
        sa.select(_ITEM.c.id, _ITEM.c.grant_id)
        .select_from(_ITEM.join(_GRANT, _GRANT.c.id == _ITEM.c.grant_id))
        .where(*moving_where, ~free)
        .order_by(_ITEM.c.id)
    ).all()
    if conflicted:
        raise PolicyError(
            f"{target.name!r} may not review item(s) {_named([int(i) for i, _g in conflicted])}"
            f" (grants {_named([int(g) for _i, g in conflicted])}) of campaign "
            f"{record.name!r}: they requested or approved the grant, or requested an extension "
            "of it; nothing was reassigned"
        )
    summary = audit.id_summary(moving)
    added = not review_decisions.of_campaign(session, record, target)
    result = Reassigned(
        campaign=record.name,
        from_reviewer=source.name,
        to_reviewer=target.name,
        count=len(moving),
        ids_sha256=str(summary["ids_sha256"]),
        first_ids=list(summary["first_ids"]),  # type: ignore[call-overload]
        decided=decided,
        added_reviewer=added,
        from_cannot_decide=cannot_decide(session, record, source),
        dry_run=dry_run,
        item_ids=moving,
    )
    if dry_run:
        return result
    if not code:
        raise InputError("reassigning reviews is an admin act: give your TOTP code (--totp)")
    step = second_factor.verify(
        session, actor, code, purpose=f"reassigning items of campaign {record.name}"
    )
    if added:
        # Decide accepts only a listed reviewer or the fallback: the target is listed last.
        last = session.execute(
            sa.select(sa.func.max(_REVIEWER.c.position)).where(
                _REVIEWER.c.campaign_id == ident(record)
            )
        ).scalar_one()
        session.execute(
            sa.insert(_REVIEWER).values(
                campaign_id=ident(record), position=int(last or 0) + 1, operator_id=ident(target)
            )
        )
    # One UPDATE for every item. The first reviewer is kept: a second reassignment leaves
    # original_reviewer_id alone (SET reads the row's values from before the update). The
    # independence rule is repeated in the statement: on PostgreSQL an approval or extension
    # by the target committing since the check would make the count differ, and nothing moves.
    still_free = sa.exists().where(_GRANT.c.id == _ITEM.c.grant_id, free)
    written: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(_ITEM)
        .where(*moving_where, still_free)
        .values(
            reviewer_id=ident(target),
            original_reviewer_id=sa.func.coalesce(
                _ITEM.c.original_reviewer_id, _ITEM.c.reviewer_id
            ),
        )
    )
    if written.rowcount != len(moving):
        raise ConflictError(
            f"campaign {record.name!r} changed while reassigning ({written.rowcount} of "
            f"{len(moving)} items still movable): nothing was reassigned; try again"
        )
    audit.append(
        session,
        actor=actor.name,
        action="review.reassign",
        obj=f"review:{record.name}",
        details={
            "campaign": record.name,
            "from": source.name,
            "to": target.name,
            "reason": why,
            "totp_step": step,
            "named": bool(given),
            "decided_not_moved": len(decided),
            "added_reviewer": added,
            "from_cannot_decide": result.from_cannot_decide or None,
            **summary,
        },
    )
    return result

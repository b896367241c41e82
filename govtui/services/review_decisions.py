"""Reviewers' decisions on the items of an open campaign: keep and shorten keep access alive
and so need the reviewer's TOTP code (one per batch); revoke never waits for one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult
from sqlmodel import Session

from govtui import clock, db
from govtui.db import ident
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import (
    Client,
    DatasetScope,
    Grant,
    Operator,
    ReviewCampaign,
    ReviewItem,
    ReviewReviewer,
)
from govtui.services import act_signatures, audit, operators, reviews, second_factor, validation
from govtui.vocabulary import CampaignState, ReviewDecision, Sensitivity

_ITEM: sa.Table = ReviewItem.__table__  # type: ignore[attr-defined]
_GRANT: sa.Table = Grant.__table__  # type: ignore[attr-defined]
_SCOPE: sa.Table = DatasetScope.__table__  # type: ignore[attr-defined]
_REVIEWER: sa.Table = ReviewReviewer.__table__  # type: ignore[attr-defined]

MAX_SHORTEN_DAYS = 3650
RESTRICTED_WORDS = 3  # a decision on a restricted scope says why in at least this many words


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


class _Row(Protocol):
    """One selected item, as decide needs to judge it (a result row, not copied: 100,000 of
    them are read per --all-mine batch)."""

    item_id: int
    grant_id: int
    reviewer_id: int
    decided: bool
    live: bool  # its grant is still active or suspended
    restricted: bool
    independent: bool  # the actor neither requested nor approved its grant, nor extended it


def _named(ids: Sequence[int]) -> str:
    shown = ", ".join(map(str, ids[: reviews.NAMED]))
    more = f" and {len(ids) - reviews.NAMED} more" if len(ids) > reviews.NAMED else ""
    return shown + more


def among(
    session: Session, column: sa.ColumnElement[int], ids: Sequence[int]
) -> sa.ColumnElement[bool]:
    """`column` is one of `ids`, as ONE bound parameter (a JSON array on SQLite, an array on
    PostgreSQL): a 5,000-id IN list costs more to render and bind than the statement to run."""
    if session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.Integer())))
    listed = sa.func.json_each(json.dumps(list(ids))).table_valued("value")
    return column.in_(sa.select(listed.c.value))


def _chosen(
    session: Session, campaign: ReviewCampaign, actor: Operator, selection: ItemSelection
) -> tuple[list[sa.ColumnElement[bool]], int | None]:
    """The selected items of the campaign as conditions, and how many ids the selection
    names (None: --all-mine, every item assigned to the actor)."""
    campaign_id: sa.ColumnElement[int] = _ITEM.c.campaign_id
    if selection.all_mine:
        return [campaign_id == ident(campaign), _ITEM.c.reviewer_id == ident(actor)], None
    if session.get_bind().dialect.name == "sqlite":
        # The ids must drive the lookup: SQLite, without statistics, would rather walk the
        # campaign's index (50,000 items) for each batch. `+ 0` keeps it off that index.
        campaign_id = campaign_id + 0
    column = _ITEM.c.id if selection.item_ids else _ITEM.c.grant_id
    given = sorted(set(selection.item_ids or selection.grant_ids))
    return [campaign_id == ident(campaign), among(session, column, given)], len(given)


def _all_pass(
    session: Session,
    campaign: ReviewCampaign,
    actor: Operator,
    selection: ItemSelection,
    reason: str,
) -> int | None:
    """The common case judged in one aggregate read, no rows built: when every selected item
    exists, is the actor's, is of a live grant, is independent of the actor and (given a
    short reason) of no restricted scope, how many of them had a decision; else None, and
    _judged names what is wrong. The same conditions as _judged's, as SQL."""
    passes = [
        _ITEM.c.reviewer_id == ident(actor),
        _GRANT.c.state.in_(reviews.REVIEWED_STATES),
        reviews.independent(ident(actor), _GRANT),
    ]
    joined = _ITEM.join(_GRANT, _GRANT.c.id == _ITEM.c.grant_id)
    if len(reason.split()) < RESTRICTED_WORDS:
        passes.append(_SCOPE.c.sensitivity != Sensitivity.RESTRICTED.value)
        joined = joined.join(_SCOPE, _SCOPE.c.id == _GRANT.c.scope_id)
    chosen, named = _chosen(session, campaign, actor, selection)
    found, decided, failing = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(_ITEM.c.decision),
            # A NULL in any condition fails it: _judged then decides such a row exactly.
            sa.func.count(sa.case((sa.and_(*passes), sa.null()), else_=sa.literal(1))),
        )
        .select_from(joined)
        .where(*chosen)
    ).one()
    if failing or not found or (named is not None and found != named):
        return None
    return int(decided)


def of_campaign(session: Session, campaign: ReviewCampaign, actor: Operator) -> bool:
    """Whether the actor is a listed reviewer or the fallback of the campaign: an item
    assigned to anybody else (by SQL) is nobody's to decide."""
    if campaign.fallback_reviewer_id == ident(actor):
        return True
    listed = session.execute(
        sa.select(_REVIEWER.c.operator_id).where(
            _REVIEWER.c.campaign_id == ident(campaign), _REVIEWER.c.operator_id == ident(actor)
        )
    ).first()
    return listed is not None


def _selected(
    session: Session, campaign: ReviewCampaign, actor: Operator, selection: ItemSelection
) -> list[_Row]:
    """The selected items of the campaign with what decide checks, read in one query."""
    base = (
        sa.select(
            _ITEM.c.id.label("item_id"),
            _ITEM.c.grant_id.label("grant_id"),
            _ITEM.c.reviewer_id.label("reviewer_id"),
            _ITEM.c.decision.is_not(None).label("decided"),
            _GRANT.c.state.in_(reviews.REVIEWED_STATES).label("live"),
            (_SCOPE.c.sensitivity == Sensitivity.RESTRICTED.value).label("restricted"),
            reviews.independent(ident(actor), _GRANT).label("independent"),
        )
        .select_from(
            _ITEM.join(_GRANT, _GRANT.c.id == _ITEM.c.grant_id).join(
                _SCOPE, _SCOPE.c.id == _GRANT.c.scope_id
            )
        )
        .where(*_chosen(session, campaign, actor, selection)[0])
    )
    rows: list[_Row] = list(session.execute(base))
    rows.sort(key=lambda row: row.item_id)
    given, found = (
        (set(selection.item_ids), {row.item_id for row in rows})
        if selection.item_ids
        else (set(selection.grant_ids), {row.grant_id for row in rows})
    )
    missing = sorted(given - found)
    if missing and not selection.all_mine:
        what = "items" if selection.item_ids else "grants"
        raise NotFoundError(f"not {what} of campaign {campaign.name!r}: {_named(missing)}")
    return rows


def _check_inputs(
    selection: ItemSelection, decision: str, reason: str, days: int | None
) -> tuple[ReviewDecision, str, int | None]:
    chosen = validation.choice(str(decision), ReviewDecision, "decision")
    reason = validation.reason(reason, "review decision")
    kinds = sum([bool(selection.item_ids), bool(selection.grant_ids), selection.all_mine])
    if kinds != 1:
        raise InputError("name the items to decide: item ids, --grant IDs or --all-mine (one)")
    if chosen == ReviewDecision.SHORTEN:
        if (
            days is None
            or isinstance(days, bool)
            or not isinstance(days, int)
            or not 1 <= days <= MAX_SHORTEN_DAYS
        ):
            raise InputError(f"shorten needs DAYS, a whole number from 1 to {MAX_SHORTEN_DAYS}")
    elif days is not None:
        raise InputError(f"{chosen} takes no days (only shorten does)")
    return chosen, reason, days


def _refuse_conflicted(
    session: Session,
    actor: Operator,
    campaign: ReviewCampaign,
    decision: ReviewDecision,
    conflicted: Sequence[_Row],
) -> NoReturn:
    """Undo the batch, record the refusal as an audit event that outlives the rollback, and
    raise: an auditor sees who tried to decide on access they requested or approved."""
    item_ids = [row.item_id for row in conflicted]
    message = (
        f"{actor.name!r} may not decide item(s) {_named(item_ids)} of campaign "
        f"{campaign.name!r}: they requested or approved the grant, or requested an extension "
        "of it, since the campaign started; an independent reviewer must decide it"
    )
    details = {
        "campaign": campaign.name,
        "decision": decision.value,
        "why": "conflict of interest",
        "grants": sorted(row.grant_id for row in conflicted)[: reviews.NAMED],
        **audit.id_summary(item_ids),
    }

    def record(locked: Session) -> None:
        audit.append(
            locked,
            actor=actor.name,
            action="review.refused",
            obj=f"review:{campaign.name}",
            details=details,
        )

    # Undo the batch and commit only the refusal, under the actor's lock (see decide).
    db.keep_only(session, record)
    raise PolicyError(message)


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
    chosen, reason, days = _check_inputs(selection, decision, reason, days)
    if db.operation_holder(session) is None:
        # Outside Workspace.act (a script, a benchmark): mark the operation here, after
        # locking the actor's row as act does, so a refusal can still outlive the rollback.
        db.begin_operation(session, second_factor.hold(session, actor))
    # Locked first: a close takes this lock too, so no decision lands on a closing campaign
    # and none is lost to a close computing its plan meanwhile.
    row = reviews.find_campaign(session, campaign, lock=True)
    if row.state != CampaignState.OPEN:
        raise ConflictError(
            f"campaign {row.name!r} is {row.state}: decisions are taken only while it is open"
        )
    client = session.get(Client, row.client_id)
    assert client is not None
    if not operators.is_reviewer_for(session, actor, client):
        raise PolicyError(
            f"{actor.name!r} is not a reviewer for client {client.name!r}: only its "
            f"reviewers decide the items of campaign {row.name!r}"
        )
    changed = _all_pass(session, row, actor, selection, reason)
    ended: list[int] = []
    judged: list[int] | None = None
    if changed is None:
        judged, changed, ended = _judged(session, actor, row, chosen, selection, reason)
    # Every item is the actor's now; start assigns items only to the campaign's reviewers.
    if not of_campaign(session, row, actor):
        raise PolicyError(
            f"{actor.name!r} is neither a listed reviewer nor the fallback reviewer of "
            f"campaign {row.name!r}: an item assigned to them is nobody's to decide"
        )
    if judged is None:
        # Nothing to refuse or skip: no rows read (a batch is thousands of items).
        chosen_items = _chosen(session, row, actor, selection)[0]
        known = sorted(set(selection.item_ids)) if selection.item_ids else None
    elif judged:
        chosen_items = _chosen(session, row, actor, ItemSelection(item_ids=judged))[0]
        known = judged
    else:
        return Decided(row.name, chosen, [], 0, ended)
    step = None
    if chosen != ReviewDecision.REVOKE:
        # Keeping access alive is adding friction's direction: the reviewer's code, once.
        if not code:
            raise InputError(f"{chosen} keeps access alive: give your TOTP code (--totp)")
        step = second_factor.verify(
            session, actor, code, purpose=f"review {chosen} in campaign {row.name}"
        )
    now = clock.now()
    values: dict[str, object] = {
        "decision": chosen.value,
        "shorten_days": days,
        "shorten_until": now + timedelta(days=days) if days is not None else None,
        "reason": reason,
        "decided_by": ident(actor),
        "decided_at": now,
        "totp_step": step,
    }
    # What was judged still holds on SQLite: the transaction has held the database's write
    # lock since it began. On PostgreSQL, under the campaign lock, only a grant ending
    # meanwhile (another process) could differ: such an item is left out, reported as ended.
    # (Looked up by the item's grant: an IN list of every live grant would be built per batch.)
    live = sa.exists().where(
        _GRANT.c.id == _ITEM.c.grant_id, _GRANT.c.state.in_(reviews.REVIEWED_STATES)
    )
    still = [live] if session.get_bind().dialect.name == "postgresql" else []
    update = (
        sa.update(_ITEM)
        .where(*chosen_items, _ITEM.c.reviewer_id == ident(actor), *still)
        .values(**values)
    )
    if known is None:
        item_ids = sorted(session.execute(update.returning(_ITEM.c.id)).scalars().all())
    else:
        # The ids are known: the count back says whether all were written (5,000 ids sent
        # back by RETURNING cost more than the rest of the statement).
        written: CursorResult[Any] = session.execute(update)  # type: ignore[assignment]
        item_ids = known
        if written.rowcount != len(known):
            gone = set(session.execute(sa.select(_ITEM.c.id).where(*chosen_items, ~live)).scalars())
            item_ids = [i for i in known if i not in gone]
            ended = sorted({*ended, *gone})
    audit.append(
        session,
        actor=actor.name,
        action="review.decide",
        obj=f"review:{row.name}",
        details={
            "campaign": row.name,
            "decision": chosen.value,
            "days": days,
            "reason": reason,
            "totp_step": step,
            "changed": changed,
            "ended_skipped": len(ended),
            **audit.id_summary(item_ids),
            **_signed(session, actor, chosen, item_ids),
        },
    )
    return Decided(row.name, chosen, item_ids, changed, ended)


def _signed(
    session: Session, actor: Operator, chosen: ReviewDecision, item_ids: list[int]
) -> dict[str, str]:
    """A keep or shorten keeps access alive: signed by the reviewer (act_signatures)."""
    if chosen == ReviewDecision.REVOKE:
        return {}
    return {"signature": act_signatures.sign_review(session, actor, item_ids=item_ids)}


def _judged(
    session: Session,
    actor: Operator,
    campaign: ReviewCampaign,
    decision: ReviewDecision,
    selection: ItemSelection,
    reason: str,
) -> tuple[list[int], int, list[int]]:
    """Name what the fast check found wrong, refusing as the rules say (a conflict audited);
    else the live item ids to decide, how many of them had a decision, the ended ones."""
    rows = _selected(session, campaign, actor, selection)
    others = [r.item_id for r in rows if r.reviewer_id != ident(actor)]
    if others:
        raise PolicyError(
            f"item(s) {_named(others)} of campaign {campaign.name!r} are assigned to another "
            f"reviewer: only an item's assigned reviewer decides it, not {actor.name!r}"
        )
    ended = [r.item_id for r in rows if not r.live]
    live = [r for r in rows if r.live]
    if any(r.restricted for r in live) and len(reason.split()) < RESTRICTED_WORDS:
        raise InputError(
            f"a decision on a restricted scope needs a reason of at least {RESTRICTED_WORDS} "
            "words (--reason)"
        )
    conflicted = [r for r in live if not r.independent]
    if conflicted:
        _refuse_conflicted(session, actor, campaign, decision, conflicted)
    return [r.item_id for r in live], sum(1 for r in live if r.decided), ended

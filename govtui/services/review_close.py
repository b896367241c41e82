"""Closing an access review: every revoke, shorten and no-answer action applied in one
transaction through the grant lifecycle, the directory removals queued under the campaign,
then followed until the directory confirms every one; only then is the campaign closed.

What close does is decided by one SQL expression (`_outcome`): the dry run reads it, and the
real close writes it onto the items first and then ends exactly the grants whose item says
so, with the campaign row and the grants locked, so the two cannot differ."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.directory import group_names
from govtui.errors import ConflictError, PolicyError
from govtui.models import Grant, Operator, OutboxOp, ReviewCampaign, ReviewItem
from govtui.services import (
    audit,
    convergence,
    directory_targets,
    grant_lifecycle,
    operators,
    review_reassign,
    reviews,
    sync,
)
from govtui.services.pause_views import Convergence, convergence_of
from govtui.services.workspace import Workspace
from govtui.sqltypes import UTCDateTime
from govtui.text import quoted
from govtui.vocabulary import (
    IN_DIRECTORY_STATES,
    CampaignState,
    GrantState,
    ItemOutcome,
    OutboxOperation,
    ReviewDecision,
    Role,
)

# Closing more than this share of a population, or more than this many grants, needs the
# exact count typed back (`--confirm-count N`).
CONFIRM_SHARE = 0.25
CONFIRM_ABOVE = 1_000
# `due` reminds reviewers a week ahead, again the day before, then every run once overdue.
DUE_SOON = timedelta(days=7)
DUE_TOMORROW = timedelta(days=1)

_ITEM: sa.Table = ReviewItem.__table__  # type: ignore[attr-defined]
_GRANT: sa.Table = Grant.__table__  # type: ignore[attr-defined]
_ENDING = (ItemOutcome.REVOKED, ItemOutcome.NO_ANSWER_REVOKED)


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
    # Added by reviewclose: what the dry run shows besides the lists above.
    state: str = CampaignState.OPEN.value
    no_answer_revoke: int = 0  # of `revoke`, those nobody answered (if_no_answer=revoke)
    expire: list[int] = field(default_factory=list)  # of `shorten`: new expiry already past

    @property
    def ends(self) -> int:
        """Every grant close would end: the revokes and the shortens already past (expired).
        The --confirm-count rule counts this, whatever the decision that ends them."""
        return len(self.revoke) + len(self.expire)


@dataclass(frozen=True)
class Closed:
    campaign: str
    revoked: list[int]
    shortened: list[int]
    expired: list[int]  # shortened to a time already past: ended now, expired
    directory_ops: int
    # Added by reviewclose: closed at once (nothing queued), or closing; `followed_only`:
    # the campaign was closing already, so nothing was applied (close only follows again).
    state: str = CampaignState.CLOSING.value
    followed_only: bool = False


@dataclass(frozen=True)
class DueLine:
    campaign: str
    reviewer: str
    undecided: int
    due_at: datetime
    overdue: bool
    urgency: str = "7d"  # overdue | 1d (due within a day) | 7d (within a week)
    # Why the reviewer can no longer decide these items ('' when they can): reassign them.
    cannot_decide: str = ""


def _may_close(session: Session, actor: Operator, campaign: ReviewCampaign) -> None:
    """The creator or an admin, standing re-checked now: a creator whose admin role was
    taken away (or who was removed: roles_of is empty then) is no longer either. Only an
    admin may start a campaign, so 'the creator' adds nobody beyond today's admins."""
    if Role.ADMIN in operators.roles_of(session, actor):
        return
    raise PolicyError(
        f"{quoted(actor.name)} may not close review {quoted(campaign.name)}:"
        " its creator or an admin may (its creator only while still an admin)"
    )


def _confirmed() -> sa.ColumnElement[bool]:
    """Whether an item's decision is one decide could have written: a keep or shorten only
    with the assigned reviewer's TOTP step (revoke needs none: it only removes). A keep
    written straight into the table without a code is no decision, so the campaign's
    no-answer action applies to it. (A forged row WITH a plausible step needs signed
    evidence to catch.)"""
    return sa.or_(
        _ITEM.c.decision == ReviewDecision.REVOKE,
        sa.and_(
            _ITEM.c.totp_step.is_not(None),
            _ITEM.c.decided_by.is_not(None),
            _ITEM.c.decided_by == _ITEM.c.reviewer_id,
        ),
    )


def _outcome(campaign: ReviewCampaign, grant_state: sa.ColumnElement[str]) -> sa.Case[str]:
    """What close does with an item, from its decision and its grant's state now: the one
    definition the dry run reads and the close writes. A grant no longer active or suspended
    needs nothing (and is never revived), whatever was decided."""
    no_answer = (
        ItemOutcome.NO_ANSWER_REVOKED
        if campaign.if_no_answer == ReviewDecision.REVOKE
        else ItemOutcome.NO_ANSWER_KEPT
    )
    decision = _ITEM.c.decision
    return sa.case(
        (grant_state.not_in(IN_DIRECTORY_STATES), ItemOutcome.ENDED_BEFORE_DECISION.value),
        (sa.or_(decision.is_(None), sa.not_(_confirmed())), no_answer.value),
        (decision == ReviewDecision.KEEP, ItemOutcome.KEPT.value),
        (decision == ReviewDecision.REVOKE, ItemOutcome.REVOKED.value),
        else_=ItemOutcome.SHORTENED.value,
    )


def _plan(session: Session, campaign: ReviewCampaign, *, now: datetime, lock: bool) -> ClosePlan:
    """The plan of close_plan and of close (with the grants locked, for close). Counted and
    grouped in SQL: only the ids that end or shorten come back, the rest stays in the
    database (a campaign of 100,000 items reads what it changes, not all of it)."""
    campaign_id = ident(campaign)
    mine = _ITEM.c.campaign_id == campaign_id
    if lock:
        # Locked, so no revoke, pause or expiry commits between this read and the close's
        # writes (PostgreSQL; SQLite's writer lock is held already). The locking select is
        # counted, not fetched.
        locking = (
            sa.select(_GRANT.c.id)
            .where(_GRANT.c.id.in_(sa.select(_ITEM.c.grant_id).where(mine)))
            .with_for_update()
        )
        session.execute(sa.select(sa.func.count()).select_from(locking.subquery()))
    outcome = _outcome(campaign, _GRANT.c.state)
    rows = (
        sa.select(_GRANT.c.id.label("grant_id"), outcome.label("outcome"))
        .add_columns(
            _GRANT.c.scope_id,
            _GRANT.c.access,
            # The new end of a shortened grant: the earlier of its expiry and the decision's.
            sa.case(
                (_ITEM.c.shorten_until < _GRANT.c.expires_at, _ITEM.c.shorten_until),
                else_=_GRANT.c.expires_at,
            ).label("new_end"),
        )
        .select_from(_ITEM)
        .join(_GRANT, _GRANT.c.id == _ITEM.c.grant_id)
        .where(mine)
        .subquery()
    )
    counts: Counter[str] = Counter()
    for outcome_name, n in session.execute(
        sa.select(rows.c.outcome, sa.func.count()).group_by(rows.c.outcome)
    ):
        counts[outcome_name] = n
    revoke = list(
        session.execute(
            sa.select(rows.c.grant_id).where(rows.c.outcome.in_(_ENDING)).order_by(rows.c.grant_id)
        ).scalars()
    )
    shortened = rows.c.outcome == ItemOutcome.SHORTENED
    shorten = [
        (grant_id, new_end)
        for grant_id, new_end in session.execute(
            sa.select(rows.c.grant_id, rows.c.new_end)
            .where(shortened, rows.c.new_end.is_not(None))
            .order_by(rows.c.grant_id)
        )
    ]
    # Every item with a directory removal is of a grant still active or suspended.
    leaving = Counter(
        {
            (scope_id, access): n
            for scope_id, access, n in session.execute(
                sa.select(rows.c.scope_id, rows.c.access, sa.func.count())
                .where(
                    sa.or_(
                        rows.c.outcome.in_(_ENDING),
                        sa.and_(shortened, rows.c.new_end <= sa.literal(now, UTCDateTime())),
                    )
                )
                .group_by(rows.c.scope_id, rows.c.access)
            )
        }
    )
    population = sum(counts.values())
    expire = [grant_id for grant_id, new_end in shorten if new_end <= now]
    return ClosePlan(
        campaign=campaign.name,
        population=population,
        revoke=revoke,
        shorten=shorten,
        kept=counts[ItemOutcome.KEPT],
        no_answer=counts[ItemOutcome.NO_ANSWER_KEPT] + counts[ItemOutcome.NO_ANSWER_REVOKED],
        ended_before_decision=counts[ItemOutcome.ENDED_BEFORE_DECISION],
        groups=_groups(session, leaving),
        needs_confirm_count=needs_confirm_count(len(revoke) + len(expire), population),
        state=campaign.state,
        no_answer_revoke=counts[ItemOutcome.NO_ANSWER_REVOKED],
        expire=expire,
    )


def needs_confirm_count(ends: int, population: int) -> bool:
    """Whether ending `ends` of `population` grants needs the count typed back."""
    return ends > CONFIRM_ABOVE or ends > CONFIRM_SHARE * population


def _groups(session: Session, leaving: Counter[tuple[int, str]]) -> list[GroupRemoval]:
    """The group removals the ending grants would queue, as the outbox would (on the
    enabled targets only)."""
    targets = {ident(t): t.name for t in directory_targets.active_targets(session)}
    refs = group_names.group_refs(session, {pair for pair, n in leaving.items() if n})
    found: Counter[tuple[str, str]] = Counter()
    for ref in refs.values():
        if ref.target_id in targets:
            found[(targets[ref.target_id], ref.dn)] += leaving[(ref.scope_id, ref.access)]
    return [GroupRemoval(target, dn, n) for (target, dn), n in sorted(found.items())]


def population_intact(session: Session, campaign: ReviewCampaign) -> bool:
    """Whether the campaign's items are still the population frozen at start: their count
    and the digest of their grant ids, recomputed, match item_count and population_sha256.
    An item deleted, added or moved to another grant by SQL breaks it (one query)."""
    found = audit.summary_of(session, _ITEM.c.grant_id, _ITEM.c.campaign_id == ident(campaign))
    return found == (campaign.item_count, campaign.population_sha256)


def _check_population(session: Session, campaign: ReviewCampaign) -> None:
    """Refuse to close a population that changed since start: closing it would apply the
    review to other grants than the ones frozen (a friend's item deleted keeps their grant)."""
    if not population_intact(session, campaign):
        raise ConflictError(
            f"review {quoted(campaign.name)}: its items no longer match the population frozen "
            f"at start ({campaign.item_count} grants and their sha256): they were edited "
            "outside govtui; run `govtui audit verify`; nothing was closed"
        )


def close_plan(session: Session, actor: Operator, *, campaign: str) -> ClosePlan:
    """What close would end and shorten, without writing (the creator or an admin)."""
    found = reviews.find_campaign(session, campaign)
    _may_close(session, actor, found)
    if found.state == CampaignState.OPEN:
        _check_population(session, found)
    return _plan(session, found, now=clock.now(), lock=False)


def close(
    session: Session, actor: Operator, *, campaign: str, confirm_count: int | None = None
) -> Closed:
    """Apply the campaign in one transaction and mark it closing (no code: it only removes)."""
    found = reviews.find_campaign(session, campaign)
    _may_close(session, actor, found)
    # A decision locks the same row before it writes: it either lands before the close (and
    # is applied) or finds the campaign closing and is refused.
    locked = reviews.find_campaign(session, campaign, lock=True)
    if locked.state == CampaignState.CLOSED:
        raise ConflictError(f"review {quoted(locked.name)} is closed already")
    if locked.state == CampaignState.CLOSING:
        # Applied already: what is left is to follow the directory (the caller does).
        return Closed(locked.name, [], [], [], 0, CampaignState.CLOSING.value, True)
    # Under the lock: no decision or close changes the items while they are counted.
    _check_population(session, locked)
    now = clock.now()
    plan = _plan(session, locked, now=now, lock=True)
    _check_count(plan, confirm_count)
    campaign_id = ident(locked)
    # The outcomes first, from the same expression the plan read; the grants are then ended
    # by what the items say, so exactly the planned grants end.
    session.execute(
        sa.update(_ITEM)
        .where(_ITEM.c.campaign_id == campaign_id, _ITEM.c.grant_id == _GRANT.c.id)
        .values(outcome=_outcome(locked, _GRANT.c.state))
    )

    def items(outcome: ItemOutcome) -> sa.Select[tuple[int]]:
        return sa.select(_ITEM.c.grant_id).where(
            _ITEM.c.campaign_id == campaign_id, _ITEM.c.outcome == outcome
        )

    ended_by = ident(actor)

    def revoke(outcome: ItemOutcome, reason: str) -> grant_lifecycle.Ended:
        return grant_lifecycle.end(
            session,
            col(Grant.id).in_(items(outcome)),
            to=GrantState.REVOKED,
            ended_by=ended_by,
            reason=reason,
            now=now,
            review_campaign_id=campaign_id,
        )

    decided = revoke(ItemOutcome.REVOKED, f"revoked in access review {locked.name}")
    unanswered = revoke(
        ItemOutcome.NO_ANSWER_REVOKED,
        f"no answer in access review {locked.name} (if no answer: revoke)",
    )
    # The plan read the same items under the same locks: nothing to shorten, no statements.
    shortened = (
        grant_lifecycle.shorten(
            session,
            sa.select(_ITEM.c.grant_id, _ITEM.c.shorten_until).where(
                _ITEM.c.campaign_id == campaign_id, _ITEM.c.outcome == ItemOutcome.SHORTENED
            ),
            ended_by=ended_by,
            reason=f"shortened in access review {locked.name}",
            now=now,
            review_campaign_id=campaign_id,
        )
        if plan.shorten
        else grant_lifecycle.Capped([], grant_lifecycle.Ended([], 0))
    )
    revoked = sorted(decided.ids + unanswered.ids)
    if revoked != plan.revoke or shortened.ended.ids != plan.expire:
        # Cannot happen while the locks hold; if it ever does, nothing is written.
        raise ConflictError(
            f"the grants of review {quoted(locked.name)} changed during close: try again"
        )
    ops = decided.directory_ops + unanswered.directory_ops + shortened.ended.directory_ops
    locked.state = (CampaignState.CLOSING if ops else CampaignState.CLOSED).value
    locked.close_started_by, locked.close_started_at = ended_by, now
    if not ops:
        locked.closed_at = now
    session.add(locked)
    running = [g for g, new in plan.shorten if new > now]
    audit.append(
        session,
        actor=actor.name,
        action="review.close",
        obj=f"review:{locked.name}",
        details={
            "campaign": locked.name,
            "population": plan.population,
            "revoked": audit.id_summary(revoked),
            "no_answer_revoked": len(unanswered.ids),
            "shortened": audit.id_summary(running),
            "expired": audit.id_summary(shortened.ended.ids),
            "kept": plan.kept,
            "no_answer": plan.no_answer,
            "ended_before_decision": plan.ended_before_decision,
            "directory_ops": ops,
            "confirm_count": confirm_count,
            "state": locked.state,
        },
    )
    if not ops:
        _closed_event(session, locked, actor.name, directory_state(session, campaign_id))
    return Closed(locked.name, revoked, running, shortened.ended.ids, ops, locked.state)


def _check_count(plan: ClosePlan, confirm_count: int | None) -> None:
    """Refuse a large close without the exact count typed back, and any wrong count."""
    n = plan.ends
    if confirm_count is None and not plan.needs_confirm_count:
        return
    if confirm_count == n:
        return
    why = f"closing review {quoted(plan.campaign)} ends {n} of its {plan.population} grants"
    because = []
    if plan.no_answer_revoke:
        because.append(f"{plan.no_answer_revoke} of them because nobody answered")
    if plan.expire:
        because.append(f"{len(plan.expire)} shortened into the past")
    if because:
        why += f" ({'; '.join(because)})"
    if confirm_count is None:
        raise PolicyError(
            f"{why}: more than {CONFIRM_SHARE:.0%} of the population or more than"
            f" {CONFIRM_ABOVE}; give the exact count to confirm (--confirm-count {n})"
        )
    raise PolicyError(f"{why}, not {confirm_count}: nothing was closed")


def directory_state(session: Session, campaign_id: int) -> Convergence:
    """How far the directory has confirmed the removals the campaign's close queued."""
    return convergence_of(
        session, col(OutboxOp.review_campaign_id) == campaign_id, OutboxOperation.REMOVE_MEMBER
    )


def settle(session: Session, *, campaign: str, actor_name: str | None = None) -> bool:
    """Mark a closing campaign closed if the directory has confirmed every removal; whether
    it is closed. The event names `actor_name`, else whoever started the close."""
    locked = reviews.find_campaign(session, campaign, lock=True)
    if locked.state != CampaignState.CLOSING:
        return locked.state == CampaignState.CLOSED
    state = directory_state(session, ident(locked))
    if not state.complete:
        return False
    locked.state, locked.closed_at = CampaignState.CLOSED.value, clock.now()
    session.add(locked)
    name = actor_name or operators.name_of(session, locked.close_started_by) or "system"
    _closed_event(session, locked, name, state)
    return True


def _closed_event(
    session: Session, campaign: ReviewCampaign, actor_name: str, state: Convergence
) -> None:
    audit.append(
        session,
        actor=actor_name,
        action="review.closed",
        obj=f"review:{campaign.name}",
        details={
            "campaign": campaign.name,
            "confirmed": state.confirmed,
            "superseded": state.superseded,
            "queued": state.queued,
        },
    )


def _state_of(session: Session, campaign: str) -> tuple[str, Convergence]:
    found = reviews.find_campaign(session, campaign)
    return found.state, directory_state(session, ident(found))


def follow(
    engine: Engine | Workspace, campaign: str, progress: sync.Progress | None = None
) -> Convergence:
    """Sync until the campaign's removals are confirmed or the stop rule holds; settle it.

    Settling writes, so it goes through a Workspace (as no operator: it records what the
    directory confirmed); the syncing itself is sync's own."""
    workspace = engine if isinstance(engine, Workspace) else Workspace(engine, "")
    state_name, state = workspace.read(_state_of, campaign)
    while state_name == CampaignState.CLOSING and not state.complete:
        report = sync.run_once(workspace.engine, due="now", progress=progress)
        state_name, state = workspace.read(_state_of, campaign)
        if convergence.settled(report):
            break
    if state_name == CampaignState.CLOSING and state.complete:
        workspace.act_system(settle, campaign=campaign)
    return state


def due(session: Session, *, within: timedelta = DUE_SOON) -> list[DueLine]:
    """Open campaigns' reviewers with undecided items due within `within` or overdue."""
    now = clock.now()
    rows = session.execute(
        sa.select(
            col(ReviewCampaign.name),
            col(Operator.name),
            sa.func.count(),
            col(ReviewCampaign.due_at),
        )
        .select_from(_ITEM)
        .join(ReviewCampaign, col(ReviewCampaign.id) == _ITEM.c.campaign_id)
        .join(Grant, col(Grant.id) == _ITEM.c.grant_id)
        .join(Operator, col(Operator.id) == _ITEM.c.reviewer_id)
        .where(
            col(ReviewCampaign.state) == CampaignState.OPEN,
            col(ReviewCampaign.due_at) <= now + within,
            _ITEM.c.decision.is_(None),
            col(Grant.state).in_(IN_DIRECTORY_STATES),  # an ended grant needs no decision
        )
        .group_by(col(ReviewCampaign.name), col(Operator.name), col(ReviewCampaign.due_at))
        .order_by(col(ReviewCampaign.due_at), col(ReviewCampaign.name), col(Operator.name))
    )
    listed = rows.all()
    # Who can no longer decide: one grouped query per campaign listed (a handful).
    stuck = {
        name: review_reassign.stranded(session, reviews.find_campaign(session, name))
        for name in dict.fromkeys(row[0] for row in listed)
    }
    return [
        DueLine(
            campaign,
            reviewer,
            int(n),
            due_at,
            due_at <= now,
            _urgency(due_at, now),
            stuck[campaign].get(reviewer, (0, ""))[1],
        )
        for campaign, reviewer, n, due_at in listed
    ]


def _urgency(due_at: datetime, now: datetime) -> str:
    if due_at <= now:
        return "overdue"
    return "1d" if due_at <= now + DUE_TOMORROW else "7d"

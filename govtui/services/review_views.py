"""The read facade of access reviews for the CLI and the TUI: campaigns with progress, and a
campaign's items a window at a time with the decision helpers a reviewer needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import InputError
from govtui.models import (
    Approval,
    Client,
    Contractor,
    DatasetScope,
    DirectoryTarget,
    Grant,
    Operator,
    OutboxOp,
    Project,
    ReviewCampaign,
    ReviewItem,
)
from govtui.services import directory_targets, review_close, review_reassign, reviews
from govtui.services.pause_views import Convergence
from govtui.vocabulary import (
    IN_DIRECTORY_STATES,
    CampaignState,
    ClientStatus,
    ContractorStatus,
    Decision,
    ItemOutcome,
    OutboxState,
)

ItemSort = Literal["id", "days_left", "project"]
ITEM_SORTS: tuple[ItemSort, ...] = ("id", "days_left", "project")
PAGE = 200
MAX_WINDOW = 5_000  # rows per window: a screen or a pipe never needs more at once
MAX_REASONS = 20  # lines of "why unconfirmed": grouped, so more would be noise


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

    @property
    def undecided(self) -> int:
        """Items still needing a decision (neither decided nor ended)."""
        return self.total - self.decided - self.ended


@dataclass(frozen=True)
class CampaignDetail:
    summary: CampaignSummary
    population_sha256: str
    despite_drift: str | None
    directory: Convergence | None  # after close: what the directory has confirmed
    unconfirmed: list[str]  # why each still-unconfirmed removal is not confirmed
    # The items still match item_count and population_sha256 (False: edited outside govtui).
    population_intact: bool
    # Open campaign: reviewers holding undecided items they can no longer decide (lost the
    # role or the client link, removed): name -> (items, why). `review reassign` moves them.
    cannot_decide: dict[str, tuple[int, str]] = field(default_factory=dict)


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


def _live() -> sa.ColumnElement[bool]:
    return col(Grant.state).in_(IN_DIRECTORY_STATES)


def _ended() -> sa.ColumnElement[bool]:
    """An item whose grant ended before anyone decided it (recorded by close, or seen now)."""
    return sa.and_(
        col(ReviewItem.decision).is_(None),
        sa.or_(
            col(ReviewItem.outcome) == ItemOutcome.ENDED_BEFORE_DECISION,
            sa.and_(col(ReviewItem.outcome).is_(None), sa.not_(_live())),
        ),
    )


def _undecided() -> sa.ColumnElement[bool]:
    """An item still needing a decision: none recorded, its grant live, not closed."""
    return sa.and_(col(ReviewItem.decision).is_(None), col(ReviewItem.outcome).is_(None), _live())


def _summaries(session: Session, where: sa.ColumnElement[bool] | None) -> list[CampaignSummary]:
    """Campaigns with their progress: two grouped queries whatever the population."""
    creator = aliased(Operator)
    heads_of: list[Any] = [ReviewCampaign, col(Client.name), creator.name]
    query = (
        sa.select(*heads_of)
        .join(Client, col(Client.id) == col(ReviewCampaign.client_id))
        .join(creator, col(creator.id) == col(ReviewCampaign.created_by))
        .order_by(col(ReviewCampaign.created_at).desc(), col(ReviewCampaign.id).desc())
    )
    if where is not None:
        query = query.where(where)
    heads = session.execute(query).all()
    if not heads:
        return []
    ids = [ident(c) for c, _, _ in heads]
    per: dict[int, list[ReviewerProgress]] = {i: [] for i in ids}
    for campaign_id, reviewer, total, decided, ended in session.execute(
        sa.select(
            col(ReviewItem.campaign_id),
            col(Operator.name),
            sa.func.count(),
            sa.func.count(col(ReviewItem.decision)),
            sa.func.count().filter(_ended()),
        )
        .select_from(ReviewItem)
        .join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
        .join(Operator, col(Operator.id) == col(ReviewItem.reviewer_id))
        .where(col(ReviewItem.campaign_id).in_(ids))
        .group_by(col(ReviewItem.campaign_id), col(Operator.name))
        .order_by(col(Operator.name))
    ):
        per[campaign_id].append(ReviewerProgress(reviewer, int(decided), int(total), int(ended)))
    now = clock.now()
    out = []
    for c, client, created_by in heads:
        progress = per[ident(c)]
        total = sum(p.total for p in progress)
        decided = sum(p.decided for p in progress)
        ended = sum(p.ended for p in progress)
        out.append(
            CampaignSummary(
                id=ident(c),
                name=c.name,
                client=client,
                state=c.state,
                created_by=created_by,
                created_at=c.created_at,
                due_at=c.due_at,
                overdue=c.state == CampaignState.OPEN
                and c.due_at < now
                and total - decided - ended > 0,
                if_no_answer=c.if_no_answer,
                total=total,
                decided=decided,
                ended=ended,
                reviewers=progress,
            )
        )
    return out


def campaigns(session: Session) -> list[CampaignSummary]:
    """Every campaign, newest first, with progress per reviewer."""
    return _summaries(session, None)


def campaign(session: Session, name: str) -> CampaignDetail:
    """One campaign, its progress, and what its close still waits for."""
    record = reviews.find_campaign(session, name)
    (summary,) = _summaries(session, col(ReviewCampaign.id) == ident(record))
    directory = None
    unconfirmed: list[str] = []
    if record.close_started_at is not None:
        directory = review_close.directory_state(session, ident(record))
        unconfirmed = _unconfirmed(session, ident(record))
    return CampaignDetail(
        summary=summary,
        population_sha256=record.population_sha256,
        despite_drift=record.despite_drift,
        directory=directory,
        unconfirmed=unconfirmed,
        population_intact=review_close.population_intact(session, record),
        cannot_decide=(
            review_reassign.stranded(session, record) if record.state == CampaignState.OPEN else {}
        ),
    )


def _unconfirmed(session: Session, campaign_id: int) -> list[str]:
    """Why the removals the close queued are not all confirmed, grouped: pending per target,
    failed per target and last error, cancelled per target with why it was disabled."""
    lines: list[str] = []
    mine = col(OutboxOp.review_campaign_id) == campaign_id
    for target, n, attempts, next_at, error in session.execute(
        sa.select(
            col(DirectoryTarget.name),
            sa.func.count(),
            sa.func.max(col(OutboxOp.attempts)),
            sa.func.min(col(OutboxOp.next_attempt_at)),
            # One of the errors of the retries (a target down gives them all the same one).
            sa.func.max(col(OutboxOp.last_error)),
        )
        .select_from(OutboxOp)
        .join(DirectoryTarget, col(DirectoryTarget.id) == col(OutboxOp.target_id))
        .where(mine, col(OutboxOp.state) == OutboxState.PENDING)
        .group_by(col(DirectoryTarget.name))
        .order_by(col(DirectoryTarget.name))
    ):
        tried = f", tried up to {attempts} times" if attempts else ", not tried yet"
        if error:
            tried += f", last error: {error}"
        lines.append(
            f"{n} pending on {directory_targets.display_name(target)}{tried}"
            f" (next attempt {_at(next_at)}): run `govtui sync`"
        )
    for target, error, n in session.execute(
        sa.select(col(DirectoryTarget.name), col(OutboxOp.last_error), sa.func.count())
        .select_from(OutboxOp)
        .join(DirectoryTarget, col(DirectoryTarget.id) == col(OutboxOp.target_id))
        .where(mine, col(OutboxOp.state) == OutboxState.FAILED)
        .group_by(col(DirectoryTarget.name), col(OutboxOp.last_error))
        .order_by(col(DirectoryTarget.name), sa.func.count().desc())
        .limit(MAX_REASONS)
    ):
        lines.append(
            f"{n} FAILED on {directory_targets.display_name(target)}: {error or 'no error kept'}"
        )
    for target, reason, n in session.execute(
        sa.select(col(DirectoryTarget.name), col(DirectoryTarget.disabled_reason), sa.func.count())
        .select_from(OutboxOp)
        .join(DirectoryTarget, col(DirectoryTarget.id) == col(OutboxOp.target_id))
        .where(mine, col(OutboxOp.state) == OutboxState.CANCELLED)
        .group_by(col(DirectoryTarget.name), col(DirectoryTarget.disabled_reason))
        .order_by(col(DirectoryTarget.name))
    ):
        why = f" ({reason})" if reason else ""
        lines.append(
            f"{n} cancelled with target {directory_targets.display_name(target)}{why}: never"
            " applied; remove those members by hand or re-enable the target and reconcile"
        )
    return lines


def _at(value: Any) -> str:
    if isinstance(value, str):  # SQLite's min() of a timestamp comes back as its text
        value = datetime.fromisoformat(value)
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else "unknown"


def _sort_key(sort: ItemSort, dialect: str) -> list[Any]:
    if sort == "days_left":
        # Live grants by how soon they end; ended ones after them (no days left to weigh).
        left = sa.case((_live(), col(Grant.expires_at)), else_=None)
        return [left.asc().nulls_last(), col(ReviewItem.id)]
    if sort == "project":
        # By code point, as SQLite compares: PostgreSQL's locale collation sorts the same
        # names in another order, and several times slower over a 100,000-item campaign.
        def named(column: Any) -> Any:
            return sa.collate(column, "C") if dialect == "postgresql" else column

        return [
            named(col(Project.name)),
            named(col(DatasetScope.name)),
            col(Grant.access),
            col(ReviewItem.id),
        ]
    return [col(ReviewItem.id)]


def _filtered(actor: Operator, campaign_id: int, *, mine: bool, undecided: bool) -> sa.Select[Any]:
    """The matching items' ids and what they sort by (joins only where a filter needs them)."""
    query = sa.select(col(ReviewItem.id)).where(col(ReviewItem.campaign_id) == campaign_id)
    if mine:
        query = query.where(col(ReviewItem.reviewer_id) == ident(actor))
    if undecided:
        query = query.join(Grant, col(Grant.id) == col(ReviewItem.grant_id)).where(_undecided())
    return query


def _window_ids(
    session: Session,
    actor: Operator,
    campaign_id: int,
    *,
    mine: bool,
    undecided: bool,
    sort: ItemSort,
    offset: int,
    limit: int,
    after_id: int | None = None,
    with_total: bool = False,
) -> tuple[list[int], int | None]:
    """The window's item ids in order, and (if asked) how many match in all: counted by the
    same scan that sorts them (count() OVER ()), not by a second pass over the campaign."""
    query = _filtered(actor, campaign_id, mine=mine, undecided=undecided)
    if with_total:
        query = query.add_columns(sa.func.count().over())
    if sort != "id" and not undecided:
        query = query.join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
    if sort == "project":
        query = query.join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id)).join(
            Project, col(Project.id) == col(DatasetScope.project_id)
        )
    if after_id is not None:
        query = query.where(col(ReviewItem.id) > after_id)
    dialect = session.get_bind().dialect.name
    query = query.order_by(*_sort_key(sort, dialect)).offset(offset).limit(limit)
    rows = session.execute(query).all()
    ids = [int(r[0]) for r in rows]
    if not with_total:
        return ids, None
    if rows:
        return ids, int(rows[0][1])
    if offset == 0:
        return ids, 0
    # Past the end: nothing to read the count from.
    counted = _filtered(actor, campaign_id, mine=mine, undecided=undecided)
    total = session.execute(sa.select(sa.func.count()).select_from(counted.subquery())).scalar()
    return ids, int(total or 0)


def _check_window(sort: str, offset: int, limit: int) -> None:
    if sort not in ITEM_SORTS:
        raise InputError(f"unknown sort {sort!r}: use one of {', '.join(ITEM_SORTS)}")
    if offset < 0 or not 1 <= limit <= MAX_WINDOW:
        raise InputError(f"a window is an offset of 0 or more and 1 to {MAX_WINDOW} rows")


def items(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    mine: bool = False,
    undecided: bool = False,
    sort: ItemSort = "id",
    offset: int = 0,
    limit: int = PAGE,
) -> ItemWindow:
    """One window of a campaign's items with their decision helpers."""
    _check_window(sort, offset, limit)
    record = reviews.find_campaign(session, campaign)
    ids, total = _window_ids(
        session,
        actor,
        ident(record),
        mine=mine,
        undecided=undecided,
        sort=sort,
        offset=offset,
        limit=limit,
        with_total=True,
    )
    return ItemWindow(_rows(session, record, ids), total or 0, offset)


def iter_items(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    mine: bool = False,
    undecided: bool = False,
    sort: ItemSort = "id",
    window: int = 1_000,
) -> Iterator[ItemRow]:
    """Every matching item, a window at a time (bounded memory for --json)."""
    _check_window(sort, 0, window)
    record = reviews.find_campaign(session, campaign)
    # By id, each window continues after the last id seen (keyset: no rescanning, and an item
    # decided meanwhile never shifts the next window); other orders page by offset.
    after: int | None = None
    offset = 0
    while True:
        ids, _ = _window_ids(
            session,
            actor,
            ident(record),
            mine=mine,
            undecided=undecided,
            sort=sort,
            offset=0 if sort == "id" else offset,
            limit=window,
            after_id=after,
        )
        yield from _rows(session, record, ids)
        if len(ids) < window:
            return
        after = ids[-1] if sort == "id" else None
        offset += len(ids)


def item_joins(
    query: sa.Select[Any], *, reviewer: Any, requester: Any, decider: Any
) -> sa.Select[Any]:
    """Review items joined to their grant, its contractor, scope and project, the assigned
    reviewer and the grant's requester (the Operator aliases given), and the decider if any:
    what the items window and the evidence pack's decisions both read."""
    return (
        query.join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(reviewer, col(reviewer.id) == col(ReviewItem.reviewer_id))
        .join(requester, col(requester.id) == col(Grant.requested_by))
        .outerjoin(decider, col(decider.id) == col(ReviewItem.decided_by))
    )


def _rows(session: Session, record: ReviewCampaign, ids: Sequence[int]) -> list[ItemRow]:
    """The window's items with their helpers: a handful of queries over these ids only."""
    if not ids:
        return []
    reviewer = aliased(Operator)
    decider = aliased(Operator)
    requester = aliased(Operator)
    columns: list[Any] = [
        col(ReviewItem.id),
        col(ReviewItem.grant_id),
        col(Contractor.external_id),
        col(Contractor.directory_uid),
        col(Project.name),
        col(DatasetScope.name),
        col(Grant.access),
        reviewer.name,
        col(Grant.state),
        col(ReviewItem.decision),
        col(ReviewItem.shorten_days),
        col(ReviewItem.reason),
        decider.name,
        col(ReviewItem.decided_at),
        col(ReviewItem.outcome),
        col(Grant.starts_at),
        col(Grant.expires_at),
        col(Contractor.contract_end),
        requester.name,
        col(Client.status),
        col(Contractor.status),
        col(Grant.contractor_id),
        col(Grant.scope_id),
    ]
    raw = session.execute(
        item_joins(
            sa.select(*columns).select_from(ReviewItem),
            reviewer=reviewer,
            requester=requester,
            decider=decider,
        )
        .join(Client, col(Client.id) == col(Project.client_id))
        .where(col(ReviewItem.id).in_(ids))
    ).all()
    grant_ids = [r[1] for r in raw]
    approvers = _approvers(session, grant_ids)
    previous = previous_decisions(
        session,
        grant_ids,
        client_id=record.client_id,
        campaign_id=ident(record),
        created_at=record.created_at,
    )
    peers = _peers(session, [(r[21], r[22], r[6]) for r in raw])
    now = clock.now()
    by_id = {}
    for r in raw:
        live = r[8] in IN_DIRECTORY_STATES
        decided = r[9] is not None
        by_id[r[0]] = ItemRow(
            item_id=r[0],
            grant_id=r[1],
            contractor=r[2],
            directory_uid=r[3],
            project=r[4],
            scope=r[5],
            access=r[6],
            reviewer=r[7],
            grant_state=r[8],
            decision=r[9],
            shorten_days=r[10],
            reason=r[11],
            decided_by=r[12],
            decided_at=r[13],
            outcome=r[14],
            days_since_granted=_days(now - r[15]) if r[15] is not None else None,
            days_left=max(0, _days(r[16] - now)) if live and r[16] is not None else None,
            contract_end=r[17],
            requester=r[18],
            approvers=approvers.get(r[1], ()),
            client_paused=r[19] == ClientStatus.PAUSED,
            contractor_offboarded=r[20] == ContractorStatus.OFFBOARDED,
            peers=peers.get((r[21], r[22], r[6]), 0),
            previous_decision=previous.get(r[1]),
            ended_before_decision=not decided
            and (r[14] == ItemOutcome.ENDED_BEFORE_DECISION or (r[14] is None and not live)),
        )
    return [by_id[i] for i in ids if i in by_id]


def _days(delta: timedelta) -> int:
    """Whole days, rounded down (a grant granted 30 hours ago: 1 day)."""
    return delta // timedelta(days=1)


def approvals(
    session: Session, grant_ids: Sequence[int] | sa.Select[Any]
) -> dict[int, list[tuple[datetime, str]]]:
    """When and by whom each grant was approved, any round (the request or an extension),
    first one first. The grants as ids, or a query of them (no bound value per id)."""
    found: dict[int, list[tuple[datetime, str]]] = {}
    for grant_id, at, name in session.execute(
        sa.select(col(Approval.grant_id), col(Approval.decided_at), col(Operator.name))
        .join(Operator, col(Operator.id) == col(Approval.approver_id))
        .where(col(Approval.grant_id).in_(grant_ids), col(Approval.decision) == Decision.APPROVE)
        .order_by(col(Approval.grant_id), col(Approval.decided_at), col(Approval.id))
    ):
        found.setdefault(grant_id, []).append((at, name))
    return found


def _approvers(session: Session, grant_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Who approved each grant, any round, first one first (each name once)."""
    return {
        g: tuple(dict.fromkeys(name for _, name in found))
        for g, found in approvals(session, grant_ids).items()
    }


def previous_decisions(
    session: Session,
    grant_ids: Sequence[int] | sa.Select[Any],
    *,
    client_id: int,
    campaign_id: int,
    created_at: datetime,
) -> dict[int, str]:
    """Each grant's decision in the latest campaign of the client, other than `campaign_id` and
    created no later than `created_at`, that reviewed it (its close's outcome, e.g.
    no_answer_kept, when nobody decided)."""
    found: dict[int, str] = {}
    for grant_id, decision, outcome in session.execute(
        sa.select(col(ReviewItem.grant_id), col(ReviewItem.decision), col(ReviewItem.outcome))
        .join(ReviewCampaign, col(ReviewCampaign.id) == col(ReviewItem.campaign_id))
        .where(
            col(ReviewItem.grant_id).in_(grant_ids),
            col(ReviewCampaign.client_id) == client_id,
            col(ReviewCampaign.id) != campaign_id,
            col(ReviewCampaign.created_at) <= created_at,
        )
        .order_by(col(ReviewCampaign.created_at).desc(), col(ReviewCampaign.id).desc())
    ):
        if grant_id not in found and (decision or outcome):
            found[grant_id] = decision or outcome
    return found


def _peers(
    session: Session, keys: Sequence[tuple[int, int, str]]
) -> dict[tuple[int, int, str], int]:
    """Per (contractor, scope, access): how many OTHER contractors hold a live (active or
    suspended) grant of that scope at that level. One grouped count per distinct scope and
    level of the window, then the contractor's own live grant taken off."""
    pairs = {(scope, access) for _, scope, access in keys}
    counts: Counter[tuple[int, str]] = Counter()
    scopes = sorted({s for s, _ in pairs})
    for scope, access, n in session.execute(
        sa.select(col(Grant.scope_id), col(Grant.access), sa.func.count())
        .where(col(Grant.scope_id).in_(scopes), _live())
        .group_by(col(Grant.scope_id), col(Grant.access))
    ):
        counts[(scope, access)] += int(n)
    # At most one live grant per contractor, scope and level (ux_access_grant_live).
    own = {
        tuple(row)
        for row in session.execute(
            sa.select(col(Grant.contractor_id), col(Grant.scope_id), col(Grant.access)).where(
                col(Grant.contractor_id).in_(sorted({c for c, _, _ in keys})),
                col(Grant.scope_id).in_(scopes),
                _live(),
            )
        )
    }
    return {(c, s, a): counts[(s, a)] - (1 if (c, s, a) in own else 0) for c, s, a in set(keys)}


def progress_in_words(summary: CampaignSummary) -> str:
    """One line: how far a campaign is, for the CLI and the TUI alike."""
    parts = [f"{summary.decided}/{summary.total} decided"]
    if summary.ended:
        parts.append(f"{summary.ended} ended before decision")
    if summary.undecided:
        parts.append(f"{summary.undecided} undecided")
    if summary.overdue:
        parts.append("OVERDUE")
    return ", ".join(parts)

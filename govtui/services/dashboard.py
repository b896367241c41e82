"""The overview the dashboard shows: per client, its size and its grants by state; and the
directory outbox's open operations; and who is locked out of their TOTP codes; and the access
reviews not closed yet, with their overdue items and the reviewers to remind; and the audit
chain's last verification (`chain_status`, run apart: it reads every event)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui import clock
from govtui.models import (
    Client,
    Contractor,
    DirectoryTarget,
    Grant,
    OutboxOp,
    Project,
    ReviewCampaign,
    ReviewItem,
)
from govtui.services import audit, grant_counts, lockout, review_close
from govtui.services.lockout import LockedOperator
from govtui.vocabulary import CampaignState

# A grant in these states still needs a review decision (a suspended one would come back on
# resume); any other has ended and needs none.
LIVE_STATES = ("active", "suspended")


@dataclass(frozen=True)
class CampaignLine:
    """One access review not closed yet: its progress and its overdue items."""

    name: str
    client: str
    state: str
    due_at: datetime
    total: int
    decided: int
    ended: int  # undecided items whose grant ended: no decision needed
    overdue: int  # undecided items of live grants past the due time (open campaigns only)


@dataclass(frozen=True)
class ClientSummary:
    name: str
    status: str
    projects: int = 0
    scopes: int = 0
    # Distinct contractors holding an active or suspended grant; None: not counted yet.
    contractors: int | None = 0
    grants: dict[str, int] = field(default_factory=dict)  # by state


@dataclass(frozen=True)
class Overview:
    clients: list[ClientSummary]
    contractors_total: int
    contractors_active: int
    directory_targets: int
    outbox_pending: int
    outbox_failed: int
    # Operators locked out after too many wrong codes: someone must unlock them (or wait),
    # or the approvals and resumes that need them are stuck.
    locked_operators: list[LockedOperator] = field(default_factory=list)
    campaigns: list[CampaignLine] = field(default_factory=list)  # open and closing, by due
    # Reviewers with undecided items due within 7 days, 1 day, or overdue (review due).
    reminders: list[review_close.DueLine] = field(default_factory=list)

    @property
    def overdue_items(self) -> int:
        return sum(line.overdue for line in self.campaigns)


def overview(session: Session, *, holders: bool = True) -> Overview:
    """Counts for every client in a handful of grouped queries, whatever the data size.

    `holders=False` leaves each client's `contractors` (distinct holders of a live grant) as
    None: it is the one count that must look at every live grant with its client (about a
    second at a million grants), so the dashboard shows the rest first and asks
    `holders_by_client` after."""
    clients = list(
        session.execute(
            sa.select(col(Client.id), col(Client.name), col(Client.status)).order_by(
                col(Client.name)
            )
        )
    )
    project_counts = sa.select(col(Project.client_id), sa.func.count()).group_by(
        col(Project.client_id)
    )
    projects: dict[int, int] = dict(session.execute(project_counts).all())
    client_of = grant_counts.scope_clients(session)
    scopes: Counter[int] = Counter(client_of.values())
    # Grouped by scope on the (scope_id, state, access) index alone, with no join per grant
    # (a join to the scope and project of each of a million grants took 1.4 s), then summed
    # per client here: a client has hundreds of scopes, not millions.
    by_state: dict[int, Counter[str]] = {}
    for scope_id, state, n in session.execute(
        sa.select(col(Grant.scope_id), col(Grant.state), sa.func.count()).group_by(
            col(Grant.scope_id), col(Grant.state)
        )
    ):
        cid = client_of.get(scope_id)
        if cid is not None:
            by_state.setdefault(cid, Counter())[state] += n
    contractors: dict[int, int | None] = {}
    if holders:
        contractors.update(_holders(session, [cid for cid, _, _ in clients]))
    by_status: dict[str, int] = dict(
        session.execute(
            sa.select(col(Contractor.status), sa.func.count()).group_by(col(Contractor.status))
        ).all()
    )
    # Done operations pile up for ever; only the open ones are counted (the state index).
    outbox: dict[str, int] = dict(
        session.execute(
            sa.select(col(OutboxOp.state), sa.func.count())
            .where(col(OutboxOp.state).in_(("pending", "failed")))
            .group_by(col(OutboxOp.state))
        ).all()
    )
    targets = session.execute(sa.select(sa.func.count()).select_from(DirectoryTarget)).scalar_one()
    return Overview(
        clients=[
            ClientSummary(
                name=name,
                status=status,
                projects=projects.get(cid, 0),
                scopes=scopes.get(cid, 0),
                contractors=contractors.get(cid) if holders else None,
                grants=dict(by_state.get(cid, {})),
            )
            for cid, name, status in clients
        ],
        contractors_total=sum(by_status.values()),
        contractors_active=by_status.get("active", 0),
        directory_targets=targets,
        outbox_pending=outbox.get("pending", 0),
        outbox_failed=outbox.get("failed", 0),
        locked_operators=lockout.locked_operators(session),
        campaigns=campaigns(session),
        reminders=review_close.due(session),
    )


def _holders(session: Session, client_ids: Iterable[int]) -> dict[int, int]:
    return {cid: grant_counts.holders_of(session, cid, LIVE_STATES) for cid in client_ids}


def holders_by_client(session: Session) -> dict[str, int]:
    """Each client's distinct contractors holding an active or suspended grant, by name."""
    names = dict(session.execute(sa.select(col(Client.id), col(Client.name))).all())
    return {names[cid]: n for cid, n in _holders(session, names).items()}


def campaigns(session: Session) -> list[CampaignLine]:
    """The campaigns not closed yet, soonest due first, counted in one grouped query."""
    live = col(Grant.state).in_(LIVE_STATES)
    undecided = col(ReviewItem.decision).is_(None)
    counts = (
        sa.select(
            col(ReviewCampaign.name),
            col(Client.name),
            col(ReviewCampaign.state),
            col(ReviewCampaign.due_at),
            sa.func.count(col(ReviewItem.id)),
            sa.func.count(col(ReviewItem.decision)),
            sa.func.count(sa.case((sa.and_(undecided, sa.not_(live)), 1))),
            sa.func.count(sa.case((sa.and_(undecided, live), 1))),
        )
        .join(Client, col(Client.id) == col(ReviewCampaign.client_id))
        .outerjoin(ReviewItem, col(ReviewItem.campaign_id) == col(ReviewCampaign.id))
        .outerjoin(Grant, col(Grant.id) == col(ReviewItem.grant_id))
        .where(col(ReviewCampaign.state) != CampaignState.CLOSED.value)
        .group_by(col(ReviewCampaign.id), col(Client.name))
        .order_by(col(ReviewCampaign.due_at), col(ReviewCampaign.name))
    )
    now = clock.now()
    lines = []
    for name, client, state, due_at, total, decided, ended, waiting in session.execute(counts):
        late = state == CampaignState.OPEN.value and due_at < now
        lines.append(
            CampaignLine(
                name=name,
                client=client,
                state=state,
                due_at=due_at,
                total=total,
                decided=decided,
                ended=ended,
                overdue=waiting if late else 0,
            )
        )
    return lines


@dataclass(frozen=True)
class ChainStatus:
    """What one `audit verify` of the chain found, and when."""

    events: int
    ok: bool
    head_signed: bool
    at: datetime
    problem: str | None = None
    signature: str | None = None  # the verify's line on the head's signature


def chain_status(session: Session, engine: Engine) -> ChainStatus:
    """Verify the whole chain now (seconds at a million events: run it in a worker)."""
    result = audit.verify(session, engine)
    return ChainStatus(
        events=result.checked,
        ok=result.ok,
        head_signed=result.head_signed,
        at=clock.now(),
        problem=result.problem,
        signature=result.signature,
    )


def ago(delta_seconds: float) -> str:
    """'just now', '2 min ago', '3 h ago', '2 days ago'."""
    seconds = max(0, int(delta_seconds))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"


def chain_line(status: ChainStatus | None, now: datetime | None = None) -> str:
    """'audit chain: 12,345 events, head signed, verified 2 min ago' (or what went wrong)."""
    if status is None:
        return "audit chain: verifying…"
    when = ago(((now or clock.now()) - status.at).total_seconds())
    if not status.ok:
        return f"audit chain: BROKEN ({status.problem}), checked {when}"
    signed = "head signed" if status.head_signed else "head unsigned"
    return f"audit chain: {status.events:,} events, {signed}, verified {when}"

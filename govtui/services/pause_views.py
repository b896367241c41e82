"""What a pause would touch and how far one has got: the read side of pausing a client,
as frozen views computed with a handful of grouped queries whatever the size."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from govtui.db import ident
from govtui.directory import group_names
from govtui.models import (
    Client,
    ClientPause,
    DatasetScope,
    DirectoryTarget,
    Grant,
    Operator,
    OutboxOp,
    Project,
)
from govtui.services import catalog, directory_targets, grant_counts, outbox
from govtui.services.grant_lifecycle import paused_ids
from govtui.vocabulary import ClientStatus as ClientState
from govtui.vocabulary import GrantState, OutboxOperation, OutboxState


@dataclass(frozen=True)
class ScopeImpact:
    project: str
    scope: str
    access: str
    active: int
    requested: int


@dataclass(frozen=True)
class GroupImpact:
    target: str
    group_dn: str
    members: int  # contractors this pause would remove from the group


@dataclass(frozen=True)
class BlastRadius:
    """What a pause of one client would touch, computed without writing anything."""

    client: str
    status: str
    contractors: int
    active: int
    requested: int
    scopes: list[ScopeImpact]
    groups: list[GroupImpact]

    @property
    def grants(self) -> int:
        return self.active + self.requested


@dataclass(frozen=True)
class Convergence:
    """How far the directory has followed one pause (removals) or resume (additions)."""

    operation: OutboxOperation
    queued: int
    confirmed: int
    pending: int
    failed: int
    superseded: int = 0
    later_pending: int = 0  # removals queued since (revoke, expire) for the same grants
    # Never applied: cancelled with their target (disabled or removed), per target name.
    cancelled: tuple[tuple[str, int], ...] = ()

    @property
    def complete(self) -> bool:
        # A superseded op counts as converged (a newer op, or reconcile, settled it); a
        # cancelled one never does: nobody knows whether that directory still grants access.
        return (
            self.confirmed + self.superseded == self.queued
            and self.pending == 0
            and self.failed == 0
            and self.later_pending == 0
            and not self.cancelled
        )

    def in_words(self) -> str:
        """One line an ops manager can read aloud."""
        what = "removals" if self.operation == OutboxOperation.REMOVE_MEMBER else "additions"
        if self.queued == 0:
            return f"no directory {what} were needed (no target or no member)"
        counts = f"{self.confirmed}/{self.queued} directory {what} confirmed"
        if self.complete:
            return f"complete: {counts}"
        parts = [counts]
        if self.pending or self.later_pending:
            parts.append(f"{self.pending + self.later_pending} pending")
        if self.failed:
            parts.append(f"{self.failed} FAILED (see `govtui sync status` and the outbox)")
        for target, n in self.cancelled:
            parts.append(f"{n} {what} cancelled with target {target} (never applied)")
        return "NOT complete: " + ", ".join(parts)


@dataclass(frozen=True)
class PauseView:
    id: int
    reason: str
    paused_by: str
    paused_at: datetime
    resumed_by: str | None
    resumed_at: datetime | None
    suspended: int  # grants this pause suspended
    still_suspended: int


@dataclass(frozen=True)
class ClientStatus:
    client: str
    status: str
    pause: PauseView | None  # the current pause, else the most recent one
    removals: Convergence | None
    additions: Convergence | None  # after a resume
    errors: list[str] = field(default_factory=list)  # distinct errors of failed ops

    @property
    def summary(self) -> str:
        """The state of the client and of its directory, in words."""
        if self.pause is None:
            return f"client {self.client} is {self.status}; it has never been paused"
        if self.status == ClientState.PAUSED:
            assert self.removals is not None
            return f"client {self.client} is PAUSED; {self.removals.in_words()}"
        assert self.additions is not None
        return f"client {self.client} is active (resumed); {self.additions.in_words()}"


def blast_radius(session: Session, client_name: str) -> BlastRadius:
    """What pausing the client would suspend and which directory groups it would empty of
    its contractors: grouped counts, a handful of queries whatever the size."""
    client = catalog.find_client(session, client_name)
    client_id = ident(client)
    live_states = (GrantState.ACTIVE, GrantState.REQUESTED)
    names = {
        sid: (project, scope)
        for sid, project, scope in session.execute(
            sa.select(col(DatasetScope.id), col(Project.name), col(DatasetScope.name))
            .join(Project, col(Project.id) == col(DatasetScope.project_id))
            .where(col(Project.client_id) == client_id)
        )
    }
    # Grouped on the (scope, state, access) index alone: no join per grant (a join to each
    # grant's scope and project took 3 s at 425,000 grants); the names are joined here.
    per_scope = session.execute(
        sa.select(col(Grant.scope_id), col(Grant.access), col(Grant.state), sa.func.count())
        .where(
            col(Grant.scope_id).in_(grant_counts.client_scope_ids(client_id)),
            col(Grant.state).in_(live_states),
        )
        .group_by(col(Grant.scope_id), col(Grant.state), col(Grant.access))
    )
    counts: Counter[tuple[str, str, int, str, str]] = Counter()
    for scope_id, access, state, n in per_scope:
        project, scope = names[scope_id]
        counts[(project, scope, scope_id, access, state)] += n
    keys = sorted({(p, s, sid, a) for p, s, sid, a, _ in counts})
    scopes = [
        ScopeImpact(
            p,
            s,
            a,
            counts[(p, s, sid, a, GrantState.ACTIVE)],
            counts[(p, s, sid, a, GrantState.REQUESTED)],
        )
        for p, s, sid, a in keys
    ]
    contractors = grant_counts.holders_of(session, client_id, live_states)
    active_pairs = {(sid, a): 0 for p, s, sid, a in keys}
    for p, s, sid, a in keys:
        active_pairs[(sid, a)] += counts[(p, s, sid, a, GrantState.ACTIVE)]
    # A disabled or removed target gets no removals: its groups are not in the radius.
    targets = {ident(t): t.name for t in directory_targets.active_targets(session)}
    refs = group_names.group_refs(session, {k for k, n in active_pairs.items() if n})
    group_list = sorted(
        (
            GroupImpact(targets[ref.target_id], ref.dn, active_pairs[(ref.scope_id, ref.access)])
            for ref in refs.values()
            if ref.target_id in targets
        ),
        key=lambda g: (g.target, g.group_dn),
    )
    return BlastRadius(
        client=client.name,
        status=client.status,
        contractors=int(contractors),
        active=sum(s.active for s in scopes),
        requested=sum(s.requested for s in scopes),
        scopes=scopes,
        groups=group_list,
    )


def current_pause(session: Session, client: Client) -> ClientPause | None:
    """The pause in force for the client, if any."""
    return session.exec(
        select(ClientPause).where(
            ClientPause.client_id == ident(client), col(ClientPause.resumed_at).is_(None)
        )
    ).first()


def _convergence(session: Session, pause_id: int, operation: OutboxOperation) -> Convergence:
    later = None
    if operation == OutboxOperation.REMOVE_MEMBER:
        # Removals of the paused grants queued since by someone else (a revoke, an expiry).
        later = sa.and_(
            col(OutboxOp.grant_id).in_(paused_ids(pause_id)),
            sa.or_(col(OutboxOp.pause_id).is_(None), col(OutboxOp.pause_id) != pause_id),
        )
    return convergence_of(session, col(OutboxOp.pause_id) == pause_id, operation, later=later)


def convergence_of(
    session: Session,
    selected: sa.ColumnElement[bool],
    operation: OutboxOperation,
    *,
    later: sa.ColumnElement[bool] | None = None,
) -> Convergence:
    """How far the directory has applied the `operation` ops the condition on OutboxOp
    selects (a pause's, a review close's); `later`: other ops whose removals, while still
    open, keep it from being complete (those queued since for the same grants)."""
    mine = sa.and_(selected, col(OutboxOp.operation) == operation)
    by_state: Counter[str] = Counter()
    superseded = 0
    for state, n, replaced in session.execute(
        sa.select(
            col(OutboxOp.state),
            sa.func.count(),
            sa.func.count().filter(col(OutboxOp.last_error) == outbox.SUPERSEDED),
        )
        .where(mine)
        .group_by(col(OutboxOp.state))
    ):
        by_state[state] += n - replaced
        superseded += replaced
    cancelled = tuple(
        (directory_targets.display_name(name), int(n))
        for name, n in session.execute(
            sa.select(col(DirectoryTarget.name), sa.func.count())
            .select_from(OutboxOp)
            .join(DirectoryTarget, col(DirectoryTarget.id) == col(OutboxOp.target_id))
            .where(mine, col(OutboxOp.state) == OutboxState.CANCELLED)
            .group_by(col(DirectoryTarget.name))
            .order_by(col(DirectoryTarget.name))
        )
    )
    pending_later = 0
    if later is not None:
        pending_later = session.execute(
            sa.select(sa.func.count()).where(
                later,
                col(OutboxOp.operation) == OutboxOperation.REMOVE_MEMBER,
                col(OutboxOp.state).in_((OutboxState.PENDING, OutboxState.FAILED)),
            )
        ).scalar_one()
    return Convergence(
        operation=operation,
        queued=sum(by_state.values()) + superseded,  # cancelled ones included
        confirmed=by_state[OutboxState.DONE],
        pending=by_state[OutboxState.PENDING],
        failed=by_state[OutboxState.FAILED],
        superseded=superseded,
        later_pending=int(pending_later),
        cancelled=cancelled,
    )


def status(session: Session, client_name: str) -> ClientStatus:
    """The client's state, its current (or last) pause, and how far the directory follows."""
    client = catalog.find_client(session, client_name)
    record = session.exec(
        select(ClientPause)
        .where(ClientPause.client_id == ident(client))
        .order_by(col(ClientPause.id).desc())
    ).first()
    if record is None:
        return ClientStatus(client.name, client.status, None, None, None)
    pause_id = ident(record)
    names = dict(
        session.execute(
            sa.select(col(Operator.id), col(Operator.name)).where(
                col(Operator.id).in_([record.paused_by, record.resumed_by or record.paused_by])
            )
        ).all()
    )
    mine = paused_ids(pause_id)
    suspended, still = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(col(Grant.state) == GrantState.SUSPENDED),
        ).where(col(Grant.id).in_(mine))
    ).one()
    view = PauseView(
        id=pause_id,
        reason=record.reason,
        paused_by=names[record.paused_by],
        paused_at=record.paused_at,
        resumed_by=names.get(record.resumed_by) if record.resumed_by else None,
        resumed_at=record.resumed_at,
        suspended=int(suspended),
        still_suspended=int(still),
    )
    errors = list(
        session.execute(
            sa.select(col(OutboxOp.last_error))
            .where(col(OutboxOp.pause_id) == pause_id, col(OutboxOp.state) == OutboxState.FAILED)
            .distinct()
            .limit(5)
        ).scalars()
    )
    return ClientStatus(
        client.name,
        client.status,
        view,
        _convergence(session, pause_id, OutboxOperation.REMOVE_MEMBER),
        _convergence(session, pause_id, OutboxOperation.ADD_MEMBER) if record.resumed_at else None,
        [e for e in errors if e],
    )

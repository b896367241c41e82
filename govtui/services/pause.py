"""Pausing a client in one action and resuming it exactly (DESIGN invariant 4).

A pause suspends every active grant and every request of the client in one transaction of
bulk statements, records which grants it suspended and in what state, and queues the
directory removals; resume (an approver's TOTP code) restores exactly those grants that are
still suspended and not past their expiry. Removing access never waits for a code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.directory import group_names
from govtui.errors import ConflictError, PolicyError
from govtui.models import (
    Client,
    ClientPause,
    DatasetScope,
    Grant,
    Operator,
    OutboxOp,
    PausedGrant,
    Project,
)
from govtui.services import (
    audit,
    catalog,
    directory_targets,
    grants,
    operators,
    outbox,
    second_factor,
    validation,
)

_PAUSED_GRANT: sa.Table = PausedGrant.__table__  # type: ignore[attr-defined]
_GRANT: sa.Table = Grant.__table__  # type: ignore[attr-defined]


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
class PauseResult:
    pause_id: int
    client: str
    suspended_active: int
    suspended_requests: int
    directory_ops: int


@dataclass(frozen=True)
class ResumeResult:
    pause_id: int
    client: str
    restored_active: int
    restored_requests: int
    not_restored: int  # revoked, expired or ended otherwise while the client was paused
    directory_ops: int


@dataclass(frozen=True)
class Convergence:
    """How far the directory has followed one pause (removals) or resume (additions)."""

    operation: str
    queued: int
    confirmed: int
    pending: int
    failed: int
    superseded: int = 0
    later_pending: int = 0  # removals queued since (revoke, expire) for the same grants

    @property
    def complete(self) -> bool:
        return (
            self.confirmed + self.superseded == self.queued
            and self.pending == 0
            and self.failed == 0
            and self.later_pending == 0
        )

    def in_words(self) -> str:
        """One line an ops manager can read aloud."""
        what = "removals" if self.operation == "remove_member" else "additions"
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
        if self.status == "paused":
            assert self.removals is not None
            return f"client {self.client} is PAUSED; {self.removals.in_words()}"
        assert self.additions is not None
        return f"client {self.client} is active (resumed); {self.additions.in_words()}"


def _scopes_of(client_id: int) -> sa.Select[int | None]:
    return (
        sa.select(col(DatasetScope.id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(col(Project.client_id) == client_id)
    )


def _paused(pause_id: int, prior_state: str | None = None) -> sa.Select[tuple[int]]:
    """The grants one pause suspended (those that were in `prior_state`, if given)."""
    query = sa.select(_PAUSED_GRANT.c.grant_id).where(_PAUSED_GRANT.c.pause_id == pause_id)
    if prior_state is not None:
        query = query.where(_PAUSED_GRANT.c.prior_state == prior_state)
    return query


def blast_radius(session: Session, client_name: str) -> BlastRadius:
    """What pausing the client would suspend and which directory groups it would empty of
    its contractors: grouped counts, a handful of queries whatever the size."""
    client = catalog.find_client(session, client_name)
    live = sa.and_(
        col(Project.client_id) == ident(client), col(Grant.state).in_(("active", "requested"))
    )
    per_scope = session.execute(
        sa.select(
            col(Project.name),
            col(DatasetScope.name),
            col(DatasetScope.id),
            col(Grant.access),
            col(Grant.state),
            sa.func.count(),
        )
        .select_from(Grant)
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(live)
        .group_by(
            col(Project.name),
            col(DatasetScope.name),
            col(DatasetScope.id),
            col(Grant.access),
            col(Grant.state),
        )
    )
    counts: Counter[tuple[str, str, int, str, str]] = Counter()
    for project, scope, scope_id, access, state, n in per_scope:
        counts[(project, scope, scope_id, access, state)] += n
    keys = sorted({(p, s, sid, a) for p, s, sid, a, _ in counts})
    scopes = [
        ScopeImpact(p, s, a, counts[(p, s, sid, a, "active")], counts[(p, s, sid, a, "requested")])
        for p, s, sid, a in keys
    ]
    contractors = session.execute(
        sa.select(sa.func.count(sa.distinct(col(Grant.contractor_id))))
        .select_from(Grant)
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(live)
    ).scalar_one()
    active_pairs = {(sid, a): 0 for p, s, sid, a in keys}
    for p, s, sid, a in keys:
        active_pairs[(sid, a)] += counts[(p, s, sid, a, "active")]
    targets = {ident(t): t.name for t in directory_targets.all_targets(session)}
    refs = group_names.group_refs(session, {k for k, n in active_pairs.items() if n})
    group_list = sorted(
        (
            GroupImpact(targets[ref.target_id], ref.dn, active_pairs[(ref.scope_id, ref.access)])
            for ref in refs.values()
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


def pause(session: Session, actor: Operator, *, client: str, reason: str) -> PauseResult:
    """Suspend every active grant and every request of the client, record exactly which, and
    queue the directory removals: one transaction, bulk statements, one audit event."""
    reason = validation.reason(reason, "pause")
    found = catalog.find_client(session, client)
    if not (
        "admin" in operators.roles_of(session, actor)
        or operators.is_approver_for(session, actor, found)
    ):
        raise PolicyError(
            f"{actor.name!r} may not pause client {found.name!r}: an admin or one of its approvers may"
        )
    # Locked for update before the grants: a concurrent request (which takes a shared lock on
    # the client) and a concurrent pause of the same client queue up behind this one.
    locked = grants.lock_client(session, found.id)
    if locked.status == "paused":
        raise ConflictError(f"client {locked.name!r} is paused already")
    now = clock.now()
    record = ClientPause(
        client_id=ident(locked), reason=reason, paused_by=ident(actor), paused_at=now
    )
    session.add(record)
    session.flush()
    pause_id = ident(record)
    # FOR UPDATE makes an approval committing meanwhile visible (PostgreSQL re-reads the
    # locked rows), so a grant it activated is suspended here rather than left active.
    live = sa.and_(
        col(Grant.scope_id).in_(_scopes_of(ident(locked))),
        col(Grant.state).in_(("active", "requested")),
    )
    suspended = list(
        session.execute(
            sa.select(col(Grant.id), col(Grant.state))
            .where(live)
            .order_by(col(Grant.id))
            .with_for_update()
        )
    )
    if suspended:
        # The rows are written by INSERT ... SELECT (no row passes through Python). The rows
        # just read are locked, and the client too, so the same condition selects the same
        # grants; the count says so.
        written = session.execute(
            sa.insert(_PAUSED_GRANT)
            .from_select(
                ["pause_id", "grant_id", "prior_state"],
                sa.select(sa.literal(pause_id, sa.Integer()), col(Grant.id), col(Grant.state))
                .where(live)
                .order_by(col(Grant.id)),
            )
            # SQLAlchemy keeps the row count of UPDATE and DELETE only, unless asked.
            .execution_options(preserve_rowcount=True)
        ).rowcount  # type: ignore[attr-defined]
        if written != len(suspended):
            raise ConflictError(
                f"the grants of client {locked.name!r} changed during the pause: try again"
            )
        mine = _paused(pause_id)
        session.execute(sa.update(_GRANT).where(_GRANT.c.id.in_(mine)).values(state="suspended"))
    active_ids = [gid for gid, st in suspended if st == "active"]
    ops = (
        outbox.enqueue_membership_where(
            session,
            [col(Grant.id).in_(_paused(pause_id, "active"))],
            "remove_member",
            pause_id=pause_id,
        )
        if active_ids
        else 0
    )
    locked.status = "paused"
    session.add(locked)
    audit.append(
        session,
        actor=actor.name,
        action="client.pause",
        obj=f"client:{locked.name}",
        details={
            "pause_id": pause_id,
            "reason": reason,
            "active": len(active_ids),
            "requested": len(suspended) - len(active_ids),
            "directory_ops": ops,
            **audit.id_summary([gid for gid, _ in suspended]),
        },
    )
    return PauseResult(
        pause_id, locked.name, len(active_ids), len(suspended) - len(active_ids), ops
    )


def current_pause(session: Session, client: Client) -> ClientPause | None:
    """The pause in force for the client, if any."""
    return session.exec(
        select(ClientPause).where(
            ClientPause.client_id == ident(client), col(ClientPause.resumed_at).is_(None)
        )
    ).first()


def resume(session: Session, actor: Operator, *, client: str, code: str) -> ResumeResult:
    """Restore exactly what the pause suspended and is neither ended nor past its expiry, with
    the original expiry; requests go back to awaiting approval. Needs an approver's code."""
    found = catalog.find_client(session, client)
    locked = grants.lock_client(session, found.id)
    record = current_pause(session, locked)
    if locked.status != "paused" or record is None:
        raise ConflictError(f"client {locked.name!r} is not paused")
    if not operators.is_approver_for(session, actor, locked):
        raise PolicyError(
            f"{actor.name!r} is not an approver for client {locked.name!r}: only one may resume it"
        )
    step = second_factor.verify(session, actor, code, purpose=f"resume of client {locked.name}")
    # Whatever ran out while paused ends now, so it cannot be restored by mistake.
    grants.expire_due(session, actor_name=actor.name)
    now = clock.now()
    pause_id = ident(record)

    def restore(prior: str, extra: sa.ColumnElement[bool]) -> list[int]:
        mine = _paused(pause_id, prior)
        return list(
            session.execute(
                sa.update(_GRANT)
                .where(_GRANT.c.id.in_(mine), _GRANT.c.state == "suspended", extra)
                .values(state=prior)
                .returning(_GRANT.c.id)
            ).scalars()
        )

    active = restore("active", _GRANT.c.expires_at > now)
    requests = restore("requested", sa.true())
    # Nothing else makes a suspended grant of a paused client active: the grants of this
    # pause that are active now are exactly those just restored.
    ops = (
        outbox.enqueue_membership_where(
            session,
            [sa.and_(col(Grant.id).in_(_paused(pause_id, "active")), col(Grant.state) == "active")],
            "add_member",
            pause_id=pause_id,
        )
        if active
        else 0
    )
    total = session.execute(
        sa.select(sa.func.count()).where(_PAUSED_GRANT.c.pause_id == pause_id)
    ).scalar_one()
    record.resumed_at, record.resumed_by = now, ident(actor)
    locked.status = "active"
    session.add_all([record, locked])
    not_restored = int(total) - len(active) - len(requests)
    audit.append(
        session,
        actor=actor.name,
        action="client.resume",
        obj=f"client:{locked.name}",
        details={
            "pause_id": pause_id,
            "totp_step": step,
            "active": len(active),
            "requested": len(requests),
            "not_restored": not_restored,
            "directory_ops": ops,
            **audit.id_summary(active + requests),
        },
    )
    return ResumeResult(pause_id, locked.name, len(active), len(requests), not_restored, ops)


def _convergence(session: Session, pause_id: int, operation: str) -> Convergence:
    by_state: Counter[str] = Counter()
    superseded = 0
    for state, n, replaced in session.execute(
        sa.select(
            col(OutboxOp.state),
            sa.func.count(),
            sa.func.count().filter(col(OutboxOp.last_error) == outbox.SUPERSEDED),
        )
        .where(col(OutboxOp.pause_id) == pause_id, col(OutboxOp.operation) == operation)
        .group_by(col(OutboxOp.state))
    ):
        by_state[state] += n - replaced
        superseded += replaced
    later = 0
    if operation == "remove_member":
        mine = _paused(pause_id)
        later = session.execute(
            sa.select(sa.func.count()).where(
                col(OutboxOp.grant_id).in_(mine),
                col(OutboxOp.operation) == "remove_member",
                col(OutboxOp.state).in_(("pending", "failed")),
                sa.or_(col(OutboxOp.pause_id).is_(None), col(OutboxOp.pause_id) != pause_id),
            )
        ).scalar_one()
    return Convergence(
        operation=operation,
        queued=sum(by_state.values()) + superseded,
        confirmed=by_state["done"],
        pending=by_state["pending"],
        failed=by_state["failed"],
        superseded=superseded,
        later_pending=int(later),
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
    mine = _paused(pause_id)
    suspended, still = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(col(Grant.state) == "suspended"),
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
            .where(col(OutboxOp.pause_id) == pause_id, col(OutboxOp.state) == "failed")
            .distinct()
            .limit(5)
        ).scalars()
    )
    return ClientStatus(
        client.name,
        client.status,
        view,
        _convergence(session, pause_id, "remove_member"),
        _convergence(session, pause_id, "add_member") if record.resumed_at else None,
        [e for e in errors if e],
    )

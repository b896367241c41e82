"""Pausing a client in one action and resuming it exactly (DESIGN invariant 4).

A pause suspends every active grant and every request of the client in one transaction of
bulk statements, records which grants it suspended and in what state, and queues the
directory removals; resume (an approver's TOTP code) restores exactly those grants that are
still suspended and not past their expiry. Removing access never waits for a code. What a
pause would touch, and how far one has got, are read in govtui.services.pause_views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
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
    act_signatures,
    audit,
    catalog,
    grant_lifecycle,
    grants,
    operators,
    outbox,
    second_factor,
    validation,
)
from govtui.services.pause_views import current_pause
from govtui.vocabulary import ClientStatus, Role

_PAUSED_GRANT: sa.Table = PausedGrant.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class HandAdded:
    """A direct member of one of the client's groups that no grant put there, to be removed
    by a strict pause (read from the directory before the pause's transaction)."""

    target_id: int
    group_dn: str
    uid: str


@dataclass(frozen=True)
class PauseResult:
    pause_id: int
    client: str
    suspended_active: int
    suspended_requests: int
    directory_ops: int
    strict_removals: int = 0


@dataclass(frozen=True)
class ResumeResult:
    pause_id: int
    client: str
    restored_active: int
    restored_requests: int
    not_restored: int  # revoked, expired or ended otherwise while the client was paused
    directory_ops: int


def _scopes_of(client_id: int) -> sa.Select[int | None]:
    return (
        sa.select(col(DatasetScope.id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(col(Project.client_id) == client_id)
    )


def _may_pause(session: Session, actor: Operator, client: str) -> Client:
    """The client, if the actor may pause it (an admin or one of its approvers)."""
    found = catalog.find_client(session, client)
    if not (
        Role.ADMIN in operators.roles_of(session, actor)
        or operators.is_approver_for(session, actor, found)
    ):
        raise PolicyError(
            f"{actor.name!r} may not pause client {found.name!r}: an admin or one of its approvers may"
        )
    return found


def pause(
    session: Session,
    actor: Operator,
    *,
    client: str,
    reason: str,
    hand_added: Sequence[HandAdded] = (),
) -> PauseResult:
    """Suspend every active grant and every request of the client, record exactly which, and
    queue the directory removals: one transaction, bulk statements, one audit event.

    `hand_added` (a strict pause): members added by hand, read from the directory just
    before this transaction; their removals are queued in it, under the pause, so they count
    towards its convergence and the pause, its audit event and every removal are all or
    nothing. A member added by hand after that read is reported by the read after the sync."""
    reason = validation.reason(reason, "pause")
    found = _may_pause(session, actor, client)
    # Locked for update before the grants: a concurrent request (which takes a shared lock on
    # the client) and a concurrent pause of the same client queue up behind this one.
    locked = catalog.lock_client(session, found.id)
    if locked.status == ClientStatus.PAUSED:
        raise ConflictError(f"client {locked.name!r} is paused already")
    now = clock.now()
    record = ClientPause(
        client_id=ident(locked), reason=reason, paused_by=ident(actor), paused_at=now
    )
    session.add(record)
    session.flush()
    pause_id = ident(record)
    suspended = grant_lifecycle.suspend(
        session,
        pause_id=pause_id,
        which=col(Grant.scope_id).in_(_scopes_of(ident(locked))),
        of=f"client {locked.name!r}",
    )
    locked.status = ClientStatus.PAUSED.value
    session.add(locked)
    strict = _queue_hand_added(session, pause_id, hand_added)
    audit.append(
        session,
        actor=actor.name,
        action="client.pause",
        obj=f"client:{locked.name}",
        details={
            "pause_id": pause_id,
            "reason": reason,
            "active": len(suspended.active),
            "requested": len(suspended.requests),
            "directory_ops": suspended.directory_ops,
            **({"strict_removals": _strict_summary(hand_added)} if hand_added else {}),
            **audit.id_summary(suspended.ids),
        },
    )
    return PauseResult(
        pause_id,
        locked.name,
        len(suspended.active),
        len(suspended.requests),
        suspended.directory_ops + strict,
        strict,
    )


def remove_hand_added(
    session: Session, actor: Operator, *, client: str, hand_added: Sequence[HandAdded]
) -> PauseResult:
    """`client pause --strict` on a client paused already: queue the removal of the members
    added by hand under the current pause (same rights as pausing; no code: it removes)."""
    found = _may_pause(session, actor, client)
    locked = catalog.lock_client(session, found.id)
    record = current_pause(session, locked)
    if record is None:
        raise ConflictError(f"client {locked.name!r} is not paused")
    pause_id = ident(record)
    strict = _queue_hand_added(session, pause_id, hand_added)
    audit.append(
        session,
        actor=actor.name,
        action="client.pause_strict",
        obj=f"client:{locked.name}",
        details={"pause_id": pause_id, "strict_removals": _strict_summary(hand_added)},
    )
    return PauseResult(pause_id, locked.name, 0, 0, strict, strict)


def _strict_summary(hand_added: Sequence[HandAdded]) -> list[str]:
    return sorted({f"{h.uid} from {h.group_dn}" for h in hand_added})[:200]


def _queue_hand_added(session: Session, pause_id: int, hand_added: Sequence[HandAdded]) -> int:
    if not hand_added:
        return 0
    now = clock.now()
    values: list[dict[str, object]] = [
        {
            "target_id": h.target_id,
            "grant_id": None,  # no grant: a resume never puts it back
            "pause_id": pause_id,
            "operation": "remove_member",
            "group_dn": h.group_dn,
            "directory_uid": h.uid,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for h in {(h.target_id, h.group_dn, h.uid): h for h in hand_added}.values()
    ]
    outbox.supersede(session, values)
    session.execute(sa.insert(OutboxOp), values)
    return len(values)


def _require_may_resume(session: Session, actor: Operator, client: Client) -> ClientPause:
    """The client's current pause, if it is paused and the actor approves for it."""
    record = current_pause(session, client)
    if client.status != ClientStatus.PAUSED or record is None:
        raise ConflictError(f"client {client.name!r} is not paused")
    if not operators.is_approver_for(session, actor, client):
        raise PolicyError(
            f"{actor.name!r} is not an approver for client {client.name!r}: only one may resume it"
        )
    return record


def check_resume(session: Session, actor: Operator, *, client: str) -> None:
    """What `resume` would refuse before it asks for a code (paused? an approver of it? with
    an authenticator?), so that a front end asks for no code that cannot help. `resume`
    checks again, under lock."""
    _require_may_resume(session, actor, catalog.find_client(session, client))
    second_factor.require_enrolled(actor)


def resume(session: Session, actor: Operator, *, client: str, code: str) -> ResumeResult:
    """Restore exactly what the pause suspended and is neither ended nor past its expiry, with
    the original expiry; requests go back to awaiting approval. Needs an approver's code."""
    found = catalog.find_client(session, client)
    locked = catalog.lock_client(session, found.id)
    record = _require_may_resume(session, actor, locked)
    step = second_factor.verify(session, actor, code, purpose=f"resume of client {locked.name}")
    # Whatever ran out while paused ends now, so it cannot be restored by mistake.
    grants.expire_due(session, actor_name=actor.name)
    now = clock.now()
    pause_id = ident(record)
    restored = grant_lifecycle.restore(session, pause_id=pause_id, now=now)
    total = session.execute(
        sa.select(sa.func.count()).where(_PAUSED_GRANT.c.pause_id == pause_id)
    ).scalar_one()
    record.resumed_at, record.resumed_by = now, ident(actor)
    locked.status = ClientStatus.ACTIVE.value
    session.add_all([record, locked])
    active, requests = restored.active, restored.requests
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
            "directory_ops": restored.directory_ops,
            **audit.id_summary(active + requests),
            "signature": act_signatures.sign_resume(session, actor, pause_id=pause_id),
        },
    )
    return ResumeResult(
        pause_id, locked.name, len(active), len(requests), not_restored, restored.directory_ops
    )

"""Directory operations written in the same transaction as the grant change that needs them
(DESIGN invariant 5). The sync worker in govtui.services.sync pushes them later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.models import Contractor, Grant, OutboxOp
from govtui.services import directory_targets

_CHUNK = 20_000
SUPERSEDED = "superseded by a newer operation"
_OUTBOX: sa.Table = OutboxOp.__table__  # type: ignore[attr-defined]


def enqueue_membership(
    session: Session,
    grant_ids: Sequence[int],
    operation: str,
    *,
    pause_id: int | None = None,
) -> int:
    """Queue add_member or remove_member for each grant on every target, in bulk; return how
    many operations were queued."""
    chunks = [
        col(Grant.id).in_(list(grant_ids[start : start + _CHUNK]))
        for start in range(0, len(grant_ids), _CHUNK)
    ]
    return enqueue_membership_where(session, chunks, operation, pause_id=pause_id)


def enqueue_membership_where(
    session: Session,
    conditions: Sequence[ColumnElement[bool]],
    operation: str,
    *,
    pause_id: int | None = None,
) -> int:
    """Like enqueue_membership, for the grants each condition on Grant selects (a pause names
    its grants by a subquery rather than by 50,000 ids)."""
    if operation not in ("add_member", "remove_member"):
        raise ValueError(operation)
    if not conditions or not directory_targets.all_targets(session):
        return 0
    rows: list[tuple[int, int, str, str]] = []
    for condition in conditions:
        rows.extend(
            session.execute(
                sa.select(
                    col(Grant.id),
                    col(Grant.scope_id),
                    col(Grant.access),
                    col(Contractor.directory_uid),
                )
                .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
                .where(condition)
            )
        )
    refs = directory_targets.group_refs(
        session, {(scope_id, access) for _, scope_id, access, _ in rows}
    )
    by_pair: dict[tuple[int, str], list[directory_targets.GroupRef]] = {}
    for ref in refs.values():
        by_pair.setdefault((ref.scope_id, ref.access), []).append(ref)
    now = clock.now()
    values = [
        {
            "target_id": ref.target_id,
            "grant_id": grant_id,
            "pause_id": pause_id,
            "operation": operation,
            "group_dn": ref.dn,
            "directory_uid": uid,
            "user_dn": None,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "created_at": now,
            "done_at": None,
        }
        for grant_id, scope_id, access, uid in rows
        for ref in by_pair[(scope_id, access)]
    ]
    if values:
        supersede(session, values)
        session.execute(sa.insert(_OUTBOX), values)
    return len(values)


def enqueue_disable(session: Session, contractor: Contractor) -> int:
    """Queue disabling the contractor's account on every target; return how many."""
    now = clock.now()
    values = [
        {
            "target_id": ident(target),
            "grant_id": None,
            "pause_id": None,
            "operation": "disable_account",
            "group_dn": None,
            "directory_uid": contractor.directory_uid,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for target in directory_targets.all_targets(session)
    ]
    if values:
        session.execute(sa.insert(_OUTBOX), values)
    return len(values)


def supersede(session: Session, new_ops: Sequence[Mapping[str, object]]) -> None:
    """Close the pending operations for the same member of the same group as the operations
    about to be queued: only the newest may decide. An older add still waiting for its retry
    would otherwise bring back a member whose removal was applied in the meantime. Call it
    before inserting the new operations."""
    keys = {
        (op["target_id"], op["group_dn"], op["directory_uid"])
        for op in new_ops
        if op["group_dn"] is not None
    }
    if not keys:
        return
    # The pending ops are few in the steady state (sync drains them), so reading them and
    # matching in Python beats sending every new key to the database.
    stale = [
        op_id
        for op_id, target_id, group_dn, uid in session.execute(
            sa.select(
                _OUTBOX.c.id, _OUTBOX.c.target_id, _OUTBOX.c.group_dn, _OUTBOX.c.directory_uid
            ).where(_OUTBOX.c.state == "pending", _OUTBOX.c.group_dn.is_not(None))
        )
        if (target_id, group_dn, uid) in keys
    ]
    now = clock.now()
    for start in range(0, len(stale), _CHUNK):
        session.execute(
            sa.update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(stale[start : start + _CHUNK]))
            .values(state="done", done_at=now, last_error=SUPERSEDED)
        )

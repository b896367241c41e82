"""Directory operations written in the same transaction as the grant change that needs them
(DESIGN invariant 5). The sync worker in govtui.directory pushes them later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.models import Contractor, Grant, OutboxOp
from govtui.services import directory_targets


def enqueue_membership(session: Session, grant_ids: Sequence[int], operation: str) -> int:
    """Queue add_member or remove_member for each grant on every target, in bulk; return how
    many operations were queued."""
    if operation not in ("add_member", "remove_member"):
        raise ValueError(operation)
    if not grant_ids or not directory_targets.all_targets(session):
        return 0
    rows: list[tuple[int, int, str, str]] = []
    for chunk_start in range(0, len(grant_ids), 20_000):
        chunk = list(grant_ids[chunk_start : chunk_start + 20_000])
        rows.extend(
            session.execute(
                sa.select(
                    col(Grant.id),
                    col(Grant.scope_id),
                    col(Grant.access),
                    col(Contractor.directory_uid),
                )
                .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
                .where(col(Grant.id).in_(chunk))
            ).all()
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
        session.execute(sa.insert(OutboxOp), values)
    return len(values)


_SUPERSEDE_CHUNK = 5_000


def supersede(session: Session, new_ops: Sequence[Mapping[str, object]]) -> None:
    """Close the pending operations for the same member of the same group as the operations
    about to be queued: only the newest may decide. An older add still waiting for its retry
    would otherwise bring back a member whose removal was applied in the meantime. Call it
    before inserting the new operations."""
    table: sa.Table = OutboxOp.__table__  # type: ignore[attr-defined]
    keys = sorted(
        {
            (op["target_id"], op["group_dn"], op["directory_uid"])
            for op in new_ops
            if op["group_dn"] is not None
        }
    )
    now = clock.now()
    for start in range(0, len(keys), _SUPERSEDE_CHUNK):
        session.execute(
            sa.update(table)
            .where(
                table.c.state == "pending",
                sa.tuple_(table.c.target_id, table.c.group_dn, table.c.directory_uid).in_(
                    keys[start : start + _SUPERSEDE_CHUNK]
                ),
            )
            .values(state="done", done_at=now, last_error="superseded by a newer operation")
        )

"""Directory operations written in the same transaction as the grant change that needs them
(DESIGN invariant 5). The sync worker in govtui.directory pushes them later."""

from __future__ import annotations

from collections.abc import Sequence

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
        session.execute(sa.insert(OutboxOp), values)
    return len(values)

"""Directory operations written in the same transaction as the grant change that needs them
(DESIGN invariant 5). The sync worker in govtui.services.sync pushes them later."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from govtui import clock, db_bulk
from govtui.db import ident
from govtui.directory.group_names import group_refs
from govtui.models import Contractor, Grant, OutboxOp
from govtui.services import directory_targets
from govtui.sqltypes import UTCDateTime

_CHUNK = 20_000
_UID_FILTER = 1_000  # pending uids up to which supersede narrows its query to them
SUPERSEDED = "superseded by a newer operation"
# An op that may still be applied: pending, or failed (a failed removal keeps being retried,
# a failed addition is retried by `sync --retry-failed`). A newer op for the same member of
# the same group closes either kind.
OPEN_STATES = ("pending", "failed")
_OUTBOX: sa.Table = OutboxOp.__table__  # type: ignore[attr-defined]
# The group DN of each (scope, access level, target), joined to the grants being queued.
_MEMBER_GROUPS = db_bulk.keyed_rows_table(
    "govtui_member_groups",
    sa.Column("scope_id", sa.Integer(), primary_key=True),
    sa.Column("access", sa.String(), primary_key=True),
    sa.Column("target_id", sa.Integer(), primary_key=True),
    sa.Column("dn", sa.String(), nullable=False),
)


def enqueue_membership(
    session: Session,
    grant_ids: Sequence[int],
    operation: str,
    *,
    pause_id: int | None = None,
    review_campaign_id: int | None = None,
) -> int:
    """Queue add_member or remove_member for each grant on every target, in bulk; return how
    many operations were queued. A pause or a review's close names itself on its ops."""
    chunks = [
        col(Grant.id).in_(list(grant_ids[start : start + _CHUNK]))
        for start in range(0, len(grant_ids), _CHUNK)
    ]
    return enqueue_membership_where(
        session, chunks, operation, pause_id=pause_id, review_campaign_id=review_campaign_id
    )


def enqueue_membership_where(
    session: Session,
    conditions: Sequence[ColumnElement[bool]],
    operation: str,
    *,
    pause_id: int | None = None,
    review_campaign_id: int | None = None,
) -> int:
    """Like enqueue_membership, for the grants each condition on Grant selects (a pause names
    its grants by a subquery rather than by 50,000 ids).

    The operations are written by INSERT ... SELECT joined to the group of each (scope,
    access level) on each target: no row passes through Python, so queueing 50,000 costs
    little more than the statements themselves."""
    if operation not in ("add_member", "remove_member"):
        raise ValueError(operation)
    # A disabled target gets no operations (group_refs names every target's groups).
    enabled = {ident(t) for t in directory_targets.active_targets(session)}
    if not conditions or not enabled:
        return 0
    pairs: set[tuple[int, str]] = set()
    for condition in conditions:
        pairs.update(
            (scope_id, access)
            for scope_id, access in session.execute(
                sa.select(col(Grant.scope_id), col(Grant.access)).where(condition).distinct()
            )
        )
    refs = [ref for ref in group_refs(session, pairs).values() if ref.target_id in enabled]
    if not refs:
        return 0
    new_ops = [
        sa.select(
            groups.c.target_id,
            col(Grant.id),
            groups.c.dn,
            col(Contractor.directory_uid),
        )
        .select_from(Grant)
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(
            groups,
            sa.and_(groups.c.scope_id == col(Grant.scope_id), groups.c.access == col(Grant.access)),
        )
        .where(condition)
        for groups in db_bulk.joinable(
            session, _MEMBER_GROUPS, [(r.scope_id, r.access, r.target_id, r.dn) for r in refs]
        )
        for condition in conditions
    ]
    # Every stale operation is closed before any new one exists, as supersede() does.
    _supersede_selected(session, new_ops)
    now = sa.literal(clock.now(), UTCDateTime())
    queued = 0
    for new in new_ops:
        target_id, grant_id, dn, uid = new.selected_columns
        rows = new.with_only_columns(
            target_id,
            grant_id,
            sa.literal(pause_id, sa.Integer()),
            sa.literal(review_campaign_id, sa.Integer()),
            sa.literal(operation),
            dn,
            uid,
            sa.literal("pending"),
            sa.literal(0),
            now,
            now,
        ).order_by(grant_id)  # ids follow the grants: PostgreSQL's join order is its own
        result = session.execute(
            sa.insert(_OUTBOX)
            .from_select(
                [
                    "target_id",
                    "grant_id",
                    "pause_id",
                    "review_campaign_id",
                    "operation",
                    "group_dn",
                    "directory_uid",
                    "state",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ],
                rows,
            )
            # SQLAlchemy keeps the row count of UPDATE and DELETE only, unless asked.
            .execution_options(preserve_rowcount=True)
        )
        queued += result.rowcount  # type: ignore[attr-defined]
    db_bulk.release(session, _MEMBER_GROUPS)
    return queued


def _supersede_selected(
    session: Session, new_ops: Sequence[sa.Select[tuple[int, int, str, str]]]
) -> None:
    """supersede() for operations still to be inserted by INSERT ... SELECT: only the keys of
    the pending operations are looked for among them (few in the steady state: sync drains
    them), so a pause reads nothing back when nothing is pending."""
    pending: dict[tuple[int, str, str], list[int]] = {}
    for op_id, target_id, group_dn, uid in session.execute(
        sa.select(
            _OUTBOX.c.id, _OUTBOX.c.target_id, _OUTBOX.c.group_dn, _OUTBOX.c.directory_uid
        ).where(_OUTBOX.c.state.in_(OPEN_STATES), _OUTBOX.c.group_dn.is_not(None))
    ):
        pending.setdefault((target_id, group_dn, uid), []).append(op_id)
    if not pending:
        return
    uids = sorted({uid for _, _, uid in pending})
    stale: set[int] = set()
    for new in new_ops:
        target_id, _, dn, uid = new.selected_columns
        keys = new.with_only_columns(target_id, dn, uid)
        if len(uids) <= _UID_FILTER:  # a short list narrows the query; a long one slows it
            keys = keys.where(uid.in_(uids))
        for key in session.execute(keys):
            stale.update(pending.get((key[0], key[1], key[2]), ()))
    _close_superseded(session, sorted(stale))


def _close_superseded(session: Session, stale: Sequence[int]) -> None:
    now = clock.now()
    for start in range(0, len(stale), _CHUNK):
        session.execute(
            sa.update(_OUTBOX)
            .where(
                _OUTBOX.c.id.in_(stale[start : start + _CHUNK]), _OUTBOX.c.state.in_(OPEN_STATES)
            )
            .values(state="done", done_at=now, last_error=SUPERSEDED)
        )


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
        for target in directory_targets.active_targets(session)
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
            ).where(_OUTBOX.c.state.in_(OPEN_STATES), _OUTBOX.c.group_dn.is_not(None))
        )
        if (target_id, group_dn, uid) in keys
    ]
    _close_superseded(session, stale)


def supersede_absent_removals(
    session: Session, target_id: int, up_to_id: int, absent: Callable[[str, str], bool]
) -> int:
    """Close the target's open remove_member operations (queued at or before op `up_to_id`)
    whose member a reconcile read found absent: absent(normalised group DN, uid).
    A removal that keeps failing (the old account vanished, say) is then no longer open, and
    the pause it belongs to can report complete (pause_views counts SUPERSEDED as converged).
    Returns how many were closed."""
    stale = [
        op_id
        for op_id, group_dn, uid in session.execute(
            sa.select(_OUTBOX.c.id, _OUTBOX.c.group_dn, _OUTBOX.c.directory_uid).where(
                _OUTBOX.c.target_id == target_id,
                _OUTBOX.c.operation == "remove_member",
                _OUTBOX.c.state.in_(OPEN_STATES),
                _OUTBOX.c.id <= up_to_id,
            )
        )
        if group_dn is not None and absent(group_dn.strip().lower(), uid)
    ]
    now = clock.now()
    for start in range(0, len(stale), _CHUNK):
        session.execute(
            sa.update(_OUTBOX)
            .where(
                _OUTBOX.c.id.in_(stale[start : start + _CHUNK]), _OUTBOX.c.state.in_(OPEN_STATES)
            )
            .values(state="done", done_at=now, last_error=SUPERSEDED)
        )
    return len(stale)

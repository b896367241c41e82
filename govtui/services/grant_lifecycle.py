"""The one writer of a grant's state: every transition (request, activation, end, suspension
and restore) updates the rows, voids what must not outlive them and queues the directory
operations, in bulk. Policy and the audit event stay with the operation that calls it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col

from govtui.db import ident
from govtui.errors import ConflictError
from govtui.models import Grant, GrantExtension, PausedGrant
from govtui.services import outbox
from govtui.vocabulary import (
    IN_DIRECTORY_STATES,
    LIVE_STATES,
    SUSPENDABLE_STATES,
    AccessLevel,
    ExtensionState,
    GrantState,
    OutboxOperation,
)

_GRANT: sa.Table = Grant.__table__  # type: ignore[attr-defined]
_PAUSED_GRANT: sa.Table = PausedGrant.__table__  # type: ignore[attr-defined]
_EXTENSION: sa.Table = GrantExtension.__table__  # type: ignore[attr-defined]

# Which states each end may come from: a denial ends a request, expiry ends a window.
_ENDS_FROM: dict[GrantState, tuple[GrantState, ...]] = {
    GrantState.DENIED: (GrantState.REQUESTED,),
    GrantState.EXPIRED: IN_DIRECTORY_STATES,
    GrantState.REVOKED: LIVE_STATES,
}

# Grant ids, or a condition on the grant table that names them (no ids pass through Python).
Which: TypeAlias = Sequence[int] | sa.ColumnElement[bool]
_CHUNK = 20_000  # ids per IN list, as the outbox chunks them
# Plain words: the outbox writes the operation as an SQL literal, which needs a str to type.
_ADD, _REMOVE = OutboxOperation.ADD_MEMBER.value, OutboxOperation.REMOVE_MEMBER.value


@dataclass(frozen=True)
class Ended:
    ids: list[int]  # in id order
    directory_ops: int


@dataclass(frozen=True)
class Capped:
    capped: list[int]  # in id order: windows now ending at `until`
    ended: Ended  # already past `until`: ended now, expired


@dataclass(frozen=True)
class Suspended:
    active: list[int]  # in id order, as are requests
    requests: list[int]
    directory_ops: int

    @property
    def ids(self) -> list[int]:
        return sorted(self.active + self.requests)


@dataclass(frozen=True)
class Restored:
    active: list[int]
    requests: list[int]
    directory_ops: int


def create_request(
    session: Session,
    *,
    contractor_id: int,
    scope_id: int,
    access: AccessLevel,
    reason: str,
    requested_by: int,
    days: int,
    now: datetime,
) -> Grant:
    """A new grant awaiting approval, flushed so it has its id."""
    grant = Grant(
        contractor_id=contractor_id,
        scope_id=scope_id,
        access=access.value,
        state=GrantState.REQUESTED.value,
        reason=reason,
        requested_by=requested_by,
        requested_days=days,
        requested_at=now,
    )
    session.add(grant)
    session.flush()
    return grant


def activate(session: Session, grant: Grant, *, now: datetime, expires_at: datetime) -> int:
    """Start an approved request's window now and queue its directory additions; return how
    many operations were queued."""
    ops = outbox.enqueue_membership(session, [ident(grant)], _ADD)
    grant.state = GrantState.ACTIVE.value
    grant.starts_at = now
    grant.expires_at = expires_at
    session.add(grant)
    return ops


def end(
    session: Session,
    which: Which,
    *,
    to: GrantState,
    ended_by: int | None,
    reason: str,
    now: datetime,
    review_campaign_id: int | None = None,
) -> Ended:
    """End the named grants that may end so (`to` is expired, revoked or denied), void their
    pending extensions and queue the removals of those that were in the directory (tagged
    with the access review whose close ended them, if one did)."""
    if to not in _ENDS_FROM:
        raise ValueError(f"{to} is not an end state")
    condition = _condition(which)
    values = {"state": to, "ended_at": now, "ended_by": ended_by, "end_reason": reason}
    # One UPDATE per kind of prior state: RETURNING gives new values only, so this is how
    # the ids of the grants that were in the directory come back without a separate read.
    in_directory = [s for s in _ENDS_FROM[to] if s in IN_DIRECTORY_STATES]
    elsewhere = [s for s in _ENDS_FROM[to] if s not in IN_DIRECTORY_STATES]
    removed = _update(session, condition, in_directory, values)
    ids = sorted(removed + _update(session, condition, elsewhere, values))
    void_extensions(session, ids, now=now)
    ops = outbox.enqueue_membership_where(
        session,
        ids_in(session, _GRANT.c.id, removed),
        _REMOVE,
        review_campaign_id=review_campaign_id,
    )
    _refresh_loaded(session, ids)
    return Ended(ids, ops)


def cap_expiry(
    session: Session,
    *,
    contractor_id: int | Sequence[int],
    until: datetime,
    now: datetime,
) -> Capped:
    """No window of the contractor's (or contractors') active and suspended grants outlasts
    `until` (a contract end brought forward, DESIGN invariant 1): those running past it end at
    `until`; if `until` has come already, they end now, expired, with their removals queued.
    Requests are left waiting: approval refuses an ended contract and caps a new window to it.
    A list of ids lets a bulk import cap every contractor whose contract ends on one day at
    once rather than in a statement per contractor."""
    ids = [contractor_id] if isinstance(contractor_id, int) else sorted(set(contractor_id))
    capped: list[int] = []
    ended: list[int] = []
    ops = 0
    for start in range(0, len(ids), _CHUNK):
        owned = col(Grant.contractor_id).in_(ids[start : start + _CHUNK])
        if until <= now:
            # Every window of theirs is past the contract end: expiry, now, not at `until`
            # (which is history), so ended_at says when access really ended.
            result = end(
                session,
                owned,
                to=GrantState.EXPIRED,
                ended_by=None,
                reason=f"contract ended {until.isoformat()}",
                now=now,
            )
            ended += result.ids
            ops += result.directory_ops
            continue
        capped += session.execute(
            sa.update(_GRANT)
            .where(owned, _GRANT.c.state.in_(IN_DIRECTORY_STATES), _GRANT.c.expires_at > until)
            .values(expires_at=until)
            .returning(_GRANT.c.id)
        ).scalars()
    capped.sort()
    _refresh_loaded(session, capped)
    return Capped(capped, Ended(sorted(ended), ops))


def shorten(
    session: Session,
    until: sa.Select[tuple[int, datetime]],
    *,
    ended_by: int | None,
    reason: str,
    now: datetime,
    review_campaign_id: int | None = None,
) -> Capped:
    """Bring each selected grant's window forward: `until` selects (grant id, new end) rows,
    one per grant, and each active or suspended grant among them then ends at the earlier of
    its expiry and that time; those whose end is already past end now, expired, with their
    removals queued (tagged with the access review whose close shortened them, if one did);
    their waiting extension requests are void. Bulk UPDATEs and the end: no grant passes
    through Python."""
    source = until.subquery()
    grant_col, until_col = source.c[0], source.c[1]
    sooner = (grant_col == _GRANT.c.id, until_col < _GRANT.c.expires_at)
    earlier = sa.select(until_col).where(*sooner).scalar_subquery()
    capped = sorted(
        session.execute(
            sa.update(_GRANT)
            .where(sa.exists().where(*sooner), _GRANT.c.state.in_(IN_DIRECTORY_STATES))
            .values(expires_at=earlier)
            .returning(_GRANT.c.id)
        ).scalars()
    )
    # The review decided when these grants end: an extension requested before it (and
    # approved after it) must not undo that, as end voids them for a revoke. Anyone may ask
    # for new time after the review.
    void_extensions(
        session,
        sa.select(_GRANT.c.id).where(
            _GRANT.c.id.in_(sa.select(grant_col)), _GRANT.c.state.in_(IN_DIRECTORY_STATES)
        ),
        now=now,
    )
    # A window now ending in the past ends at once, as expiry would end it at its next run,
    # so nobody keeps access in between (an already past one, unchanged, too).
    ended = end(
        session,
        sa.and_(col(Grant.id).in_(sa.select(grant_col)), col(Grant.expires_at) <= now),
        to=GrantState.EXPIRED,
        ended_by=ended_by,
        reason=reason,
        now=now,
        review_campaign_id=review_campaign_id,
    )
    _refresh_loaded(session, capped)
    return Capped(sorted(set(capped) - set(ended.ids)), ended)


def suspend(
    session: Session, *, pause_id: int, which: sa.ColumnElement[bool], of: str
) -> Suspended:
    """Suspend the active grants and requests the condition selects (the grants `of` a
    client), record them with the state each had against the pause, and queue the removals
    of the active ones."""
    live = sa.and_(which, col(Grant.state).in_(SUSPENDABLE_STATES))
    # FOR UPDATE makes an approval committing meanwhile visible (PostgreSQL re-reads the
    # locked rows), so a grant it activated is suspended here rather than left active.
    found = list(
        session.execute(
            sa.select(col(Grant.id), col(Grant.state))
            .where(live)
            .order_by(col(Grant.id))
            .with_for_update()
        )
    )
    active = [gid for gid, state in found if state == GrantState.ACTIVE]
    requests = [gid for gid, state in found if state != GrantState.ACTIVE]
    if not found:
        return Suspended([], [], 0)
    # The rows are written by INSERT ... SELECT (no row passes through Python). The rows just
    # read are locked, and the caller holds their client's lock too, so the same condition
    # selects the same grants; the count says so.
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
    if written != len(found):
        raise ConflictError(f"the grants of {of} changed during the pause: try again")
    session.execute(
        sa.update(_GRANT)
        .where(_GRANT.c.id.in_(paused_ids(pause_id)))
        .values(state=GrantState.SUSPENDED)
    )
    ops = (
        outbox.enqueue_membership_where(
            session,
            [col(Grant.id).in_(paused_ids(pause_id, GrantState.ACTIVE))],
            _REMOVE,
            pause_id=pause_id,
        )
        if active
        else 0
    )
    _refresh_loaded(session, active + requests)
    return Suspended(active, requests, ops)


def restore(session: Session, *, pause_id: int, now: datetime) -> Restored:
    """Give the grants a pause suspended back the state they had, those still suspended and
    (if they were active) not past their expiry, and queue the additions of the active ones."""

    def back_to(prior: GrantState, extra: sa.ColumnElement[bool]) -> list[int]:
        return sorted(
            session.execute(
                sa.update(_GRANT)
                .where(
                    _GRANT.c.id.in_(paused_ids(pause_id, prior)),
                    _GRANT.c.state == GrantState.SUSPENDED,
                    extra,
                )
                .values(state=prior)
                .returning(_GRANT.c.id)
            ).scalars()
        )

    active = back_to(GrantState.ACTIVE, _GRANT.c.expires_at > now)
    requests = back_to(GrantState.REQUESTED, sa.true())
    # Nothing else makes a suspended grant of a paused client active: the grants of this
    # pause that are active now are exactly those just restored.
    ops = (
        outbox.enqueue_membership_where(
            session,
            [
                sa.and_(
                    col(Grant.id).in_(paused_ids(pause_id, GrantState.ACTIVE)),
                    col(Grant.state) == GrantState.ACTIVE,
                )
            ],
            _ADD,
            pause_id=pause_id,
        )
        if active
        else 0
    )
    _refresh_loaded(session, active + requests)
    return Restored(active, requests, ops)


def paused_ids(pause_id: int, prior_state: GrantState | None = None) -> sa.Select[tuple[int]]:
    """The grants one pause suspended (those that were in `prior_state`, if given)."""
    query = sa.select(_PAUSED_GRANT.c.grant_id).where(_PAUSED_GRANT.c.pause_id == pause_id)
    if prior_state is not None:
        query = query.where(_PAUSED_GRANT.c.prior_state == prior_state)
    return query


def void_extensions(
    session: Session, grant_ids: Sequence[int] | sa.Select[tuple[int]], *, now: datetime
) -> None:
    """Close the extension requests still waiting on grants that have just ended (or whose
    end was just decided): ids, or a select of them (no ids pass through Python)."""
    conditions = (
        [_EXTENSION.c.grant_id.in_(grant_ids)]
        if isinstance(grant_ids, sa.Select)
        else ids_in(session, _EXTENSION.c.grant_id, grant_ids)
    )
    for among in conditions:
        session.execute(
            sa.update(_EXTENSION)
            .where(among, _EXTENSION.c.state == ExtensionState.REQUESTED)
            .values(state=ExtensionState.VOID, decided_at=now)
        )


def ids_in(
    session: Session, column: sa.ColumnElement[int], ids: Sequence[int]
) -> list[sa.ColumnElement[bool]]:
    """Conditions that together select `ids` of `column`, none for no ids. PostgreSQL gets
    one array parameter (`= ANY(...)`): 25,000 ids as an IN list of as many parameters cost
    seconds to compile and send through psycopg; SQLite gets IN lists of _CHUNK ids."""
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [column == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.Integer())))]
    return [column.in_(ids[start : start + _CHUNK]) for start in range(0, len(ids), _CHUNK)]


def _condition(which: Which) -> sa.ColumnElement[bool]:
    if isinstance(which, sa.ColumnElement):
        return which
    return col(Grant.id).in_(sorted(set(which)))


def _update(
    session: Session,
    condition: sa.ColumnElement[bool],
    states: Sequence[GrantState],
    values: dict[str, object],
) -> list[int]:
    if not states:
        return []
    return sorted(
        session.execute(
            sa.update(_GRANT)
            .where(condition, _GRANT.c.state.in_(states))
            .values(**values)
            .returning(_GRANT.c.id)
        ).scalars()
    )


def _refresh_loaded(session: Session, ids: Sequence[int]) -> None:
    """Bulk statements bypass the ORM: re-read the changed grants this session holds, so the
    caller's objects (and what it returns) show the new state."""
    wanted = set(ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Grant) and obj.id in wanted:
            session.refresh(obj)

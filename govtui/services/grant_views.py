"""Reading grants: filtered windows for lists, one grant's whole history, and the queue of
requests an approver may decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import NotFoundError
from govtui.models import (
    Approval,
    Client,
    Contractor,
    DatasetScope,
    Grant,
    GrantExtension,
    Operator,
    OperatorClient,
    Project,
)
from govtui.services import catalog, contractors, operator_views

PAGE = 200


@dataclass(frozen=True)
class GrantRow:
    id: int
    contractor: str  # external id
    contractor_name: str
    scope: str  # client/project/scope
    client: str
    client_status: str
    sensitivity: str
    access: str
    state: str
    reason: str
    requested_by: str
    requested_days: int
    requested_at: datetime
    starts_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    approvals: list[str] = field(default_factory=list)
    pending_extension_days: int | None = None


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    event: str
    by: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class GrantDetail:
    grant: GrantRow
    history: list[HistoryEntry]


def _base() -> sa.Select[Any]:
    requester = aliased(Operator)
    columns: list[Any] = [
        col(Grant.id),
        col(Contractor.external_id),
        col(Contractor.name),
        (col(Client.name) + "/" + col(Project.name) + "/" + col(DatasetScope.name)),
        col(Client.name),
        col(Client.status),
        col(DatasetScope.sensitivity),
        col(Grant.access),
        col(Grant.state),
        col(Grant.reason),
        requester.name,
        col(Grant.requested_days),
        col(Grant.requested_at),
        col(Grant.starts_at),
        col(Grant.expires_at),
        col(Grant.ended_at),
        col(Grant.end_reason),
    ]
    return (
        sa.select(*columns)
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .join(requester, col(requester.id) == col(Grant.requested_by))
    )


def _rows(session: Session, query: sa.Select[Any]) -> list[GrantRow]:
    raw = session.execute(query).all()
    ids = [r[0] for r in raw]
    approvals: dict[int, list[str]] = {}
    extensions: dict[int, int] = {}
    if ids:
        for grant_id, name in session.execute(
            sa.select(col(Approval.grant_id), col(Operator.name))
            .join(Operator, col(Operator.id) == col(Approval.approver_id))
            .where(col(Approval.grant_id).in_(ids), col(Approval.decision) == "approve")
            .order_by(col(Approval.decided_at))
        ):
            approvals.setdefault(grant_id, []).append(name)
        for grant_id, days in session.execute(
            sa.select(col(GrantExtension.grant_id), col(GrantExtension.days)).where(
                col(GrantExtension.grant_id).in_(ids), col(GrantExtension.state) == "requested"
            )
        ):
            extensions[grant_id] = days
    make: Any = GrantRow  # the row's 17 columns are GrantRow's fields, in order
    return [
        make(*r, approvals=approvals.get(r[0], []), pending_extension_days=extensions.get(r[0]))
        for r in raw
    ]


def list_grants(
    session: Session,
    *,
    state: str | None = None,
    client: str | None = None,
    contractor: str | None = None,
    expiring_within: int | None = None,
    after_id: int | None = None,
    limit: int = PAGE,
) -> list[GrantRow]:
    """A window of grants, newest first, filtered in SQL; `after_id` continues a window."""
    query = _base()
    if state is not None:
        query = query.where(col(Grant.state) == state)
    if client is not None:
        query = query.where(col(Client.id) == ident(catalog.find_client(session, client)))
    if contractor is not None:
        query = query.where(col(Contractor.id) == ident(contractors.find(session, contractor)))
    if expiring_within is not None:
        horizon = clock.now() + timedelta(days=expiring_within)
        query = query.where(col(Grant.state) == "active", col(Grant.expires_at) <= horizon)
    if after_id is not None:
        query = query.where(col(Grant.id) < after_id)
    return _rows(session, query.order_by(col(Grant.id).desc()).limit(limit))


def show(session: Session, grant_id: int) -> GrantDetail:
    """One grant with its whole history: request, approvals, extensions, end."""
    rows = _rows(session, _base().where(col(Grant.id) == grant_id))
    if not rows:
        raise NotFoundError(f"unknown grant {grant_id}")
    row = rows[0]
    history = [
        HistoryEntry(
            row.requested_at,
            "requested",
            row.requested_by,
            {"days": row.requested_days, "reason": row.reason},
        )
    ]
    names = {ident(op): op.name for op in session.execute(sa.select(Operator)).scalars()}
    for approval in session.execute(
        sa.select(Approval).where(col(Approval.grant_id) == grant_id)
    ).scalars():
        event = "approved" if approval.decision == "approve" else "denied"
        history.append(
            HistoryEntry(
                approval.decided_at,
                event,
                names.get(approval.approver_id),
                {"round": approval.round},
            )
        )
    for ext in session.execute(
        sa.select(GrantExtension).where(col(GrantExtension.grant_id) == grant_id)
    ).scalars():
        history.append(
            HistoryEntry(
                ext.requested_at,
                "extension requested",
                names.get(ext.requested_by),
                {"round": ext.round, "days": ext.days, "reason": ext.reason},
            )
        )
        if ext.decided_at is not None:
            details: dict[str, Any] = {"round": ext.round}
            if ext.new_expires_at is not None:
                details["expires_at"] = ext.new_expires_at
            history.append(HistoryEntry(ext.decided_at, f"extension {ext.state}", None, details))
    if row.starts_at is not None:
        history.append(HistoryEntry(row.starts_at, "active", None, {"expires_at": row.expires_at}))
    grant = session.get(Grant, grant_id)
    if row.ended_at is not None and grant is not None:
        history.append(
            HistoryEntry(
                row.ended_at, row.state, names.get(grant.ended_by or -1), {"reason": row.end_reason}
            )
        )
    order = {"requested": 0, "extension requested": 1}
    history.sort(key=lambda h: (h.at, order.get(h.event, 2)))
    return GrantDetail(grant=row, history=history)


def pending_for(session: Session, approver: Operator) -> list[GrantRow]:
    """Requests and extensions the approver may decide now: on clients they approve for,
    not asked by them, not yet approved by them, on clients that are not paused."""
    approver_id = ident(approver)
    clients = sa.select(col(OperatorClient.client_id)).where(
        col(OperatorClient.operator_id) == approver_id
    )
    extension = aliased(GrantExtension)
    pending_ext = sa.exists().where(
        col(extension.grant_id) == col(Grant.id),
        col(extension.state) == "requested",
        col(extension.requested_by) != approver_id,
        ~sa.exists().where(
            col(Approval.grant_id) == col(Grant.id),
            col(Approval.round) == col(extension.round),
            col(Approval.approver_id) == approver_id,
        ),
    )
    approved_request = sa.exists().where(
        col(Approval.grant_id) == col(Grant.id),
        col(Approval.round) == 0,
        col(Approval.approver_id) == approver_id,
    )
    request_open = sa.and_(
        col(Grant.state) == "requested", col(Grant.requested_by) != approver_id, ~approved_request
    )
    query = _base().where(
        col(Client.id).in_(clients),
        col(Client.status) == "active",
        sa.or_(request_open, sa.and_(col(Grant.state) == "active", pending_ext)),
    )
    return _rows(session, query.order_by(col(Grant.id)))


@dataclass(frozen=True)
class ApprovalQueue:
    """What the approvals screen shows: the queue and the approver's own state, read together."""

    rows: list[GrantRow]
    operator: operator_views.OperatorState


def approval_queue(session: Session, approver: Operator) -> ApprovalQueue:
    """The requests the approver may decide now, with their enrolment and lock-out."""
    return ApprovalQueue(pending_for(session, approver), operator_views.state(session, approver))

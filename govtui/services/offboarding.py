"""Offboarding a contractor: every live grant ends, everywhere, in one transaction with the
directory removals and the account's disabling queued in the outbox. No code is needed:
removing access never waits for one."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError
from govtui.models import Contractor, Grant, Operator
from govtui.services import audit, contractors, grant_lifecycle, operators, outbox, validation
from govtui.vocabulary import LIVE_STATES, ContractorStatus, GrantState, Role


@dataclass(frozen=True)
class OffboardResult:
    external_id: str
    ended: int  # grants revoked (active, suspended or requested)
    directory_ops: int


def offboard(session: Session, actor: Operator, *, external_id: str, reason: str) -> OffboardResult:
    """End every live grant of the contractor, mark them offboarded so nothing new can be
    requested, and queue the group removals and the account's disabling."""
    operators.require_role(session, actor, Role.ADMIN)
    reason = validation.reason(reason, "offboarding")
    found = contractors.find(session, external_id)
    person = session.exec(
        select(Contractor)
        .where(Contractor.id == found.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if person.status == ContractorStatus.OFFBOARDED:
        raise ConflictError(f"contractor {external_id!r} is offboarded already")
    live = list(
        session.execute(
            sa.select(col(Grant.id))
            .where(
                col(Grant.contractor_id) == ident(person),
                col(Grant.state).in_(LIVE_STATES),
            )
            .order_by(col(Grant.id))
            .with_for_update()
        )
    )
    now = clock.now()
    ended = grant_lifecycle.end(
        session,
        [gid for (gid,) in live],
        to=GrantState.REVOKED,
        ended_by=ident(actor),
        reason=f"offboarded: {reason}",
        now=now,
    )
    ids, ops = ended.ids, ended.directory_ops
    ops += outbox.enqueue_disable(session, person)
    person.status, person.updated_at = ContractorStatus.OFFBOARDED.value, now
    session.add(person)
    audit.append(
        session,
        actor=actor.name,
        action="contractor.offboard",
        obj=f"contractor:{person.external_id}",
        details={"reason": reason, "directory_ops": ops, **audit.id_summary(ids)},
    )
    return OffboardResult(person.external_id, len(ids), ops)

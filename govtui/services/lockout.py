"""Lifting a TOTP lock-out, and break-glass reset of an enrolment.

A lock-out stops guessing, but five bad codes from anyone lock the real operator out too.
So another person lifts it with their own code: an admin, or an approver who approves for a
client the locked operator approves for (they can vouch for the work that is blocked). An
operator who lost their authenticator altogether is reset by two admins' codes, and enrols
again from scratch once two admins agreed: one asks, another confirms in their own session
(services/privilege.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from govtui import clock, db
from govtui.db import ident
from govtui.errors import ConflictError, PolicyError
from govtui.models import Operator, OperatorClient
from govtui.security import secrets
from govtui.services import audit, operators, second_factor
from govtui.vocabulary import Role


@dataclass(frozen=True)
class LockedOperator:
    """An operator whose codes are refused until `locked_until`."""

    name: str
    locked_until: datetime


def locked_operators(session: Session) -> list[LockedOperator]:
    """Every operator locked out now, by name."""
    now = clock.now()
    rows = session.exec(
        select(Operator)
        .where(col(Operator.totp_locked_until).is_not(None))
        .order_by(col(Operator.name))
    ).all()
    return [
        LockedOperator(op.name, op.totp_locked_until)
        for op in rows
        if op.totp_locked_until is not None and op.totp_locked_until > now
    ]


def _shared_clients(session: Session, a: Operator, b: Operator) -> set[int]:
    def clients(op: Operator) -> set[int]:
        query = select(OperatorClient.client_id).where(OperatorClient.operator_id == ident(op))
        return set(session.exec(query).all())

    return clients(a) & clients(b)


def may_unlock(session: Session, actor: Operator, target: Operator) -> bool:
    """Whether `actor` may lift `target`'s lock-out: another person who is an admin, or an
    approver of a client `target` approves for."""
    if actor.id == target.id:
        return False
    roles = operators.roles_of(session, actor)
    if Role.ADMIN in roles:
        return True
    return Role.APPROVER in roles and bool(_shared_clients(session, actor, target))


def unlock(session: Session, actor: Operator, *, name: str, code: str) -> None:
    """Lift `name`'s lock-out, confirmed by the actor's own code (audited `totp.unlock`)."""
    target = operators.find(session, name)
    if actor.id == target.id:
        raise PolicyError(
            f"{name!r} cannot lift their own lock-out: ask an admin or a fellow approver"
        )
    if not may_unlock(session, actor, target):
        raise PolicyError(
            f"only an admin or an approver of a client {name!r} approves for can lift "
            f"{name!r}'s lock-out"
        )
    second_factor.verify(session, actor, code, purpose=f"unlock of {name}")
    second_factor.hold(session, target)
    if second_factor.remaining_lockout(target) is None:
        raise ConflictError(f"{name!r} is not locked out")
    target.totp_locked_until = None
    target.totp_failures = 0
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="totp.unlock",
        obj=f"operator:{name}",
        details={"operator": name},
    )


def clear_enrolment(
    session: Session, actor: Operator, target: Operator, *, requested_by: Operator
) -> None:
    """Break-glass, once a second admin confirmed it (services/privilege.py): clear `target`'s
    enrolment and lock-out so they can enrol again (audited `totp.reset`). The old secrets
    leave the keyring after the commit."""
    second_factor.hold(session, target)
    for key in (
        second_factor.secret_key(session, target),
        second_factor.secret_key(session, target, pending=True),
    ):
        if key is not None:
            _delete_after_commit(session, key)
    target.totp_enrolled_at = None
    target.totp_pending_at = None
    target.totp_secret_ref = None
    target.totp_pending_ref = None
    target.totp_last_step = None
    target.totp_failures = 0
    target.totp_locked_until = None
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="totp.reset",
        obj=f"operator:{target.name}",
        details={"requested_by": requested_by.name, "confirmed_by": actor.name},
    )


def _delete_after_commit(session: Session, key: str) -> None:
    db.after_commit(session, lambda: secrets.delete(key))

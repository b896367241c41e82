"""What the approvals, enrolment and reviews screens say about the acting operator, and what the
dashboard says about every operator (shared logins and lock-outs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from govtui import clock
from govtui.models import Operator
from govtui.services import identity, operators, second_factor
from govtui.vocabulary import Role


@dataclass(frozen=True)
class OperatorState:
    name: str
    enrolled_at: datetime | None
    pending: bool  # an enrolment waits for its first code
    locked_for: timedelta | None  # how much longer approvals are locked, or None
    login: str = ""  # the OS login bound to the operator
    db_role: str | None = None  # PostgreSQL: the role that must connect, if any
    shared_login: bool = False  # the login acts as several operators: no four eyes (red)
    disabled: bool = False
    # The clients whose access they review, when they hold the reviewer role (the reviews
    # screen offers their campaigns); empty otherwise, since a link alone gives nothing.
    reviews: tuple[str, ...] = ()


def state(session: Session, actor: Operator) -> OperatorState:
    """The operator's enrolment, lock-out and reviewed clients, as read with them."""
    reviewer = Role.REVIEWER in operators.roles_of(session, actor)
    return OperatorState(
        name=actor.name,
        enrolled_at=actor.totp_enrolled_at,
        pending=actor.totp_pending_at is not None,
        locked_for=second_factor.remaining_lockout(actor),
        login=identity.login_of(actor),
        db_role=actor.db_role,
        shared_login=actor.shared_login,
        disabled=actor.disabled_at is not None,
        reviews=operators.reviewed_clients(session, actor) if reviewer else (),
    )


def lockout(session: Session, actor: Operator) -> timedelta | None:
    """How much longer the operator's approvals are locked, or None."""
    return state(session, actor).locked_for


@dataclass(frozen=True)
class OperatorFlags:
    """An operator as the dashboard lists them: what weakens or stalls four eyes."""

    name: str
    login: str | None
    shared_login: bool  # their login may act as other operators too: no separation
    locked_until: datetime | None  # their codes are refused until then; None: not locked now


def roster(session: Session) -> list[OperatorFlags]:
    """Every operator not removed, by name, with the shared-login flag and a lock-out."""
    now = clock.now()
    rows = session.exec(
        select(Operator).where(col(Operator.disabled_at).is_(None)).order_by(col(Operator.name))
    ).all()
    return [
        OperatorFlags(
            name=op.name,
            login=op.login,
            shared_login=op.shared_login,
            locked_until=(
                op.totp_locked_until
                if op.totp_locked_until is not None and op.totp_locked_until > now
                else None
            ),
        )
        for op in rows
    ]

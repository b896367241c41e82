"""What the approvals and enrolment screens say about the acting operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from govtui.models import Operator
from govtui.services import second_factor


@dataclass(frozen=True)
class OperatorState:
    name: str
    enrolled_at: datetime | None
    pending: bool  # an enrolment waits for its first code
    locked_for: timedelta | None  # how much longer approvals are locked, or None


def state(_session: Session, actor: Operator) -> OperatorState:
    """The operator's enrolment and lock-out, as read with them."""
    return OperatorState(
        name=actor.name,
        enrolled_at=actor.totp_enrolled_at,
        pending=actor.totp_pending_at is not None,
        locked_for=second_factor.remaining_lockout(actor),
    )


def lockout(session: Session, actor: Operator) -> timedelta | None:
    """How much longer the operator's approvals are locked, or None."""
    return state(session, actor).locked_for

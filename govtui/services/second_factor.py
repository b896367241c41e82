"""Checking an operator's TOTP code against the database's replay and lock-out state.

A failed code must be counted even though the action it was meant for fails, and before anyone
can try another code as the same operator. Inside a Workspace operation (which locks the
actor's row first), the operation's writes are undone and the count committed under that lock;
elsewhere the count is recorded in a short transaction of its own once the caller's has ended.
Either way it does not matter what the caller wrote before verifying: that is rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col

from govtui import clock, db
from govtui.db import ident
from govtui.errors import ConfigurationError, PolicyError
from govtui.models import Operator
from govtui.security import secrets, totp
from govtui.services import audit

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class Failure:
    """One rejected code still to be counted: whose, for what, why, and when."""

    operator_id: int
    operator_name: str
    purpose: str
    reason: str
    at: datetime


class CodeRejected(PolicyError):
    """A wrong, reused or locked-out code. A counted failure (`failure`) is recorded once the
    caller's transaction has ended; the message then states the count as recorded."""

    def __init__(self, message: str, failure: Failure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


def totp_entry(session: Session, ref: str) -> str:
    """The keyring entry of the TOTP secret with random reference `ref` in this database."""
    return secrets.entry_key("totp", ref, secrets.database_id(session))


def secret_key(session: Session, operator: Operator | str, *, pending: bool = False) -> str | None:
    """The keyring entry of an operator's current (or pending) TOTP secret, None if they have
    none. The row names the entry by a random reference, so the URL never matters."""
    row: Operator = (
        session.execute(sa.select(Operator).where(col(Operator.name) == operator)).scalar_one()
        if isinstance(operator, str)
        else operator
    )
    ref = row.totp_pending_ref if pending else row.totp_secret_ref
    return None if ref is None else totp_entry(session, ref)


def remaining_lockout(operator: Operator, now: datetime | None = None) -> timedelta | None:
    """How long the operator's approvals stay locked, or None."""
    now = now or clock.now()
    if operator.totp_locked_until is not None and operator.totp_locked_until > now:
        return operator.totp_locked_until - now
    return None


def _minutes(delta: timedelta) -> str:
    minutes = max(1, int(-(-delta.total_seconds() // 60)))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _lock_row(session: Session, operator: Operator) -> Operator:
    # FOR UPDATE: two processes checking the same operator's codes queue up (PostgreSQL);
    # SQLite's BEGIN IMMEDIATE already serialises writers.
    query = sa.select(Operator).where(col(Operator.id) == ident(operator)).with_for_update()
    fresh: Operator = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    return fresh


def hold(session: Session, operator: Operator) -> int:
    """Lock the operator's row for the rest of the transaction; return its id."""
    return ident(_lock_row(session, operator))


def require_enrolled(operator: Operator) -> None:
    """Refuse an operator with no authenticator enrolled: no code of theirs can be right (so
    a front end asks for none; verify refuses too)."""
    if operator.totp_enrolled_at is None:
        raise PolicyError(
            f"operator {operator.name!r} has no TOTP enrolment: run `govtui operator enroll {operator.name}`"
        )


def verify(session: Session, operator: Operator, code: str, *, purpose: str) -> int:
    """Accept `code` for `operator` once, or count the failure and raise CodeRejected.

    Returns the accepted time step. A rejected code is counted whatever the caller wrote
    before; the session must come from db.write_session."""
    operator = _lock_row(session, operator)
    now = clock.now()
    require_enrolled(operator)
    locked = remaining_lockout(operator, now)
    if locked is not None:
        raise CodeRejected(
            f"approvals by {operator.name!r} are locked for {_minutes(locked)} after {MAX_FAILURES} wrong codes"
        )
    key = secret_key(session, operator)
    secret = secrets.load(key) if key is not None else None
    if secret is None:
        raise ConfigurationError(
            f"no TOTP secret for {operator.name!r} in this machine's keyring: enrol here with "
            f"`govtui operator enroll {operator.name}`"
        )
    step = totp.matching_step(secret, code, now)
    if step is not None:
        # Compare-and-set: only a step newer than the last accepted one moves the mark, so the
        # same code (or an older one) is refused even by a second process racing this one.
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            sa.update(Operator)
            .where(col(Operator.id) == ident(operator))
            .where(
                sa.or_(col(Operator.totp_last_step).is_(None), col(Operator.totp_last_step) < step)
            )
            .values(totp_last_step=step, totp_failures=0, totp_locked_until=None)
        )
        if result.rowcount == 1:
            session.expire(operator)
            return step
        # The right code, replayed (or racing its own first use): whoever sent it knows the
        # secret, so it is no guess to count. Counting it let one person's double submit (or
        # anyone replaying a code seen once) lock the real operator out.
        raise CodeRejected(
            f"that code for {operator.name!r} was already used: {purpose} refused; "
            "wait for the next code"
        )
    _fail(session, operator, now, purpose, "a wrong code")


def reject(session: Session, operator: Operator, *, purpose: str, reason: str) -> NoReturn:
    """Count one failed code for `operator` towards the lock-out (as verify counts a wrong
    code) and raise CodeRejected; for codes checked outside verify (enrolment)."""
    _fail(session, _lock_row(session, operator), clock.now(), purpose, reason)


def _fail(session: Session, operator: Operator, now: datetime, purpose: str, what: str) -> NoReturn:
    failure = Failure(ident(operator), operator.name, purpose, what, now)
    if db.operation_holder(session) == failure.operator_id:
        # The operator's row has been locked since before the operation began (Workspace):
        # undo the operation and commit the count under that same lock, so no other attempt
        # can be checked against the old count (nor learn the answer before it is counted).
        rejected = CodeRejected("")

        def count(locked: Session) -> None:
            rejected.args = (_count(locked, failure),)

        db.keep_only(session, count)
        raise rejected
    # Without that lock (a caller outside the Workspace), count it in a transaction of its
    # own once the caller's has ended.
    rejected = CodeRejected(f"{what} for {operator.name!r}: {purpose} refused", failure)
    engine = session.get_bind().engine

    def record() -> None:
        rejected.args = (record_failure(engine, failure),)

    db.on_rollback(session, record)
    db.after_commit(session, record)  # a caller that catches the error and commits
    raise rejected


def record_failure(engine: Engine, failure: Failure) -> str:
    """Count one rejected code, with its audit event, in a write transaction of its own;
    return the message that says what the count now is."""
    with db.write_session(engine) as session:
        return _count(session, failure)


def _count(session: Session, failure: Failure) -> str:
    operator = session.get(Operator, failure.operator_id)
    if operator is None:
        raise RuntimeError(f"operator {failure.operator_name!r} vanished")
    operator = _lock_row(session, operator)
    message = f"{failure.reason} for {operator.name!r}: {failure.purpose} refused"
    locked = remaining_lockout(operator, failure.at)
    if locked is not None:
        # Another process recorded the failure that locked the operator out meanwhile:
        # this code was refused too late to count, as verify refuses a locked operator's.
        return (
            f"{message}; approvals locked for {_minutes(locked)} after {MAX_FAILURES} wrong codes"
        )
    failures = operator.totp_failures + 1
    details: dict[str, object] = {
        "purpose": failure.purpose,
        "failures": failures,
        "reason": failure.reason,
    }
    if failures >= MAX_FAILURES:
        operator.totp_locked_until = failure.at + LOCKOUT
        operator.totp_failures = 0
        details["locked_until"] = audit.format_time(operator.totp_locked_until)
        message += f"; approvals locked for {_minutes(LOCKOUT)} after {MAX_FAILURES} failures"
        action = "totp.lockout"
    else:
        operator.totp_failures = failures
        message += f" ({MAX_FAILURES - failures} tries left before a {_minutes(LOCKOUT)} lock-out)"
        action = "totp.failure"
    session.add(operator)
    audit.append(
        session,
        actor=operator.name,
        action=action,
        obj=f"operator:{operator.name}",
        details=details,
    )
    return message

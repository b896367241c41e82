"""TOTP enrolment: a fresh secret into the OS keyring, confirmed by one correct code.

The secret is never written to the database; the database records only that the operator is
enrolled (or has an enrolment pending) and the replay and lock-out state. Keyring writes run
after the commit, so a rolled-back enrolment leaves the keyring as it was.
"""

from __future__ import annotations

from sqlmodel import Session

from govtui import clock, db
from govtui.errors import InputError, PolicyError
from govtui.models import Operator
from govtui.security import secrets, totp
from govtui.services import audit, operators, second_factor


def start(
    session: Session,
    actor: Operator,
    *,
    name: str,
    current_code: str | None = None,
    admin_code: str | None = None,
) -> str:
    """Begin (re-)enrolling `name`; return the otpauth URI to show once as a QR code.

    A first enrolment is done by the operator or an admin. Re-enrolling needs the operator's
    current code, or an admin (another person) acting with the admin's own code."""
    secrets.require_safe_backend()
    target = operators.find(session, name)
    is_admin = "admin" in operators.roles_of(session, actor)
    if target.totp_enrolled_at is None:
        if actor.id != target.id and not is_admin:
            raise PolicyError(f"only {name!r} or an admin can enrol {name!r}")
    elif current_code is not None and actor.id == target.id:
        second_factor.verify(session, target, current_code, purpose="re-enrolment")
    elif admin_code is not None and is_admin and actor.id != target.id:
        second_factor.verify(session, actor, admin_code, purpose=f"re-enrolment of {name}")
    else:
        raise PolicyError(
            f"{name!r} is enrolled already: re-enrolling needs their current code "
            "(--current-code, acting as them) or an admin's approval (--admin-code, acting as the admin)"
        )
    secret = totp.new_secret()
    pending_key = second_factor.secret_key(session, name, pending=True)
    db.after_commit(session, lambda: secrets.store(pending_key, secret))
    target.totp_pending_at = clock.now()
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="totp.enrol_start",
        obj=f"operator:{name}",
        details={"re_enrolment": target.totp_enrolled_at is not None},
    )
    return totp.provisioning_uri(secret, name)


def confirm(session: Session, actor: Operator, *, name: str, code: str) -> None:
    """Finish a pending enrolment with one correct code from the new secret."""
    target = operators.find(session, name)
    if actor.id != target.id and "admin" not in operators.roles_of(session, actor):
        raise PolicyError(f"only {name!r} or an admin can confirm {name!r}'s enrolment")
    pending_key = second_factor.secret_key(session, name, pending=True)
    secret = secrets.load(pending_key) if target.totp_pending_at is not None else None
    if secret is None:
        raise InputError(
            f"no enrolment is pending for {name!r}: start one with `govtui operator enroll {name}`"
        )
    step = totp.matching_step(secret, code, clock.now())
    if step is None:
        raise InputError(
            f"that code does not match the new secret; the enrolment of {name!r} is still pending"
        )
    confirmed_key = second_factor.secret_key(session, name)

    def keep_confirmed() -> None:
        secrets.store(confirmed_key, secret)
        secrets.delete(pending_key)  # only once the confirmed secret is safely stored

    db.after_commit(session, keep_confirmed)
    target.totp_enrolled_at = clock.now()
    target.totp_pending_at = None
    target.totp_last_step = step
    target.totp_failures = 0
    target.totp_locked_until = None
    session.add(target)
    audit.append(session, actor=actor.name, action="totp.enrolled", obj=f"operator:{name}")

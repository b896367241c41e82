"""TOTP enrolment: a fresh secret into the OS keyring, confirmed by one correct code.

The secret is never written to the database; the database records only that the operator is
enrolled (or has an enrolment pending), the random names of the keyring entries that hold the
current and the pending secret, and the replay and lock-out state. A new secret goes into a
new entry before the commit that points the row at it (and out again if that commit fails);
an entry the row no longer points at is deleted after the commit. So neither a keyring nor a
commit failure leaves an operator pointing at a secret that is not there.
"""

from __future__ import annotations

from sqlmodel import Session

from govtui import clock, db
from govtui.errors import InputError, PolicyError
from govtui.models import Operator
from govtui.security import secrets, totp
from govtui.services import audit, operators, second_factor
from govtui.vocabulary import Role


def is_bootstrap(session: Session, actor: Operator, target: Operator) -> bool:
    """Whether this is the bootstrap admin's own first enrolment: the only operator, an
    admin, enrolling themself. Nobody else can vouch for them, so no code is asked."""
    return (
        actor.id == target.id
        and target.totp_enrolled_at is None
        and operators.count(session) == 1
        and Role.ADMIN in operators.roles_of(session, actor)
    )


def start(
    session: Session,
    actor: Operator,
    *,
    name: str,
    current_code: str | None = None,
    admin_code: str | None = None,
) -> str:
    """Begin (re-)enrolling `name`; return the otpauth URI to show once as a QR code.

    A first enrolment is started by an admin acting with their own code (`admin_code`), except
    the bootstrap admin's own. Re-enrolling needs the operator's current code, or an admin
    (another person) acting with the admin's own code."""
    secrets.require_safe_backend()
    target = operators.find(session, name)
    is_admin = Role.ADMIN in operators.roles_of(session, actor)
    if target.totp_enrolled_at is None:
        if is_bootstrap(session, actor, target):
            pass
        elif not is_admin or actor.id == target.id:
            raise PolicyError(
                f"a first enrolment of {name!r} is started by an admin acting with their own "
                f"code: `govtui --as ADMIN operator enroll {name} --totp CODE`"
            )
        elif admin_code is None:
            raise PolicyError(
                f"enrolling {name!r} needs your own code as the acting admin (--totp CODE)"
            )
        else:
            second_factor.verify(session, actor, admin_code, purpose=f"enrolment of {name}")
    elif current_code is not None and actor.id == target.id:
        second_factor.verify(session, target, current_code, purpose="re-enrolment")
    elif admin_code is not None and is_admin and actor.id != target.id:
        second_factor.verify(session, actor, admin_code, purpose=f"re-enrolment of {name}")
    else:
        raise PolicyError(
            f"{name!r} is enrolled already: re-enrolling needs their current code "
            "(--current-code, acting as them) or an admin's approval (--totp, acting as the admin)"
        )
    secret = totp.new_secret()
    ref = secrets.new_ref()
    key = second_factor.totp_entry(session, ref)
    replaced = second_factor.secret_key(session, target, pending=True)
    # Into the keyring first, under a name nothing points at yet; out again if the commit
    # that would point at it fails.
    secrets.store(key, secret)
    db.on_rollback(session, lambda: secrets.delete(key))
    if replaced is not None:
        db.after_commit(session, lambda: secrets.delete(replaced))
    target.totp_pending_ref = ref
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
    """Finish a pending enrolment with one correct code from the new secret. A wrong code
    counts towards the operator's lock-out, as a wrong code for an approval does."""
    target = operators.find(session, name)
    if actor.id != target.id and Role.ADMIN not in operators.roles_of(session, actor):
        raise PolicyError(f"only {name!r} or an admin can confirm {name!r}'s enrolment")
    second_factor.hold(session, target)
    locked = second_factor.remaining_lockout(target)
    if locked is not None:
        raise second_factor.CodeRejected(
            f"{name!r} is locked out after {second_factor.MAX_FAILURES} wrong codes: "
            "the enrolment cannot be confirmed now (an admin or a fellow approver can "
            f"`govtui operator unlock {name}`)"
        )
    pending_key = second_factor.secret_key(session, target, pending=True)
    secret = secrets.load(pending_key) if pending_key and target.totp_pending_at else None
    if secret is None:
        raise InputError(
            f"no enrolment is pending for {name!r}: start one with `govtui operator enroll {name}`"
        )
    step = totp.matching_step(secret, code, clock.now())
    if step is None:
        second_factor.reject(
            session,
            target,
            purpose=f"enrolment of {name} (still pending)",
            reason="a code that does not match the new secret",
        )
    old_key = second_factor.secret_key(session, target)
    if old_key is not None:
        # Only once the row points at the new secret: a lost commit keeps the old one.
        db.after_commit(session, lambda: secrets.delete(old_key))
    target.totp_secret_ref = target.totp_pending_ref
    target.totp_pending_ref = None
    target.totp_enrolled_at = clock.now()
    target.totp_pending_at = None
    target.totp_last_step = step
    target.totp_failures = 0
    target.totp_locked_until = None
    session.add(target)
    audit.append(session, actor=actor.name, action="totp.enrolled", obj=f"operator:{name}")

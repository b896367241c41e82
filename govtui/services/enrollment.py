"""TOTP enrolment: a fresh secret into the OS keyring, confirmed by one correct code.

The secret is never written to the database; the database records only that the operator is
enrolled (or has an enrolment pending), the random names of the keyring entries that hold the
current and the pending secret, and the replay and lock-out state. A new secret goes into a
new entry before the commit that points the row at it (and out again if that commit fails);
an entry the row no longer points at is deleted after the commit. So neither a keyring nor a
commit failure leaves an operator pointing at a secret that is not there.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from govtui import clock, db
from govtui.errors import InputError, PolicyError
from govtui.models import Operator
from govtui.security import secrets, totp
from govtui.services import act_signatures, audit, operators, second_factor
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


# How long an admin's allowance to enrol stays usable.
ALLOWANCE = timedelta(hours=24)


def allow(session: Session, actor: Operator, *, name: str, code: str) -> None:
    """An admin (another person) allows `name` to enrol, or re-enrol, themself, with the
    admin's own code checked here, in the admin's own session. The secret is made later, by
    `name` under their own login, in their own keyring: the admin never sees it."""
    target = operators.find(session, name)
    if actor.id == target.id:
        raise PolicyError(f"{name!r} cannot allow their own enrolment: ask another admin")
    operators.require_role(session, actor, Role.ADMIN)
    if target.disabled_at is not None:
        raise PolicyError(f"operator {name!r} was removed")
    second_factor.verify(session, actor, code, purpose=f"allowing the enrolment of {name}")
    target.enrol_allowed_by = db.ident(actor)
    target.enrol_allowed_at = clock.now()
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="totp.enrol_allow",
        obj=f"operator:{name}",
        details={"re_enrolment": target.totp_enrolled_at is not None},
    )


def is_allowed(target: Operator) -> bool:
    """Whether an admin's allowance to enrol is there and not yet stale."""
    at = target.enrol_allowed_at
    return target.enrol_allowed_by is not None and at is not None and clock.now() - at < ALLOWANCE


def start(
    session: Session,
    actor: Operator,
    *,
    name: str,
    current_code: str | None = None,
) -> str:
    """Begin (re-)enrolling `name`; return the otpauth URI to show once as a QR code.

    Only `name` themself starts it, in their own session, so the secret goes into the keyring
    of their own login and is shown only to them. A first enrolment needs an admin's allowance
    (`allow`), except the bootstrap admin's own; a re-enrolment needs the operator's current
    code or an admin's allowance."""
    secrets.require_safe_backend()
    target = operators.find(session, name)
    if actor.id != target.id:
        raise PolicyError(
            f"only {name!r} can enrol themself, under their own login (the secret goes into "
            f"their keyring); an admin allows it with `govtui operator enroll {name} --allow`"
        )
    if target.totp_enrolled_at is None:
        if not (is_bootstrap(session, actor, target) or is_allowed(target)):
            raise PolicyError(
                f"a first enrolment of {name!r} needs an admin's allowance first: "
                f"`govtui --as ADMIN operator enroll {name} --allow --totp CODE`"
            )
    elif current_code is not None:
        second_factor.verify(session, target, current_code, purpose="re-enrolment")
    elif not is_allowed(target):
        raise PolicyError(
            f"{name!r} is enrolled already: re-enrolling needs their current code "
            "(--current-code) or an admin's allowance (`operator enroll NAME --allow`)"
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
    if actor.id != target.id:
        raise PolicyError(f"only {name!r} can confirm their own enrolment")
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
    target.enrol_allowed_by = None  # used up
    target.enrol_allowed_at = None
    session.add(target)
    audit.append(session, actor=actor.name, action="totp.enrolled", obj=f"operator:{name}")
    # A signing key with each enrolment (schema version 6), made in the operator's own
    # session so its private half goes into their own keyring.
    act_signatures.create_key(session, target)

"""Privilege changes: who may add operators, roles and approvable clients, and with whose codes.

Adding privilege is an access-adding action: the acting admin's TOTP code, and once two
enabled, enrolled admins exist, a second admin's code for the approver or admin role or an
approvable client, so that one admin alone cannot make the approvers a restricted scope needs.
Removing privilege needs no code. The codes are checked last, once the change is known to be
valid: bad input never costs a code, and a rejected code is counted (second_factor) and
undoes the change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import Client, Operator, OperatorClient, OperatorRole
from govtui.services import audit, identity, operators, second_factor, validation
from govtui.vocabulary import Role

# Roles that let someone add access (approve grants) or hand out privilege.
CONFIRMED_ROLES = frozenset({Role.APPROVER, Role.ADMIN})


@dataclass(frozen=True)
class Codes:
    """The acting admin's code, and a second admin's name and code when one is needed."""

    code: str
    second_admin: str | None = None
    second_code: str | None = None


def enrolled_admins(session: Session) -> list[Operator]:
    """The enabled admins with a TOTP enrolment (who can confirm a privilege change)."""
    return list(
        session.exec(
            select(Operator)
            .join(OperatorRole, col(OperatorRole.operator_id) == col(Operator.id))
            .where(OperatorRole.role == Role.ADMIN.value)
            .where(col(Operator.disabled_at).is_(None))
            .where(col(Operator.totp_enrolled_at).is_not(None))
            .order_by(Operator.name)
        ).all()
    )


def enabled_admins(session: Session) -> list[Operator]:
    """The admins not removed, by name."""
    return list(
        session.exec(
            select(Operator)
            .join(OperatorRole, col(OperatorRole.operator_id) == col(Operator.id))
            .where(OperatorRole.role == Role.ADMIN.value)
            .where(col(Operator.disabled_at).is_(None))
            .order_by(Operator.name)
        ).all()
    )


def needs_second_admin(session: Session) -> bool:
    """Whether a second admin must confirm approver/admin privilege (two can confirm)."""
    return len(enrolled_admins(session)) >= 2


def _authorise(
    session: Session, actor: Operator, codes: Codes, *, what: str, confirmed: bool
) -> Operator | None:
    """Check who may make the change (the actor an admin; for `confirmed` privilege once two
    admins exist, a second, different admin); the confirming admin, or None. The codes are
    checked afterwards (_verify)."""
    operators.require_role(session, actor, Role.ADMIN)
    if not (confirmed and needs_second_admin(session)):
        if codes.second_admin is not None:
            raise InputError(f"{what} needs no second admin (fewer than two enrolled admins)")
        return None
    if codes.second_admin is None or codes.second_code is None:
        raise PolicyError(
            f"{what} needs a second admin's code too: --second-admin NAME --second-totp CODE"
        )
    second = operators.find(session, codes.second_admin)
    if second.id == actor.id:
        raise PolicyError(f"{what}: the second admin must be someone other than {actor.name!r}")
    if Role.ADMIN not in operators.roles_of(session, second):
        raise PolicyError(f"{what}: {second.name!r} is not an enabled admin")
    return second


def _verify(
    session: Session, actor: Operator, second: Operator | None, codes: Codes, *, what: str
) -> None:
    second_factor.verify(session, actor, codes.code, purpose=what)
    if second is not None:
        second_factor.verify(
            session, second, codes.second_code or "", purpose=f"{what} (confirmation)"
        )


def add_operator(
    session: Session,
    actor: Operator,
    *,
    name: str,
    roles: Iterable[str],
    approves: Iterable[str] = (),
    login: str | None = None,
    db_role: str | None = None,
    shared_login: bool = False,
    codes: Codes,
) -> Operator:
    """Add an operator as an admin, with the admin's code (and a second admin's for an
    approver or admin, or approvable clients)."""
    role_set = {validation.choice(role, Role, "role") for role in roles}
    approve_list = list(approves)
    confirmed = bool(role_set & CONFIRMED_ROLES) or bool(approve_list)
    what = f"adding operator {name}"
    second = _authorise(session, actor, codes, what=what, confirmed=confirmed)
    added = operators.add(
        session,
        actor,
        name=name,
        roles=role_set,
        approves=approve_list,
        login=login,
        db_role=db_role,
        shared_login=shared_login,
        confirmed_by=_id(second),
    )
    _verify(session, actor, second, codes, what=what)
    return added


def add_role(session: Session, actor: Operator, *, name: str, role: str, codes: Codes) -> None:
    """Give an operator a role."""
    target = _enabled(session, name)
    wanted = validation.choice(role, Role, "role")
    if session.get(OperatorRole, (ident(target), wanted.value)) is not None:
        raise ConflictError(f"operator {name!r} has the {wanted} role already")
    what = f"the {wanted} role for {name}"
    second = _authorise(session, actor, codes, what=what, confirmed=wanted in CONFIRMED_ROLES)
    session.add(
        OperatorRole(
            operator_id=ident(target),
            role=wanted.value,
            granted_by=ident(actor),
            confirmed_by=_id(second),
            granted_at=clock.now(),
        )
    )
    audit.append(
        session,
        actor=actor.name,
        action="operator.role_add",
        obj=f"operator:{name}",
        details={"role": wanted.value, "confirmed_by": _name(second)},
    )
    _verify(session, actor, second, codes, what=what)


def remove_role(session: Session, actor: Operator, *, name: str, role: str) -> None:
    """Take a role away (no code: removing privilege never waits)."""
    operators.require_role(session, actor, Role.ADMIN)
    target = operators.find(session, name)
    wanted = validation.choice(role, Role, "role")
    row = session.get(OperatorRole, (ident(target), wanted.value))
    if row is None:
        raise NotFoundError(f"operator {name!r} has no {wanted} role")
    if wanted == Role.ADMIN:
        _require_other_admin(session, target, f"removing the admin role from {name!r}")
    session.delete(row)
    audit.append(
        session,
        actor=actor.name,
        action="operator.role_remove",
        obj=f"operator:{name}",
        details={"role": wanted.value},
    )


def add_approves(
    session: Session, actor: Operator, *, name: str, client: str, codes: Codes
) -> None:
    """Let an approver approve for one more client."""
    target = _enabled(session, name)
    found = _client(session, client)
    if Role.APPROVER not in operators.roles_of(session, target):
        raise PolicyError(f"operator {name!r} lacks the approver role (add it first)")
    if session.get(OperatorClient, (ident(target), ident(found))) is not None:
        raise ConflictError(f"operator {name!r} approves for {client!r} already")
    what = f"approving for {client} by {name}"
    second = _authorise(session, actor, codes, what=what, confirmed=True)
    session.add(
        OperatorClient(
            operator_id=ident(target),
            client_id=ident(found),
            granted_by=ident(actor),
            confirmed_by=_id(second),
            granted_at=clock.now(),
        )
    )
    audit.append(
        session,
        actor=actor.name,
        action="operator.approves_add",
        obj=f"operator:{name}",
        details={"client": found.name, "confirmed_by": _name(second)},
    )
    _verify(session, actor, second, codes, what=what)


def remove_approves(session: Session, actor: Operator, *, name: str, client: str) -> None:
    """Stop an approver approving for a client (no code)."""
    operators.require_role(session, actor, Role.ADMIN)
    target = operators.find(session, name)
    found = _client(session, client)
    row = session.get(OperatorClient, (ident(target), ident(found)))
    if row is None:
        raise NotFoundError(f"operator {name!r} does not approve for {client!r}")
    session.delete(row)
    audit.append(
        session,
        actor=actor.name,
        action="operator.approves_remove",
        obj=f"operator:{name}",
        details={"client": found.name},
    )


def remove_operator(session: Session, actor: Operator, *, name: str, reason: str) -> None:
    """Disable an operator: they can no longer act; their row and history stay."""
    operators.require_role(session, actor, Role.ADMIN)
    reason = validation.reason(reason, "removal")
    target = _enabled(session, name)
    if Role.ADMIN in operators.roles_of(session, target):
        _require_other_admin(session, target, f"removing {name!r}")
    target.disabled_at = clock.now()
    target.disabled_by = ident(actor)
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="operator.remove",
        obj=f"operator:{name}",
        details={"reason": reason},
    )


def bind(
    session: Session,
    actor: Operator,
    *,
    name: str,
    login: str | None,
    db_role: str | None,
    shared_login: bool,
    codes: Codes,
) -> None:
    """Bind an operator to another principal (who may act as them): the admin's code, since
    it decides who holds that operator's privilege."""
    target = _enabled(session, name)
    new_login = validation.name(login, "login") if login else identity.login_of(target)
    new_role = validation.name(db_role, "database role") if db_role else target.db_role
    identity.check_binding(
        session,
        name=name,
        login=new_login,
        db_role=new_role,
        shared_login=shared_login,
        operator_id=target.id,
    )
    what = f"binding operator {name}"
    second = _authorise(session, actor, codes, what=what, confirmed=False)
    target.login, target.db_role, target.shared_login = new_login, new_role, shared_login
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="operator.bind",
        obj=f"operator:{name}",
        details={"login": new_login, "db_role": new_role, "shared_login": shared_login},
    )
    _verify(session, actor, second, codes, what=what)


def bind_first_admin(session: Session, *, by: str) -> str | None:
    """At the upgrade that introduced bindings: bind the first enabled admin to the current
    OS login unless an admin is bound to it already, so whoever upgrades can still act; the
    admin's name, or None when nothing changed."""
    me = identity.os_login()
    admins = enabled_admins(session)
    if not admins or any(identity.login_of(op) == me for op in admins):
        return None
    first = min(admins, key=ident)
    if identity.sharers(session, me, but=first.id):
        return None  # someone else holds this login: an admin binds by hand
    first.login = me
    session.add(first)
    audit.append(
        session,
        actor=by,
        action="operator.bind",
        obj=f"operator:{first.name}",
        details={"login": me, "db_role": first.db_role, "shared_login": first.shared_login},
    )
    return first.name


def provenance(session: Session, approver: Operator, client: Client) -> frozenset[int] | None:
    """The admins on whose say-so `approver` may approve for `client`: who granted (and who
    confirmed) their approver role and their link to the client. None when any of it was
    made before schema version 4 recorded provenance."""
    role = session.get(OperatorRole, (ident(approver), Role.APPROVER.value))
    link = session.get(OperatorClient, (ident(approver), ident(client)))
    if role is None or link is None or role.granted_by is None or link.granted_by is None:
        return None
    found = {role.granted_by, link.granted_by}
    found |= {by for by in (role.confirmed_by, link.confirmed_by) if by is not None}
    return frozenset(found)


def _id(operator: Operator | None) -> int | None:
    return None if operator is None else ident(operator)


def _name(operator: Operator | None) -> str | None:
    return None if operator is None else operator.name


def _enabled(session: Session, name: str) -> Operator:
    target = operators.find(session, name)
    if target.disabled_at is not None:
        raise PolicyError(f"operator {name!r} was removed")
    return target


def _client(session: Session, name: str) -> Client:
    found = session.exec(select(Client).where(Client.name == name)).first()
    if found is None:
        raise NotFoundError(f"unknown client {name!r}")
    return found


def _require_other_admin(session: Session, target: Operator, what: str) -> None:
    if not [op for op in enabled_admins(session) if op.id != target.id]:
        raise PolicyError(f"{what} refused: they are the last enabled admin")

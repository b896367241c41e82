"""Privilege changes: who may add operators, roles, approvable and reviewed clients, and with
whose codes.

Adding privilege is an access-adding action: the acting admin's TOTP code. Once two enabled,
enrolled admins exist, the approver or admin role, an approvable or reviewed client (a
review's keep keeps access alive; the reviewer role alone gives nothing), a break-glass reset
of an enrolment, and a removal that would leave fewer than two such admins are only
REQUESTED: a different admin confirms the change in their own session with their own code
(`confirm`), and only then is it applied. A code is thus only ever checked in the session of
the operator it belongs to, against the keyring of the login bound to them. Removing privilege
needs no code. A code is checked last, once the change is known to be valid: bad input never
costs a code, and a rejected code is counted (second_factor) and undoes the change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, NotFoundError, PolicyError
from govtui.models import (
    Client,
    Operator,
    OperatorClient,
    OperatorReviewClient,
    OperatorRole,
    PrivilegeChange,
)
from govtui.services import (
    act_signatures,
    audit,
    identity,
    lockout,
    operators,
    second_factor,
    validation,
)
from govtui.vocabulary import ChangeKind, ChangeState, Role

# Roles that let someone add access (approve grants) or hand out privilege.
CONFIRMED_ROLES = frozenset({Role.APPROVER, Role.ADMIN})
# How long a requested change waits for its confirmation.
PENDING_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class Link:
    """A per-client privilege: approving a client's grants, or reviewing its access."""

    name: str  # in the audit actions: operator.<name>_add / _remove
    table: type[OperatorClient] | type[OperatorReviewClient]
    role: Role  # held as well, or the link gives nothing
    kind: ChangeKind  # the pending change that adds it once two admins exist
    verb: str  # "approve for": what the linked operator does
    says: str  # "approves for"


APPROVES = Link(
    "approves",
    OperatorClient,
    Role.APPROVER,
    ChangeKind.APPROVES_ADD,
    "approve for",
    "approves for",
)
REVIEWS = Link(
    "reviews", OperatorReviewClient, Role.REVIEWER, ChangeKind.REVIEWS_ADD, "review", "reviews"
)
LINKS = {link.kind: link for link in (APPROVES, REVIEWS)}


@dataclass(frozen=True)
class Codes:
    """The acting operator's own code (checked in their own session)."""

    code: str


@dataclass(frozen=True)
class ChangeView:
    """A pending change, for `operator pending`."""

    id: int
    kind: str
    operator: str
    role: str | None
    client: str | None
    reason: str | None
    requested_by: str
    requested_at: datetime
    expires_at: datetime


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


def _lifts_rule(session: Session, actor: Operator, target: Operator) -> bool:
    """Whether taking `target`'s admin role (or `target`) away, by someone else, would leave
    fewer than two enrolled admins while the two-admin rule is in force."""
    admins = enrolled_admins(session)
    return (
        actor.id != target.id
        and len(admins) >= 2
        and any(op.id == target.id for op in admins)
        and len(admins) - 1 < 2
    )


# --- pending changes -------------------------------------------------------------------------


def _stale(change: PrivilegeChange, now: datetime) -> bool:
    return now - change.requested_at >= PENDING_FOR


def _expire(session: Session) -> None:
    """Mark the pending changes that waited too long as expired."""
    now = clock.now()
    for change in session.exec(
        select(PrivilegeChange).where(PrivilegeChange.state == ChangeState.PENDING.value)
    ).all():
        if _stale(change, now):
            change.state = ChangeState.EXPIRED.value
            change.decided_at = now
            session.add(change)


def _request(
    session: Session,
    actor: Operator,
    kind: ChangeKind,
    target: Operator,
    *,
    role: Role | None = None,
    client: Client | None = None,
    reason: str | None = None,
) -> int:
    """Record a change that waits for a second admin; its id."""
    _expire(session)
    same = session.exec(
        select(PrivilegeChange)
        .where(PrivilegeChange.state == ChangeState.PENDING.value)
        .where(PrivilegeChange.kind == kind.value)
        .where(PrivilegeChange.operator_id == ident(target))
        .where(PrivilegeChange.role == (role.value if role else None))
        .where(PrivilegeChange.client_id == (ident(client) if client else None))
    ).first()
    if same is not None:
        raise ConflictError(f"the same change is pending already as #{same.id}")
    change = PrivilegeChange(
        kind=kind.value,
        operator_id=ident(target),
        role=role.value if role else None,
        client_id=ident(client) if client else None,
        reason=reason,
        requested_by=ident(actor),
        requested_at=clock.now(),
    )
    session.add(change)
    session.flush()
    change_id = ident(change)
    audit.append(
        session,
        actor=actor.name,
        action="privilege.request",
        obj=f"operator:{target.name}",
        details={
            "change": change_id,
            "kind": kind.value,
            "role": change.role,
            "client": client.name if client else None,
            "reason": reason,
        },
    )
    return change_id


def pending(session: Session) -> list[ChangeView]:
    """The changes waiting for a second admin, oldest first."""
    now = clock.now()
    rows = session.exec(
        select(PrivilegeChange)
        .where(PrivilegeChange.state == ChangeState.PENDING.value)
        .order_by(col(PrivilegeChange.id))
    ).all()
    views = []
    for change in rows:
        if _stale(change, now):
            continue
        client = session.get(Client, change.client_id) if change.client_id else None
        views.append(
            ChangeView(
                id=ident(change),
                kind=change.kind,
                operator=operators.name_of(session, change.operator_id) or "?",
                role=change.role,
                client=client.name if client else None,
                reason=change.reason,
                requested_by=operators.name_of(session, change.requested_by) or "?",
                requested_at=change.requested_at,
                expires_at=change.requested_at + PENDING_FOR,
            )
        )
    return views


def _pending_change(session: Session, change_id: int) -> PrivilegeChange:
    change = session.get(PrivilegeChange, change_id)
    if change is None:
        raise NotFoundError(f"no privilege change #{change_id}")
    if change.state != ChangeState.PENDING.value:
        raise ConflictError(f"privilege change #{change_id} is {change.state}, not pending")
    if _stale(change, clock.now()):
        raise PolicyError(f"privilege change #{change_id} expired: request it again")
    return change


def cancel(session: Session, actor: Operator, *, change_id: int) -> None:
    """Withdraw or refuse a pending change: its requester or any other admin (no code)."""
    operators.require_role(session, actor, Role.ADMIN)
    change = _pending_change(session, change_id)
    change.state = ChangeState.CANCELLED.value
    change.decided_by = ident(actor)
    change.decided_at = clock.now()
    session.add(change)
    audit.append(
        session,
        actor=actor.name,
        action="privilege.cancel",
        obj=f"operator:{operators.name_of(session, change.operator_id)}",
        details={"change": change_id, "kind": change.kind},
    )


def confirm(session: Session, actor: Operator, *, change_id: int, codes: Codes) -> str:
    """A second admin, other than the requester, confirms a pending change with their own
    code, in their own session; the change is applied now. What was done, in words."""
    operators.require_role(session, actor, Role.ADMIN)
    change = _pending_change(session, change_id)
    if change.requested_by == actor.id:
        raise PolicyError(
            f"privilege change #{change_id} is confirmed by a different admin than its requester"
        )
    requester = session.get(Operator, change.requested_by)
    if (
        requester is None
        or requester.disabled_at is not None
        or Role.ADMIN not in (operators.roles_of(session, requester))
    ):
        raise PolicyError(f"the requester of change #{change_id} is no longer an admin")
    target = session.get(Operator, change.operator_id)
    assert target is not None  # a foreign key
    kind = ChangeKind(change.kind)
    if kind == ChangeKind.TOTP_RESET and target.id == actor.id:
        raise PolicyError(f"{target.name!r} cannot vouch for the reset of their own enrolment")
    done = _apply(session, actor, change, kind, target, requester)
    change.state = ChangeState.CONFIRMED.value
    change.decided_by = ident(actor)
    change.decided_at = clock.now()
    session.add(change)
    audit.append(
        session,
        actor=actor.name,
        action="privilege.confirm",
        obj=f"operator:{target.name}",
        details={"change": change_id, "kind": kind.value, "requested_by": requester.name},
    )
    second_factor.verify(session, actor, codes.code, purpose=f"confirming change #{change_id}")
    return done


def _apply(
    session: Session,
    actor: Operator,
    change: PrivilegeChange,
    kind: ChangeKind,
    target: Operator,
    requester: Operator,
) -> str:
    if target.disabled_at is not None:
        raise PolicyError(f"operator {target.name!r} was removed")
    name = target.name
    if kind == ChangeKind.ROLE_ADD:
        role = Role(change.role or "")
        if session.get(OperatorRole, (ident(target), role.value)) is not None:
            raise ConflictError(f"operator {name!r} has the {role} role already")
        _grant(session, actor, target, role, None, granted_by=requester, confirmed_by=actor)
        return f"operator {name} has the {role} role"
    if kind in LINKS:
        link = LINKS[kind]
        client = session.get(Client, change.client_id)
        assert client is not None  # a foreign key
        _check_link(session, link, target, client)
        _grant(session, actor, target, link, client, granted_by=requester, confirmed_by=actor)
        return f"operator {name} {link.says} {client.name}"
    if kind == ChangeKind.ROLE_REMOVE:
        row = session.get(OperatorRole, (ident(target), Role.ADMIN.value))
        if row is None:
            raise ConflictError(f"operator {name!r} has no admin role any more")
        _remove_role(session, actor, target, row)
        return f"operator {name} no longer has the admin role"
    if kind == ChangeKind.OPERATOR_REMOVE:
        _remove_operator(session, actor, target, change.reason or "")
        return f"operator {name} removed"
    lockout.clear_enrolment(session, actor, target, requested_by=requester)
    return f"the enrolment of {name} is reset: they enrol again once an admin allows it"


# --- the changes -------------------------------------------------------------------------------


def add_operator(
    session: Session,
    actor: Operator,
    *,
    name: str,
    roles: Iterable[str],
    approves: Iterable[str] = (),
    reviews: Iterable[str] = (),
    login: str | None = None,
    db_role: str | None = None,
    shared_login: bool = False,
    codes: Codes,
) -> list[int]:
    """Add an operator as an admin, with the admin's code. Once two admins exist, the
    approver or admin role and the approvable and reviewed clients wait for a second admin:
    the ids of those pending changes."""
    role_set = {validation.choice(role, Role, "role") for role in roles}
    approve_list, review_list = sorted(set(approves)), sorted(set(reviews))
    operators.require_role(session, actor, Role.ADMIN)
    if approve_list and Role.APPROVER not in role_set:
        raise PolicyError("--approves needs the approver role")
    if review_list and Role.REVIEWER not in role_set:
        raise PolicyError("--reviews needs the reviewer role")
    approved = [_client(session, c) for c in approve_list]
    reviewed = [_client(session, c) for c in review_list]
    two = needs_second_admin(session)
    later = role_set & CONFIRMED_ROLES if two else set()
    added = operators.add(
        session,
        actor,
        name=name,
        roles=role_set - later,
        approves=[] if later else approve_list,
        # The reviewer role alone gives nothing; its links to clients are the privilege.
        reviews=[] if two else review_list,
        login=login,
        db_role=db_role,
        shared_login=shared_login,
        roles_pending=bool(later),
    )
    changes = [_request(session, actor, ChangeKind.ROLE_ADD, added, role=r) for r in sorted(later)]
    if later:
        changes += [
            _request(session, actor, ChangeKind.APPROVES_ADD, added, client=c) for c in approved
        ]
    if two:
        changes += [
            _request(session, actor, ChangeKind.REVIEWS_ADD, added, client=c) for c in reviewed
        ]
    second_factor.verify(session, actor, codes.code, purpose=f"adding operator {name}")
    return changes


def add_role(
    session: Session, actor: Operator, *, name: str, role: str, codes: Codes
) -> int | None:
    """Give an operator a role: at once, or (approver/admin once two admins exist) as a
    change a second admin confirms; its id then."""
    operators.require_role(session, actor, Role.ADMIN)
    target = _enabled(session, name)
    wanted = validation.choice(role, Role, "role")
    if session.get(OperatorRole, (ident(target), wanted.value)) is not None:
        raise ConflictError(f"operator {name!r} has the {wanted} role already")
    change = None
    if wanted in CONFIRMED_ROLES and needs_second_admin(session):
        change = _request(session, actor, ChangeKind.ROLE_ADD, target, role=wanted)
    else:
        _grant(session, actor, target, wanted, None, granted_by=actor, confirmed_by=None)
    second_factor.verify(session, actor, codes.code, purpose=f"the {wanted} role for {name}")
    return change


def _grant(
    session: Session,
    actor: Operator,
    target: Operator,
    what: Role | Link,
    client: Client | None,
    *,
    granted_by: Operator,
    confirmed_by: Operator | None,
) -> None:
    """Give `target` a role, or a link to `client`, with its provenance and its audit event
    (operator.role_add, .approves_add, .reviews_add); the rows through the same writer that
    seeding uses (operators.write_privilege)."""
    ids = [ident(client)] if client is not None else []
    operators.write_privilege(
        session,
        ident(target),
        roles=[what] if isinstance(what, Role) else (),
        approves=ids if what is APPROVES else (),
        reviews=ids if what is REVIEWS else (),
        granted_by=ident(granted_by),
        confirmed_by=_id(confirmed_by),
    )
    # Signed by the admin who gave or confirmed it (act_signatures; the event's details stay
    # as they were: audit_state replays them).
    act_signatures.sign_privilege(session, actor, operator_id=ident(target))
    by = {"granted_by": granted_by.name, "confirmed_by": _name(confirmed_by)}
    if isinstance(what, Role):
        action, details = "operator.role_add", {"role": what.value, **by}
    else:
        assert client is not None
        action, details = f"operator.{what.name}_add", {"client": client.name, **by}
    audit.append(
        session, actor=actor.name, action=action, obj=f"operator:{target.name}", details=details
    )


def remove_role(session: Session, actor: Operator, *, name: str, role: str) -> int | None:
    """Take a role away (no code: removing privilege never waits), except another admin's
    admin role when that would lift the two-admin rule: then a change they confirm; its id."""
    operators.require_role(session, actor, Role.ADMIN)
    target = operators.find(session, name)
    wanted = validation.choice(role, Role, "role")
    row = session.get(OperatorRole, (ident(target), wanted.value))
    if row is None:
        raise NotFoundError(f"operator {name!r} has no {wanted} role")
    if wanted == Role.ADMIN:
        _require_other_admin(session, target, f"removing the admin role from {name!r}")
        if _lifts_rule(session, actor, target):
            return _request(session, actor, ChangeKind.ROLE_REMOVE, target, role=wanted)
    _remove_role(session, actor, target, row)
    return None


def _remove_role(session: Session, actor: Operator, target: Operator, row: OperatorRole) -> None:
    session.delete(row)
    audit.append(
        session,
        actor=actor.name,
        action="operator.role_remove",
        obj=f"operator:{target.name}",
        details={"role": row.role},
    )


def add_approves(
    session: Session, actor: Operator, *, name: str, client: str, codes: Codes
) -> int | None:
    """Let an approver approve for one more client: once two admins exist, as a change a
    second admin confirms; its id then."""
    return _add_link(session, actor, APPROVES, name=name, client=client, codes=codes)


def add_reviews(
    session: Session, actor: Operator, *, name: str, client: str, codes: Codes
) -> int | None:
    """Let a reviewer review one more client's access: once two admins exist, as a change a
    second admin confirms (a review's keep keeps access alive: privilege); its id then."""
    return _add_link(session, actor, REVIEWS, name=name, client=client, codes=codes)


def _add_link(
    session: Session, actor: Operator, link: Link, *, name: str, client: str, codes: Codes
) -> int | None:
    operators.require_role(session, actor, Role.ADMIN)
    target = _enabled(session, name)
    found = _client(session, client)
    _check_link(session, link, target, found)
    change = None
    if needs_second_admin(session):
        change = _request(session, actor, link.kind, target, client=found)
    else:
        _grant(session, actor, target, link, found, granted_by=actor, confirmed_by=None)
    second_factor.verify(session, actor, codes.code, purpose=f"{name} {link.says} {client}")
    return change


def _check_link(session: Session, link: Link, target: Operator, client: Client) -> None:
    if link.role not in operators.roles_of(session, target):
        raise PolicyError(f"operator {target.name!r} lacks the {link.role} role (add it first)")
    if session.get(link.table, (ident(target), ident(client))) is not None:
        raise ConflictError(f"operator {target.name!r} {link.says} {client.name!r} already")


def remove_approves(session: Session, actor: Operator, *, name: str, client: str) -> None:
    """Stop an approver approving for a client (no code)."""
    _remove_link(session, actor, APPROVES, name=name, client=client)


def remove_reviews(session: Session, actor: Operator, *, name: str, client: str) -> None:
    """Stop a reviewer reviewing a client (no code: it removes privilege)."""
    _remove_link(session, actor, REVIEWS, name=name, client=client)


def _remove_link(session: Session, actor: Operator, link: Link, *, name: str, client: str) -> None:
    operators.require_role(session, actor, Role.ADMIN)
    target = operators.find(session, name)
    found = _client(session, client)
    row = session.get(link.table, (ident(target), ident(found)))
    if row is None:
        raise NotFoundError(f"operator {name!r} does not {link.verb} {client!r}")
    session.delete(row)
    audit.append(
        session,
        actor=actor.name,
        action=f"operator.{link.name}_remove",
        obj=f"operator:{name}",
        details={"client": found.name},
    )


def remove_operator(session: Session, actor: Operator, *, name: str, reason: str) -> int | None:
    """Disable an operator: they can no longer act; their row and history stay. Another
    admin whose removal would lift the two-admin rule: a change they confirm; its id."""
    operators.require_role(session, actor, Role.ADMIN)
    reason = validation.reason(reason, "removal")
    target = _enabled(session, name)
    if Role.ADMIN in operators.roles_of(session, target):
        _require_other_admin(session, target, f"removing {name!r}")
        if _lifts_rule(session, actor, target):
            return _request(session, actor, ChangeKind.OPERATOR_REMOVE, target, reason=reason)
    _remove_operator(session, actor, target, reason)
    return None


def _remove_operator(session: Session, actor: Operator, target: Operator, reason: str) -> None:
    target.disabled_at = clock.now()
    target.disabled_by = ident(actor)
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="operator.remove",
        obj=f"operator:{target.name}",
        details={"reason": reason},
    )


def request_reset(session: Session, actor: Operator, *, name: str, codes: Codes) -> int:
    """Break-glass: ask for `name`'s enrolment (and lock-out) to be cleared, with the acting
    admin's code; a second admin, not `name`, confirms it. The change's id."""
    operators.require_role(session, actor, Role.ADMIN)
    target = operators.find(session, name)
    if target.id == actor.id:
        raise PolicyError(f"{name!r} cannot vouch for the reset of their own enrolment")
    if target.totp_enrolled_at is None and target.totp_pending_at is None:
        raise ConflictError(f"{name!r} has no enrolment to reset")
    change = _request(session, actor, ChangeKind.TOTP_RESET, target)
    second_factor.verify(session, actor, codes.code, purpose=f"reset of {name}'s enrolment")
    return change


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
    operators.require_role(session, actor, Role.ADMIN)
    target.login, target.db_role, target.shared_login = new_login, new_role, shared_login
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="operator.bind",
        obj=f"operator:{name}",
        details={"login": new_login, "db_role": new_role, "shared_login": shared_login},
    )
    second_factor.verify(session, actor, codes.code, purpose=f"binding operator {name}")


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

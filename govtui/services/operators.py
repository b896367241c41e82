"""Operators (the people using govtui), their roles, and who is acting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, NotFoundError, PolicyError
from govtui.models import Client, Operator, OperatorClient, OperatorReviewClient, OperatorRole
from govtui.services import audit, identity, validation
from govtui.vocabulary import Role, RoleName


@dataclass(frozen=True)
class OperatorView:
    id: int
    name: str
    roles: tuple[str, ...]
    approves: tuple[str, ...]
    reviews: tuple[str, ...]  # the clients they review (with the reviewer role)
    totp_enrolled: bool
    login: str
    db_role: str | None
    shared_login: bool  # the login is bound to several operators: no separation between them
    disabled: bool
    # Until when their codes are refused after too many wrong ones (None: not locked).
    totp_locked_until: datetime | None = None


def find(session: Session, name: str) -> Operator:
    """The operator called `name`, or a NotFoundError that says how to pick one."""
    operator = session.exec(select(Operator).where(Operator.name == name)).first()
    if operator is None:
        raise NotFoundError(f"unknown operator {name!r} (add one with `govtui operator add`)")
    return operator


def roles_of(session: Session, operator: Operator) -> set[Role]:
    """The roles an operator holds (none once removed)."""
    if operator.disabled_at is not None:
        return set()
    rows = session.exec(select(OperatorRole.role).where(OperatorRole.operator_id == operator.id))
    return {Role(role) for role in rows.all()}


def require_role(session: Session, operator: Operator, role: Role | RoleName) -> None:
    """Refuse unless the operator holds the role."""
    if role not in roles_of(session, operator):
        raise PolicyError(f"operator {operator.name!r} lacks the {role} role for this action")


def is_approver_for(session: Session, operator: Operator, client: Client) -> bool:
    """Whether the operator holds the approver role and may approve for this client."""
    link = session.get(OperatorClient, (ident(operator), ident(client)))
    return link is not None and Role.APPROVER in roles_of(session, operator)


def is_reviewer_for(session: Session, operator: Operator, client: Client) -> bool:
    """Whether the operator holds the reviewer role and may review this client's access."""
    link = session.get(OperatorReviewClient, (ident(operator), ident(client)))
    return link is not None and Role.REVIEWER in roles_of(session, operator)


def count(session: Session) -> int:
    """How many operators exist."""
    return int(session.exec(select(func.count()).select_from(Operator)).one())


def add(
    session: Session,
    actor: Operator | None,
    *,
    name: str,
    roles: Iterable[Role | str],
    approves: Iterable[str] = (),
    reviews: Iterable[str] = (),
    bootstrap_actor: str | None = None,
    made_by_demo: bool = False,
    login: str | None = None,
    db_role: str | None = None,
    shared_login: bool = False,
    confirmed_by: int | None = None,
    roles_pending: bool = False,
) -> Operator:
    """Create an operator bound to `login` (default: their name; the first operator's: the
    current OS login). An admin acts, except for the very first operator, who must be an
    admin so that someone can manage the rest (`bootstrap_actor` names who ran it;
    `made_by_demo` marks the first operator of `govtui demo`, which no front end can pass).

    This writes; the codes a privilege change needs are checked by services/privilege.py,
    which every front end calls. Only seeding (demo data, test worlds) calls this directly."""
    name = validation.name(name, "operator")
    role_set = {validation.choice(role, Role, "role") for role in roles}
    # With `roles_pending` their only roles wait for a second admin (services/privilege.py).
    if not role_set and not roles_pending:
        raise PolicyError("give the operator at least one --role")
    if actor is None:
        if count(session) > 0:
            raise PolicyError("operators exist already: act as an admin with --as NAME")
        # The chain, not the table, says whether this is the first operator: emptying the
        # operator table by SQL must not reopen the code-free bootstrap for a new admin.
        if audit.has_action(session, "operator.add"):
            raise PolicyError(
                "the audit chain records operators whose rows are gone: no new first admin; "
                f"{audit.VERIFY_HINT}"
            )
        if Role.ADMIN not in role_set:
            raise PolicyError("the first operator must have the admin role")
        actor_name = bootstrap_actor or name
        login = login or identity.os_login()
    else:
        require_role(session, actor, Role.ADMIN)
        actor_name = actor.name
    if session.exec(select(Operator.id).where(Operator.name == name)).first() is not None:
        raise ConflictError(f"operator {name!r} exists already")
    login = validation.name(login or name, "login")
    if db_role is not None:
        db_role = validation.name(db_role, "database role")
    identity.check_binding(
        session, name=name, login=login, db_role=db_role, shared_login=shared_login
    )
    approve_names, review_names = sorted(set(approves)), sorted(set(reviews))
    if approve_names and Role.APPROVER not in role_set:
        raise PolicyError("--approves needs the approver role")
    if review_names and Role.REVIEWER not in role_set:
        raise PolicyError("--reviews needs the reviewer role")
    client_ids = [_client_id(session, client_name) for client_name in approve_names]
    review_ids = [_client_id(session, client_name) for client_name in review_names]
    now = clock.now()
    operator = Operator(
        name=name, created_at=now, login=login, db_role=db_role, shared_login=shared_login
    )
    session.add(operator)
    session.flush()
    op_id = ident(operator)
    # The first operator is granted on nobody's say-so but their own.
    granted_by = op_id if actor is None else ident(actor)
    write_privilege(
        session,
        op_id,
        roles=role_set,
        approves=client_ids,
        reviews=review_ids,
        granted_by=granted_by,
        confirmed_by=confirmed_by,
    )
    if actor is not None:
        # What an admin gives is signed by them (issue 13). Imported here: act_signatures
        # builds on services that look operators up.
        from govtui.services import act_signatures

        act_signatures.sign_privilege(session, actor, operator_id=op_id)
    audit.append(
        session,
        actor=actor_name,
        action="operator.add",
        obj=f"operator:{name}",
        details={
            "roles": sorted(r.value for r in role_set),
            "approves": approve_names,
            "reviews": review_names,
            "login": login,
            "db_role": db_role,
            "shared_login": shared_login,
            "granted_by": actor_name,
            "confirmed_by": name_of(session, confirmed_by),
            # services/demo.is_demo reads this: an actor's name alone is anyone's to type.
            **({"demo": True} if made_by_demo and actor is None else {}),
        },
    )
    return operator


def write_privilege(
    session: Session,
    operator_id: int,
    *,
    roles: Iterable[Role] = (),
    approves: Iterable[int] = (),
    reviews: Iterable[int] = (),
    granted_by: int,
    confirmed_by: int | None,
) -> None:
    """Write role rows and approves/reviews links (by client id) with their provenance: the
    one writer of privilege rows, for seeding (`add`) and for services/privilege.py alike, so
    that every row records who granted and who confirmed it, which audit_state compares."""
    made: dict[str, Any] = {
        "operator_id": operator_id,
        "granted_by": granted_by,
        "confirmed_by": confirmed_by,
        "granted_at": clock.now(),
    }
    rows: list[SQLModel] = [OperatorRole(role=role.value, **made) for role in sorted(roles)]
    rows += [OperatorClient(client_id=client_id, **made) for client_id in approves]
    rows += [OperatorReviewClient(client_id=client_id, **made) for client_id in reviews]
    session.add_all(rows)


def reviewed_clients(session: Session, operator: Operator) -> tuple[str, ...]:
    """The names of the clients the operator has a review link for, by name (whether or not
    they still hold the reviewer role: is_reviewer_for decides that)."""
    rows = session.exec(
        select(Client.name)
        .join(OperatorReviewClient, col(OperatorReviewClient.client_id) == col(Client.id))
        .where(OperatorReviewClient.operator_id == ident(operator))
        .order_by(Client.name)
    ).all()
    return tuple(rows)


def _client_id(session: Session, name: str) -> int:
    client = session.exec(select(Client).where(Client.name == name)).first()
    if client is None:
        raise NotFoundError(f"unknown client {name!r}")
    return ident(client)


def name_of(session: Session, operator_id: int | None) -> str | None:
    """The name of the operator with this id (None for None)."""
    if operator_id is None:
        return None
    operator = session.get(Operator, operator_id)
    return operator.name if operator is not None else f"#{operator_id}"


def list_all(session: Session) -> list[OperatorView]:
    """Every operator with roles, approvable and reviewed clients, by name."""
    operators = session.exec(select(Operator).order_by(Operator.name)).all()
    roles: dict[int, list[str]] = {}
    for op_id, role in session.exec(select(OperatorRole.operator_id, OperatorRole.role)):
        roles.setdefault(op_id, []).append(role)
    approves: dict[int, list[str]] = {}
    for op_id, client_name in session.exec(
        select(OperatorClient.operator_id, Client.name).join(
            Client, col(Client.id) == col(OperatorClient.client_id)
        )
    ):
        approves.setdefault(op_id, []).append(client_name)
    reviews: dict[int, list[str]] = {}
    for op_id, client_name in session.exec(
        select(OperatorReviewClient.operator_id, Client.name).join(
            Client, col(Client.id) == col(OperatorReviewClient.client_id)
        )
    ):
        reviews.setdefault(op_id, []).append(client_name)
    views = []
    for op in operators:
        op_id = ident(op)
        views.append(
            OperatorView(
                id=op_id,
                name=op.name,
                roles=tuple(sorted(roles.get(op_id, []))),
                approves=tuple(sorted(approves.get(op_id, []))),
                reviews=tuple(sorted(reviews.get(op_id, []))),
                totp_enrolled=op.totp_enrolled_at is not None,
                login=identity.login_of(op),
                db_role=op.db_role,
                shared_login=op.shared_login,
                disabled=op.disabled_at is not None,
                totp_locked_until=(
                    op.totp_locked_until
                    if op.totp_locked_until is not None and op.totp_locked_until > clock.now()
                    else None
                ),
            )
        )
    return views

"""Operators (the people using govtui), their roles, and who is acting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, NotFoundError, PolicyError
from govtui.models import Client, Operator, OperatorClient, OperatorRole
from govtui.services import audit, validation
from govtui.vocabulary import Role, RoleName


@dataclass(frozen=True)
class OperatorView:
    id: int
    name: str
    roles: tuple[str, ...]
    approves: tuple[str, ...]
    totp_enrolled: bool
    # Until when their codes are refused after too many wrong ones (None: not locked).
    totp_locked_until: datetime | None = None


def find(session: Session, name: str) -> Operator:
    """The operator called `name`, or a NotFoundError that says how to pick one."""
    operator = session.exec(select(Operator).where(Operator.name == name)).first()
    if operator is None:
        raise NotFoundError(f"unknown operator {name!r} (add one with `govtui operator add`)")
    return operator


def roles_of(session: Session, operator: Operator) -> set[Role]:
    """The roles an operator holds."""
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
    bootstrap_actor: str | None = None,
) -> Operator:
    """Create an operator. An admin acts, except for the very first operator, who must be an
    admin so that someone can manage the rest (`bootstrap_actor` names who ran it)."""
    name = validation.name(name, "operator")
    role_set = {validation.choice(role, Role, "role") for role in roles}
    if not role_set:
        raise PolicyError("give the operator at least one --role")
    if actor is None:
        if count(session) > 0:
            raise PolicyError("operators exist already: act as an admin with --as NAME")
        if Role.ADMIN not in role_set:
            raise PolicyError("the first operator must have the admin role")
        actor_name = bootstrap_actor or name
    else:
        require_role(session, actor, Role.ADMIN)
        actor_name = actor.name
    if session.exec(select(Operator.id).where(Operator.name == name)).first() is not None:
        raise ConflictError(f"operator {name!r} exists already")
    client_ids: list[int] = []
    approve_names = sorted(set(approves))
    if approve_names and Role.APPROVER not in role_set:
        raise PolicyError("--approves needs the approver role")
    for client_name in approve_names:
        client = session.exec(select(Client).where(Client.name == client_name)).first()
        if client is None:
            raise NotFoundError(f"unknown client {client_name!r}")
        client_ids.append(ident(client))
    operator = Operator(name=name, created_at=clock.now())
    session.add(operator)
    session.flush()
    op_id = ident(operator)
    session.add_all(OperatorRole(operator_id=op_id, role=role.value) for role in sorted(role_set))
    session.add_all(OperatorClient(operator_id=op_id, client_id=cid) for cid in client_ids)
    audit.append(
        session,
        actor=actor_name,
        action="operator.add",
        obj=f"operator:{name}",
        details={"roles": sorted(r.value for r in role_set), "approves": approve_names},
    )
    return operator


def list_all(session: Session) -> list[OperatorView]:
    """Every operator with roles and approvable clients, by name."""
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
    views = []
    for op in operators:
        op_id = ident(op)
        views.append(
            OperatorView(
                id=op_id,
                name=op.name,
                roles=tuple(sorted(roles.get(op_id, []))),
                approves=tuple(sorted(approves.get(op_id, []))),
                totp_enrolled=op.totp_enrolled_at is not None,
                totp_locked_until=(
                    op.totp_locked_until
                    if op.totp_locked_until is not None and op.totp_locked_until > clock.now()
                    else None
                ),
            )
        )
    return views

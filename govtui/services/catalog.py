"""Clients, their projects and the dataset scopes inside them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.directory import group_names
from govtui.errors import ConflictError, InputError, NotFoundError
from govtui.models import Client, DatasetScope, Operator, Project
from govtui.services import audit, validation
from govtui.services.operators import require_role
from govtui.vocabulary import Role, Sensitivity

# The longest any grant may last, by sensitivity tier (DESIGN invariant 1).
TIER_CAP_DAYS: dict[str, int] = {
    Sensitivity.INTERNAL: 90,
    Sensitivity.CONFIDENTIAL: 30,
    Sensitivity.RESTRICTED: 14,
}


@dataclass(frozen=True)
class ScopeView:
    id: int
    path: str
    client: str
    project: str
    name: str
    sensitivity: str
    max_grant_days: int
    client_status: str


def find_client(session: Session, name: str) -> Client:
    """The client called `name`."""
    client = session.exec(select(Client).where(Client.name == name)).first()
    if client is None:
        raise NotFoundError(f"unknown client {name!r}")
    return client


def lock_client(session: Session, client_id: int | None, *, share: bool = False) -> Client:
    """The client row, re-read under a row lock (PostgreSQL; SQLite writers are serialised
    by BEGIN IMMEDIATE already)."""
    query = select(Client).where(Client.id == client_id).with_for_update(read=share)
    return session.exec(query.execution_options(populate_existing=True)).one()


def find_project(session: Session, client_name: str, project_name: str) -> Project:
    """The project `project_name` of client `client_name`."""
    client = find_client(session, client_name)
    project = session.exec(
        select(Project).where(Project.client_id == ident(client), Project.name == project_name)
    ).first()
    if project is None:
        raise NotFoundError(f"unknown project {client_name}/{project_name}")
    return project


def split_path(path: str, parts: int) -> list[str]:
    """Split `client/project[/scope]` into its names, refusing any other shape."""
    names = path.split("/")
    if len(names) != parts or not all(names):
        shape = "CLIENT/PROJECT" if parts == 2 else "CLIENT/PROJECT/SCOPE"
        raise InputError(f"invalid path {path!r}: write it as {shape}")
    return names


def find_scope(session: Session, path: str) -> DatasetScope:
    """The scope named by its path `client/project/scope`."""
    client_name, project_name, scope_name = split_path(path, 3)
    project = find_project(session, client_name, project_name)
    scope = session.exec(
        select(DatasetScope).where(
            DatasetScope.project_id == ident(project), DatasetScope.name == scope_name
        )
    ).first()
    if scope is None:
        raise NotFoundError(f"unknown scope {path}")
    return scope


def add_client(session: Session, actor: Operator, *, name: str) -> Client:
    """Create a client (admin only)."""
    require_role(session, actor, Role.ADMIN)
    name = validation.name(name, "client")
    if session.exec(select(Client.id).where(Client.name == name)).first() is not None:
        raise ConflictError(f"client {name!r} exists already")
    client = Client(name=name, created_at=clock.now())
    session.add(client)
    session.flush()
    audit.append(session, actor=actor.name, action="client.add", obj=f"client:{name}")
    return client


def add_project(session: Session, actor: Operator, *, path: str) -> Project:
    """Create a project, named `client/project` (admin only)."""
    require_role(session, actor, Role.ADMIN)
    client_name, project_name = split_path(path, 2)
    project_name = validation.name(project_name, "project")
    client = find_client(session, client_name)
    exists = session.exec(
        select(Project.id).where(Project.client_id == ident(client), Project.name == project_name)
    ).first()
    if exists is not None:
        raise ConflictError(f"project {client_name}/{project_name} exists already")
    project = Project(client_id=ident(client), name=project_name, created_at=clock.now())
    session.add(project)
    session.flush()
    audit.append(session, actor=actor.name, action="project.add", obj=f"project:{path}")
    return project


def add_scope(
    session: Session,
    actor: Operator,
    *,
    path: str,
    sensitivity: Sensitivity | str,
    max_days: int | None = None,
) -> DatasetScope:
    """Create a dataset scope `client/project/scope`; max days default to the tier's cap."""
    require_role(session, actor, Role.ADMIN)
    client_name, project_name, scope_name = split_path(path, 3)
    scope_name = validation.name(scope_name, "scope")
    tier = validation.choice(sensitivity, Sensitivity, "sensitivity")
    cap = TIER_CAP_DAYS[tier]
    days = cap if max_days is None else validation.positive_days(max_days, "max days")
    if days > cap:
        raise InputError(f"max days {days} exceeds the {tier} tier's cap of {cap} days")
    project = find_project(session, client_name, project_name)
    exists = session.exec(
        select(DatasetScope.id).where(
            DatasetScope.project_id == ident(project), DatasetScope.name == scope_name
        )
    ).first()
    if exists is not None:
        raise ConflictError(f"scope {path} exists already")
    scope = DatasetScope(
        project_id=ident(project),
        name=scope_name,
        sensitivity=tier.value,
        max_grant_days=days,
        created_at=clock.now(),
    )
    session.add(scope)
    session.flush()
    # Two scopes whose names join to one group name would share members: refused (rolls back).
    group_names.check_distinct(session, scope_id=ident(scope))
    audit.append(
        session,
        actor=actor.name,
        action="scope.add",
        obj=f"scope:{path}",
        details={"sensitivity": tier.value, "max_grant_days": days},
    )
    return scope


def list_clients(session: Session) -> list[Client]:
    """All clients by name."""
    return list(session.exec(select(Client).order_by(col(Client.name))).all())


def list_projects(session: Session, client: str | None = None) -> list[tuple[str, Project]]:
    """Projects with their client's name, optionally of one client, by client then name."""
    query = select(Client.name, Project).join(Client, col(Client.id) == col(Project.client_id))
    if client is not None:
        query = query.where(Client.id == ident(find_client(session, client)))
    return [(c, p) for c, p in session.exec(query.order_by(col(Client.name), col(Project.name)))]


def list_scopes(
    session: Session, *, client: str | None = None, project: str | None = None
) -> list[ScopeView]:
    """Scopes with their paths, optionally of one client or one `client/project`."""
    query = (
        select(Client.name, Client.status, Project.name, DatasetScope)
        .join(Project, col(Project.client_id) == col(Client.id))
        .join(DatasetScope, col(DatasetScope.project_id) == col(Project.id))
    )
    if project is not None:
        query = query.where(Project.id == ident(find_project(session, *split_path(project, 2))))
    elif client is not None:
        query = query.where(Client.id == ident(find_client(session, client)))
    query = query.order_by(col(Client.name), col(Project.name), col(DatasetScope.name))
    return [
        ScopeView(
            id=ident(scope),
            path=f"{c}/{p}/{scope.name}",
            client=c,
            project=p,
            name=scope.name,
            sensitivity=scope.sensitivity,
            max_grant_days=scope.max_grant_days,
            client_status=status,
        )
        for c, status, p, scope in session.exec(query)
    ]

"""Directory targets (LDAP / AD servers govtui keeps in step) and scope → group mappings.
The bind password goes into the OS keyring, never the database, and only once the target's
row is committed (a rolled-back add or remove leaves the keyring as it was)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ldap3
from sqlmodel import Session, col, select

from govtui import clock, db
from govtui.db import ident, session_url
from govtui.directory import group_names, naming
from govtui.directory.connection import Endpoint, connect
from govtui.errors import ConfigurationError, ConflictError, InputError, NotFoundError
from govtui.models import (
    ACCESS_LEVELS,
    DIRECTORY_FLAVOURS,
    Client,
    DirectoryTarget,
    GroupMapping,
    Operator,
    OutboxOp,
    Project,
)
from govtui.security import secrets
from govtui.services import audit, catalog, operators, validation


def password_key(session: Session, name: str) -> str:
    """The keyring entry of a target's bind password for this database."""
    return secrets.entry_key("directory", name, session_url(session))


def find(session: Session, name: str) -> DirectoryTarget:
    """The target called `name`."""
    target = session.exec(select(DirectoryTarget).where(DirectoryTarget.name == name)).first()
    if target is None:
        raise NotFoundError(f"unknown directory target {name!r}")
    return target


def all_targets(session: Session) -> list[DirectoryTarget]:
    """Every target, by name."""
    return list(session.exec(select(DirectoryTarget).order_by(col(DirectoryTarget.name))).all())


def add(
    session: Session,
    actor: Operator,
    *,
    name: str,
    url: str,
    bind_dn: str,
    users_base: str,
    groups_base: str,
    password: str,
    flavour: str = "openldap",
    starttls: bool = False,
    ca_file: str | None = None,
    create_groups: bool = True,
    sam_template: str | None = None,
    ad_group_type: int | None = None,
) -> DirectoryTarget:
    """Register a target (admin only); the password is stored in the keyring after the commit."""
    operators.require_role(session, actor, "admin")
    secrets.require_safe_backend()  # refused now, not after the target is committed
    name = validation.name(name, "directory target")
    flavour = validation.choice(flavour, DIRECTORY_FLAVOURS, "flavour")
    if not url.startswith(("ldap://", "ldaps://")):
        raise InputError(
            f"invalid directory URL {url!r}: use ldap://host[:port] or ldaps://host[:port]"
        )
    if url.startswith("ldaps://") and starttls:
        raise InputError("use either ldaps:// or --starttls, not both")
    for value, what in (
        (bind_dn, "bind DN"),
        (users_base, "users base"),
        (groups_base, "groups base"),
    ):
        naming.checked_dn(value, what)
    if not password:
        raise InputError("the bind password is empty")
    if (sam_template is not None or ad_group_type is not None) and flavour != "ad":
        raise InputError("--sam-template and --group-type apply to --flavour ad only")
    if sam_template is not None:
        naming.check_sam_template(sam_template)
    if ad_group_type is not None and ad_group_type not in naming.AD_GROUP_TYPES:
        kinds = ", ".join(f"{v} ({k})" for v, k in naming.AD_GROUP_TYPES.items())
        raise InputError(f"invalid AD groupType {ad_group_type}: use one of {kinds}")
    if (
        session.exec(select(DirectoryTarget.id).where(DirectoryTarget.name == name)).first()
        is not None
    ):
        raise ConflictError(f"directory target {name!r} exists already")
    key = password_key(session, name)
    # Only the committed add writes: a racing add of the same name that loses on the unique
    # name never overwrites the winner's password.
    db.after_commit(session, lambda: secrets.store(key, password))
    target = DirectoryTarget(
        name=name,
        url=url,
        bind_dn=bind_dn,
        users_base=users_base,
        groups_base=groups_base,
        flavour=flavour,
        starttls=starttls,
        ca_file=ca_file,
        create_groups=create_groups,
        sam_template=sam_template,
        ad_group_type=ad_group_type,
        created_at=clock.now(),
    )
    session.add(target)
    session.flush()
    audit.append(
        session,
        actor=actor.name,
        action="directory.add",
        obj=f"directory:{name}",
        details={"url": url, "bind_dn": bind_dn, "flavour": flavour, "starttls": starttls},
    )
    return target


def remove(session: Session, actor: Operator, *, name: str) -> None:
    """Forget a target that has no pending operations (admin only); its password leaves the
    keyring after the commit."""
    operators.require_role(session, actor, "admin")
    secrets.require_safe_backend()
    target = find(session, name)
    pending = session.exec(
        select(OutboxOp.id).where(OutboxOp.target_id == ident(target), OutboxOp.state == "pending")
    ).first()
    if pending is not None:
        raise ConflictError(
            f"directory target {name!r} has pending operations: run `govtui sync` first"
        )
    for mapping in session.exec(
        select(GroupMapping).where(GroupMapping.target_id == ident(target))
    ):
        session.delete(mapping)
    for op in session.exec(select(OutboxOp).where(OutboxOp.target_id == ident(target))):
        session.delete(op)  # done or failed history of a target that no longer exists
    session.delete(target)
    key = password_key(session, name)
    db.after_commit(session, lambda: secrets.delete(key))
    audit.append(session, actor=actor.name, action="directory.remove", obj=f"directory:{name}")


def endpoint(target: DirectoryTarget) -> Endpoint:
    """How to reach a target (without its password)."""
    return Endpoint(
        url=target.url,
        bind_dn=target.bind_dn,
        starttls=target.starttls,
        ca_file=target.ca_file,
        tls_name=target.tls_name,
    )


def bind_password(session: Session, target: DirectoryTarget) -> str:
    """The target's bind password from this machine's keyring (else a clear error). Read it
    in the short session that reads the target, and connect after that session is closed."""
    password = secrets.load(password_key(session, target.name))
    if password is None:
        raise ConfigurationError(
            f"no bind password for directory {target.name!r} in this machine's keyring: "
            f"remove and add the target again here"
        )
    return password


@contextmanager
def bound(target: DirectoryTarget, password: str) -> Iterator[ldap3.Connection]:
    """A bound connection to the target, closed afterwards; it needs no database session."""
    conn = connect(endpoint(target), password)
    try:
        yield conn
    finally:
        conn.unbind()


def map_scope(
    session: Session,
    actor: Operator,
    *,
    scope_path: str,
    access: str,
    group_dn: str,
    target: str | None,
) -> GroupMapping:
    """Point one (scope, access level) at an explicit group on a target (admin only)."""
    operators.require_role(session, actor, "admin")
    access = validation.choice(access, ACCESS_LEVELS, "access level")
    naming.checked_dn(group_dn, "group DN")
    scope = catalog.find_scope(session, scope_path)
    targets = [find(session, target)] if target else all_targets(session)
    if len(targets) != 1:
        raise InputError(
            "name the directory target with --target"
            if targets
            else "no directory target: add one first"
        )
    project = session.get(Project, scope.project_id)
    client = session.get(Client, project.client_id) if project else None
    assert project is not None
    assert client is not None
    # A name AD would refuse (or Samba would accept and Windows not) is refused here, before
    # the mapping exists and long before a sync tries to create the group.
    group_names.check_ad_mapping(
        targets[0],
        group_dn,
        client=client.name,
        project=project.name,
        scope=scope.name,
        access=access,
    )
    key = (ident(targets[0]), ident(scope), access)
    mapping = session.get(GroupMapping, key) or GroupMapping(
        target_id=key[0], scope_id=key[1], access=access, group_dn=group_dn
    )
    mapping.group_dn = group_dn
    session.add(mapping)
    audit.append(
        session,
        actor=actor.name,
        action="scope.map",
        obj=f"scope:{scope_path}",
        details={"access": access, "group_dn": group_dn, "target": targets[0].name},
    )
    return mapping

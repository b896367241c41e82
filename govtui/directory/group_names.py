"""Which directory group stands for each (scope, access level) on each target: an explicit
mapping if an administrator set one, else the target's template filled in and escaped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import safe_dn
from sqlmodel import Session, col, select

from govtui.db import ident
from govtui.directory import naming
from govtui.errors import InputError
from govtui.models import (
    ACCESS_LEVELS,
    Client,
    DatasetScope,
    DirectoryTarget,
    GroupMapping,
    Project,
)


@dataclass(frozen=True)
class GroupRef:
    """The directory group of one (scope, access level) on one target."""

    target_id: int
    scope_id: int
    access: str
    dn: str


def group_refs(
    session: Session, pairs: set[tuple[int, str]]
) -> dict[tuple[int, int, str], GroupRef]:
    """The group DN of each (scope id, access) on every target, keyed (target, scope, access)."""
    if not pairs:
        return {}
    targets = session.exec(select(DirectoryTarget).order_by(col(DirectoryTarget.name))).all()
    if not targets:
        return {}
    scope_ids = sorted({scope_id for scope_id, _ in pairs})
    wanted = set(scope_ids)
    # Every scope's names in one query (a scope list is short next to an IN list per call).
    names = {
        scope_id: (client, project, scope)
        for scope_id, client, project, scope in session.execute(
            select(
                col(DatasetScope.id), col(Client.name), col(Project.name), col(DatasetScope.name)
            )
            .join(Project, col(Project.id) == col(DatasetScope.project_id))
            .join(Client, col(Client.id) == col(Project.client_id))
        )
        if scope_id in wanted
    }
    overrides = {
        (m.target_id, m.scope_id, m.access): m.group_dn
        for m in session.exec(select(GroupMapping).where(col(GroupMapping.scope_id).in_(scope_ids)))
    }
    refs = {}
    for target in targets:
        for scope_id, access in pairs:
            client, project, scope = names[scope_id]
            key = (ident(target), scope_id, access)
            dn = overrides.get(key) or naming.group_dn(
                target.group_template,
                target.groups_base,
                client=client,
                project=project,
                scope=scope,
                access=access,
            )
            refs[key] = GroupRef(ident(target), scope_id, access, dn)
    return refs


def dn_key(dn: str) -> str:
    """A DN as the directory compares it: case does not count (`CN=A,OU=G` is `cn=a,ou=g`),
    so two spellings of one group are one group."""
    try:
        return str(safe_dn(dn.strip())).lower()
    except (LDAPException, ValueError, TypeError):
        return dn.strip().lower()


def _scope_paths(session: Session) -> dict[int, str]:
    return {
        scope_id: f"{client}/{project}/{scope}"
        for scope_id, client, project, scope in session.execute(
            select(
                col(DatasetScope.id), col(Client.name), col(Project.name), col(DatasetScope.name)
            )
            .join(Project, col(Project.id) == col(DatasetScope.project_id))
            .join(Client, col(Client.id) == col(Project.client_id))
        )
    }


def sharing(session: Session) -> dict[tuple[int, str], set[tuple[int, str]]]:
    """(target id, normalised group DN) → every (scope id, access) whose group it is, on
    every target; one group that stands for two pairs is a collision."""
    pairs = {(scope_id, access) for scope_id in _scope_paths(session) for access in ACCESS_LEVELS}
    found: dict[tuple[int, str], set[tuple[int, str]]] = defaultdict(set)
    for (target_id, scope_id, access), ref in group_refs(session, pairs).items():
        found[(target_id, dn_key(ref.dn))].add((scope_id, access))
    return found


def check_distinct(
    session: Session,
    *,
    scope_id: int | None = None,
    target_id: int | None = None,
    mapping: tuple[int, int, str] | None = None,
) -> None:
    """An InputError when one directory group would stand for two different (scope, access)
    pairs on some target, and the new thing (the scope, the target, or the mapping
    (target id, scope id, access)) is one of them. Call it after the new row is flushed, in
    the transaction that adds it: the error rolls it back, so nothing is written.

    Why: a shared group mixes two grants' members, so ending one client's access (a strict
    pause, a revoke) would remove or keep members by the other's grants. The default
    template `cn={client}-{project}-{scope}-{access}` gives `a-b/c/s` and `a/b-c/s` one group."""
    paths = _scope_paths(session)
    targets = {ident(t): t.name for t in session.exec(select(DirectoryTarget))}
    for (tid, dn), owners in sorted(sharing(session).items()):
        if len(owners) < 2:
            continue
        involved = (
            (target_id is not None and tid == target_id)
            or (scope_id is not None and any(s == scope_id for s, _ in owners))
            or (mapping is not None and tid == mapping[0] and mapping[1:] in owners)
        )
        if not involved:
            continue  # an older collision this change does not touch (reported elsewhere)
        first, second = _named(sorted(owners, key=lambda o: (paths[o[0]], o[1])), paths)[:2]
        raise InputError(
            f"{first} and {second} would share the directory group {dn} on target"
            f" {targets[tid]}: refused, nothing written (use another name, or `govtui scope"
            " map` one of them to a group of its own)"
        )


def _named(owners: Iterable[tuple[int, str]], paths: dict[int, str]) -> list[str]:
    return [f"{paths[scope_id]} ({access})" for scope_id, access in owners]


def ad_sam_names(session: Session, target: DirectoryTarget) -> dict[str, str]:
    """Normalised group DN → the sAMAccountName govtui gives that group when it creates it on
    an AD target with a sAMAccountName template (empty otherwise: without a template the name
    is the group's cn, known from the DN alone)."""
    if target.flavour != "ad" or target.sam_template is None:
        return {}
    rows = session.execute(
        select(col(DatasetScope.id), col(Client.name), col(Project.name), col(DatasetScope.name))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
    ).all()
    overrides = {
        (m.scope_id, m.access): m.group_dn
        for m in session.exec(select(GroupMapping).where(GroupMapping.target_id == ident(target)))
    }
    names: dict[str, str] = {}
    for scope_id, client, project, scope in rows:
        for access in ACCESS_LEVELS:
            values = {"client": client, "project": project, "scope": scope, "access": access}
            dn = overrides.get((scope_id, access)) or naming.group_dn(
                target.group_template, target.groups_base, **values
            )
            names[dn.strip().lower()] = naming.ad_sam_name(target.sam_template, dn, **values)
    return names


def check_ad_mapping(
    target: DirectoryTarget, group_dn: str, *, client: str, project: str, scope: str, access: str
) -> None:
    """On an AD target, an InputError when the group's names would not fit AD's limits."""
    if target.flavour != "ad":
        return
    sam = naming.ad_sam_name(
        target.sam_template, group_dn, client=client, project=project, scope=scope, access=access
    )
    naming.check_ad_group_names(group_dn, sam)

"""Which directory group stands for each (scope, access level) on each target: an explicit
mapping if an administrator set one, else the target's template filled in and escaped."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from govtui.db import ident
from govtui.directory import naming
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

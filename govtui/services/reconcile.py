"""Reconciliation: compare each mapped group with the grants and report the drift; with fix,
queue the corrections through the outbox and sync them. Accounts govtui has never heard of
are reported, never touched."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident, read_session, write_session
from govtui.directory import group_names, groups, naming
from govtui.models import ACCESS_LEVELS, Contractor, DirectoryTarget, Grant, Operator, OutboxOp
from govtui.services import audit, catalog, directory_targets, operators, outbox, sync

FIXABLE = {
    "unexpected_member": "remove_member",
    "missing_member": "add_member",
    "enabled_offboarded": "disable_account",
}


@dataclass(frozen=True)
class Drift:
    kind: str  # unexpected_member | missing_member | enabled_offboarded | unknown_account
    group_dn: str | None
    user_dn: str | None
    directory_uid: str | None

    @property
    def fixable(self) -> bool:
        return self.kind in FIXABLE


def _expected(session: Session, target: DirectoryTarget) -> dict[str, set[str]]:
    """Group DN → uids that should be members (active grants), for every scope and level."""
    pairs = {(view.id, access) for view in catalog.list_scopes(session) for access in ACCESS_LEVELS}
    refs = group_names.group_refs(session, pairs)
    expected: dict[str, set[str]] = {
        ref.dn: set() for (target_id, _, _), ref in refs.items() if target_id == ident(target)
    }
    rows = session.execute(
        sa.select(col(Grant.scope_id), col(Grant.access), col(Contractor.directory_uid))
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .where(col(Grant.state) == "active")
    )
    for scope_id, access, uid in rows:
        expected[refs[(ident(target), scope_id, access)].dn].add(uid)
    return expected


def compare(engine: Engine, target_name: str) -> list[Drift]:
    """The drift between one target and the grants."""
    with read_session(engine) as session:
        target = directory_targets.find(session, target_name)
        expected = _expected(session, target)
        known = set(session.execute(sa.select(col(Contractor.directory_uid))).scalars())
        offboarded = set(
            session.execute(
                sa.select(col(Contractor.directory_uid)).where(
                    col(Contractor.status) == "offboarded"
                )
            ).scalars()
        )
        with directory_targets.connection(session, target) as conn:
            accounts = groups.all_users(conn, target.users_base, target.flavour)
            uid_dn = {uid: dn for dn, uid in accounts.items()}
            placeholder = groups.norm(naming.placeholder_dn(target.groups_base))
            drift: list[Drift] = []
            for group_dn, uids in sorted(expected.items()):
                members = groups.read_members(conn, group_dn)
                if members is None:
                    members = set()
                    if not uids:
                        continue
                for member in sorted(members - {placeholder}):
                    uid = accounts.get(member)
                    if uid is None or uid not in known:
                        drift.append(Drift("unknown_account", group_dn, member, uid))
                    elif uid not in uids:
                        drift.append(Drift("unexpected_member", group_dn, member, uid))
                for uid in sorted(uids):
                    dn = uid_dn.get(uid)
                    if dn is None or groups.norm(dn) not in members:
                        drift.append(Drift("missing_member", group_dn, dn, uid))
            for uid in sorted(offboarded & set(uid_dn)):
                if not groups.is_disabled(conn, uid_dn[uid], target.flavour):
                    drift.append(Drift("enabled_offboarded", None, uid_dn[uid], uid))
    return drift


def fix(engine: Engine, actor: Operator, target_name: str, drift: list[Drift]) -> sync.SyncReport:
    """Queue the corrections for the fixable drift, with one audit event, then sync."""
    fixable = [d for d in drift if d.fixable and d.directory_uid is not None]
    with write_session(engine) as session:
        operators.require_role(session, actor, "admin")
        target = directory_targets.find(session, target_name)
        now = clock.now()
        if fixable:
            values: list[dict[str, object]] = [
                {
                    "target_id": ident(target),
                    "grant_id": None,
                    "operation": FIXABLE[d.kind],
                    "group_dn": d.group_dn,
                    "directory_uid": d.directory_uid,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for d in fixable
            ]
            outbox.supersede(session, values)
            session.execute(sa.insert(OutboxOp), values)
        audit.append(
            session,
            actor=actor.name,
            action="directory.reconcile_fix",
            obj=f"directory:{target_name}",
            details={kind: sum(d.kind == kind for d in fixable) for kind in FIXABLE},
        )
    return sync.run_once(engine)

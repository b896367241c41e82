"""Reconciliation: compare each mapped group with the grants and report the drift; with fix,
queue the corrections through the outbox and sync them. Accounts govtui has never heard of
are reported, never touched.

What a comparison needs from the database (the target, the expected members, the keyring
password) is read in one short session that is closed before the directory is asked."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident, read_session
from govtui.directory import group_names, groups, naming
from govtui.models import ACCESS_LEVELS, Contractor, DirectoryTarget, Grant, Operator, OutboxOp
from govtui.services import audit, catalog, directory_targets, operators, outbox, sync
from govtui.services.workspace import Workspace

FIXABLE = {
    "unexpected_member": "remove_member",
    "missing_member": "add_member",
    "enabled_offboarded": "disable_account",
}


# Access govtui cannot take away by changing a group's `member`; reported with the step an
# administrator must take, never queued (so a fix can never loop on them).
OUTSIDE_REACH = {
    "nested_group": "remove the nested group from the group by hand (or empty it)",
    "nested_member": "remove the account from the nested group that gives it access",
    "primary_group_member": "change the account's primary group (e.g. to Domain Users)",
}


@dataclass(frozen=True)
class Drift:
    # unexpected_member | missing_member | enabled_offboarded | unknown_account |
    # nested_group | nested_member | primary_group_member
    kind: str
    group_dn: str | None
    user_dn: str | None
    directory_uid: str | None
    via: str | None = None  # nested_member: the nested group that gives the access

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


@dataclass(frozen=True)
class _Snapshot:
    """What one comparison reads from the database before it talks to the directory."""

    target: DirectoryTarget
    password: str
    expected: dict[str, set[str]]
    known: set[str]
    offboarded: set[str]
    last_op: int  # the newest outbox op when the snapshot was read


def _snapshot(session: Session, target_name: str) -> _Snapshot:
    target = directory_targets.find(session, target_name)
    return _Snapshot(
        target=target,
        password=directory_targets.bind_password(session, target),
        expected=_expected(session, target),
        known=set(session.execute(sa.select(col(Contractor.directory_uid))).scalars()),
        offboarded=set(
            session.execute(
                sa.select(col(Contractor.directory_uid)).where(
                    col(Contractor.status) == "offboarded"
                )
            ).scalars()
        ),
        last_op=session.execute(sa.select(sa.func.max(col(OutboxOp.id)))).scalar_one() or 0,
    )


def compare(engine: Engine, target_name: str) -> list[Drift]:
    """The drift between one target and the grants."""
    with read_session(engine) as session:
        snap = _snapshot(session, target_name)
    # The session is closed: no transaction stays open while the directory answers.
    target, expected = snap.target, snap.expected
    with directory_targets.bound(target, snap.password) as conn:
        accounts = groups.all_users(conn, target.users_base, target.flavour)
        uid_dn = {uid: dn for dn, uid in accounts.items()}
        placeholder = groups.norm(naming.placeholder_dn(target.groups_base))
        drift: list[Drift] = []
        read: dict[str, set[str]] = {}  # group DN (normalised) -> its members as read
        for group_dn, uids in sorted(expected.items()):
            contents = groups.inspect_group(
                conn, group_dn, target.flavour, accounts, ignore=[placeholder]
            )
            # What the read proves for open removals: direct and primary-group members are
            # there (a primary group is access govtui could not take away).
            read[groups.norm(group_dn)] = (
                set(contents.direct | contents.primary) if contents is not None else set()
            )
            if contents is None and not uids:
                continue
            drift.extend(_group_drift(group_dn, uids, contents, accounts, uid_dn, snap.known))
        for uid in sorted(snap.offboarded & set(uid_dn)):
            if not groups.is_disabled(conn, uid_dn[uid], target.flavour):
                drift.append(Drift("enabled_offboarded", None, uid_dn[uid], uid))
    _supersede_unneeded_removals(engine, snap, read, uid_dn)
    return drift


def _supersede_unneeded_removals(
    engine: Engine, snap: _Snapshot, read: dict[str, set[str]], uid_dn: dict[str, str]
) -> None:
    """What this read proved: an open removal (queued before it) of a uid that is not in its
    group, or has no account, has nothing left to do. It is closed as superseded, so a
    removal that keeps failing (its account gone, say) stops holding a pause's convergence
    back. Written after the directory was read: no transaction spans the network calls."""
    # uids match without case, as sync's user lookup does.
    accounts = {uid.lower(): groups.norm(dn) for uid, dn in uid_dn.items()}
    sync.record_absent_removals(
        engine,
        ident(snap.target),
        snap.last_op,
        lambda group, uid: group in read and accounts.get(uid.lower()) not in read[group],
    )


def _group_drift(
    group_dn: str,
    uids: set[str],
    contents: groups.GroupContents | None,
    accounts: dict[str, str],
    uid_dn: dict[str, str],
    known: set[str],
) -> list[Drift]:
    """The drift of one group: direct members without a grant (a known contractor: fixable;
    an account govtui does not know: reported), members missing, and access govtui cannot
    remove by itself: nested groups with the accounts they bring in (and which group gives
    it), and (AD) accounts whose primary group it is."""
    members = contents.direct if contents else frozenset()
    primary = contents.primary if contents else frozenset()
    found: list[Drift] = []
    for member in sorted(members):
        uid = accounts.get(member)
        if uid is None or uid not in known:
            found.append(Drift("unknown_account", group_dn, member, uid))
        elif uid not in uids:
            found.append(Drift("unexpected_member", group_dn, member, uid))
    if contents is not None:
        for nested in contents.nested:
            found.append(Drift("nested_group", group_dn, nested, None))
        for eff in sorted(contents.effective, key=lambda e: (e.via, e.dn)):
            if eff.uid is None or eff.uid not in uids:
                found.append(Drift("nested_member", group_dn, eff.dn, eff.uid, eff.via))
    # Reported whether or not a grant wants it there: a revoke could not take it away.
    for member in sorted(primary):
        found.append(Drift("primary_group_member", group_dn, member, accounts.get(member)))
    for uid in sorted(uids):
        dn = uid_dn.get(uid)
        if dn is None or groups.norm(dn) not in members | primary:
            found.append(Drift("missing_member", group_dn, dn, uid))
    return found


def queue_fix(
    session: Session, actor: Operator, *, target_name: str, drift: Collection[Drift]
) -> int:
    """Queue the corrections for the fixable drift, with one audit event (admin only); how
    many were queued."""
    fixable = [d for d in drift if d.fixable and d.directory_uid is not None]
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
    return len(fixable)


def fix(engine: Engine, actor: Operator, target_name: str, drift: list[Drift]) -> sync.SyncReport:
    """Queue the corrections for the fixable drift, with one audit event, then sync."""
    Workspace(engine, actor.name).act(queue_fix, target_name=target_name, drift=drift)
    return sync.run_once(engine)


@dataclass(frozen=True)
class FixOutcome:
    """What a reconcile fix did, and the drift a comparison right after it finds."""

    report: sync.SyncReport = field(default_factory=sync.SyncReport)
    fixed: int = 0  # confirmed drift items that were still there and were queued
    gone: int = 0  # confirmed items that had gone meanwhile, left alone
    drift: list[Drift] = field(default_factory=list)


def fix_confirmed(
    engine: Engine, actor_name: str, target_name: str, confirmed: Collection[Drift]
) -> FixOutcome:
    """Fix the confirmed drift that is still there, then compare again: what changed since
    the person looked (a grant approved for a member added by hand, say) is left alone."""
    wanted = {d for d in confirmed if d.fixable}
    still = [d for d in compare(engine, target_name) if d in wanted]
    report = sync.SyncReport()
    if still:
        Workspace(engine, actor_name).act(queue_fix, target_name=target_name, drift=still)
        report = sync.run_once(engine)
    return FixOutcome(report, len(still), len(wanted) - len(still), compare(engine, target_name))

"""Pause is total also where govtui did not add the access (issue 10, item 8): who is in a
client's directory groups without a grant govtui would remove — members added by hand,
nested groups and the accounts they bring in, AD primary-group members — and what an
administrator must do about each.

This reads the directory, so it runs outside any database transaction: what it needs from the
database (the client's groups on each target, the uids govtui put there, the bind passwords)
is read in one short session that is closed before the first connection opens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import ldap3
import sqlalchemy as sa
from ldap3.core.exceptions import LDAPException
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui.db import ident, read_session
from govtui.directory import group_names, groups, naming
from govtui.errors import GovtuiError
from govtui.models import ACCESS_LEVELS, Contractor, DatasetScope, DirectoryTarget, Grant
from govtui.services import catalog, directory_targets
from govtui.text import one_line
from govtui.vocabulary import GrantState

HAND_ADDED = "hand_added"
NESTED_GROUP = "nested_group"
NESTED_MEMBER = "nested_member"
PRIMARY_GROUP_MEMBER = "primary_group_member"
SHARED_GROUP = "shared_group"  # in the group by a live grant on another client's scope
NESTING_NOT_READ = "nesting_not_read"


@dataclass(frozen=True)
class Leftover:
    """One member of a client's group that the pause does not remove by itself."""

    target: str
    target_id: int
    group_dn: str
    # hand_added | nested_group | nested_member | primary_group_member | shared_group |
    # nesting_not_read
    kind: str
    member_dn: str
    uid: str | None
    via: str | None  # nested_member: the nested group that gives the access
    removable: bool  # `client pause --strict` removes it (a direct member with a uid)
    step: str  # what --strict does, or the exact step an administrator must take


@dataclass(frozen=True)
class Reach:
    """Everything left in a client's groups that govtui did not put there."""

    items: list[Leftover] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # targets that could not be read

    @property
    def removable(self) -> list[Leftover]:
        return [i for i in self.items if i.removable]

    @property
    def unread(self) -> list[Leftover]:
        """Nested groups below the depth limit: who they let in is not known."""
        return [i for i in self.items if i.kind == NESTING_NOT_READ]

    @property
    def outside(self) -> list[Leftover]:
        """What govtui cannot remove: each listed with the step an administrator must take."""
        return [i for i in self.items if not i.removable]

    def in_words(self) -> str:
        if self.errors:
            return f"members govtui did not add: NOT known ({len(self.errors)} target(s) unread)"
        if not self.items:
            return "no member govtui did not add is left in the client's groups"
        parts = []
        if self.unread:
            parts.append(f"NOT known below {len(self.unread)} nested group(s) not read (too deep)")
        if self.removable:
            parts.append(f"{len(self.removable)} added by hand (`--strict` removes them)")
        if self.outside:
            parts.append(f"{len(self.outside)} outside govtui's reach (steps listed)")
        return "members govtui did not add: " + ", ".join(parts)


@dataclass(frozen=True)
class _Plan:
    target: DirectoryTarget
    password: str | GovtuiError
    expected: dict[str, set[str]]  # group DN -> uids with an active grant (govtui removes them)
    # Normalised group DN -> uids with a live grant (active or suspended) on another client's
    # scope whose group is this same DN: never removed as "added by hand".
    shared: dict[str, set[str]] = field(default_factory=dict)


def _plans(engine: Engine, client_name: str) -> list[_Plan]:
    with read_session(engine) as session:
        scopes = catalog.list_scopes(session, client=catalog.find_client(session, client_name).name)
        passwords: list[tuple[DirectoryTarget, str | GovtuiError]] = []
        for target in directory_targets.all_targets(session):
            if target.disabled_at is not None:
                continue
            try:
                passwords.append((target, directory_targets.bind_password(session, target)))
            except GovtuiError as exc:
                passwords.append((target, exc))
        if not any(isinstance(password, str) for _, password in passwords):
            # No target can be read: nothing to compare the grants with (the dry run of a
            # client with 425,000 grants read every uid for 5 s to say "not known").
            return [_Plan(target, password, {}) for target, password in passwords]
        pairs = {(s.id, access) for s in scopes for access in ACCESS_LEVELS}
        refs = group_names.group_refs(session, pairs)
        active: dict[tuple[int, str], set[str]] = defaultdict(set)
        for scope_id, access, uid in session.execute(
            sa.select(col(Grant.scope_id), col(Grant.access), col(Contractor.directory_uid))
            .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
            .where(
                col(Grant.state) == GrantState.ACTIVE,
                col(Grant.scope_id).in_([s.id for s in scopes]),
            )
        ):
            active[(scope_id, access)].add(uid.lower())
        keys = {(target_id, group_names.dn_key(ref.dn)) for (target_id, _, _), ref in refs.items()}
        shared = _shared_members(session, {s.id for s in scopes if s.id is not None}, keys)
        plans = []
        for target, password in passwords:
            expected: dict[str, set[str]] = defaultdict(set)
            for (target_id, _, _), ref in refs.items():
                if target_id == ident(target):
                    # A union: two of the client's pairs may name one group.
                    expected[ref.dn] |= active[(ref.scope_id, ref.access)]
            plans.append(_Plan(target, password, dict(expected), shared.get(ident(target), {})))
    return plans


def _shared_members(
    session: Session, client_scopes: set[int], client_groups: set[tuple[int, str]]
) -> dict[int, dict[str, set[str]]]:
    """Target id → normalised group DN → uids with a live grant (active or suspended) on a
    scope of another client, mapping to one of the client's groups (`client_groups`: target
    id and normalised DN). Defence in depth: `scope add` refuses a name that makes two scopes
    share a group, but a mapping or a row written before that check may still do it, and a
    strict pause must not take away another client's access. Only the grants of the other
    scopes whose group collides are read (none, normally; reading every other client's live
    grants took seconds at a million)."""
    others = {
        (scope_id, access)
        for scope_id in session.execute(sa.select(col(DatasetScope.id))).scalars()
        if scope_id not in client_scopes
        for access in ACCESS_LEVELS
    }
    colliding = {
        key: ref
        for key, ref in group_names.group_refs(session, others).items()
        if (key[0], group_names.dn_key(ref.dn)) in client_groups
    }
    found: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    if not colliding:
        return found
    wanted = {(scope_id, access) for _, scope_id, access in colliding}
    live: dict[tuple[int, str], set[str]] = defaultdict(set)
    for scope_id, access, uid in session.execute(
        sa.select(col(Grant.scope_id), col(Grant.access), col(Contractor.directory_uid))
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .where(
            col(Grant.state).in_([GrantState.ACTIVE, GrantState.SUSPENDED]),
            col(Grant.scope_id).in_(sorted({scope_id for scope_id, _ in wanted})),
        )
    ):
        if (scope_id, access) in wanted:
            live[(scope_id, access)].add(uid.lower())
    for (target_id, scope_id, access), ref in colliding.items():
        found[target_id][group_names.dn_key(ref.dn)] |= live[(scope_id, access)]
    return found


def outside_members(engine: Engine, client_name: str) -> Reach:
    """Members of the client's groups on every target that no active grant put there."""
    plans = _plans(engine, client_name)
    # The session is closed: the directory is read with no transaction open.
    reach = Reach()
    for plan in plans:
        try:
            if isinstance(plan.password, GovtuiError):
                raise plan.password
            with directory_targets.bound(plan.target, plan.password) as conn:
                reach.items.extend(_target_leftovers(conn, plan))
        except (GovtuiError, LDAPException) as exc:
            reach.errors.append(one_line(f"{plan.target.name}: {exc}"))
    return reach


def _target_leftovers(conn: ldap3.Connection, plan: _Plan) -> list[Leftover]:
    target = plan.target
    accounts = groups.all_users(conn, target.users_base, target.flavour)
    placeholder = naming.placeholder_dn(target.groups_base)
    found: list[Leftover] = []

    def add(group_dn: str, kind: str, dn: str, uid: str | None, via: str | None, step: str,
            removable: bool = False) -> None:  # fmt: skip
        found.append(
            Leftover(target.name, ident(target), group_dn, kind, dn, uid, via, removable, step)
        )

    for group_dn, uids in sorted(plan.expected.items()):
        contents = groups.inspect_group(
            conn, group_dn, target.flavour, accounts, ignore=[placeholder]
        )
        if contents is None:
            continue
        for member in sorted(contents.direct):
            uid = accounts.get(member)
            if uid is not None and uid in uids:
                continue  # govtui put it there; the pause removes it
            if uid is not None and uid in plan.shared.get(group_names.dn_key(group_dn), ()):
                add(group_dn, SHARED_GROUP, member, uid, None,
                    "kept: a live grant on another client's scope uses this same group; give"
                    " the scopes groups of their own (`govtui scope map`)")  # fmt: skip
                continue
            if uid is not None:
                add(group_dn, HAND_ADDED, member, uid, None,
                    "`govtui client pause --strict` removes it", removable=True)  # fmt: skip
            else:
                add(group_dn, HAND_ADDED, member, None, None,
                    f"not an account under {target.users_base}: remove it from the group by"
                    " hand")  # fmt: skip
        for nested in contents.nested:
            add(group_dn, NESTED_GROUP, nested, None, None,
                "remove this nested group from the group by hand (govtui never edits a group"
                " it did not make)")  # fmt: skip
        for eff in sorted(contents.effective, key=lambda e: (e.via, e.dn)):
            add(group_dn, NESTED_MEMBER, eff.dn, eff.uid, eff.via,
                f"remove it from {eff.via} (the nested group that gives it access), or remove"
                " that group from the client's group")  # fmt: skip
        for unread, parent in contents.cut:
            add(group_dn, NESTING_NOT_READ, unread, None, parent,
                f"nesting deeper than {groups.MAX_NESTING} levels below {group_dn}: not read"
                " (who it lets in is not known: flatten or remove the nesting by hand)")  # fmt: skip
        for member in sorted(contents.primary):
            add(group_dn, PRIMARY_GROUP_MEMBER, member, accounts.get(member), None,
                "this is the account's primary group, which no member change can remove: an AD"
                " administrator must change the user's primary group (e.g. to Domain Users)")  # fmt: skip
    return found

"""Group membership and accounts in one directory, over a bound ldap3 connection.

Membership changes for a group are sent as ONE modify (adds and deletes together): OpenLDAP
applies 1,000 member removals as one modify about fifteen times faster than as 1,000."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ldap3
from ldap3.core.exceptions import (
    LDAPAttributeOrValueExistsResult,
    LDAPEntryAlreadyExistsResult,
    LDAPException,
    LDAPNoSuchAttributeResult,
    LDAPNoSuchObjectResult,
    LDAPObjectClassViolationResult,
    LDAPUnwillingToPerformResult,
)
from ldap3.operation.modify import modify_operation
from ldap3.operation.search import search_operation
from ldap3.utils.asn1 import decode_message_fast
from ldap3.utils.dn import safe_dn

from govtui.directory import naming
from govtui.directory.connection import DirectoryError
from govtui.errors import GovtuiError

UID_ATTRIBUTE = {"openldap": "uid", "ad": "sAMAccountName"}
GROUP_CLASSES = {"openldap": ["top", "groupOfNames"], "ad": ["top", "group"]}
SEARCH_CHUNK = 200
ACCOUNTDISABLE = 0x2
# What a server answers to a membership modify when the group is not as the modify assumed:
# missing (noSuchObject), a value to delete absent (noSuchAttribute; AD: unwillingToPerform),
# a value to add present (attributeOrValueExists; AD: entryAlreadyExists), or a groupOfNames
# left without members (objectClassViolation).
GROUP_NOT_AS_ASSUMED = (
    LDAPNoSuchObjectResult,
    LDAPNoSuchAttributeResult,
    LDAPUnwillingToPerformResult,
    LDAPAttributeOrValueExistsResult,
    LDAPEntryAlreadyExistsResult,
    LDAPObjectClassViolationResult,
)


class UnreadableValue(DirectoryError):
    """An attribute govtui must read before it writes came back in a form it cannot trust
    (absent, several values, not a number): the operation is refused, never guessed."""

    def __init__(self, message: str) -> None:
        GovtuiError.__init__(self, message)
        self.url, self.step, self.reason = "", "read", message


def single_int(value: Any) -> int | None:
    """One integer attribute value as ldap3 may give it: an int, a str, bytes, or (with
    get_info=NONE, when ldap3 knows no schema) a list of exactly one of those. None when the
    value is absent, has several values or is not an integer."""
    if isinstance(value, list | tuple):
        if len(value) != 1:
            return None
        value = value[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def single_str(value: Any) -> str | None:
    """One string attribute value (a str, or a list of exactly one)."""
    if isinstance(value, list | tuple):
        if len(value) != 1:
            return None
        value = value[0]
    return value if isinstance(value, str) else None


def norm(dn: str) -> str:
    """A DN in the form used to compare members (DNs are case-insensitive)."""
    return dn.strip().lower()


def find_users(
    conn: ldap3.Connection, users_base: str, uids: Iterable[str], flavour: str
) -> dict[str, str]:
    """The entry DN of each uid found under the users base (uids not found are left out)."""
    attribute = UID_ATTRIBUTE[flavour]
    wanted = sorted(set(uids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), SEARCH_CHUNK):
        chunk = wanted[start : start + SEARCH_CHUNK]
        # uid and sAMAccountName match without case: the server finds 'Ada' for 'ada'.
        by_folded = {uid.lower(): uid for uid in chunk}
        conn.search(
            users_base,
            naming.user_filter(chunk, attribute, flavour),
            ldap3.SUBTREE,
            attributes=[attribute],
        )
        for entry in conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            values = entry["attributes"].get(attribute) or []
            value = values[0] if isinstance(values, list) and values else values
            if isinstance(value, str) and value.lower() in by_folded:
                found[by_folded[value.lower()]] = entry["dn"]
    return found


def read_members(conn: ldap3.Connection, group_dn: str) -> set[str] | None:
    """The normalised member DNs of a group, or None if the group does not exist."""
    try:
        conn.search(group_dn, "(objectClass=*)", ldap3.BASE, attributes=["member"])
    except LDAPNoSuchObjectResult:
        return None
    if not conn.response:
        return None
    members = conn.response[0]["attributes"].get("member") or []
    return {norm(m) for m in members}


def create_group(
    conn: ldap3.Connection,
    group_dn: str,
    groups_base: str,
    flavour: str,
    members: list[str],
    *,
    sam: str | None = None,
    group_type: int | None = None,
) -> None:
    """Create a group; an OpenLDAP groupOfNames gets the placeholder member it must always keep.
    An AD group gets its sAMAccountName (checked against AD's limits first: a name AD would
    refuse or mangle raises InputError before anything is written) and an explicit groupType
    (default: global security); without them the DC invents a `$47385C93-...` name."""
    attributes: dict[str, object] = {}
    if flavour == "openldap":
        attributes["member"] = [naming.placeholder_dn(groups_base), *members]
    else:
        sam = sam if sam is not None else naming.ad_sam_name(None, group_dn)
        naming.check_ad_group_names(group_dn, sam)
        attributes["sAMAccountName"] = sam
        attributes["groupType"] = str(
            naming.AD_DEFAULT_GROUP_TYPE if group_type is None else group_type
        )
        if members:
            attributes["member"] = members
    conn.add(group_dn, GROUP_CLASSES[flavour], attributes)


def change_members(
    conn: ldap3.Connection, group_dn: str, add: list[str], remove: list[str]
) -> None:
    """Add and remove members of one group in a single modify."""
    changes = _member_changes(add, remove)
    if changes["member"]:
        conn.modify(group_dn, changes)


def _member_changes(add: list[str], remove: list[str]) -> dict[str, list[tuple[str, list[str]]]]:
    changes: dict[str, list[tuple[str, list[str]]]] = {"member": []}
    if add:
        changes["member"].append((ldap3.MODIFY_ADD, add))
    if remove:
        changes["member"].append((ldap3.MODIFY_DELETE, remove))
    return changes


def try_change_members(
    conn: ldap3.Connection, group_dn: str, add: list[str], remove: list[str]
) -> bool:
    """Add and remove members in a single modify, assuming none of `add` is a member yet and
    all of `remove` are. False if the server refuses because the group is not like that (or
    does not exist): a modify is atomic (RFC 4511, 4.6), so a refused one changed nothing.
    Other refusals (access rights, say) raise."""
    try:
        change_members(conn, group_dn, add, remove)
    except GROUP_NOT_AS_ASSUMED:
        return False
    return True


# How many membership modifies pipelined_changes keeps in flight. One is sent while the server
# still works on the others, so govtui's own work per group (encoding the modify, decoding the
# answers, the read-back's round trip: about 4 ms a group) overlaps the server's (20-30 ms a
# 100-value modify on a Samba DC) instead of adding to it. A few are enough for that; more
# would only leave more changes unconfirmed when a connection breaks (they are retried).
PIPELINE_WINDOW = 4
_SUCCESS, _NO_SUCH_OBJECT = 0, 32


def pipelined_changes(
    conn: ldap3.Connection, changes: Iterable[tuple[str, list[str], list[str]]]
) -> dict[str, set[str] | None]:
    """Send the modifies (group DN, adds, removes) several at a time on one connection, and
    read each group back as soon as its modify is answered (never before: a server may run
    pipelined operations in any order). The members read back (None: the group is gone) of
    each group whose modify the server applied and whose read-back it answered.

    Only a fast path: a group left out (its modify refused, or anything unusual: a referral,
    a broken connection) is for the caller's one-at-a-time path, which sends it again. That
    is safe because a modify is atomic (RFC 4511, 4.6): a refused one changed nothing, and
    one that was applied but not read back is refused as not-as-assumed the second time."""
    strategy = conn.strategy
    if not conn.fast_decoder or conn.closed:
        return {}
    todo = iter(changes)
    sent: dict[int, tuple[str, str]] = {}  # message id → (group DN, "modify" or "read")
    in_flight = 0  # modifies not answered yet
    entries: dict[str, set[str]] = {}
    found: dict[str, set[str] | None] = {}

    def send(kind: str, group_dn: str, request: Any) -> None:
        message_type = "modifyRequest" if kind == "modify" else "searchRequest"
        sent[strategy.send(message_type, request)] = (group_dn, kind)

    try:
        while True:
            while in_flight < PIPELINE_WINDOW:
                item = next(todo, None)
                if item is None:
                    break
                group_dn, add, remove = item
                dn = safe_dn(group_dn) if conn.check_names else group_dn
                changes_ = _member_changes(add, remove)
                if not changes_["member"]:
                    continue
                send("modify", group_dn, modify_operation(
                    dn, changes_, conn.auto_encode, None, None, conn.check_names
                ))  # fmt: skip
                in_flight += 1
            if not sent:
                return found
            messages = strategy.receiving()
            if not messages:  # the server closed the connection
                return _abandon(conn, found)
            for raw in messages:
                message = decode_message_fast(raw)
                response = strategy.decode_response_fast(message)
                message_id = int(message["messageID"])
                if message_id not in sent:
                    # An unsolicited notice (of a disconnection): answers still due would
                    # confuse the next operation, so the connection goes too.
                    return _abandon(conn, found)
                group_dn, kind = sent[message_id]
                if response["type"] == "searchResEntry":
                    members = response["attributes"].get("member") or []
                    entries.setdefault(group_dn, set()).update(norm(m) for m in members)
                    continue
                if response["type"] not in ("modifyResponse", "searchResDone"):
                    continue  # a referral or an intermediate response: not an answer yet
                del sent[message_id]
                strategy._outstanding.pop(message_id, None)  # sent by strategy.send
                result = response["result"]
                if kind == "modify":
                    in_flight -= 1
                    if result == _SUCCESS:
                        dn = safe_dn(group_dn) if conn.check_names else group_dn
                        send("read", group_dn, search_operation(
                            dn, "(objectClass=*)", ldap3.BASE, ldap3.DEREF_ALWAYS,
                            ["member"], 0, 0, False, conn.auto_escape, conn.auto_encode,
                            None, None, conn.check_names,
                        ))  # fmt: skip
                elif result == _SUCCESS:
                    found[group_dn] = entries.pop(group_dn, set())
                elif result == _NO_SUCH_OBJECT:
                    found[group_dn] = None
    except Exception:
        # The connection broke (ldap3 has closed it), or an answer was not understood: what
        # was confirmed stands, the rest is the caller's, whose next operation on the closed
        # connection reports it for each group left.
        return _abandon(conn, found)


def _abandon(
    conn: ldap3.Connection, found: dict[str, set[str] | None]
) -> dict[str, set[str] | None]:
    """Close a connection left with answers still due, and return what was confirmed."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
    return found


def disable_account(conn: ldap3.Connection, user_dn: str, flavour: str, now: datetime) -> None:
    """Disable an account: AD's ACCOUNTDISABLE bit and accountExpires; OpenLDAP's ppolicy lock."""
    if flavour == "ad":
        current = read_uac(conn, user_dn)
        if current is None:
            raise UnreadableValue(
                f"{user_dn}: userAccountControl could not be read as one number: refusing to"
                " disable the account rather than write flags that would drop the others"
                " (check the bind account may read userAccountControl)"
            )
        # accountExpires counts 100 ns intervals since 1601-01-01 UTC.
        expires = int((now.timestamp() + 11_644_473_600) * 10_000_000)
        conn.modify(
            user_dn,
            {
                "userAccountControl": [(ldap3.MODIFY_REPLACE, [str(current | ACCOUNTDISABLE)])],
                "accountExpires": [(ldap3.MODIFY_REPLACE, [str(expires)])],
            },
        )
    else:
        # 000001010000Z: locked until an administrator unlocks it (ppolicy's permanent lock).
        conn.modify(user_dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})


def read_uac(conn: ldap3.Connection, user_dn: str) -> int | None:
    """An AD account's userAccountControl, or None when it cannot be read as one number."""
    conn.search(user_dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
    if not conn.response:
        return None
    return single_int(conn.response[0]["attributes"].get("userAccountControl"))


def is_disabled(conn: ldap3.Connection, user_dn: str, flavour: str) -> bool:
    """Whether the account is disabled as disable_account leaves it (an AD value that cannot
    be read counts as enabled: reconcile then reports it rather than trusting it)."""
    if flavour == "ad":
        uac = read_uac(conn, user_dn)
        return uac is not None and bool(uac & ACCOUNTDISABLE)
    conn.search(user_dn, "(objectClass=*)", ldap3.BASE, attributes=["pwdAccountLockedTime"])
    value = conn.response[0]["attributes"].get("pwdAccountLockedTime") if conn.response else None
    return bool(value)


def all_users(conn: ldap3.Connection, users_base: str, flavour: str) -> dict[str, str]:
    """Every account under the users base: normalised DN → uid in lower case, as govtui keeps
    uids (the directory compares them without case; paged, for large directories)."""
    attribute = UID_ATTRIBUTE[flavour]
    found: dict[str, str] = {}
    everyone = f"({attribute}=*)"
    entries = conn.extend.standard.paged_search(
        users_base,
        naming.ad_user_filter(everyone) if flavour == "ad" else everyone,
        ldap3.SUBTREE,
        attributes=[attribute],
        paged_size=1000,
        generator=True,
    )
    for entry in entries:
        if entry.get("type") != "searchResEntry":
            continue
        values = entry["attributes"].get(attribute) or []
        value = values[0] if isinstance(values, list) and values else values
        if isinstance(value, str):
            found[norm(entry["dn"])] = value.lower()
    return found


# -- who is in a group without being a direct member govtui put there ------------------------

GROUP_OBJECT_CLASSES = frozenset({"group", "groupofnames", "groupofuniquenames"})
# Deeper than this a nesting chain is not followed (a cycle is cut by the visited set anyway;
# this only bounds a pathological directory).
MAX_NESTING = 32


@dataclass(frozen=True)
class Effective:
    """An account that is in a group through a nested group: `via` is the group whose
    direct member it is (the one that gives it access)."""

    dn: str  # normalised
    uid: str | None  # lower case, None when it is not an account under the users base
    via: str  # normalised DN of the nested group


@dataclass(frozen=True)
class GroupContents:
    """A group as the directory really has it: direct members that are accounts, groups
    nested in it (at any depth) with the accounts they bring in, and (AD) the accounts whose
    primary group it is, which never show in `member`."""

    direct: frozenset[str]
    nested: tuple[str, ...]
    effective: tuple[Effective, ...]
    primary: frozenset[str]
    # Nested groups not read because the chain is deeper than MAX_NESTING: (group, the group
    # it is a member of). Their members are unknown, so the contents are not complete.
    cut: tuple[tuple[str, str], ...] = ()


def _entry(conn: ldap3.Connection, dn: str) -> dict[str, Any] | None:
    try:
        conn.search(
            dn, "(objectClass=*)", ldap3.BASE, attributes=["objectClass", "member", "objectSid"]
        )
    except LDAPNoSuchObjectResult:
        return None
    return dict(conn.response[0]["attributes"]) if conn.response else None


def _is_group(attributes: Mapping[str, Any]) -> bool:
    classes = attributes.get("objectClass") or []
    return any(str(c).lower() in GROUP_OBJECT_CLASSES for c in classes)


def group_rid(attributes: Mapping[str, Any]) -> int | None:
    """The RID (last sub-authority of the objectSid) of an AD group: what a member's
    primaryGroupID names."""
    sid = attributes.get("objectSid")
    if isinstance(sid, list):
        sid = sid[0] if len(sid) == 1 else None
    if not isinstance(sid, bytes) or len(sid) < 12:
        return None
    return int.from_bytes(sid[-4:], "little")


def primary_group_members(
    conn: ldap3.Connection, group_dn: str, attributes: Mapping[str, Any] | None = None
) -> frozenset[str]:
    """The accounts whose primaryGroupID is this AD group's RID (normalised DNs), searched in
    the whole domain: AD keeps them out of the group's `member`."""
    if attributes is None:
        attributes = _entry(conn, group_dn) or {}
    rid = group_rid(attributes)
    root = naming.domain_root(group_dn)
    if rid is None or not root:
        return frozenset()
    entries = conn.extend.standard.paged_search(
        root,
        f"(&(objectClass=user)(primaryGroupID={rid}))",
        ldap3.SUBTREE,
        attributes=["objectClass"],
        paged_size=1000,
        generator=True,
    )
    return frozenset(norm(e["dn"]) for e in entries if e.get("type") == "searchResEntry")


def inspect_group(
    conn: ldap3.Connection,
    group_dn: str,
    flavour: str,
    accounts: Mapping[str, str],
    *,
    ignore: Iterable[str] = (),
) -> GroupContents | None:
    """What a group really holds (None if it does not exist). `accounts` (normalised DN →
    uid, from all_users) saves a read per known account: only members it does not name are
    read, to tell a nested group from an unknown account. Nested groups are followed to any
    depth, each once (a cycle, which AD allows, ends there)."""
    top = _entry(conn, group_dn)
    if top is None:
        return None
    skip = {norm(d) for d in ignore}
    direct: set[str] = set()
    nested: list[str] = []
    effective: dict[str, Effective] = {}
    visited = {norm(group_dn)}
    cut: list[tuple[str, str]] = []
    queue: list[tuple[str, dict[str, Any], int]] = [(norm(group_dn), top, 0)]
    while queue:
        current, attributes, depth = queue.pop(0)
        members = {norm(m) for m in attributes.get("member") or []}
        if current != norm(group_dn) and flavour == "ad":
            members |= primary_group_members(conn, current, attributes)
        for member in sorted(members - skip):
            # A known account needs no read; anything else may be a nested group.
            entry = None if member in accounts else _entry(conn, member)
            if entry is not None and _is_group(entry):
                if member not in visited:
                    visited.add(member)
                    if depth < MAX_NESTING:
                        nested.append(member)
                        queue.append((member, entry, depth + 1))
                    else:
                        cut.append((member, current))
                continue
            if current == norm(group_dn):
                direct.add(member)
            elif member not in effective and member not in direct:
                effective[member] = Effective(member, accounts.get(member), current)
    primary = primary_group_members(conn, group_dn, top) if flavour == "ad" else frozenset()
    return GroupContents(
        direct=frozenset(direct),
        nested=tuple(nested),
        effective=tuple(effective.values()),
        primary=primary,
        cut=tuple(cut),
    )

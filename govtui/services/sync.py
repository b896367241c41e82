"""Pushing the outbox to the directories: batched per group, read back, retried with backoff.

No database transaction is held open across a network call: due operations are read in one
short read, the directory is changed and read back, and the outcome is written in one short
write. Every operation is idempotent (adding a present member or removing an absent one counts
as done), so running sync twice, or in two processes, is harmless."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Literal

import ldap3
import sqlalchemy as sa
from ldap3.core.exceptions import LDAPException, LDAPInvalidDNSyntaxResult, LDAPNoSuchObjectResult
from sqlalchemy.engine import Engine
from sqlmodel import Session

from govtui import clock
from govtui.db import ident, read_session, write_session
from govtui.directory import group_names, groups, naming
from govtui.errors import GovtuiError
from govtui.models import DirectoryTarget, OutboxOp
from govtui.services import act_signatures, directory_targets, outbox
from govtui.services.directory_targets import ERROR_LENGTH
from govtui.sqltypes import UTCDateTime
from govtui.text import one_line

BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_CAP = timedelta(hours=1)
BATCH = 50_000
# Removals are never given up: one that has failed max_attempts times is shown as failed but
# is still retried (at BACKOFF_CAP), because a removal that never lands leaves someone with
# access they should not have. Additions may give up after max_attempts: a failed addition
# only withholds access, and `sync --retry-failed` (or reconcile --fix) brings it back.
REMOVALS = ("remove_member", "disable_account")
Due = Literal["now", "backoff"]
MAX_REPORTED_ERRORS = 20
# Ops are read and written with Core on the table, never as ORM objects: one sync may handle
# tens of thousands of them (see _Op and _mark_done).
_OUTBOX: sa.Table = OutboxOp.__table__  # type: ignore[attr-defined]


@dataclass
class SyncReport:
    done: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Op:
    """What sync needs of one due operation. Read as plain rows: building 10,000 ORM objects
    costs ten times the query itself, and sync never changes an op through the ORM."""

    id: int
    target_id: int
    operation: str
    group_dn: str | None
    directory_uid: str
    attempts: int


_OP_COLUMNS = [_OUTBOX.c[f.name] for f in fields(_Op)]


@dataclass
class _Outcome:
    done: dict[int, str | None] = field(default_factory=dict)  # op id → user DN found
    errors: dict[int, str] = field(default_factory=dict)


Progress = Callable[[int, int], None]


def backoff(attempts: int) -> timedelta:
    """The wait before retry number `attempts` (1, 2, ...): doubling, capped at an hour."""
    # The exponent is bounded: a removal is retried for ever, and 2**attempts of a long
    # outage would overflow timedelta long after the cap was reached.
    wait: timedelta = BACKOFF_BASE * (2 ** min(max(0, attempts - 1), 20))
    return min(wait, BACKOFF_CAP)


def run_once(
    engine: Engine,
    *,
    due: Due = "backoff",
    include_failed: bool = False,
    progress: Progress | None = None,
) -> SyncReport:
    """Push the open operations once; return what happened.

    `due` is who is asking: "now" for a person (`govtui sync`, the TUI's sync key, a pause
    followed on screen) who has just fixed the server and wants to see it work, so every
    open operation is tried at once whatever its backoff; "backoff" for the background worker
    and `sync --watch`, which try only what has waited long enough. Failed removals are open
    (REMOVALS: never given up); failed additions only with `include_failed`."""
    now = clock.now()
    with read_session(engine) as session:
        targets = {ident(t): t for t in directory_targets.active_targets(session)}
        due_ops = [
            _Op(*row) for row in session.execute(_due_query(targets, due, include_failed, now))
        ]
        passwords = {
            target_id: _password(session, targets[target_id])
            for target_id in {op.target_id for op in due_ops}
        }
        # The sAMAccountName of each group an AD target may have to create (from its template).
        sam_names = {
            target_id: group_names.ad_sam_names(session, targets[target_id])
            for target_id in passwords
        }
        recorded = _recorded_dns(session, due_ops)
        # Fail closed: a member is added only for a grant whose approvals verify; removals
        # never wait for a signature.
        refused = act_signatures.refused_adds(
            session, [op.id for op in due_ops if op.operation == "add_member"]
        )
    report = SyncReport()
    if not due_ops:
        return report
    outcome = _Outcome(errors=dict(refused))
    by_target: dict[int, list[_Op]] = defaultdict(list)
    for op in due_ops:
        if op.id not in refused:
            by_target[op.target_id].append(op)
    handled = len(refused)
    for target_id, ops in by_target.items():
        target = targets[target_id]
        try:
            password = passwords[target_id]
            if isinstance(password, GovtuiError):
                raise password
            with directory_targets.bound(target, password) as conn:
                _push(
                    conn, target, ops, outcome, now, sam_names.get(target_id, {}),
                    recorded.get(target_id, {}),
                )  # fmt: skip
        # Whatever stops this target (connect, TLS, bind, a URL whose port is out of range,
        # the user lookup) stops this target only: its ops retry, the next target goes on.
        except Exception as exc:
            message = _target_error(target, exc)
            for op in ops:
                if op.id not in outcome.done:  # confirmed before the failure: it stays so
                    outcome.errors.setdefault(op.id, message)
            report.errors.append(message)
        handled += len(ops)
        if progress is not None:
            progress(handled, len(due_ops))
    # Errors of single operations (a missing entry, a refused modify) are reported as well as
    # those of a whole target, each distinct message once.
    distinct = [m for m in dict.fromkeys(outcome.errors.values()) if m not in report.errors]
    report.errors.extend(distinct[:MAX_REPORTED_ERRORS])
    if len(distinct) > MAX_REPORTED_ERRORS:
        report.errors.append(
            f"... and {len(distinct) - MAX_REPORTED_ERRORS} more errors: see the outbox"
        )
    _record(engine, due_ops, targets, outcome, now, report)
    return report


def _due_query(
    targets: dict[int, DirectoryTarget], due: Due, include_failed: bool, now: datetime
) -> sa.Select[tuple[object, ...]]:
    open_ops = sa.or_(
        _OUTBOX.c.state == "pending",
        sa.and_(_OUTBOX.c.state == "failed", _OUTBOX.c.operation.in_(REMOVALS)),
    )
    if include_failed:
        open_ops = _OUTBOX.c.state.in_(("pending", "failed"))
    query = sa.select(*_OP_COLUMNS).where(open_ops, _OUTBOX.c.target_id.in_(sorted(targets)))
    if due == "backoff":
        query = query.where(_OUTBOX.c.next_attempt_at <= now)
    elif due != "now":
        raise ValueError(due)
    return query.order_by(_OUTBOX.c.id).limit(BATCH)


def _describe(exc: BaseException) -> str:
    """An exception in words. govtui's own and ldap3's errors read as they are; anything else
    (a bug, a surprising answer) also names its type, so the record says it was unexpected."""
    if isinstance(exc, GovtuiError | LDAPException):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _target_error(target: DirectoryTarget, exc: BaseException) -> str:
    if isinstance(exc, GovtuiError):
        return one_line(str(exc))
    return one_line(f"{target.url}: {_describe(exc)}")


def _password(session: Session, target: DirectoryTarget) -> str | GovtuiError:
    """The target's bind password, or why there is none (that target's ops then retry)."""
    try:
        return directory_targets.bind_password(session, target)
    except GovtuiError as exc:
        return exc


def _push(
    conn: ldap3.Connection,
    target: DirectoryTarget,
    ops: list[_Op],
    outcome: _Outcome,
    now: datetime,
    sam_names: dict[str, str] | None = None,
    recorded: dict[str, str] | None = None,
) -> None:
    users = _find_users(conn, target, [op.directory_uid for op in ops])
    # An account moved out of the users base is not found by uid, yet may keep its groups
    # (memberof/refint, AD's linked `member`): a removal or disable then falls back on the DN
    # its earlier confirmed add recorded, and is never done on "not found" alone.
    removed = {op.directory_uid for op in ops if op.operation != "add_member"}
    fallback = {
        uid: dn for uid, dn in (recorded or {}).items() if uid in removed and uid not in users
    }
    live = {uid: dn for uid, dn in fallback.items() if _entry_exists(conn, dn)}
    by_group: dict[str, list[_Op]] = defaultdict(list)
    for op in ops:
        if op.operation == "disable_account":
            # One account's failure, whatever it is, is that op's error; the others go on.
            try:
                _disable(conn, target, op, {**live, **users}, outcome, now)
            except Exception as exc:
                outcome.done.pop(op.id, None)
                outcome.errors[op.id] = one_line(f"{op.directory_uid}: {_describe(exc)}")
        else:
            assert op.group_dn is not None
            by_group[op.group_dn].append(op)
    plans: dict[str, _Plan] = {}
    read_back: dict[str, set[str] | None] = {}
    if len(by_group) >= PIPELINE_FROM:
        for group_dn, group_ops in by_group.items():
            # A group whose plan fails here fails again below, where its error is recorded.
            with contextlib.suppress(Exception):
                plans[group_dn] = _plan(conn, group_dn, group_ops, users, fallback, live)
        read_back = groups.pipelined_changes(
            conn, ((g, p.adds, p.removes) for g, p in plans.items() if p.adds or p.removes)
        )
    for group_dn, group_ops in by_group.items():
        # One group's failure, whatever it is, is the error of that group's ops only: the
        # other groups are still pushed. Ops of the group confirmed before the failure are
        # taken back (the read-back did not finish) and retried: adds and removes are
        # idempotent.
        try:
            _push_group(
                conn, target, group_dn, group_ops, users, outcome, sam_names or {},
                fallback, live, plan=plans.get(group_dn),
                read_back=read_back.get(group_dn, _NOT_SENT),
            )  # fmt: skip
        except Exception as exc:
            # A group name AD would refuse, a bug, a surprising answer: recorded on that
            # group's ops, and the next group goes on.
            message = one_line(f"{group_dn}: {_describe(exc)}")
            for op in group_ops:
                outcome.done.pop(op.id, None)
                outcome.errors[op.id] = message


# From this many distinct uids on, sync reads the whole users base in one paged search rather
# than asking for the uids SEARCH_CHUNK at a time: 250 OR-filter searches for a pause's 50,000
# removals cost a round trip and a filter evaluation of 200 terms each, where the one paged
# search streams every account once. Below it, a large directory is not read for a few uids.
PAGED_LOOKUP_FROM = 2_000
# Whom the paged search reads: the accounts find_users would find (on AD, people only: a
# computer's or a service's sAMAccountName is never a contractor's).
_ACCOUNTS = {
    "openldap": "(uid=*)",
    "ad": "(&(objectCategory=person)(objectClass=user)(sAMAccountName=*))",
}


def _find_users(conn: ldap3.Connection, target: DirectoryTarget, uids: list[str]) -> dict[str, str]:
    """The entry DN of each uid found under the target's users base (uids not found are left
    out), as groups.find_users answers, matched without case as the directory matches."""
    wanted = set(uids)
    if len(wanted) < PAGED_LOOKUP_FROM:
        return groups.find_users(conn, target.users_base, wanted, target.flavour)
    attribute = groups.UID_ATTRIBUTE[target.flavour]
    by_folded = {uid.lower(): uid for uid in wanted}
    found: dict[str, str] = {}
    for entry in conn.extend.standard.paged_search(
        target.users_base,
        _ACCOUNTS[target.flavour],
        ldap3.SUBTREE,
        attributes=[attribute],
        paged_size=1000,
        generator=True,
    ):
        if entry.get("type") != "searchResEntry":
            continue
        values = entry["attributes"].get(attribute) or []
        value = values[0] if isinstance(values, list) and values else values
        if isinstance(value, str) and value.lower() in by_folded:
            found[by_folded[value.lower()]] = entry["dn"]
    return found


# From this many groups in one push, their modifies are pipelined (groups.pipelined_changes):
# a large sync or pause then costs the server's time for its modifies plus little more. A few
# groups are sent one at a time, a round trip each, as every group a pipeline leaves out is.
PIPELINE_FROM = 8


class _NotSent:
    """The marker of a group the pipeline did not apply and read back."""


_NOT_SENT = _NotSent()


@dataclass(frozen=True)
class _Plan:
    """What one group's ops want of it: the newest op per uid, the DNs to use (the found ones
    and the stale recorded ones still to remove), uids of adds not found, and the change."""

    wanted: dict[str, str]
    users: dict[str, str]
    missing_adds: set[str]
    adds: list[str]
    removes: list[str]


def _plan(
    conn: ldap3.Connection,
    group_dn: str,
    ops: list[_Op],
    users: dict[str, str],
    fallback: dict[str, str] | None,
    live: dict[str, str] | None,
) -> _Plan:
    """What the group's ops ask of it (reads the group only for a stale recorded DN)."""
    # The newest operation for a user decides (an add then a remove means: not a member).
    wanted: dict[str, str] = {}
    for op in ops:
        wanted[op.directory_uid] = op.operation
    # Removals of uids not found: by the recorded DN when that entry still exists, or when
    # the group still holds it (a stale DN left behind); never an add (that stays an error).
    stale = {
        uid: dn
        for uid, dn in (fallback or {}).items()
        if wanted.get(uid) == "remove_member" and uid not in users
    }
    if stale:
        live = live or {}
        held = (
            groups.read_members(conn, group_dn) or set()
            if any(uid not in live for uid in stale)
            else set()
        )
        users = {
            **{u: dn for u, dn in stale.items() if u in live or groups.norm(dn) in held},
            **users,
        }
    missing_adds = {
        uid for uid, operation in wanted.items() if operation == "add_member" and uid not in users
    }
    adds = [users[u] for u, o in wanted.items() if o == "add_member" and u in users]
    removes = [users[u] for u, o in wanted.items() if o == "remove_member" and u in users]
    return _Plan(wanted, users, missing_adds, adds, removes)


def _push_group(
    conn: ldap3.Connection,
    target: DirectoryTarget,
    group_dn: str,
    ops: list[_Op],
    users: dict[str, str],
    outcome: _Outcome,
    sam_names: dict[str, str],
    fallback: dict[str, str] | None = None,
    live: dict[str, str] | None = None,
    *,
    plan: _Plan | None = None,
    read_back: set[str] | _NotSent | None = _NOT_SENT,
) -> None:
    """Apply one group's ops and record their outcome. `plan` and `read_back`: what the
    pipeline (see _push) already worked out, and the members it read back after applying
    the change; without them, the change is sent here and the group read back."""
    if plan is None:
        plan = _plan(conn, group_dn, ops, users, fallback, live)
    wanted, users, missing_adds = plan.wanted, plan.users, plan.missing_adds
    adds, removes = plan.adds, plan.removes
    # Usually the group is as govtui left it, and the changes apply as they are: one round
    # trip instead of a read, a diff and a modify. If the server refuses (the group is
    # missing, or differs from what the ops assume), the refused modify changed nothing, and
    # the careful path below reads the group and sends exactly the difference.
    pipelined = not isinstance(read_back, _NotSent)
    applied = pipelined or (
        bool(adds or removes) and groups.try_change_members(conn, group_dn, adds, removes)
    )
    # On AD an account whose primary group this is never shows in `member`, and AD refuses
    # both to add it and to remove it; only then is the fast path refused, so only then is it
    # looked for.
    primary: frozenset[str] = frozenset()
    if not applied and target.flavour == "ad":
        primary = groups.primary_group_members(conn, group_dn)
    if not applied and not _change_carefully(
        conn, target, group_dn, wanted, users, ops, outcome, primary, sam_names
    ):
        return  # the group is missing and may not be created: the ops' errors say so
    if isinstance(read_back, _NotSent):
        after = (groups.read_members(conn, group_dn) or set()) | primary
    else:
        after = read_back or set()
    for op in ops:
        uid = op.directory_uid
        dn = users.get(uid)
        if op.operation == "add_member" and uid in missing_adds:
            outcome.errors[op.id] = f"no entry for uid {uid!r} under {target.users_base}"
        elif (
            wanted[uid] == op.operation == "remove_member"
            and dn is not None
            and groups.norm(dn) in primary
        ):
            # Never reported done while the account keeps the group: it stays in the outbox
            # (retried, then failed) until an administrator changes its primary group.
            outcome.errors[op.id] = primary_group_message(uid, dn, group_dn)
        elif wanted[uid] == op.operation == "remove_member" and dn is None:
            # Not found is not removed: the account may hold the group under another DN.
            outcome.errors[op.id] = not_found_message(uid, target.users_base, "removed")
        elif wanted[uid] != op.operation:
            outcome.done[op.id] = dn  # superseded by a newer operation for the same user
        elif (op.operation == "add_member") == (dn is not None and groups.norm(dn) in after):
            outcome.done[op.id] = dn  # present after an add, absent after a remove
        else:
            outcome.errors[op.id] = f"read-back of {group_dn} does not show the change for {uid!r}"


def _change_carefully(
    conn: ldap3.Connection,
    target: DirectoryTarget,
    group_dn: str,
    wanted: dict[str, str],
    users: dict[str, str],
    ops: list[_Op],
    outcome: _Outcome,
    primary: frozenset[str] = frozenset(),
    sam_names: dict[str, str] | None = None,
) -> bool:
    """Read the group and send only what differs, creating the group if it is missing.
    False (with the ops' errors recorded) when the group is missing and may not be created.
    `primary` (AD): accounts in the group through their primaryGroupID, which are members
    already and which no modify can remove."""
    members = groups.read_members(conn, group_dn)
    if members is None:
        if not target.create_groups:
            for op in ops:
                outcome.errors[op.id] = (
                    f"group {group_dn} does not exist and this target does not create groups"
                )
            return False
        adds = [
            users[uid]
            for uid, operation in wanted.items()
            if operation == "add_member" and uid in users
        ]
        sam = (sam_names or {}).get(groups.norm(group_dn)) if target.flavour == "ad" else None
        groups.create_group(
            conn,
            group_dn,
            target.groups_base,
            target.flavour,
            adds,
            sam=sam,
            group_type=target.ad_group_type,
        )
        return True
    present = members | primary
    to_add = [
        users[u]
        for u, o in wanted.items()
        if o == "add_member" and u in users and groups.norm(users[u]) not in present
    ]
    to_remove = [
        users[u]
        for u, o in wanted.items()
        if o == "remove_member" and u in users and groups.norm(users[u]) in members
    ]
    if (
        target.flavour == "openldap"
        and to_remove
        and not to_add
        and members <= {groups.norm(dn) for dn in to_remove}
    ):
        # A groupOfNames made by hand has no placeholder and refuses to lose its last
        # member: the placeholder comes in with the same modify.
        to_add = [naming.placeholder_dn(target.groups_base)]
    groups.change_members(conn, group_dn, to_add, to_remove)
    return True


def _disable(
    conn: ldap3.Connection,
    target: DirectoryTarget,
    op: _Op,
    users: dict[str, str],
    outcome: _Outcome,
    now: datetime,
) -> None:
    dn = users.get(op.directory_uid)
    if dn is None:
        # Not found is not disabled: the account may live on outside the users base.
        outcome.errors[op.id] = not_found_message(op.directory_uid, target.users_base, "disabled")
        return
    try:
        groups.disable_account(conn, dn, target.flavour, now)
        if groups.is_disabled(conn, dn, target.flavour):
            outcome.done[op.id] = dn
        else:
            outcome.errors[op.id] = one_line(f"read-back of {dn} does not show it disabled")
    except (LDAPException, GovtuiError) as exc:
        # An unreadable userAccountControl is refused on this op only; the others go on.
        outcome.errors[op.id] = one_line(exc if isinstance(exc, GovtuiError) else f"{dn}: {exc}")


def not_found_message(uid: str, users_base: str, what: str) -> str:
    """Why a removal or disable is not done: neither its uid nor a recorded DN resolved."""
    return f"account for uid {uid!r} not found under {users_base}; not {what}"


def _entry_exists(conn: ldap3.Connection, dn: str) -> bool:
    try:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
    except (LDAPNoSuchObjectResult, LDAPInvalidDNSyntaxResult):
        return False
    return bool(conn.response)


def _recorded_dns(session: Session, due: list[_Op]) -> dict[int, dict[str, str]]:
    """target id → uid → the user DN of the newest confirmed add for that uid on that
    target, for the uids of due removals and disables (kept on the op for evidence)."""
    uids = sorted({op.directory_uid for op in due if op.operation != "add_member"})
    found: dict[int, dict[str, str]] = defaultdict(dict)
    for start in range(0, len(uids), 500):
        for target_id, uid, dn in session.execute(
            sa.select(_OUTBOX.c.target_id, _OUTBOX.c.directory_uid, _OUTBOX.c.user_dn)
            .where(
                _OUTBOX.c.operation == "add_member",
                _OUTBOX.c.state == "done",
                _OUTBOX.c.user_dn.is_not(None),
                _OUTBOX.c.directory_uid.in_(uids[start : start + 500]),
            )
            .order_by(_OUTBOX.c.id)
        ):
            found[target_id][uid] = dn
    return found


def primary_group_message(uid: str, user_dn: str, group_dn: str) -> str:
    """Why govtui cannot remove an AD account from its primary group, and what to do."""
    return (
        f"{uid!r} ({user_dn}) is in {group_dn} as its primary group (primaryGroupID), which"
        " govtui cannot remove: an AD administrator must change the user's primary group"
        " (e.g. to Domain Users: Active Directory Users and Computers > the user > Member Of >"
        " Set Primary Group, or `Set-ADUser -Replace @{primaryGroupID=513}`), then run"
        " `govtui sync`"
    )


def _record(
    engine: Engine,
    due: list[_Op],
    targets: dict[int, DirectoryTarget],
    outcome: _Outcome,
    now: datetime,
    report: SyncReport,
) -> None:
    with write_session(engine) as session:
        if outcome.done:
            _mark_done(session, outcome.done, now)
            report.done = len(outcome.done)
        retries: list[dict[str, object]] = []
        failures: list[dict[str, object]] = []
        for op in due:
            error = outcome.errors.get(op.id)
            if error is None:
                continue
            attempts = op.attempts + 1
            row = {
                "op_id": op.id,
                "error": one_line(error, ERROR_LENGTH),
                "attempts": attempts,
                # A failed removal keeps its place in the schedule: retried at the capped
                # backoff until it succeeds or reconcile shows it unnecessary.
                "next": now + backoff(attempts),
            }
            (failures if attempts >= targets[op.target_id].max_attempts else retries).append(row)
        for rows, state in ((retries, "pending"), (failures, "failed")):
            if rows:
                session.execute(
                    sa.update(_OUTBOX)
                    # An op superseded or cancelled while this run talked to the directory
                    # stays closed: only still open ops take the outcome.
                    .where(
                        _OUTBOX.c.id == sa.bindparam("op_id"),
                        # Not IN (...): an expanding list cannot go into an executemany.
                        sa.or_(_OUTBOX.c.state == "pending", _OUTBOX.c.state == "failed"),
                    )
                    .values(
                        state=state,
                        last_error=sa.bindparam("error"),
                        attempts=sa.bindparam("attempts"),
                        next_attempt_at=sa.bindparam("next"),
                    ),
                    rows,
                )
        report.retrying, report.failed = len(retries), len(failures)


def record_absent_removals(
    engine: Engine, target_id: int, up_to_id: int, absent: Callable[[str, str], bool]
) -> int:
    """Record what a reconcile read of the directory showed: the open removals (queued at or
    before op `up_to_id`) whose member is not in its group are superseded
    (outbox.supersede_absent_removals). Like a sync's outcome, written as no operator, in a
    short transaction after the directory was read."""
    with write_session(engine) as session:
        return outbox.supersede_absent_removals(session, target_id, up_to_id, absent)


def _mark_done(session: Session, done: dict[int, str | None], now: datetime) -> None:
    """Mark ops done (if still open: pending, or a failed one retried), with the user DN each
    one found.

    One executemany on the driver: Core's executemany spends more per row on parameter
    handling than SQLite spends on the update itself, and a large sync marks tens of
    thousands of rows. Only the timestamp needs the column type's conversion, done once."""
    connection = session.connection()
    # The placeholders of the drivers govtui supports: sqlite3, and psycopg for PostgreSQL.
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[connection.dialect.paramstyle]
    done_at = UTCDateTime().process_bind_param(now, connection.dialect)
    connection.exec_driver_sql(
        f"UPDATE {_OUTBOX.name} SET state = 'done', done_at = {mark}, user_dn = {mark},"
        f" attempts = attempts + 1 WHERE id = {mark} AND state IN ('pending', 'failed')",
        [(done_at, dn, op_id) for op_id, dn in done.items()],
    )

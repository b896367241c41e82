#!/usr/bin/env python3
"""The body of scripts/bench_sync (run that, it starts slapd and the Secret Service).

Builds 1,000 contractors and 100 scopes whose groups hold 100 contractors each (10,000 active
grants), expires them all (10,000 removals queued), and times `govtui sync` end to end
against `ldapmodify` applying the minimal LDIF (one modify per group) to the same directory
reset to the same state.

Each side runs --rounds times, alternating which goes first, each run from the same
directory state (and govtui from the same copy of its database): on a shared machine one run
of either can be off by seconds, and a fixed order would favour whichever side runs on the
warmer server. The ratio reported is the median of the per-round ratios (the two runs of a
round are minutes apart at most, so they share the machine's load); every sample is printed."""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import ldap3

from govtui import db, migrations
from govtui.services import grants

# The checkout, for the bulk builder the tests use (tests/factories.py): one copy of it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import factories

URL = os.environ["GOVTUI_TEST_LDAP_URL"]
BASE = os.environ["GOVTUI_TEST_LDAP_BASE"]
ADMIN = os.environ["GOVTUI_TEST_LDAP_ADMIN_DN"]
PASSWORD = os.environ["GOVTUI_TEST_LDAP_ADMIN_PASSWORD"]
PEOPLE, GROUPS = f"ou=people,{BASE}", f"ou=groups,{BASE}"


def _ldap() -> ldap3.Connection:
    return ldap3.Connection(
        ldap3.Server(URL), ADMIN, PASSWORD, auto_bind=True, raise_exceptions=True
    )


def build(url: str, users: int, scopes: int, per_group: int) -> dict[str, list[str]]:
    """tests/factories.py's bulk vendor: one client, `scopes` scopes each held by `per_group`
    contractors whose grants expired yesterday; the membership each group starts with."""
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    vendor = factories.bulk_vendor(
        engine,
        admin="bench",
        scopes=[factories.Scope(f"lab/p/s{s:03d}") for s in range(scopes)],
        contractors=users,
        external_id="U{i:05d}",
        name="User {i}",
        email="u{i}@x.example",
        uid="u{i:05d}",
        source="bench",
        target={
            "name": "corp",
            "url": URL,
            "insecure_plaintext": True,  # the benchmark's own slapd on loopback
            "bind_dn": ADMIN,
            "users_base": PEOPLE,
            "groups_base": GROUPS,
            "password": PASSWORD,
        },
    )
    wanted = factories.window(users, vendor.scopes, per_group)
    vendor.grant(
        wanted,
        started=timedelta(days=3),
        expires_in=timedelta(days=-1),
        requested_days=30,
        reason="bench",
    )
    members = factories.by_group(wanted, lambda g: f"cn=lab-p-{g.scope.name}-read,{GROUPS}")
    engine.dispose()
    return {group: [f"uid=u{i:05d},{PEOPLE}" for i in people] for group, people in members.items()}


def load_directory(membership: dict[str, list[str]], users: int) -> None:
    conn = _ldap()
    for i in range(users):
        conn.add(
            f"uid=u{i:05d},{PEOPLE}",
            ["inetOrgPerson"],
            {"uid": f"u{i:05d}", "cn": f"u{i}", "sn": "x"},
        )
    for group, members in membership.items():
        conn.add(
            group,
            ["groupOfNames"],
            {"member": [f"cn=govtui-empty-group-placeholder,{GROUPS}", *members]},
        )
    conn.unbind()


def reset(membership: dict[str, list[str]]) -> None:
    conn = _ldap()
    for group, members in membership.items():
        conn.modify(
            group,
            {
                "member": [
                    (
                        ldap3.MODIFY_REPLACE,
                        [f"cn=govtui-empty-group-placeholder,{GROUPS}", *members],
                    )
                ]
            },
        )
    conn.unbind()


def write_ldif(membership: dict[str, list[str]], work: Path) -> Path:
    """The minimal LDIF: one modify per group deleting exactly its contractors."""
    ldif = work / "removals.ldif"
    with open(ldif, "w") as out:
        for group, members in membership.items():
            out.write(f"dn: {group}\nchangetype: modify\ndelete: member\n")
            out.writelines(f"member: {m}\n" for m in members)
            out.write("-\n\n")
    return ldif


def floor(ldif: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["ldapmodify", "-x", "-H", URL, "-D", ADMIN, "-w", PASSWORD, "-f", str(ldif)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def govtui_sync(url: str) -> float:
    start = time.perf_counter()
    subprocess.run(["govtui", "--db", url, "sync"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, WAL included (the backup API, not a file copy)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def memberships_left(membership: dict[str, list[str]]) -> int:
    """Contractor members still in the bench's groups (the placeholder does not count)."""
    conn = _ldap()
    left = 0
    for group in membership:
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        members = conn.response[0]["attributes"].get("member") or []
        left += sum(1 for m in members if m.lower().startswith("uid="))
    conn.unbind()
    return left


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--per-group", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ours: list[float] = []
    floors: list[float] = []  # floors[i] and ours[i] ran in the same round
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db_file, queued_file = work / "bench.db", work / "queued.db"
        url = f"sqlite:///{db_file}"
        membership = build(url, args.users, args.groups, args.per_group)
        load_directory(membership, args.users)
        removals = sum(len(m) for m in membership.values())
        engine = db.make_engine(url)
        with db.write_session(engine) as session:
            queued = len(grants.expire_due(session, actor_name="bench"))
        engine.dispose()
        copy_database(db_file, queued_file)
        ldif = write_ldif(membership, work)
        for round_ in range(args.rounds):
            sides = ["floor", "govtui"] if round_ % 2 == 0 else ["govtui", "floor"]
            for side in sides:
                # Every run starts from the loaded state: every membership present.
                reset(membership)
                if memberships_left(membership) != removals:
                    raise SystemExit("reset did not restore every membership")
                if side == "floor":
                    floors.append(floor(ldif))
                else:
                    copy_database(queued_file, db_file)
                    ours.append(govtui_sync(url))
                left = memberships_left(membership)
                if left:
                    raise SystemExit(f"{side}: {left} contractor memberships left after the run")
    ratios = [o / f for o, f in zip(ours, floors, strict=True)]
    print(
        f"directory sync, {removals:,} member removals over {len(membership)} groups"
        f" ({queued:,} grants expired), {args.rounds} rounds"
    )
    print(f"  govtui sync (end to end)   median {statistics.median(ours):5.2f} s  {_samples(ours)}")
    print(
        f"  ldapmodify, minimal LDIF   median {statistics.median(floors):5.2f} s  {_samples(floors)}"
    )
    print(f"  ratio in each round                      {_samples(ratios)}")
    print(
        f"  ratio {statistics.median(ratios):.2f}x, the median of the rounds' (target at most 1.5x);"
        " every run left 0 contractor memberships"
    )


def _samples(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


if __name__ == "__main__":
    main()

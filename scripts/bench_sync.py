#!/usr/bin/env python3
"""The body of scripts/bench_sync (run that, it starts slapd and the Secret Service).

Builds 1,000 contractors and 100 scopes whose groups hold 100 contractors each (10,000 active
grants), expires them all (10,000 removals queued), and times `govtui sync` end to end
against `ldapmodify` applying the minimal LDIF (one modify per group) to the same directory
reset to the same state."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import ldap3
import sqlalchemy as sa

from govtui import clock, db, migrations
from govtui.models import Grant
from govtui.services import catalog, contractor_import, directory_targets, grants, operators

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
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    with db.write_session(engine) as session:
        admin = operators.add(session, None, name="bench", roles=["admin", "requester"])
        catalog.add_client(session, admin, name="lab")
        catalog.add_project(session, admin, path="lab/p")
        for s in range(scopes):
            catalog.add_scope(session, admin, path=f"lab/p/s{s:03d}", sensitivity="internal")
        rows = [
            contractor_import.ImportRow(
                f"u{i}", f"U{i:05d}", f"User {i}", f"u{i}@x.example", f"u{i:05d}", date(2030, 1, 1)
            )
            for i in range(users)
        ]
        contractor_import.apply(session, admin, rows, source="bench", sha256="-")
        directory_targets.add(
            session,
            admin,
            name="corp",
            url=URL,
            bind_dn=ADMIN,
            users_base=PEOPLE,
            groups_base=GROUPS,
            password=PASSWORD,
        )
    now = clock.now()
    membership: dict[str, list[str]] = {}
    with db.write_session(engine) as session:
        scope_ids = {v.name: v.id for v in catalog.list_scopes(session)}
        contractor_ids = dict(
            session.execute(sa.text("SELECT external_id, id FROM contractor")).all()
        )
        values = []
        for s in range(scopes):
            group = f"cn=lab-p-s{s:03d}-read,{GROUPS}"
            members = [(s * per_group + k) % users for k in range(per_group)]
            membership[group] = [f"uid=u{i:05d},{PEOPLE}" for i in members]
            values += [
                {
                    "contractor_id": contractor_ids[f"U{i:05d}"],
                    "scope_id": scope_ids[f"s{s:03d}"],
                    "access": "read",
                    "state": "active",
                    "reason": "bench",
                    "requested_by": 1,
                    "requested_days": 30,
                    "requested_at": now - timedelta(days=3),
                    "starts_at": now - timedelta(days=3),
                    "expires_at": now - timedelta(days=1),
                }
                for i in members
            ]
        session.execute(sa.insert(Grant), values)
    engine.dispose()
    return membership


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


def floor(membership: dict[str, list[str]], work: Path) -> float:
    ldif = work / "removals.ldif"
    with open(ldif, "w") as out:
        for group, members in membership.items():
            out.write(f"dn: {group}\nchangetype: modify\ndelete: member\n")
            out.writelines(f"member: {m}\n" for m in members)
            out.write("-\n\n")
    start = time.perf_counter()
    subprocess.run(
        ["ldapmodify", "-x", "-H", URL, "-D", ADMIN, "-w", PASSWORD, "-f", str(ldif)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--per-group", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        membership = build(url, args.users, args.groups, args.per_group)
        load_directory(membership, args.users)
        removals = sum(len(m) for m in membership.values())
        floor_seconds = floor(membership, work)
        reset(membership)
        engine = db.make_engine(url)
        with db.write_session(engine) as session:
            queued = len(grants.expire_due(session, actor_name="bench"))
        engine.dispose()
        start = time.perf_counter()
        subprocess.run(["govtui", "--db", url, "sync"], check=True)
        ours = time.perf_counter() - start
        conn = _ldap()
        left = sum(
            len(conn.entries)
            for _ in [conn.search(GROUPS, "(member=uid=*)", attributes=["member"])]
        )
        conn.unbind()
    print(
        f"directory sync, {removals:,} member removals over {len(membership)} groups ({queued:,} grants expired)"
    )
    print(f"  govtui sync (end to end)   {ours:6.2f} s")
    print(f"  ldapmodify, minimal LDIF   {floor_seconds:6.2f} s")
    print(
        f"  ratio {ours / floor_seconds:.2f}x (target at most 1.5x); contractor memberships left: {left}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The body of scripts/bench_sync (run that: it starts slapd, or with --flavour ad the Samba AD
DC, and the Secret Service).

Builds 1,000 contractors and 100 scopes whose groups hold 100 contractors each (10,000 active
grants), expires them all (10,000 removals queued), and times `govtui sync` end to end
against `ldapmodify` applying the minimal LDIF (one modify per group) to the same directory
reset to the same state.

Each side runs --rounds times, alternating which goes first, each run from the same
directory state (and govtui from the same copy of its database): on a shared machine one run
of either can be off by seconds, and a fixed order would favour whichever side runs on the
warmer server. The ratio reported is the median of the per-round ratios (the two runs of a
round are minutes apart at most, so they share the machine's load); every sample is printed,
with the machine's load average before and after.

--flavour ad runs the same against the Samba AD DC of scripts/lib/samba_ad.sh. The wrapper
runs this whole script inside the DC's network namespace, so govtui and ldapmodify both reach
the DC at ldaps://dc1.<realm> (the name its certificate carries, resolved there through
/etc/netns/<ns>/hosts) and both validate its certificate against the DC's CA, with no port
forwarder between either of them and the server. Users are CN=u<i> with sAMAccountName u<i>;
groups start with their members and no placeholder (AD groups may be empty)."""

from __future__ import annotations

import argparse
import os
import pstats
import secrets
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import ldap3

from govtui import db, migrations
from govtui.services import grants

# The checkout, for the bulk builder the tests use (tests/factories.py): one copy of it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import factories


@dataclass(frozen=True)
class Directory:
    """The server one run measures against, and how each side reaches it."""

    flavour: str
    url: str
    admin: str
    password: str
    password_file: str  # what ldapmodify reads it from (-y): never on its command line
    people: str
    groups: str
    ca_file: str | None = None

    @property
    def placeholder(self) -> list[str]:
        """What a bench group keeps besides its contractors (groupOfNames needs a member)."""
        return [] if self.flavour == "ad" else [f"cn=govtui-empty-group-placeholder,{self.groups}"]

    def user_dn(self, i: int) -> str:
        return (
            f"CN=u{i:05d},{self.people}" if self.flavour == "ad" else f"uid=u{i:05d},{self.people}"
        )

    def connect(self) -> ldap3.Connection:
        tls = None
        if self.ca_file:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
        server = ldap3.Server(self.url, tls=tls, get_info=ldap3.NONE)
        return ldap3.Connection(
            server, self.admin, self.password, auto_bind=True, raise_exceptions=True
        )

    def ldapmodify_env(self) -> dict[str, str]:
        if not self.ca_file:
            return dict(os.environ)
        # The certificate is checked as govtui checks it: against the DC's CA, name included.
        return {**os.environ, "LDAPTLS_CACERT": self.ca_file, "LDAPTLS_REQCERT": "demand"}


def openldap() -> Directory:
    base = os.environ["GOVTUI_TEST_LDAP_BASE"]
    return Directory(
        flavour="openldap",
        url=os.environ["GOVTUI_TEST_LDAP_URL"],
        admin=os.environ["GOVTUI_TEST_LDAP_ADMIN_DN"],
        password=os.environ["GOVTUI_TEST_LDAP_ADMIN_PASSWORD"],
        password_file=os.environ["GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE"],
        people=f"ou=people,{base}",
        groups=f"ou=groups,{base}",
    )


def active_directory() -> Directory:
    """A fresh OU of the test DC (the DC itself is thrown away with the run)."""
    url = os.environ.get("GOVTUI_TEST_AD_NETNS_URL")
    if not url:
        raise SystemExit("bench: no GOVTUI_TEST_AD_NETNS_URL: run scripts/bench_sync --flavour ad")
    bench = f"OU=bench{secrets.token_hex(4)},{os.environ['GOVTUI_TEST_AD_BASE']}"
    found = Directory(
        flavour="ad",
        url=url,
        admin=os.environ["GOVTUI_TEST_AD_ADMIN_DN"],
        password=os.environ["GOVTUI_TEST_AD_ADMIN_PASSWORD"],
        password_file=os.environ["GOVTUI_TEST_AD_ADMIN_PASSWORD_FILE"],
        people=f"OU=people,{bench}",
        groups=f"OU=groups,{bench}",
        ca_file=os.environ["GOVTUI_TEST_AD_CA"],
    )
    conn = found.connect()
    for ou in (bench, found.people, found.groups):
        conn.add(ou, ["organizationalUnit"])
    conn.unbind()
    return found


def build(
    url: str, where: Directory, users: int, scopes: int, per_group: int
) -> dict[str, list[str]]:
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
            "url": where.url,
            "bind_dn": where.admin,
            "users_base": where.people,
            "groups_base": where.groups,
            "password": where.password,
            "flavour": where.flavour,
            # The AD DC over LDAPS, its certificate checked; the benchmark's own slapd on
            # loopback in plain LDAP, which govtui accepts only when told.
            **({"ca_file": where.ca_file} if where.ca_file else {"insecure_plaintext": True}),
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
    members = factories.by_group(wanted, lambda g: f"cn=lab-p-{g.scope.name}-read,{where.groups}")
    engine.dispose()
    return {group: [where.user_dn(i) for i in people] for group, people in members.items()}


def load_directory(where: Directory, membership: dict[str, list[str]], users: int) -> float:
    """The users and the groups with their members; returns the seconds it took."""
    start = time.perf_counter()
    conn = where.connect()
    for i in range(users):
        if where.flavour == "ad":
            # A user without a password: AD creates it disabled, which membership ignores.
            conn.add(where.user_dn(i), ["user"], {"sAMAccountName": f"u{i:05d}"})
        else:
            conn.add(
                where.user_dn(i),
                ["inetOrgPerson"],
                {"uid": f"u{i:05d}", "cn": f"u{i}", "sn": "x"},
            )
    for group, members in membership.items():
        if where.flavour == "ad":
            name = group.split(",", 1)[0].split("=", 1)[1]
            conn.add(group, ["group"], {"sAMAccountName": name, "member": members})
        else:
            conn.add(group, ["groupOfNames"], {"member": [*where.placeholder, *members]})
    conn.unbind()
    return time.perf_counter() - start


def reset(where: Directory, membership: dict[str, list[str]]) -> None:
    conn = where.connect()
    for group, members in membership.items():
        conn.modify(group, {"member": [(ldap3.MODIFY_REPLACE, [*where.placeholder, *members])]})
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


def floor(where: Directory, ldif: Path) -> float:
    command = ["ldapmodify", "-x", "-H", where.url, "-D", where.admin, "-y", where.password_file]
    start = time.perf_counter()
    subprocess.run(
        [*command, "-f", str(ldif)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=where.ldapmodify_env(),
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


def memberships_left(where: Directory, membership: dict[str, list[str]]) -> int:
    """Contractor members still in the bench's groups (the placeholder does not count)."""
    conn = where.connect()
    people = where.people.lower()
    left = 0
    for group in membership:
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        members = conn.response[0]["attributes"].get("member") or []
        left += sum(1 for m in members if m.lower().endswith(people))
    conn.unbind()
    return left


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--per-group", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flavour", choices=["openldap", "ad"], default="openldap")
    parser.add_argument(
        "--profile", action="store_true", help="then profile one more govtui sync (stderr)"
    )
    args = parser.parse_args()
    load_before = _load()
    where = active_directory() if args.flavour == "ad" else openldap()
    ours: list[float] = []
    floors: list[float] = []  # floors[i] and ours[i] ran in the same round
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db_file, queued_file = work / "bench.db", work / "queued.db"
        url = f"sqlite:///{db_file}"
        membership = build(url, where, args.users, args.groups, args.per_group)
        loaded = load_directory(where, membership, args.users)
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
                reset(where, membership)
                if memberships_left(where, membership) != removals:
                    raise SystemExit("reset did not restore every membership")
                if side == "floor":
                    floors.append(floor(where, ldif))
                else:
                    copy_database(queued_file, db_file)
                    ours.append(govtui_sync(url))
                left = memberships_left(where, membership)
                if left:
                    raise SystemExit(f"{side}: {left} contractor memberships left after the run")
        if args.profile:
            # Once more, outside the measured rounds, under cProfile (imports included).
            reset(where, membership)
            copy_database(queued_file, db_file)
            profile = work / "sync.prof"
            command = ["-m", "cProfile", "-o", str(profile), "-m", "govtui", "--db", url, "sync"]
            subprocess.run(
                [sys.executable, *command],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            pstats.Stats(str(profile), stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    ratios = [o / f for o, f in zip(ours, floors, strict=True)]
    print(
        f"directory sync ({where.flavour}, {where.url}), {removals:,} member removals over"
        f" {len(membership)} groups ({queued:,} grants expired), {args.rounds} rounds;"
        f" {args.users:,} users and the groups loaded in {loaded:.1f} s"
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
    print(f"  {load_before} before, {_load()} after")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _samples(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


if __name__ == "__main__":
    main()

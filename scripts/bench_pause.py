#!/usr/bin/env python3
"""The body of scripts/bench_pause (run that: it starts slapd and the Secret Service).

Builds a vendor of 20,000 contractors, 3 clients, 300 scopes and 100,000 active grants (the
largest client holding half), with its users and groups (populated to match the grants) in the
private slapd, then pauses the largest client and resumes it. Each govtui step runs in a child
process of its own and reports its time and its peak memory (ru_maxrss; this launcher stays
small, so the figure is the step's own). Each is set against a floor measured in the same run,
over --rounds alternating rounds (the floor first in even rounds, govtui in odd ones), every
run of either side from the same reset state; the ratio reported is the median of the rounds'
ratios, and every sample is printed (one run of either side on a shared machine can be off by
a second, and a fixed order would favour whichever side runs on the warmer server):

- the pause (resume) transaction against the same row changes made the best raw way on a copy
  of the same database: sqlite3, one transaction of INSERT ... SELECT and set-based UPDATEs;
- time to directory confirmed (sync until every removal, or addition, of the pause, or resume,
  is confirmed) against `ldapmodify` applying the minimal LDIF for the same changes, one modify
  per group, to the same directory state (slapd's database is copied and put back in between).

Targets: transaction at most 2x its floor, directory at most 1.5x its floor. Not a test.
`--profile` prints, for each govtui step, a cProfile listing and the time of each kind of SQL
statement on stderr."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The launcher imports the standard library only (govtui is imported by the children), so
# that the peak memory a child inherits from it at spawn is small.

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("GOVTUI_TEST_LDAP_URL", "")
BASE = os.environ.get("GOVTUI_TEST_LDAP_BASE", "")
ADMIN = os.environ.get("GOVTUI_TEST_LDAP_ADMIN_DN", "")
PASSWORD = os.environ.get("GOVTUI_TEST_LDAP_ADMIN_PASSWORD", "")
# ldapmodify reads it from this file: never on a command line, which ps shows to every login.
PASSWORD_FILE = os.environ.get("GOVTUI_TEST_LDAP_ADMIN_PASSWORD_FILE", "")
PEOPLE, GROUPS = f"ou=people,{BASE}", f"ou=groups,{BASE}"
PLACEHOLDER = f"cn=govtui-empty-group-placeholder,{GROUPS}"  # govtui.directory.naming's
TEMPLATE = "cn={client}-{project}-{scope}-{access}"  # a target's default group template
CLIENTS = {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}  # each one's share of scopes and grants
PAUSED = "alpha"
PROJECTS = 5  # per client
ACCESS = (("read", 5), ("label", 4), ("write", 1))
STEP_TIMEOUT = 600.0
SLAPD_TIMEOUT = 30.0


def uid(i: int) -> str:
    return f"u{i:05d}"


def user_dn(i: int) -> str:
    return f"uid={uid(i)},{PEOPLE}"


# --- the children: govtui's own steps --------------------------------------------------------


def build(work: Path, contractors: int, scopes: int, grants: int, seed: int) -> dict[str, Any]:
    """The database (tests/factories.py's bulk vendor: services for the catalogue, the
    contractors and the target; one bulk insert for the grants), an enrolled approver (the
    secret in the keyring only, read from there by the resume), and the LDIF files."""
    from datetime import timedelta

    from govtui import db, migrations
    from govtui.directory import naming

    sys.path.insert(0, str(ROOT))  # the bulk builder the tests use (see tests/factories.py)
    from tests import factories

    rng = random.Random(seed)
    engine = db.make_engine(f"sqlite:///{work / 'bench.db'}")
    migrations.upgrade(engine)
    vendor = factories.bulk_vendor(
        engine,
        admin="bench",
        scopes=[
            factories.Scope(f"{client}/p{s % PROJECTS}/s{s:03d}")
            for client, share in CLIENTS.items()
            for s in range(round(scopes * share))
        ],
        ops=[factories.Op("ann", ("approver",), tuple(CLIENTS), enrol=True)],
        contractors=contractors,
        uid=uid,
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
    members: dict[str, dict[str, list[int]]] = {}
    for client, share in CLIENTS.items():
        wanted = factories.spread(
            rng, contractors, vendor.scopes_of(client), round(grants * share), ACCESS
        )
        vendor.grant(
            wanted, expires_in=timedelta(days=60), started=timedelta(days=3), reason="bench"
        )
        members[client] = factories.by_group(
            wanted,
            lambda g: naming.group_dn(
                TEMPLATE,
                GROUPS,
                client=g.scope.client,
                project=g.scope.project,
                scope=g.scope.name,
                access=g.access,
            ),
        )
    engine.dispose()
    _write_ldif(work, contractors, members)
    paused = members[PAUSED]
    (work / "paused-groups.json").write_text(json.dumps(paused))
    return {"removals": sum(len(m) for m in paused.values()), "groups": len(paused)}


def _write_ldif(work: Path, contractors: int, members: dict[str, dict[str, list[int]]]) -> None:
    """load.ldif for slapadd (with the memberOf values the overlay keeps, since slapadd runs
    no overlay), and the minimal LDIF of the pause's removals and of the resume's additions."""
    groups_of: dict[int, list[str]] = defaultdict(list)
    for by_group in members.values():
        for group, people in by_group.items():
            for i in people:
                groups_of[i].append(group)
    with open(work / "load.ldif", "w") as out:
        for i in range(contractors):
            out.write(
                f"dn: {user_dn(i)}\nobjectClass: inetOrgPerson\nuid: {uid(i)}\n"
                f"cn: Person {i}\nsn: {i}\n"
            )
            out.writelines(f"memberOf: {group}\n" for group in groups_of[i])
            out.write("\n")
        for by_group in members.values():
            for group, people in by_group.items():
                out.write(f"dn: {group}\nobjectClass: groupOfNames\nmember: {PLACEHOLDER}\n")
                out.writelines(f"member: {user_dn(i)}\n" for i in people)
                out.write("\n")
    for name, change in (("remove.ldif", "delete"), ("add.ldif", "add")):
        with open(work / name, "w") as out:
            for group, people in members[PAUSED].items():
                out.write(f"dn: {group}\nchangetype: modify\n{change}: member\n")
                out.writelines(f"member: {user_dn(i)}\n" for i in people)
                out.write("-\n\n")


def govtui_step(step: str, work: Path, profile: bool) -> dict[str, Any]:
    """One govtui step, timed from just before to just after it (imports excluded)."""
    import cProfile
    import pstats

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from govtui import db, migrations
    from govtui.security import secrets, totp
    from govtui.services import operators, pause, pause_views, second_factor, sync

    engine = db.make_engine(f"sqlite:///{work / 'bench.db'}")
    migrations.require_current(engine)
    statements: dict[str, float] = defaultdict(float)
    if profile:

        @event.listens_for(Engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(Engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            statements[" ".join(sql.split()[:4])] += (
                time.perf_counter() - conn.info["bench_started"]
            )

    profiler = cProfile.Profile() if profile else None
    report: dict[str, Any] = {}
    code = None
    if step == "resume":
        with db.read_session(engine) as session:
            secret = secrets.load(second_factor.secret_key(session, "ann"))
        assert secret is not None
        code = totp.code_for_step(secret, totp.step_of(datetime.now(UTC)))
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    if step == "pause":
        with db.write_session(engine) as session:
            actor = operators.find(session, "bench")
            paused = pause.pause(session, actor, client=PAUSED, reason="the lab called")
        report.update(grants=paused.suspended_active, ops=paused.directory_ops)
    elif step == "resume":
        assert code is not None
        with db.write_session(engine) as session:
            actor = operators.find(session, "ann")
            resumed = pause.resume(session, actor, client=PAUSED, code=code)
        report.update(grants=resumed.restored_active, ops=resumed.directory_ops)
    else:  # sync until the directory has confirmed every operation of the pause (resume)
        rounds = 0
        while True:
            rounds += 1
            done = sync.run_once(engine)
            with db.read_session(engine) as session:
                state = pause_views.status(session, PAUSED)
            followed = state.removals if step == "sync-pause" else state.additions
            assert followed is not None
            if followed.complete:
                break
            if done.done == 0:
                raise SystemExit(f"bench: no progress: {followed.in_words()} {done.errors}")
        report.update(rounds=rounds, confirmed=followed.confirmed)
    report["seconds"] = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        print(f"SQL statements of the {step} step, by kind:", file=sys.stderr)
        for sql, seconds in sorted(statements.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {seconds:7.3f} s  {sql}", file=sys.stderr)
    report["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    return report


def check_directory(work: Path, present: bool) -> dict[str, Any]:
    """Every group of the paused client holds its contractors (present) or only the
    placeholder (not present)."""
    import ldap3

    groups: dict[str, list[int]] = json.loads((work / "paused-groups.json").read_text())
    conn = ldap3.Connection(
        ldap3.Server(URL), ADMIN, PASSWORD, auto_bind=True, raise_exceptions=True
    )
    wrong = []
    for group, people in groups.items():
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        found = {m.lower() for m in conn.response[0]["attributes"].get("member", [])}
        expected = {PLACEHOLDER.lower(), *(user_dn(i).lower() for i in people if present)}
        if found != expected:
            wrong.append(group)
    conn.unbind()
    if wrong:
        raise SystemExit(f"bench: {len(wrong)} groups are not as expected, e.g. {wrong[0]}")
    return {"groups": len(groups)}


def run_child(step: str, work: Path, *extra: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", step, "--work", str(work), *extra]
    done = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, timeout=STEP_TIMEOUT)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the floors ------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    """As govtui connects: WAL, full sync, foreign keys."""
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


GROUP_DN = "'cn=' || c.name || '-' || p.name || '-' || s.name || '-' || g.access || ',' || :base"
OPS_OF_PAUSE = (
    "INSERT INTO outbox_op (target_id, grant_id, pause_id, operation, group_dn,"
    " directory_uid, state, attempts, next_attempt_at, created_at) "
    f"SELECT 1, g.id, :pause_id, :operation, {GROUP_DN}, k.directory_uid,"
    " 'pending', 0, :now, :now "
    "FROM paused_grant pg JOIN access_grant g ON g.id = pg.grant_id"
    " JOIN contractor k ON k.id = g.contractor_id"
    " JOIN dataset_scope s ON s.id = g.scope_id JOIN project p ON p.id = s.project_id"
    " JOIN client c ON c.id = p.client_id "
    "WHERE pg.pause_id = :pause_id AND pg.prior_state = 'active' AND g.state = :state"
)


def floor_pause(path: Path) -> dict[str, Any]:
    """The pause's row changes, the best raw way: one transaction, set-based statements."""
    connection = _connect(path)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    params: dict[str, Any] = {"client": PAUSED, "now": now, "base": GROUPS}
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    (params["client_id"],) = connection.execute(
        "SELECT id FROM client WHERE name = :client", params
    ).fetchone()
    connection.execute("UPDATE client SET status = 'paused' WHERE id = :client_id", params)
    params["pause_id"] = connection.execute(
        "INSERT INTO client_pause (client_id, reason, paused_by, paused_at) "
        "VALUES (:client_id, 'the lab called', 1, :now)",
        params,
    ).lastrowid
    connection.execute(
        "INSERT INTO paused_grant (pause_id, grant_id, prior_state) "
        "SELECT :pause_id, g.id, g.state FROM access_grant g "
        "WHERE g.state IN ('active', 'requested') AND g.scope_id IN ("
        " SELECT s.id FROM dataset_scope s JOIN project p ON p.id = s.project_id"
        " WHERE p.client_id = :client_id)",
        params,
    )
    grants = connection.execute(
        "UPDATE access_grant SET state = 'suspended' "
        "WHERE id IN (SELECT grant_id FROM paused_grant WHERE pause_id = :pause_id)",
        params,
    ).rowcount
    ops = connection.execute(
        OPS_OF_PAUSE, {**params, "operation": "remove_member", "state": "suspended"}
    ).rowcount
    _audit(connection, now, "client.pause", {"pause_id": params["pause_id"], "count": grants})
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return {"seconds": seconds, "grants": grants, "ops": ops}


def floor_resume(path: Path) -> dict[str, Any]:
    """The resume's row changes, raw: restore what the pause suspended and has not expired,
    queue the additions, close the pause."""
    connection = _connect(path)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    params: dict[str, Any] = {"now": now, "base": GROUPS, "client": PAUSED}
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    params["client_id"], params["pause_id"] = connection.execute(
        "SELECT c.id, cp.id FROM client c JOIN client_pause cp ON cp.client_id = c.id "
        "WHERE c.name = :client AND cp.resumed_at IS NULL",
        params,
    ).fetchone()
    grants = connection.execute(
        "UPDATE access_grant SET state = pg.prior_state FROM paused_grant pg "
        "WHERE pg.grant_id = access_grant.id AND pg.pause_id = :pause_id"
        " AND access_grant.state = 'suspended'"
        " AND (pg.prior_state = 'requested' OR access_grant.expires_at > :now)",
        params,
    ).rowcount
    ops = connection.execute(
        OPS_OF_PAUSE, {**params, "operation": "add_member", "state": "active"}
    ).rowcount
    connection.execute(
        "UPDATE client_pause SET resumed_at = :now, resumed_by = 2 WHERE id = :pause_id", params
    )
    connection.execute("UPDATE client SET status = 'active' WHERE id = :client_id", params)
    _audit(connection, now, "client.resume", {"pause_id": params["pause_id"], "count": grants})
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return {"seconds": seconds, "grants": grants, "ops": ops}


def _audit(connection: sqlite3.Connection, now: str, action: str, details: Any) -> None:
    """One hash-chained audit event, as govtui.services.audit links it."""
    seq, prev = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    text = json.dumps(details, sort_keys=True, separators=(",", ":"))
    at = datetime.fromisoformat(now).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "seq": seq + 1,
        "at": at,
        "actor": "bench",
        "action": action,
        "object": f"client:{PAUSED}",
        "details": text,
        "prev_hash": prev,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    connection.execute(
        "INSERT INTO audit_event (seq, at, actor, action, object, details, prev_hash, hash) "
        "VALUES (?, ?, 'bench', ?, ?, ?, ?, ?)",
        (seq + 1, now, action, f"client:{PAUSED}", text, prev, digest.hexdigest()),
    )
    connection.execute(
        "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq + 1, digest.hexdigest())
    )


def same_ops(ours: Path, floor: Path, operation: str) -> bool:
    """Whether both databases queued the same operations (grant, group, uid)."""
    query = (
        "SELECT grant_id, group_dn, directory_uid FROM outbox_op WHERE operation = ? "
        "ORDER BY grant_id, group_dn"
    )
    found = []
    for path in (ours, floor):
        connection = sqlite3.connect(path)
        found.append(connection.execute(query, (operation,)).fetchall())
        connection.close()
    return found[0] == found[1]


def ldapmodify(ldif: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["ldapmodify", "-x", "-H", URL, "-D", ADMIN, "-y", PASSWORD_FILE, "-f", str(ldif)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=STEP_TIMEOUT,
    )
    return time.perf_counter() - start


# --- the private slapd: stopped, copied and started again between the measurements ----------


class Slapd:
    """The slapd of scripts/lib/slapd.sh, by its config file."""

    def __init__(self, work: Path) -> None:
        self.conf = Path(os.environ["GOVTUI_TEST_SLAPD_CONF"])
        settings = dict(
            line.split(None, 1) for line in self.conf.read_text().splitlines() if " " in line
        )
        self.pidfile = Path(settings["pidfile"].strip())
        self.data = Path(settings["directory"].strip())
        self.work = work

    def stop(self) -> None:
        pid = int(self.pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + SLAPD_TIMEOUT
        while not _gone(pid):
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: slapd {pid} does not stop")
            time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)

    def start(self) -> None:
        subprocess.run(["slapd", "-f", str(self.conf), "-h", f"{URL}/", "-s", "0"], check=True)
        deadline = time.monotonic() + SLAPD_TIMEOUT
        while (
            subprocess.run(
                ["ldapsearch", "-x", "-H", URL, "-b", "", "-s", "base"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise SystemExit("bench: slapd does not answer")
            time.sleep(0.05)

    def load(self, ldif: Path) -> float:
        """slapadd the LDIF into the stopped server (seconds instead of minutes of ldapadd)."""
        self.stop()
        start = time.perf_counter()
        subprocess.run(["slapadd", "-q", "-f", str(self.conf), "-l", str(ldif)], check=True)
        seconds = time.perf_counter() - start
        self.start()
        return seconds

    def save(self, name: str) -> None:
        self.stop()
        shutil.copytree(self.data, self.work / name)
        self.start()

    def restore(self, name: str) -> None:
        self.stop()
        shutil.rmtree(self.data)
        shutil.copytree(self.work / name, self.data)
        self.start()


def _gone(pid: int) -> bool:
    """Whether pid has exited (a zombie counts: nobody may reap slapd in a container)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


# --- the run ---------------------------------------------------------------------------------


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


class Comparison:
    """govtui against its floor over alternating rounds, each run from the same reset state;
    the ratio reported is the median of the rounds' ratios (the two runs of one round are
    seconds apart, so they share the machine's load)."""

    def __init__(self, label: str, floor_label: str, target: float) -> None:
        self.label, self.floor_label, self.target = label, floor_label, target
        self.ours: list[float] = []
        self.floors: list[float] = []

    @property
    def ratios(self) -> list[float]:
        return [o / f for o, f in zip(self.ours, self.floors, strict=True)]

    def line(self) -> str:
        ratio = statistics.median(self.ratios)
        verdict = "ok" if ratio <= self.target else "MISSED"
        return (
            f"  {self.label:<20} govtui median {statistics.median(self.ours):6.2f} s "
            f"{_samples(self.ours)}\n"
            f"  {'':<20} {self.floor_label:<10} median {statistics.median(self.floors):6.2f} s "
            f"{_samples(self.floors)}\n"
            f"  {'':<20} ratio {ratio:4.2f}x, median of the rounds' {_samples(self.ratios)} "
            f"(target at most {self.target}x: {verdict})"
        )


def _samples(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def alternate(rounds: int, ours: Any, floor: Any, into: Comparison) -> None:
    """Run both sides `rounds` times, the floor first in even rounds, govtui first in odd."""
    for round_ in range(rounds):
        sides = (floor, ours) if round_ % 2 == 0 else (ours, floor)
        for side in sides:
            seconds = side()
            (into.floors if side is floor else into.ours).append(seconds)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contractors", type=int, default=20_000)
    parser.add_argument("--scopes", type=int, default=300)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per step")
    parser.add_argument("--profile", action="store_true", help="profile each govtui step")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        report = build(args.work, args.contractors, args.scopes, args.grants, args.seed)
        print(json.dumps(report))
        return
    if args.child in ("present", "absent"):
        print(json.dumps(check_directory(args.work, args.child == "present")))
        return
    if args.child:
        print(json.dumps(govtui_step(args.child, args.work, args.profile)))
        return
    if not URL:
        raise SystemExit("bench: no directory: run scripts/bench_pause, which starts slapd")
    profile = ["--profile"] if args.profile else []
    rounds = args.rounds
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        slapd = Slapd(work)
        started = time.perf_counter()
        sizes = [f"--{k}={getattr(args, k)}" for k in ("contractors", "scopes", "grants", "seed")]
        built = run_child("build", work, *sizes)
        build_seconds = time.perf_counter() - started
        load = slapd.load(work / "load.ldif")
        slapd.save("initial")
        n = built["removals"]
        print(
            f"vendor: {args.contractors:,} contractors, {len(CLIENTS)} clients, {args.scopes} "
            f"scopes, {args.grants:,} active grants; {PAUSED} holds {n:,} of them in "
            f"{built['groups']} groups (built in {build_seconds:.1f} s, "
            f"slapadd {load:.1f} s); {rounds} alternating rounds per step; {load_before}",
            flush=True,
        )
        bench, floor_db = work / "bench.db", work / "floor.db"
        copy_database(bench, work / "start.db")
        peak: dict[str, float] = defaultdict(float)

        def ours(step: str, db_state: str, checked: str | None = None) -> Any:
            def run() -> float:
                copy_database(work / db_state, bench)
                report = run_child(step, work, *profile)
                if step in ("pause", "resume"):
                    assert (report["grants"], report["ops"]) == (n, n), report
                peak[step] = max(peak[step], report["maxrss_mb"])
                if checked:
                    run_child(checked, work)
                return float(report["seconds"])

            return run

        def raw(step: Any, db_state: str) -> Any:
            def run() -> float:
                copy_database(work / db_state, floor_db)
                report = step(floor_db)
                assert (report["grants"], report["ops"]) == (n, n), report
                return float(report["seconds"])

            return run

        def checked(seconds: float, which: str) -> float:
            run_child(which, work)  # the floor's run left the directory as expected
            return seconds

        def directory(slapd_state: str, body: Any) -> Any:
            def run() -> float:
                slapd.restore(slapd_state)  # every run from the same directory state
                return float(body())

            return run

        # Pause: the transaction, then the directory, each from the same state for both.
        pause_tx = Comparison("transaction", "raw SQL", 2)
        alternate(rounds, ours("pause", "start.db"), raw(floor_pause, "start.db"), pause_tx)
        print(f"pause of {PAUSED}: {n:,} grants suspended, {n:,} directory removals")
        print(pause_tx.line(), flush=True)  # each result as it comes: a later step may fail
        assert same_ops(bench, floor_db, "remove_member")
        copy_database(bench, work / "pause-queued.db")
        copy_database(floor_db, work / "floor-paused.db")
        pause_dir = Comparison("directory confirmed", "ldapmodify", 1.5)
        alternate(
            rounds,
            directory("initial", ours("sync-pause", "pause-queued.db", "absent")),
            directory("initial", lambda: checked(ldapmodify(work / "remove.ldif"), "absent")),
            pause_dir,
        )
        print(pause_dir.line(), flush=True)
        # Whichever side ran last, the directory now holds the pause's removals and govtui's
        # database has them confirmed (a floor run touches neither database).
        slapd.save("paused")
        copy_database(bench, work / "paused.db")

        # Resume (an approver's code), then the directory from the same state for both.
        resume_tx = Comparison("transaction", "raw SQL", 2)
        alternate(
            rounds, ours("resume", "paused.db"), raw(floor_resume, "floor-paused.db"), resume_tx
        )
        print(f"resume of {PAUSED}: {n:,} grants restored, {n:,} directory additions")
        print(resume_tx.line(), flush=True)
        assert same_ops(bench, floor_db, "add_member")
        copy_database(bench, work / "resume-queued.db")
        resume_dir = Comparison("directory confirmed", "ldapmodify", 1.5)
        alternate(
            rounds,
            directory("paused", ours("sync-resume", "resume-queued.db", "present")),
            directory("paused", lambda: checked(ldapmodify(work / "add.ldif"), "present")),
            resume_dir,
        )
        print(resume_dir.line(), flush=True)
        total = time.perf_counter() - started

    print(
        "peak memory (ru_maxrss, the largest of the rounds): "
        f"pause {peak['pause']:.0f} MB, its sync {peak['sync-pause']:.0f} MB, "
        f"resume {peak['resume']:.0f} MB, its sync {peak['sync-resume']:.0f} MB "
        f"(this launcher: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB); "
        f"whole run {total:.0f} s; before: {load_before}; after: {_load()}"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The body of scripts/bench_review (run that: it starts slapd and the Secret Service).

Builds bench_pause's vendor (20,000 contractors, 3 clients, 300 scopes, 100,000 active grants,
the largest client, alpha, holding half; its users and groups in the private slapd, populated
to match), one reviewer of alpha (enrolled, her TOTP secret in the keyring only), then runs an
access review over alpha's 50,000 grants:

(a) start the campaign (the population frozen, every item assigned);
(b) decide all of it in batches of --batch items (default 5,000: what one reviewer marks in a
    sitting under one filter, e.g. one project's grants at one access level, and answers with
    one TOTP code), alternately keep (each batch with its own code, a fresh TOTP step each)
    and revoke, over a seeded shuffle of the items, so that half are kept and half revoked
    and every group loses about half of its members;
(c) close it: 25,000 revocations through the grant lifecycle, their removals queued;
(d) follow the directory until every removal is read back and the campaign is closed.

Each govtui step runs in a child process of its own and reports its time and its peak memory
(ru_maxrss). Each is set against a floor measured in the same run, over --rounds alternating
rounds (the floor first in even rounds, govtui in odd ones), every run of either side from the
same reset state (a copy of the same database file; slapd's database copied back); the ratio
reported is the median of the rounds' ratios, with every sample:

- start: the INSERT ... SELECT of the items and the campaign row (with its digest of the
  sorted grant ids), its reviewer row and one audit event, raw sqlite3 in one transaction;
- decide: per batch, one transaction of the UPDATE of its items (plus the TOTP step mark of a
  keep batch) and one audit event;
- close: the UPDATE of the revoked grants, the INSERT ... SELECT of their outbox rows, the
  UPDATE of every item's outcome and of the campaign, one audit event;
- directory confirmed: `ldapmodify` applying the minimal LDIF (one modify per group deleting
  exactly the revoked members) to the same directory state.

Targets: each transaction step at most 2x its floor, the directory at most 1.5x. Exits 1 when a
target is missed (after printing every figure), 2 when something is broken. Not a test.
`--profile` prints, for each govtui step, a cProfile listing and the time of each kind of SQL
statement on stderr."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# bench_pause's world, slapd handling, copies, comparisons and floors' helpers: one copy of each.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pause as bp

ROOT = bp.ROOT
CLIENT = bp.PAUSED  # the largest client: half of the grants
CAMPAIGN = "alpha-2026-h2"
REVIEWER = "rita"
ADMIN = "root"  # tests/factories.py's ADMIN: its enrolment of the reviewer is allowed by that name
KEEP_REASON = "still on the alpha labelling project"
REVOKE_REASON = "no longer on the alpha project"
STEP_TIMEOUT = 1800.0
TRANSACTION_TARGET = 2.0
DIRECTORY_TARGET = 1.5


# --- the world -------------------------------------------------------------------------------


def build(work: Path, contractors: int, scopes: int, grants: int, seed: int) -> dict[str, Any]:
    """bench_pause's vendor plus one enrolled reviewer of the largest client; load.ldif."""
    from datetime import timedelta

    from govtui import db, migrations
    from govtui.directory import naming
    from govtui.services import operators

    sys.path.insert(0, str(ROOT))
    from tests import factories

    rng = random.Random(seed)
    engine = db.make_engine(f"sqlite:///{work / 'bench.db'}")
    migrations.upgrade(engine)
    vendor = factories.bulk_vendor(
        engine,
        admin=ADMIN,
        scopes=[
            factories.Scope(f"{client}/p{s % bp.PROJECTS}/s{s:03d}")
            for client, share in bp.CLIENTS.items()
            for s in range(round(scopes * share))
        ],
        contractors=contractors,
        uid=bp.uid,
        source="bench",
        target={
            "name": "corp",
            "url": bp.URL,
            "insecure_plaintext": True,  # the benchmark's own slapd on loopback
            "bind_dn": bp.ADMIN,
            "users_base": bp.PEOPLE,
            "groups_base": bp.GROUPS,
            "password": bp.PASSWORD,
        },
    )
    # The bootstrap admin enrols while still the only operator (bulk_vendor's own `ops`
    # enrolment skips that step and fails), then allows the reviewer's enrolment.
    factories.enroll(engine, factories.ADMIN)
    with db.write_session(engine) as session:
        root = operators.find(session, factories.ADMIN)
        reviewer = factories.Op(REVIEWER, ("reviewer",), enrol=True, reviews=(CLIENT,))
        factories.add_ops(session, root, [reviewer])
    factories.enroll(engine, REVIEWER)
    members: dict[str, dict[str, list[int]]] = {}
    for client, share in bp.CLIENTS.items():
        wanted = factories.spread(
            rng, contractors, vendor.scopes_of(client), round(grants * share), bp.ACCESS
        )
        vendor.grant(
            wanted, expires_in=timedelta(days=60), started=timedelta(days=3), reason="bench"
        )
        members[client] = factories.by_group(
            wanted,
            lambda g: naming.group_dn(
                bp.TEMPLATE,
                bp.GROUPS,
                client=g.scope.client,
                project=g.scope.project,
                scope=g.scope.name,
                access=g.access,
            ),
        )
    engine.dispose()
    bp._write_ldif(work, contractors, members)
    return {"population": sum(len(m) for m in members[CLIENT].values())}


def plan(work: Path, batch: int, seed: int) -> dict[str, Any]:
    """The decisions (which grants in which batch, keep or revoke), the minimal LDIF of the
    revocations and the membership alpha's groups must end with; from the built database."""
    connection = sqlite3.connect(work / "bench.db")
    rows = connection.execute(
        f"SELECT g.id, {bp.GROUP_DN}, k.directory_uid FROM access_grant g"
        " JOIN contractor k ON k.id = g.contractor_id"
        " JOIN dataset_scope s ON s.id = g.scope_id JOIN project p ON p.id = s.project_id"
        " JOIN client c ON c.id = p.client_id "
        "WHERE c.name = :client AND g.state = 'active' ORDER BY g.id",
        {"client": CLIENT, "base": bp.GROUPS},
    ).fetchall()
    connection.close()
    ids = [r[0] for r in rows]
    random.Random(seed).shuffle(ids)
    batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]
    decisions = ["keep" if k % 2 == 0 else "revoke" for k in range(len(batches))]
    revoked = {g for b, d in zip(batches, decisions, strict=True) if d == "revoke" for g in b}
    removals: dict[str, list[str]] = defaultdict(list)
    kept: dict[str, list[str]] = defaultdict(list)
    for grant_id, group, directory_uid in rows:
        dn = f"uid={directory_uid},{bp.PEOPLE}"
        (removals if grant_id in revoked else kept)[group].append(dn)
    with open(work / "revoke.ldif", "w") as out:
        for group in sorted(removals):
            out.write(f"dn: {group}\nchangetype: modify\ndelete: member\n")
            out.writelines(f"member: {dn}\n" for dn in removals[group])
            out.write("-\n\n")
    expected = {group: kept.get(group, []) for group in {*removals, *kept}}
    (work / "expected-groups.json").write_text(json.dumps(expected))
    found = {"batches": batches, "decisions": decisions, "revoked": len(revoked)}
    (work / "plan.json").write_text(json.dumps(found))
    return {
        "population": len(ids),
        "batches": len(batches),
        "revoked": len(revoked),
        "groups": len(expected),
        "groups_changed": len(removals),
    }


# --- the children: govtui's own steps --------------------------------------------------------


def govtui_step(step: str, work: Path, profile: bool) -> dict[str, Any]:
    """One govtui step through the Workspace (as the CLI and TUI call it), timed from just
    before to just after it (imports and the keyring read of the codes' secret excluded)."""
    import cProfile
    import inspect
    import pstats

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from govtui import clock, db, migrations
    from govtui.security import secrets, totp
    from govtui.services import review_close, review_decisions, reviews, second_factor
    from govtui.services.workspace import Workspace
    from govtui.vocabulary import ReviewDecision

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

    report: dict[str, Any] = {}
    admin, reviewer = Workspace(engine, ADMIN), Workspace(engine, REVIEWER)
    batches: list[list[int]] = []
    decisions: list[str] = []
    secret = ""
    if step == "decide":
        decided = json.loads((work / "plan.json").read_text())
        connection = sqlite3.connect(work / "bench.db")
        item_of = dict(connection.execute("SELECT grant_id, id FROM review_item").fetchall())
        connection.close()
        # The items a reviewer marks are item ids (the TUI's marks, `review decide ITEM ...`).
        batches = [sorted(item_of[g] for g in b) for b in decided["batches"]]
        decisions = decided["decisions"]
        with db.read_session(engine) as session:
            loaded = secrets.load(second_factor.secret_key(session, REVIEWER))
        assert loaded is not None
        secret = loaded
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    if step == "start":
        spec = reviews.CampaignSpec(
            name=CAMPAIGN,
            client=CLIENT,
            reviewers=(REVIEWER,),
            due_at=clock.now() + timedelta(days=14),
            if_no_answer="keep",
        )
        started = admin.act(reviews.start, spec=spec)
        report.update(items=started.item_count)
    elif step == "decide":
        decided_items = 0
        keeps = 0
        for items, decision in zip(batches, decisions, strict=True):
            code = None
            if decision == "keep":
                # A fresh TOTP step for each keep batch (a code is accepted once): the clock
                # moves on by a step per code, as the reviewer's next code would come later.
                keeps += 1
                shift = timedelta(seconds=totp.STEP_SECONDS * keeps)
                clock.set_source(lambda shift=shift: datetime.now(UTC) + shift)
                code = totp.code_for_step(secret, totp.step_of(clock.now()))
            result = reviewer.act(
                review_decisions.decide,
                campaign=CAMPAIGN,
                selection=review_decisions.ItemSelection(item_ids=items),
                decision=ReviewDecision(decision),
                reason=KEEP_REASON if decision == "keep" else REVOKE_REASON,
                code=code,
            )
            decided_items += len(result.item_ids)
        report.update(items=decided_items, codes=keeps)
    elif step == "close":
        connection = sqlite3.connect(work / "bench.db")
        (revoking,) = connection.execute(
            "SELECT count(*) FROM review_item WHERE decision = 'revoke'"
        ).fetchone()
        connection.close()
        closed = admin.act(review_close.close, campaign=CAMPAIGN, confirm_count=revoking)
        report.update(grants=len(closed.revoked), ops=closed.directory_ops)
    else:  # follow the directory until every removal is confirmed and the campaign closed
        # follow takes the Workspace (it settles, which writes) or, as first drafted, the Engine.
        first = next(iter(inspect.signature(review_close.follow).parameters.values()))
        by: Any = admin if "Workspace" in str(first.annotation) else engine
        state = review_close.follow(by, CAMPAIGN)
        if not state.complete:
            raise SystemExit(f"bench: follow stopped short: {state.in_words()}")
        report.update(confirmed=state.confirmed)
    report["seconds"] = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
        print(f"SQL statements of the {step} step, by kind:", file=sys.stderr)
        for sql, seconds in sorted(statements.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {seconds:7.3f} s  {sql}", file=sys.stderr)
    report["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    return report


def check_directory(work: Path) -> dict[str, Any]:
    """Every group of the reviewed client holds exactly its kept members (and the placeholder)."""
    import ldap3

    groups: dict[str, list[str]] = json.loads((work / "expected-groups.json").read_text())
    conn = ldap3.Connection(
        ldap3.Server(bp.URL), bp.ADMIN, bp.PASSWORD, auto_bind=True, raise_exceptions=True
    )
    wrong = []
    for group, people in groups.items():
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        found = {m.lower() for m in conn.response[0]["attributes"].get("member", [])}
        if found != {bp.PLACEHOLDER.lower(), *(dn.lower() for dn in people)}:
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


# --- the floors: the same row changes, raw sqlite3, as bench_pause's -------------------------


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _ids(values: list[int]) -> str:
    """A list of ids as one parameter (json_each): no statement with 5,000 placeholders."""
    return json.dumps(values)


def floor_start(path: Path) -> dict[str, Any]:
    connection = bp._connect(path)
    now = _now()
    params: dict[str, Any] = {"client": CLIENT, "reviewer": REVIEWER, "now": now}
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    (params["client_id"],) = connection.execute(
        "SELECT id FROM client WHERE name = :client", params
    ).fetchone()
    (params["reviewer_id"],) = connection.execute(
        "SELECT id FROM operator WHERE name = :reviewer", params
    ).fetchone()
    population = (
        "FROM access_grant g WHERE g.state IN ('active', 'suspended') AND g.scope_id IN ("
        " SELECT s.id FROM dataset_scope s JOIN project p ON p.id = s.project_id"
        " WHERE p.client_id = :client_id)"
    )
    ids = [r[0] for r in connection.execute(f"SELECT g.id {population} ORDER BY g.id", params)]
    params["sha"] = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    params["count"] = len(ids)
    params["campaign_id"] = connection.execute(
        "INSERT INTO review_campaign (name, client_id, due_at, if_no_answer, state, item_count,"
        " population_sha256, created_by, created_at) "
        "VALUES (:name, :client_id, :now, 'keep', 'open', :count, :sha, 1, :now)",
        {**params, "name": CAMPAIGN},
    ).lastrowid
    connection.execute(
        "INSERT INTO review_reviewer (campaign_id, position, operator_id) "
        "VALUES (:campaign_id, 0, :reviewer_id)",
        params,
    )
    items = connection.execute(
        "INSERT INTO review_item (campaign_id, grant_id, reviewer_id) "
        f"SELECT :campaign_id, g.id, :reviewer_id {population}",
        params,
    ).rowcount
    bp._audit(connection, now, "review.start", {"item_count": items, "sha": params["sha"]})
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return {"seconds": seconds, "items": items}


def floor_decide(path: Path) -> dict[str, Any]:
    decided = json.loads((path.parent / "plan.json").read_text())
    connection = bp._connect(path)
    item_of = dict(connection.execute("SELECT grant_id, id FROM review_item").fetchall())
    batches = [sorted(item_of[g] for g in b) for b in decided["batches"]]
    (reviewer_id,) = connection.execute(
        "SELECT id FROM operator WHERE name = ?", (REVIEWER,)
    ).fetchone()
    step = int(time.time()) // 30
    items = 0
    start = time.perf_counter()
    for k, (batch, decision) in enumerate(zip(batches, decided["decisions"], strict=True)):
        now = _now()
        connection.execute("BEGIN IMMEDIATE")
        totp_step = None
        if decision == "keep":
            totp_step = step + k
            connection.execute(
                "UPDATE operator SET totp_last_step = ?, totp_failures = 0 WHERE id = ?",
                (totp_step, reviewer_id),
            )
        items += connection.execute(
            "UPDATE review_item SET decision = :decision, reason = :reason, decided_by = :by,"
            " decided_at = :now, totp_step = :step "
            "WHERE id IN (SELECT value FROM json_each(:ids))",
            {
                "decision": decision,
                "reason": KEEP_REASON if decision == "keep" else REVOKE_REASON,
                "by": reviewer_id,
                "now": now,
                "step": totp_step,
                "ids": _ids(batch),
            },
        ).rowcount
        digest = hashlib.sha256(",".join(map(str, batch)).encode()).hexdigest()
        bp._audit(connection, now, "review.decide", {"decision": decision, "sha": digest})
        connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return {"seconds": seconds, "items": items}


def floor_close(path: Path) -> dict[str, Any]:
    connection = bp._connect(path)
    now = _now()
    params: dict[str, Any] = {"now": now, "base": bp.GROUPS, "name": CAMPAIGN}
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    (params["campaign_id"],) = connection.execute(
        "SELECT id FROM review_campaign WHERE name = :name", params
    ).fetchone()
    revoking = (
        "SELECT grant_id FROM review_item WHERE campaign_id = :campaign_id AND decision = 'revoke'"
    )
    grants = connection.execute(
        "UPDATE access_grant SET state = 'revoked', ended_at = :now, ended_by = 1,"
        " end_reason = 'access review' "
        f"WHERE id IN ({revoking}) AND state IN ('active', 'suspended')",
        params,
    ).rowcount
    ops = connection.execute(
        "INSERT INTO outbox_op (target_id, grant_id, review_campaign_id, operation, group_dn,"
        " directory_uid, state, attempts, next_attempt_at, created_at) "
        f"SELECT 1, g.id, :campaign_id, 'remove_member', {bp.GROUP_DN}, k.directory_uid,"
        " 'pending', 0, :now, :now "
        "FROM review_item i JOIN access_grant g ON g.id = i.grant_id"
        " JOIN contractor k ON k.id = g.contractor_id"
        " JOIN dataset_scope s ON s.id = g.scope_id JOIN project p ON p.id = s.project_id"
        " JOIN client c ON c.id = p.client_id "
        "WHERE i.campaign_id = :campaign_id AND i.decision = 'revoke' AND g.state = 'revoked'",
        params,
    ).rowcount
    connection.execute(
        "UPDATE review_item SET outcome = CASE decision WHEN 'revoke' THEN 'revoked'"
        " WHEN 'keep' THEN 'kept' ELSE 'no_answer_kept' END WHERE campaign_id = :campaign_id",
        params,
    )
    connection.execute(
        "UPDATE review_campaign SET state = 'closing', close_started_by = 1,"
        " close_started_at = :now WHERE id = :campaign_id",
        params,
    )
    bp._audit(connection, now, "review.close", {"revoked": grants})
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return {"seconds": seconds, "grants": grants, "ops": ops}


def copy_state(source: Path, target: Path) -> None:
    """A database and its audit checkpoint (the chain head kept beside the file, which govtui
    compares before every write): a copy without it, or with a newer one, is refused."""
    bp.copy_database(source, target)
    head, target_head = Path(f"{source}.audit-head"), Path(f"{target}.audit-head")
    target_head.unlink(missing_ok=True)
    if head.exists():
        shutil.copy2(head, target_head)


def same_grants(ours: Path, floor: Path) -> bool:
    """Whether both databases ended the same grants, to the same state."""
    query = "SELECT id, state FROM access_grant WHERE state <> 'active' ORDER BY id"
    found = []
    for path in (ours, floor):
        connection = sqlite3.connect(path)
        found.append(connection.execute(query).fetchall())
        connection.close()
    return found[0] == found[1]


def campaign_state(path: Path) -> str:
    connection = sqlite3.connect(path)
    (state,) = connection.execute(
        "SELECT state FROM review_campaign WHERE name = ?", (CAMPAIGN,)
    ).fetchone()
    connection.close()
    return str(state)


# --- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contractors", type=int, default=20_000)
    parser.add_argument("--scopes", type=int, default=300)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000, help="items per decide batch")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per step")
    parser.add_argument("--profile", action="store_true", help="profile each govtui step")
    parser.add_argument(
        "--until",
        choices=["start", "decide", "close", "directory"],
        default="directory",
        help="stop after this step (a quick look at the first ones)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        print(json.dumps(build(args.work, args.contractors, args.scopes, args.grants, args.seed)))
        return
    if args.child == "check":
        print(json.dumps(check_directory(args.work)))
        return
    if args.child:
        print(json.dumps(govtui_step(args.child, args.work, args.profile)))
        return
    if not bp.URL:
        raise SystemExit("bench: no directory: run scripts/bench_review, which starts slapd")
    if args.rounds < 1 or args.batch < 1:
        raise SystemExit("bench: --rounds and --batch must be at least 1")
    try:
        missed = run(args)
    except (subprocess.CalledProcessError, AssertionError, subprocess.TimeoutExpired) as e:
        print(f"bench: broken: {e!r}", file=sys.stderr)
        sys.exit(2)
    if missed:
        print(f"bench: target missed: {', '.join(missed)}", file=sys.stderr)
        sys.exit(1)


def run(args: argparse.Namespace) -> list[str]:
    """The whole benchmark; the names of the steps whose target was missed."""
    profile = ["--profile"] if args.profile else []
    rounds = args.rounds
    load_before = bp._load()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        slapd = bp.Slapd(work)
        started = time.perf_counter()
        sizes = [f"--{k}={getattr(args, k)}" for k in ("contractors", "scopes", "grants", "seed")]
        run_child("build", work, *sizes)
        build_seconds = time.perf_counter() - started
        load = slapd.load(work / "load.ldif")
        slapd.save("initial")
        planned = plan(work, args.batch, args.seed)
        n, revoked = planned["population"], planned["revoked"]
        print(
            f"vendor: {args.contractors:,} contractors, {len(bp.CLIENTS)} clients, "
            f"{args.scopes} scopes, {args.grants:,} active grants (built in "
            f"{build_seconds:.1f} s, slapadd {load:.1f} s); campaign over {CLIENT}'s {n:,} "
            f"grants in {planned['groups']} groups, decided in {planned['batches']} batches of "
            f"{args.batch:,} (keep, revoke, ... : {n - revoked:,} kept with "
            f"{(planned['batches'] + 1) // 2} TOTP codes, {revoked:,} revoked); "
            f"{rounds} alternating rounds per step; {load_before}",
            flush=True,
        )
        bench, floor_db = work / "bench.db", work / "floor.db"
        copy_state(bench, work / "world.db")
        peak: dict[str, float] = defaultdict(float)
        expect = {
            "start": {"items": n},
            "decide": {"items": n},
            "close": {"grants": revoked, "ops": revoked},
        }

        def ours(step: str, db_state: str, checked: bool = False) -> Any:
            def run_ours() -> float:
                copy_state(work / db_state, bench)
                report = run_child(step, work, *profile)
                for key, value in expect.get(step, {}).items():
                    assert report[key] == value, (step, report)
                peak[step] = max(peak[step], report["maxrss_mb"])
                if checked:
                    run_child("check", work)
                    assert campaign_state(bench) == "closed", campaign_state(bench)
                return float(report["seconds"])

            return run_ours

        def raw(step: Any, db_state: str, name: str) -> Any:
            def run_floor() -> float:
                copy_state(work / db_state, floor_db)
                report = step(floor_db)
                for key, value in expect[name].items():
                    assert report[key] == value, (name, report)
                return float(report["seconds"])

            return run_floor

        def directory(body: Any) -> Any:
            def run_directory() -> float:
                slapd.restore("initial")  # every run from the same directory state
                return float(body())

            return run_directory

        def floor_ldapmodify() -> float:
            seconds = bp.ldapmodify(work / "revoke.ldif")
            run_child("check", work)  # the floor left the directory as govtui must
            return seconds

        def after_start() -> None:
            copy_state(bench, work / "started.db")  # govtui's start, for both sides next

        def after_decide() -> None:
            copy_state(bench, work / "decided.db")

        def after_close() -> None:
            assert bp.same_ops(bench, floor_db, "remove_member"), "close queued other removals"
            assert same_grants(bench, floor_db), "close ended other grants"
            copy_state(bench, work / "closed.db")

        steps = [
            (
                "start",
                f"(a) start: {n:,} items frozen and assigned",
                bp.Comparison("transaction", "raw SQL", TRANSACTION_TARGET),
                ours("start", "world.db"),
                raw(floor_start, "world.db", "start"),
                after_start,
            ),
            (
                "decide",
                f"(b) decide: {n:,} items in {planned['batches']} batches of {args.batch:,}",
                bp.Comparison("transactions", "raw SQL", TRANSACTION_TARGET),
                ours("decide", "started.db"),
                raw(floor_decide, "started.db", "decide"),
                after_decide,
            ),
            (
                "close",
                f"(c) close: {revoked:,} grants revoked, {revoked:,} directory removals queued",
                bp.Comparison("transaction", "raw SQL", TRANSACTION_TARGET),
                ours("close", "decided.db"),
                raw(floor_close, "decided.db", "close"),
                after_close,
            ),
            (
                "directory",
                f"(d) directory: {revoked:,} removals confirmed, the campaign closed",
                bp.Comparison("directory confirmed", "ldapmodify", DIRECTORY_TARGET),
                directory(ours("follow", "closed.db", checked=True)),
                directory(floor_ldapmodify),
                lambda: None,
            ),
        ]
        results: list[tuple[str, bp.Comparison]] = []
        for name, header, comparison, govtui_side, floor_side, after in steps:
            print(header, flush=True)
            bp.alternate(rounds, govtui_side, floor_side, comparison)
            print(comparison.line(), flush=True)  # each result as it comes: a later step may fail
            results.append((name, comparison))
            after()
            if name == args.until:
                break
        total = time.perf_counter() - started

    print(
        "peak memory (ru_maxrss, the largest of the rounds): "
        + ", ".join(
            f"{step} {peak[step]:.0f} MB"
            for step in ("start", "decide", "close", "follow")
            if step in peak
        )
        + f" (this launcher: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB);"
        f" whole run {total:.0f} s; before: {load_before}; after: {bp._load()}"
    )
    return [
        name
        for name, comparison in results
        if statistics.median(comparison.ratios) > comparison.target
    ]


if __name__ == "__main__":
    main()

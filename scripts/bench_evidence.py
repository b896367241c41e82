#!/usr/bin/env python3
"""The body of scripts/bench_evidence (run that: it starts a private Secret Service for the
evidence key).

Builds a vendor of 20,000 contractors and one client with 40 scopes holding 100,000 active
grants (bulk insert, as tests/factories does), an access review over all of them (one
reviewer), every item decided revoke through review_decisions, the close applied (no
directory target, so it closes at once: 100,000 grants ended), and the evidence key made by
the admin. Then, each in a child process of its own, reports time and peak memory
(VmHWM, and the child's baseline after opening the database) of:

- export: `evidence export --campaign` of the 100,000-item campaign (population.csv,
  decisions.csv and remediation.csv of 100,000 rows each, the audit slice, the signed
  manifest), once per round (--rounds, 3): every pack must be byte-identical;
- verify: `evidence verify` of that pack (no database);
- export (client): the client's pack over the period holding the grants.

The campaign export is timed against the best plain way of the same work, in the same run:
one raw sqlite3 query per CSV (the same joins, rows and columns, times as stored), csv.writer
into a zipfile entry at the pack's deflate level, each member's SHA-256. Rounds alternate
(govtui first, then plain first, ...), each a fresh process over the same unchanged
database; the figures are the medians, and the ratio is govtui's median over plain's.

Prints one JSON object per step; exits 2 when something is broken (the packs differ, verify
fails), 1 when the campaign export's median misses the target (--target seconds). Not a
test."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENT = "acme"
REVIEWER = "rita"


def build(work: Path, contractors: int, scopes: int, grants: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from govtui import clock, db, migrations
    from govtui.services import evidence_keys, operators, review_close, review_decisions, reviews
    from govtui.services.workspace import Workspace
    from govtui.vocabulary import ReviewDecision
    from tests import factories

    rng = random.Random(seed)
    engine = db.make_engine(f"sqlite:///{work / 'bench.db'}")
    migrations.upgrade(engine)
    vendor = factories.bulk_vendor(
        engine,
        admin=factories.ADMIN,
        scopes=[factories.Scope(f"{CLIENT}/p{s % 4}/s{s:03d}") for s in range(scopes)],
        contractors=contractors,
        source="bench",
        target=None,
    )
    admin_secret = factories.enroll(engine, factories.ADMIN)
    with db.write_session(engine) as session:
        root = operators.find(session, factories.ADMIN)
        factories.add_ops(
            session, root, [factories.Op(REVIEWER, ("reviewer",), enrol=True, reviews=(CLIENT,))]
        )
    factories.enroll(engine, REVIEWER)
    wanted = factories.spread(rng, contractors, vendor.scopes_of(CLIENT), grants)
    vendor.grant(wanted, expires_in=timedelta(days=60), started=timedelta(days=3), reason="bench")
    admin = Workspace(engine, factories.ADMIN)
    started = admin.act(
        reviews.start,
        spec=reviews.CampaignSpec(
            name="q1",
            client=CLIENT,
            reviewers=(REVIEWER,),
            due_at=clock.now() + timedelta(days=14),
            if_no_answer="keep",
        ),
    )
    Workspace(engine, REVIEWER).act(
        review_decisions.decide,
        campaign="q1",
        selection=review_decisions.ItemSelection(all_mine=True),
        decision=ReviewDecision.REVOKE,
        reason="bench: contract over",
    )
    admin.act(review_close.close, campaign="q1", confirm_count=started.item_count)
    key = admin.act(evidence_keys.init_key, code=factories.code(admin_secret))
    engine.dispose()
    return {"items": started.item_count, "fingerprint": key.fingerprint}


# The plain way: the same rows and columns as the pack's CSVs, by one sqlite3 query each.
PLAIN = {
    "population.csv": """
        SELECT i.grant_id, i.id, c.external_id, c.name, c.directory_uid, cl.name, p.name,
               s.name, s.sensitivity, g.access,
               CASE WHEN EXISTS (SELECT 1 FROM paused_grant pg
                   JOIN client_pause cp ON cp.id = pg.pause_id
                   WHERE pg.grant_id = g.id AND cp.paused_at <= k.created_at
                   AND (cp.resumed_at IS NULL OR cp.resumed_at > k.created_at))
               THEN 'suspended' ELSE 'active' END,
               r.name
        FROM review_item i JOIN review_campaign k ON k.id = i.campaign_id
        JOIN access_grant g ON g.id = i.grant_id
        JOIN contractor c ON c.id = g.contractor_id JOIN dataset_scope s ON s.id = g.scope_id
        JOIN project p ON p.id = s.project_id JOIN client cl ON cl.id = p.client_id
        JOIN operator r ON r.id = coalesce(i.original_reviewer_id, i.reviewer_id)
        WHERE i.campaign_id = ? ORDER BY i.grant_id""",
    "decisions.csv": """
        SELECT k.name, i.id, i.grant_id, c.external_id, p.name, s.name, g.access, r.name,
               o.name, i.decision, i.shorten_days, i.reason, d.name, i.decided_at, i.outcome,
               q.name,
               (SELECT group_concat(a.name, ';') FROM approval x
                JOIN operator a ON a.id = x.approver_id
                WHERE x.grant_id = i.grant_id AND x.decided_at <= i.decided_at),
               CAST(julianday(i.decided_at) - julianday(g.starts_at) AS INTEGER),
               c.contract_end, NULL, k.close_started_at, NULL
        FROM review_item i JOIN review_campaign k ON k.id = i.campaign_id
        JOIN access_grant g ON g.id = i.grant_id JOIN contractor c ON c.id = g.contractor_id
        JOIN dataset_scope s ON s.id = g.scope_id JOIN project p ON p.id = s.project_id
        JOIN operator r ON r.id = i.reviewer_id JOIN operator q ON q.id = g.requested_by
        LEFT JOIN operator d ON d.id = i.decided_by
        LEFT JOIN operator o ON o.id = i.original_reviewer_id
        WHERE i.campaign_id = ? ORDER BY i.id""",
    "remediation.csv": """
        SELECT g.id, c.external_id, c.directory_uid, p.name, s.name, g.access, i.outcome,
               g.state, g.ended_at, g.end_reason, t.name, x.group_dn, x.state, x.done_at,
               x.last_error
        FROM review_item i JOIN access_grant g ON g.id = i.grant_id
        JOIN contractor c ON c.id = g.contractor_id JOIN dataset_scope s ON s.id = g.scope_id
        JOIN project p ON p.id = s.project_id
        LEFT JOIN outbox_op x ON x.grant_id = g.id AND x.review_campaign_id = i.campaign_id
            AND x.operation = 'remove_member'
        LEFT JOIN directory_target t ON t.id = x.target_id
        WHERE i.campaign_id = ? AND i.outcome IN ('revoked', 'no_answer_revoked')
        ORDER BY g.id""",
}


def plain(work: Path) -> dict[str, Any]:
    """The campaign's three CSVs the plain way (see PLAIN), zipped and hashed."""
    from govtui.services import evidence_pack

    began = time.perf_counter()
    db = sqlite3.connect(f"file:{work / 'bench.db'}?mode=ro", uri=True)
    (campaign_id,) = db.execute("SELECT id FROM review_campaign WHERE name = 'q1'").fetchone()
    rows = 0
    with zipfile.ZipFile(
        work / "plain.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=evidence_pack.LEVEL
    ) as zf:
        for name, query in PLAIN.items():
            with zf.open(name, "w") as raw:
                out = _Hashed(raw)
                writer = csv.writer(out, lineterminator="\n")
                cursor = db.execute(query, (campaign_id,))
                while batch := cursor.fetchmany(evidence_pack.WINDOW):
                    writer.writerows(batch)
                    rows += len(batch)
                out.close()
    db.close()
    return {"rows": rows, "seconds_inside": round(time.perf_counter() - began, 2)}


class _Hashed:
    """A text sink for csv.writer: UTF-8 into the zip entry by 64 KiB, hashed on the way."""

    def __init__(self, raw: Any) -> None:
        self._raw, self._sha, self._parts, self._size = raw, hashlib.sha256(), [], 0

    def write(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= 1 << 16:
            self.close()

    def close(self) -> None:
        data = "".join(self._parts).encode()
        self._raw.write(data)
        self._sha.update(data)
        self._parts, self._size = [], 0


def step(name: str, work: Path) -> dict[str, Any]:
    """One step, in this (child) process: its time and the memory it added."""
    sys.path.insert(0, str(ROOT))
    from govtui import clock, db
    from govtui.services import evidence_pack, evidence_verify
    from govtui.services.workspace import Workspace
    from tests import factories

    engine = db.make_engine(f"sqlite:///{work / 'bench.db'}")
    ws = Workspace(engine, factories.ADMIN)
    ws.read(lambda session: session.connection())  # the database opened: the baseline
    baseline = _hwm_kib()
    began = time.perf_counter()
    out: dict[str, Any] = {}
    if name.startswith("export-campaign"):
        written = evidence_pack.write(ws, work / f"{name}.zip", campaign="q1")
        out = {"sha256": written.sha256, "rows": written.pack.rows}
    elif name == "export-client":
        today = clock.now().date()
        written = evidence_pack.write(
            ws, work / f"{name}.zip", client=CLIENT, first=today - timedelta(days=30), last=today
        )
        out = {"sha256": written.sha256, "rows": written.pack.rows}
    elif name == "plain":
        out = plain(work)
    elif name == "verify":
        result = evidence_verify.verify(work / "export-campaign-1.zip")
        out = {"ok": result.ok, "problems": result.problems[:3]}
    elapsed = time.perf_counter() - began
    peak = _hwm_kib()
    size = (work / f"{name}.zip").stat().st_size if (work / f"{name}.zip").exists() else None
    return {
        "step": name,
        "seconds": round(elapsed, 2),
        "peak_rss_mib": round(peak / 1024, 1),
        "added_rss_mib": round((peak - baseline) / 1024, 1),
        "zip_bytes": size,
        **out,
    }


def _hwm_kib() -> int:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over
    from the parent through fork and exec, and the parent built the 100,000-grant database."""
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(name: str, work: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--step", name, "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(2)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contractors", type=int, default=20_000)
    parser.add_argument("--scopes", type=int, default=40)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--target", type=float, default=10.0, help="campaign export's median, seconds (10)"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.work)))
        return 0
    with tempfile.TemporaryDirectory(prefix="govtui-bench-evidence.") as folder:
        work = args.keep or Path(folder)
        began = time.perf_counter()
        built = build(work, args.contractors, args.scopes, args.grants, args.seed)
        print(
            json.dumps({"step": "build", "seconds": round(time.perf_counter() - began, 1), **built})
        )
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        for n in range(args.rounds):
            pair = ["govtui", "plain"] if n % 2 == 0 else ["plain", "govtui"]
            for who in pair:
                if who == "govtui":
                    ours.append(run_child(f"export-campaign-{len(ours) + 1}", work))
                    print(json.dumps(ours[-1]))
                else:
                    theirs.append(run_child("plain", work))
                    print(json.dumps(theirs[-1]))
        second = ours[1] if len(ours) > 1 else run_child("export-campaign-2", work)
        median = statistics.median(r["seconds"] for r in ours)
        base = statistics.median(r["seconds"] for r in theirs)
        summary = {
            "step": "campaign export, median of alternating rounds",
            "rounds": args.rounds,
            "govtui_seconds": median,
            "plain_seconds": base,
            "ratio": round(median / base, 2),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in ours),
            "added_rss_mib": max(r["added_rss_mib"] for r in ours),
            "target_seconds": args.target,
        }
        print(json.dumps(summary))
        checked = run_child("verify", work)
        print(json.dumps(checked))
        print(json.dumps(run_child("export-client", work)))
        if len({r["sha256"] for r in [*ours, second]}) != 1:
            print("BROKEN: two exports of the same data differ", file=sys.stderr)
            return 2
        if not checked["ok"]:
            print(f"BROKEN: the pack does not verify: {checked['problems']}", file=sys.stderr)
            return 2
        if median > args.target:
            print(f"SLOW: the campaign export took {median} s (target {args.target} s)")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

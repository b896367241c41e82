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
  manifest), twice: the two packs must be byte-identical;
- verify: `evidence verify` of that pack (no database);
- export (client): the client's pack over the period holding the grants.

Prints one JSON object per step; exits 2 when something is broken (the packs differ, verify
fails). Not a test."""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
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
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.work)))
        return 0
    with tempfile.TemporaryDirectory(prefix="govtui-bench-evidence.") as folder:
        work = Path(folder)
        began = time.perf_counter()
        built = build(work, args.contractors, args.scopes, args.grants, args.seed)
        print(
            json.dumps({"step": "build", "seconds": round(time.perf_counter() - began, 1), **built})
        )
        first = run_child("export-campaign-1", work)
        print(json.dumps(first))
        second = run_child("export-campaign-2", work)
        print(json.dumps(second))
        checked = run_child("verify", work)
        print(json.dumps(checked))
        print(json.dumps(run_child("export-client", work)))
        if first["sha256"] != second["sha256"]:
            print("BROKEN: two exports of the same data differ", file=sys.stderr)
            return 2
        if not checked["ok"]:
            print(f"BROKEN: the pack does not verify: {checked['problems']}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

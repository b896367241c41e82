#!/usr/bin/env python3
"""The body of scripts/bench_signatures (run that: it sets up the environment).

Builds a vendor of --grants active grants (default 100,000; tests/factories.py's bulk vendor:
1 client, 100 scopes, 20,000 contractors), each approved by the enrolled approver ann, whose
approval is signed as grants._record_approval signs it (the same statement builder, her key
from the keyring, registered by the evidence key), then times:

- sign: building and signing every approval's statement (what the approvals cost, once);
- verify cold: act_signatures.verify_all with an empty cache (every signature checked);
- verify warm: verify_all again in the same process (every signature a cache hit);
- sync check cold / warm: act_signatures.refused_adds for one add_member op per grant (what
  a sync about to add all of them checks), with an empty cache and then a warm one.

Target: verify of all signatures in seconds. Prints the figures; exits 1 when a verify is not
all-valid (something is broken) and 0 otherwise. Not a test."""

from __future__ import annotations

import argparse
import base64
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--contractors", type=int, default=20_000)
    parser.add_argument("--db", help="database URL (default: a SQLite file in a temp dir)")
    args = parser.parse_args()

    import keyring
    import sqlalchemy as sa

    from govtui import clock, db, migrations
    from govtui.directory import group_names
    from govtui.models import ActSignature, Approval, Contractor, Grant, OutboxOp
    from govtui.security import signing
    from govtui.services import act_signatures, catalog, operators
    from tests import factories
    from tests.memory_keyring import MemoryKeyring

    keyring.set_keyring(MemoryKeyring())
    # A clock the benchmark moves: the evidence key's init and the registration each take a
    # fresh TOTP step of the admin's, without waiting 30 s.
    moved = [datetime.now(UTC)]
    clock.set_source(lambda: moved[0])

    def next_step() -> None:
        moved[0] += timedelta(seconds=31)

    work = Path(tempfile.mkdtemp(prefix="govtui-bench-sig."))
    engine = db.make_engine(args.db or f"sqlite:///{work / 'bench.db'}")
    migrations.upgrade(engine)
    t0 = time.perf_counter()
    world = factories.build_world(
        engine,
        scopes=[factories.Scope(f"alpha/p{s % 10}/s{s:03d}") for s in range(100)],
        ops=[factories.Op("ann", ("approver",), ("alpha",), enrol=True)],
        target=factories.UNREACHABLE_TARGET,
    )
    factories.with_evidence_key(world, next_step)
    with db.write_session(engine) as session:
        root = operators.find(session, factories.ADMIN)
        people = factories.import_contractors(session, root, args.contractors, source="bench")
    with db.read_session(engine) as session:
        scopes = catalog.list_scopes(session)
    wanted = factories.spread(
        random.Random(7), args.contractors, scopes, args.grants, (("read", 2), ("label", 1))
    )
    now = clock.now()
    with db.write_session(engine) as session:
        factories.insert_grants(
            session,
            wanted,
            people,
            starts_at=now - timedelta(days=3),
            expires_at=now + timedelta(days=60),
            requested_days=90,
        )
    with db.write_session(engine) as session:
        ann = operators.find(session, "ann")
        grant_ids = list(session.execute(sa.select(Grant.id).order_by(Grant.id)).scalars())
        now = clock.now()
        session.execute(
            sa.insert(Approval.__table__),  # type: ignore[attr-defined]
            [
                {
                    "grant_id": g,
                    "round": 0,
                    "approver_id": ann.id,
                    "decision": "approve",
                    "totp_step": 1000 + i,
                    "decided_at": now,
                }
                for i, g in enumerate(grant_ids)
            ],
        )
        # Each add names its grant's own contractor and group (sync refuses any other).
        live = session.execute(
            sa.select(Grant.id, Grant.scope_id, Grant.access, Contractor.directory_uid)
            .join(Contractor, Contractor.id == Grant.contractor_id)
            .order_by(Grant.id)
        ).all()
        refs = group_names.group_refs(session, {(scope, access) for _g, scope, access, _u in live})
        dn = {(sc, ac): ref.dn for (_t, sc, ac), ref in refs.items()}
        target_id = next(t for t, _s, _a in refs)
        session.execute(
            sa.insert(OutboxOp.__table__),  # type: ignore[attr-defined]
            [
                {
                    "target_id": target_id,
                    "grant_id": g,
                    "operation": "add_member",
                    "group_dn": dn[(scope, access)],
                    "directory_uid": uid,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for g, scope, access, uid in live
            ],
        )
    print(f"built {len(grant_ids):,} approved grants in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    with db.write_session(engine) as session:
        ann = operators.find(session, "ann")
        rows = list(act_signatures._approval_rows(session))
        act_signatures._sign_many(
            session, ann, act_signatures.ActKind.APPROVE, ((r.subject, r.statement) for r in rows)
        )
    sign_s = time.perf_counter() - t0
    print(f"sign {len(rows):,} approvals: {sign_s:.2f} s")

    results: dict[str, float] = {}
    ok = True
    for label in ("cold", "warm"):
        if label == "cold":
            act_signatures.CACHE.good.clear()
        t0 = time.perf_counter()
        with db.read_session(engine) as session:
            report = act_signatures.verify_all(session)
        results[f"verify {label}"] = time.perf_counter() - t0
        ok = ok and report.ok and report.signed >= len(grant_ids)
        print(
            f"verify_all {label}: {results[f'verify {label}']:.2f} s "
            f"({report.signed:,} of {report.checked:,} acts verified, cache hits "
            f"{act_signatures.CACHE.hits:,})"
        )
    # The floor: Ed25519 verification alone of the same statements, with the key loaded once.
    with db.read_session(engine) as session:
        key = act_signatures.current_key(session, operators.find(session, "ann"))
        assert key is not None
        public = signing.load_public(key.public_key)
        rows_ = session.execute(
            sa.select(ActSignature.signature, ActSignature.statement).where(
                ActSignature.operator_key_id == key.id
            )
        ).all()
    pairs = [(base64.b64decode(sig), text.encode()) for sig, text in rows_]
    t0 = time.perf_counter()
    assert all(signing.verify(public, text, sig) for sig, text in pairs)
    floor = time.perf_counter() - t0
    raw = signing.raw_public(public)
    t0 = time.perf_counter()
    assert all(signing.verify_many([(raw, text, sig) for sig, text in pairs]))
    parallel = time.perf_counter() - t0
    print(
        f"floor, {len(pairs):,} bare Ed25519 verifies in one process: {floor:.2f} s, on every "
        f"core: {parallel:.2f} s; verify_all cold is {results['verify cold'] / floor:.2f}x the "
        f"first, {results['verify cold'] / parallel:.2f}x the second"
    )
    with db.read_session(engine) as session:
        op_ids = list(session.execute(sa.select(OutboxOp.id)).scalars())
    for label in ("cold", "warm"):
        if label == "cold":
            act_signatures.CACHE.good.clear()
        t0 = time.perf_counter()
        with db.read_session(engine) as session:
            refused = act_signatures.refused_adds(session, op_ids)
        elapsed = time.perf_counter() - t0
        ok = ok and not refused
        print(
            f"sync check of {len(op_ids):,} adds {label}: {elapsed:.2f} s ({len(refused)} refused)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The body of scripts/bench_audit_state (run that: it sets up the environment).

Times audit_state.check (the replay `audit verify` runs after the chain's hashes) over a
SQLite file of --events audit events (default 1,000,000), written by raw sqlite3 in bulk: a
mix of grant requests, approvals, review decisions and sync events, plus one
`operator.key_create` in 50 for a key with no row (so issue 13's replay folds events and
names rows too: 50 findings named, the rest counted). The chain's hashes are not real (check
does not read them). Prints the best wall and CPU time of --rounds runs. Not a test."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_MIX: list[tuple[str, str, dict[str, object]]] = [
    ("grant.request", "grant:{i}", {"contractor": "E{i}", "scope": "acme/p/s", "access": "read"}),
    (
        "grant.approve",
        "grant:{i}",
        {"expires_at": "2027-01-01T00:00:00.000000Z", "approvals": 1, "needed": 1},
    ),
    ("review.decide", "review_item:{i}", {"decision": "keep", "count": 1}),
    ("sync.add", "grant:{i}", {"uid": "u{i}", "group": "g"}),
]
_KEY = (
    "operator.key_create",
    "operator:op{i}",
    {"fingerprint": "SHA256:{i}", "registered": True, "retired": None},
)


def build(path: Path, events: int) -> None:
    from govtui import db, migrations

    engine = db.make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()
    connection = sqlite3.connect(path)
    insert = (
        "INSERT INTO audit_event (seq, at, actor, action, object, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = []
    for seq in range(1, events + 1):
        action, obj, details = _KEY if seq % 50 == 0 else _MIX[seq % len(_MIX)]
        filled = {k: v.format(i=seq) if isinstance(v, str) else v for k, v in details.items()}
        rows.append(
            (
                seq,
                "2026-03-02 09:00:00.000000",
                "root",
                action,
                obj.format(i=seq),
                json.dumps(filled),
                "0" * 64,
                f"{seq:064x}",
            )
        )
        if len(rows) == 50_000:
            connection.executemany(insert, rows)
            rows = []
    connection.executemany(insert, rows)
    connection.commit()
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from govtui import db
    from govtui.services import audit_state

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "bench.db"
        t0 = time.perf_counter()
        build(path, args.events)
        print(f"built {args.events:,} events in {time.perf_counter() - t0:.1f} s")
        engine = db.make_engine(f"sqlite:///{path}")
        walls, cpus = [], []
        for _ in range(args.rounds):
            with db.read_session(engine) as session:
                wall, cpu = time.perf_counter(), time.process_time()
                result = audit_state.check(session)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        engine.dispose()
    print(
        f"audit_state.check of {args.events:,} events: best {min(walls):.2f} s wall, "
        f"{min(cpus):.2f} s CPU ({args.rounds} runs); "
        f"{len(result.problems)} findings named, {result.more} counted"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

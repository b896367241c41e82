#!/usr/bin/env python3
"""Benchmark: `contractor import` of 100,000 rows against the raw-SQL floor, in the same run.

Run: .venv/bin/python scripts/bench_import.py [--rows N]
Prints the time of govtui's import (parse, check, bulk insert, audit event; then the same file
again as 100,000 updates) and of the best plain way to do the same row changes (csv module +
sqlite3 executemany in one transaction), and their ratios. Not a test: the figure is a ratio
so that it means something on a noisy machine.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from govtui import db, migrations
from govtui.services import contractor_import, operators


def _fresh(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    with db.write_session(engine) as session:
        operators.add(session, None, name="bench", roles=["admin"])
    engine.dispose()
    return url


def _govtui(url: str, csv_path: Path) -> float:
    engine = db.make_engine(url)
    start = time.perf_counter()
    rows, digest = contractor_import.parse(csv_path)
    with db.write_session(engine) as session:
        actor = operators.find(session, "bench")
        contractor_import.apply(session, actor, rows, source=str(csv_path), sha256=digest)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def _floor(db_path: Path, csv_path: Path, update: bool) -> float:
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    with open(csv_path, newline="") as handle:
        records = list(csv.DictReader(handle))
    connection.execute("BEGIN IMMEDIATE")
    if update:
        connection.executemany(
            "UPDATE contractor SET name=?, email=?, directory_uid=?, contract_end=?, updated_at=? "
            "WHERE external_id=?",
            [
                (
                    r["name"],
                    r["email"],
                    r["directory_uid"],
                    r["contract_end"],
                    now,
                    r["external_id"],
                )
                for r in records
            ],
        )
    else:
        connection.executemany(
            "INSERT INTO contractor (external_id, name, email, directory_uid, contract_end, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
            [
                (
                    r["external_id"],
                    r["name"],
                    r["email"],
                    r["directory_uid"],
                    r["contract_end"],
                    now,
                    now,
                )
                for r in records
            ],
        )
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv_path = work / "contractors.csv"
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(contractor_import.FIELDS)
            for i in range(args.rows):
                writer.writerow(
                    [f"X{i:07d}", f"Person {i}", f"p{i}@contractors.example", f"p{i}", "2027-06-30"]
                )
        ours_db, floor_db = work / "govtui.db", work / "floor.db"
        ours_url = _fresh(ours_db)
        _fresh(floor_db)
        results = []
        for label, update in (("insert", False), ("update", True)):
            ours = _govtui(ours_url, csv_path)
            floor = _floor(floor_db, csv_path, update)
            results.append((label, ours, floor))
    print(f"contractor import, {args.rows:,} rows, SQLite")
    for label, ours, floor in results:
        print(
            f"  {label}: govtui {ours:6.2f} s   raw SQL floor {floor:6.2f} s   ratio {ours / floor:4.1f}x"
        )


if __name__ == "__main__":
    main()

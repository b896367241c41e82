"""Fixtures for the TUI tests: demo databases, small and with 100,000 contractors."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from govtui import clock, db, migrations
from govtui.services import contractor_import, demo, operators
from tests.grant_world import World, build
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import BIG_CONTRACTORS, DEMO_CONTRACTORS, NEEDLE, NEEDLES


@pytest.fixture
def demo_engine(sqlite_engine: Engine) -> Engine:
    """A SQLite database holding the demo data with DEMO_CONTRACTORS contractors."""
    with db.write_session(sqlite_engine) as session:
        demo.load(session, contractors=DEMO_CONTRACTORS)
    return sqlite_engine


@pytest.fixture(scope="module")
def big_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The demo data plus contractors up to 100,000 in all (read-only: tests share it).

    Written through the import service (one bulk insert, ~2 s); the demo loader's 190,000
    grants for 100,000 contractors would take ~17 s and add nothing the TUI tests need."""
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    clock.set_source(lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    try:
        with db.write_session(engine) as session:
            admin_name = demo.load(session, contractors=DEMO_CONTRACTORS)
            admin = operators.find(session, admin_name)
            rng = random.Random(11)
            rows = []
            for n in range(BIG_CONTRACTORS - DEMO_CONTRACTORS):
                first = rng.choice(demo.FIRST)
                last = NEEDLE if n % 2700 == 0 else rng.choice(demo.LAST)
                rows.append(
                    contractor_import.ImportRow(
                        where=f"row {n}",
                        external_id=f"B{n:06d}",
                        name=f"{first} {last}",
                        email=f"b{n}@bulk.example",
                        directory_uid=f"bulk{n}",
                        contract_end=date(2026, 6, 1) + timedelta(days=n % 300),
                    )
                )
            assert sum(row.name.endswith(NEEDLE) for row in rows) == NEEDLES
            contractor_import.apply(session, admin, rows, source="bulk", sha256="0" * 64)
    finally:
        clock.set_source(None)
    yield engine
    engine.dispose()


@pytest.fixture
def tmp_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'govtui.db'}"


@pytest.fixture
def world(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> World:
    """The grant tests' small vendor (client acme, operators req/ann/bob/olga; ann, bob and
    olga enrolled in an in-memory keyring) on a SQLite file."""
    return build(sqlite_engine)

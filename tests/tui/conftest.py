"""Fixtures for the TUI tests: demo databases, small and with 100,000 contractors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from govtui import clock, db, migrations
from govtui.services import demo
from tests.factories import World, big_roster, small_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import (
    BIG_CONTRACTORS,
    DEMO_CONTRACTORS,
    NEEDLE,
    NEEDLE_EVERY,
    NEEDLES,
)


@pytest.fixture
def demo_engine(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> Engine:
    """A SQLite database holding the demo data with DEMO_CONTRACTORS contractors (its
    operators' secrets and keys in an in-memory keyring)."""
    with db.write_session(sqlite_engine) as session:
        demo.load(session, contractors=DEMO_CONTRACTORS)
    return sqlite_engine


@pytest.fixture(scope="module")
def big_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The demo data plus contractors up to 100,000 in all (read-only: tests share it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    clock.set_source(lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    try:
        needles = big_roster(
            engine,
            total=BIG_CONTRACTORS,
            demo_contractors=DEMO_CONTRACTORS,
            needle=NEEDLE,
            every=NEEDLE_EVERY,
        )
        assert needles == NEEDLES
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
    return small_vendor(sqlite_engine)

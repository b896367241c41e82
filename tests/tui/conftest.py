"""Fixtures for the TUI tests: demo databases, small and with 100,000 contractors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keyring
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


@dataclass(frozen=True)
class _DemoTemplate:
    files: dict[str, bytes]  # suffix ("", "-wal", ".audit-head") -> contents
    keyring: dict[tuple[str, str], str]


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory: pytest.TempPathFactory) -> _DemoTemplate:
    """The demo data, made once (through the services it takes seconds) on the tests' fixed
    clock, with its operators' secrets in an in-memory keyring; each test gets a copy."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    engine = db.make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    clock.set_source(lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    try:
        with db.write_session(engine) as session:
            demo.load(session, contractors=DEMO_CONTRACTORS)
    finally:
        clock.set_source(None)
        keyring.set_keyring(previous)
        engine.dispose()
    files = {
        suffix: Path(f"{path}{suffix}").read_bytes()
        for suffix in ("", "-wal", ".audit-head")
        if Path(f"{path}{suffix}").exists()
    }
    return _DemoTemplate(files, dict(backend.entries))


@pytest.fixture
def demo_engine(
    sqlite_url: str, memory_keyring: MemoryKeyring, _demo_template: _DemoTemplate
) -> Iterator[Engine]:
    """A SQLite database holding the demo data with DEMO_CONTRACTORS contractors (its
    operators' secrets and keys in an in-memory keyring)."""
    path = sqlite_url.removeprefix("sqlite:///")
    for suffix, contents in _demo_template.files.items():
        Path(f"{path}{suffix}").write_bytes(contents)
    memory_keyring.entries.update(_demo_template.keyring)
    engine = db.make_engine(sqlite_url)
    yield engine
    engine.dispose()


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

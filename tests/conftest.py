"""Shared fixtures: a controlled clock, a fresh database on SQLite and on PostgreSQL, the small
vendor of tests/factories.py, a private subtree of the test directory; and the hook that runs
`async def` tests."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db, migrations
from govtui.models import Operator
from govtui.services import operators

from .directory_support import Directory, private_subtree
from .factories import World, bound, small_vendor
from .factories import code as code  # re-exported: tests import them from here too
from .factories import enroll as enroll
from .memory_keyring import MemoryKeyring

PG_URL = os.environ.get("GOVTUI_TEST_PG_URL")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop, with their fixtures (what pytest-asyncio's
    auto mode does, without the dependency). pytest itself would not await the coroutine and
    would report the test skipped or failed with a warning; here it always runs."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None  # pytest's own call
    names = pyfuncitem._fixtureinfo.argnames  # the test's own arguments, not autouse ones
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    current: datetime

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture(autouse=True)
def fake_clock() -> Iterator[FakeClock]:
    """Every test runs on a fixed, aware UTC clock (DESIGN invariant 7)."""
    fake = FakeClock(datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC))
    clock.set_source(fake)
    yield fake
    clock.set_source(None)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's own database, data directory or operator name."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    for name in ("GOVTUI_DB", "GOVTUI_OPERATOR", "GOVTUI_AUDIT_HEAD"):
        monkeypatch.delenv(name, raising=False)


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(db.make_engine(url).url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or the test PostgreSQL cluster wiped clean."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'govtui.db'}"
    if PG_URL is None:
        if os.environ.get("CI"):
            pytest.fail("GOVTUI_TEST_PG_URL is not set: run the suite with scripts/test")
        pytest.skip("no PostgreSQL: run the suite with scripts/test")
    _reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database file (for tests that are about SQLite itself, or the TUI)."""
    return f"sqlite:///{tmp_path / 'govtui.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A database with the current schema, on each backend."""
    eng = db.make_engine(db_url)
    migrations.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A SQLite database with the current schema."""
    eng = db.make_engine(sqlite_url)
    migrations.upgrade(eng)
    yield eng
    eng.dispose()


def bootstrap_admin(engine: Engine, name: str = "root") -> Operator:
    """Create the first operator (an admin, bound as the factories bind) and return it."""
    with db.write_session(engine) as session:
        return operators.add(session, None, name=name, roles=["admin", "requester"], **bound())


@pytest.fixture
def admin(engine: Engine) -> Operator:
    """The first operator, an admin, in `engine`."""
    return bootstrap_admin(engine)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """An in-memory keyring for the duration of a test."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    """The small vendor (factories.small_vendor), its approvers' secrets in a memory keyring."""
    return small_vendor(engine)


@pytest.fixture
def directory() -> Iterator[Directory]:
    """A fresh subtree of the test slapd, deleted afterwards."""
    yield from private_subtree()


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, to prove a refused command left the database as it was."""
    from sqlmodel import SQLModel

    with db.read_session(engine) as session:
        return {
            table.name: [
                tuple(row)
                for row in session.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in SQLModel.metadata.sorted_tables
        }

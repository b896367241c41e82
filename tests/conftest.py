"""Shared fixtures: a controlled clock, and a fresh database on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import keyring
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db, migrations
from govtui.models import Operator
from govtui.security import totp
from govtui.services import enrollment, operators

from .memory_keyring import MemoryKeyring

PG_URL = os.environ.get("GOVTUI_TEST_PG_URL")


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
    """Create the first operator (an admin) and return it."""
    with db.write_session(engine) as session:
        return operators.add(session, None, name=name, roles=["admin", "requester"])


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


def enroll(engine: Engine, name: str) -> str:
    """Enrol an operator's TOTP (acting as themselves) and return the secret."""
    with db.write_session(engine) as session:
        actor = operators.find(session, name)
        uri = enrollment.start(session, actor, name=name)
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    with db.write_session(engine) as session:
        actor = operators.find(session, name)
        # The confirming code belongs to the previous step, so the current one stays usable.
        step = totp.step_of(clock.now()) - 1
        enrollment.confirm(session, actor, name=name, code=totp.code_for_step(secret, step))
    return secret


def code(secret: str, offset: int = 0) -> str:
    """The code for the current step of the test clock (or `offset` steps away)."""
    return totp.code_for_step(secret, totp.step_of(clock.now()) + offset)


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

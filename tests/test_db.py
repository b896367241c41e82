"""Engine rules, migrations and the one-transaction-per-operation contract."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db, migrations
from govtui.errors import ConfigurationError
from govtui.models import Client, SchemaVersion


def test_sqlite_connection_rules(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == db.BUSY_TIMEOUT_MS


def test_sqlite_writes_begin_immediate(sqlite_engine: Engine) -> None:
    """A write session holds the write lock from its first statement, so a second writer
    waits instead of failing later on a lock upgrade; a reader is never blocked."""
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with db.write_session(sqlite_engine) as session:
            session.execute(sa.select(1))  # only a read, but BEGIN IMMEDIATE took the lock
            held.set()
            time.sleep(0.3)
            order.append("first commits")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with db.read_session(sqlite_engine) as session:
        session.execute(sa.select(Client)).all()
        order.append("reader done")
    with db.write_session(sqlite_engine) as session:
        session.execute(sa.select(1))
        order.append("second writer began")
    thread.join()
    assert order == ["reader done", "first commits", "second writer began"]


def test_write_session_rolls_back_everything_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError), db.write_session(engine) as session:
        session.add(Client(name="a", created_at=__import__("govtui").clock.now()))
        session.flush()
        raise RuntimeError("crash in the middle")
    with db.read_session(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Client)).scalar_one() == 0


def test_init_is_idempotent_and_records_the_version(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert migrations.current_version(engine) == 0
    with pytest.raises(ConfigurationError, match="govtui init"):
        migrations.require_current(engine)
    assert [m.version for m in migrations.upgrade(engine)] == [1, 2]
    assert migrations.upgrade(engine) == []
    assert migrations.current_version(engine) == migrations.LATEST
    migrations.require_current(engine)
    with db.read_session(engine) as session:
        versions = session.execute(sa.select(SchemaVersion.version)).scalars().all()  # type: ignore[call-overload]
    assert versions == [1, 2]
    engine.dispose()


def test_newer_schema_is_refused(sqlite_engine: Engine) -> None:
    with db.write_session(sqlite_engine) as session:
        session.add(
            SchemaVersion(
                version=99, applied_at=__import__("govtui").clock.now(), description="future"
            )
        )
    with pytest.raises(ConfigurationError, match="newer"):
        migrations.require_current(sqlite_engine)


def test_default_url_is_in_the_user_data_directory(tmp_path: Path) -> None:
    assert db.default_url() == f"sqlite:///{tmp_path / 'xdg-data' / 'govtui' / 'govtui.db'}"
    assert db.resolve_url(None) == db.default_url()


def test_resolve_url_prefers_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVTUI_DB", "sqlite:///env.db")
    assert db.resolve_url(None) == "sqlite:///env.db"
    assert db.resolve_url("sqlite:///arg.db") == "sqlite:///arg.db"


def test_unsupported_and_malformed_urls_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unsupported"):
        db.make_engine("mysql://x@localhost/db")
    with pytest.raises(ConfigurationError, match="not a database URL"):
        db.make_engine("::nonsense::")


def test_redacted_hides_the_password() -> None:
    assert "s3cret" not in db.redacted("postgresql://u:s3cret@h/db")

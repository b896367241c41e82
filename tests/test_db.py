"""Engine rules, migrations and the one-transaction-per-operation contract."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db, migrations
from govtui.errors import AfterCommitError, ConfigurationError
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
    assert [m.version for m in migrations.upgrade(engine)] == [
        m.version for m in migrations.MIGRATIONS
    ]
    assert migrations.upgrade(engine) == []
    assert migrations.current_version(engine) == migrations.LATEST
    migrations.require_current(engine)
    with db.read_session(engine) as session:
        versions = session.execute(sa.select(SchemaVersion.version)).scalars().all()  # type: ignore[call-overload]
    assert versions == [m.version for m in migrations.MIGRATIONS]
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


def _client(name: str) -> Client:
    return Client(name=name, created_at=__import__("govtui").clock.now())


def _clients(engine: Engine) -> list[str]:
    with db.read_session(engine) as session:
        return list(session.execute(sa.select(Client.name).order_by(Client.name)).scalars())  # type: ignore[arg-type]


def test_after_commit_effects_run_in_order_once_committed(engine: Engine) -> None:
    seen: list[str] = []
    with db.write_session(engine) as session:
        session.add(_client("a"))
        db.after_commit(session, lambda: seen.append(f"first, sees {_clients(engine)}"))
        db.after_commit(session, lambda: seen.append("second"))
        db.on_rollback(session, lambda: seen.append("never"))
        assert seen == []
    assert seen == ["first, sees ['a']", "second"]


def test_a_rollback_runs_no_after_commit_effect(engine: Engine) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="crash"), db.write_session(engine) as session:
        db.after_commit(session, lambda: seen.append("after commit"))
        db.on_rollback(session, lambda: seen.append("rolled back"))
        raise RuntimeError("crash")
    assert seen == ["rolled back"]


def test_a_failing_commit_runs_no_after_commit_effect(engine: Engine) -> None:
    seen: list[str] = []
    with db.write_session(engine) as session:
        session.add(_client("taken"))
    with pytest.raises(sa.exc.IntegrityError), db.write_session(engine) as session:
        session.add(_client("taken"))  # the unique name fails at the commit's flush
        db.after_commit(session, lambda: seen.append("after commit"))
    assert seen == []


def test_a_rollback_effect_may_write_in_a_transaction_of_its_own(engine: Engine) -> None:
    """The rolled-back session has released its connection (SQLite: the writer lock), so an
    effect opening a write_session neither waits nor deadlocks."""

    def record() -> None:
        with db.write_session(engine) as session:
            session.add(_client("recorded"))

    with pytest.raises(RuntimeError), db.write_session(engine) as session:
        session.add(_client("lost"))
        session.flush()
        db.on_rollback(session, record)
        raise RuntimeError("refused")
    assert _clients(engine) == ["recorded"]


def test_every_effect_runs_even_if_one_fails(engine: Engine) -> None:
    seen: list[str] = []

    def broken() -> None:
        raise OSError("keyring gone")

    with (
        pytest.raises(AfterCommitError, match=r"^the change was committed, but then keyring gone$"),
        db.write_session(engine) as session,
    ):
        db.after_commit(session, broken)
        db.after_commit(session, lambda: seen.append("still ran"))
    assert seen == ["still ran"]
    assert AfterCommitError.exit_code == 1  # not 2: something was written


def test_effects_need_a_write_session(engine: Engine) -> None:
    with db.read_session(engine) as session, pytest.raises(RuntimeError, match="write_session"):
        db.after_commit(session, lambda: None)
    with db.read_session(engine) as session, pytest.raises(RuntimeError, match="write_session"):
        db.on_rollback(session, lambda: None)


def test_current_version_does_not_wait_for_a_writer(sqlite_engine: Engine, sqlite_url: str) -> None:
    """Every CLI start reads the schema version: it must not queue behind a long write (a
    pause) that holds SQLite's write lock."""
    import sqlite3

    path = db.sqlite_path(sqlite_url)
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    found: list[int] = []

    def start_up() -> None:
        migrations.require_current(sqlite_engine)
        found.append(migrations.current_version(sqlite_engine))

    thread = threading.Thread(target=start_up, daemon=True)
    try:
        thread.start()
        # A reader that asked for the lock would wait out the 15 s busy timeout.
        thread.join(timeout=5)
        finished = not thread.is_alive()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        thread.join(timeout=30)
    assert finished, "current_version waited for the write lock"
    assert found == [migrations.LATEST]

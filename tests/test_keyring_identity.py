"""Keyring entries keyed by the database's random id (issue 11, finding 3): the same database
named by another URL, or restored elsewhere, still finds its secrets; entries made the old way
(by a hash of the URL) move at `govtui init`; a keyring failure never locks anyone out; and a
bind password is sent only to the settings it was stored for."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db, migrations, models
from govtui.cli import main
from govtui.errors import AfterCommitError, ConfigurationError
from govtui.security import secrets, totp
from govtui.services import directory_targets, enrollment, operators, second_factor
from govtui.services.workspace import Workspace

from .factories import UNREACHABLE_TARGET, code, enroll
from .memory_keyring import MemoryKeyring
from .test_migrations import _make_v1
from .test_secrets import _real_secret_service


def _accepts(url: str, name: str, given: str) -> int:
    """Verify one code as `name` on the database at `url`, through a fresh engine."""
    engine = db.make_engine(url)
    try:
        return Workspace(engine, name).act(
            lambda s, actor: second_factor.verify(s, actor, given, purpose="test")
        )
    finally:
        engine.dispose()


@pytest.fixture
def real_keyring() -> None:
    _real_secret_service()


def test_the_same_database_by_any_name_or_restored_elsewhere_finds_its_secrets(
    real_keyring: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "data"
    home.mkdir()
    monkeypatch.chdir(home)
    engine = db.make_engine("sqlite:///./gov.db")
    migrations.upgrade(engine)
    with db.write_session(engine) as session:
        operators.add(session, None, name="root", roles=["admin"])
    secret = enroll(engine, "root")
    engine.dispose()
    other = tmp_path / "elsewhere"
    other.mkdir()
    restored = tmp_path / "restored"
    restored.mkdir()
    for part in home.iterdir():
        shutil.copy(part, restored / part.name)
    spellings = [
        ("./gov.db", home),
        (str(home / "gov.db"), other),
        (os.path.relpath(home / "gov.db", other), other),
        (str(restored / "gov.db"), other),
    ]
    now = totp.step_of(clock.now())
    # A new step for each code on the one database (replay); the copy has its own state.
    for (path, cwd), step in zip(spellings, (now - 1, now, now + 1, now - 1), strict=True):
        monkeypatch.chdir(cwd)
        assert _accepts(f"sqlite:///{path}", "root", totp.code_for_step(secret, step)) == step


def test_a_keyring_failure_while_enrolling_never_locks_the_operator_out(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sqlite_engine
    with db.write_session(engine) as session:
        operators.add(session, None, name="root", roles=["admin"])
    old = enroll(engine, "root")
    # The keyring refuses the new secret: nothing is committed, the old secret still works.
    monkeypatch.setattr(
        memory_keyring, "set_password", _raise(keyring.errors.PasswordSetError("locked"))
    )
    with pytest.raises(ConfigurationError, match="refused to store"):
        Workspace(engine, "root").act(enrollment.start, name="root", current_code=code(old))
    with db.read_session(engine) as session:
        root = operators.find(session, "root")
        assert root.totp_pending_ref is None and root.totp_pending_at is None
    monkeypatch.undo()
    keyring.set_keyring(memory_keyring)
    # The old entry cannot be deleted after the confirming commit: the commit stands, and
    # the new secret (already in the keyring before it) is the one that works.
    uri = Workspace(engine, "root").act(enrollment.start, name="root", current_code=code(old, 1))
    new = uri.split("secret=")[1].split("&")[0]
    monkeypatch.setattr(
        memory_keyring, "delete_password", _raise(keyring.errors.PasswordDeleteError("locked"))
    )
    with pytest.raises(AfterCommitError):
        Workspace(engine, "root").act(enrollment.confirm, name="root", code=code(new, -1))
    monkeypatch.undo()
    keyring.set_keyring(memory_keyring)
    assert _accepts(engine.url.render_as_string(hide_password=False), "root", code(new))


def _raise(exc: BaseException) -> object:
    def refuse(*_args: object) -> None:
        raise exc

    return refuse


def test_a_rolled_back_enrolment_takes_its_new_entry_out_of_the_keyring(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    with db.write_session(sqlite_engine) as session:
        operators.add(session, None, name="root", roles=["admin"])
    before = dict(memory_keyring.entries)
    with pytest.raises(RuntimeError), db.write_session(sqlite_engine) as session:
        enrollment.start(session, operators.find(session, "root"), name="root")
        assert len(memory_keyring.entries) == len(before) + 1  # stored before the commit
        raise RuntimeError("the commit never happens")
    assert memory_keyring.entries == before


def _make_v3(url: str) -> Engine:
    engine = _make_v1(url)
    for migration in migrations.MIGRATIONS[1:3]:
        with db.write_session(engine) as session:
            migration.apply(session.connection())
            session.add(
                models.SchemaVersion(
                    version=migration.version,
                    applied_at=clock.now(),
                    description=migration.description,
                )
            )
    return engine


@pytest.fixture
def cleanup_keys() -> Iterator[list[str]]:
    keys: list[str] = []
    yield keys
    for key in keys:
        secrets.delete(key)


def test_old_style_keyring_entries_move_at_init_and_the_code_still_verifies(
    real_keyring: None,
    db_url: str,
    cleanup_keys: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = _make_v3(db_url)
    secret = totp.new_secret()
    step = totp.step_of(clock.now())
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE operator SET totp_enrolled_at = :now, totp_last_step = :step"),
            {"now": clock.now(), "step": step - 1},
        )
    url = db.redacted(db_url)
    old_key = secrets.legacy_entry_key("totp", "root", url)
    secrets.store(old_key, secret)
    cleanup_keys.append(old_key)
    assert main(["--db", db_url, "init"]) == 0
    assert "moved 1 keyring entries" in capsys.readouterr().out
    assert _accepts(db_url, "root", totp.code_for_step(secret, step)) == step
    assert secrets.load(old_key) is None
    with db.read_session(engine) as session:
        new_key = second_factor.secret_key(session, "root")
        assert new_key is not None
        cleanup_keys.append(new_key)
    # Again: nothing left to move, and the secret stays where it is.
    assert main(["--db", db_url, "init"]) == 0
    assert "moved" not in capsys.readouterr().out
    assert _accepts(db_url, "root", totp.code_for_step(secret, step + 1)) == step + 1
    engine.dispose()


def test_an_interrupted_move_is_finished_by_the_next_init(
    real_keyring: None, sqlite_url: str, cleanup_keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _make_v3(sqlite_url)
    secret = totp.new_secret()
    step = totp.step_of(clock.now())
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE operator SET totp_enrolled_at = :now"), {"now": clock.now()}
        )
    old_key = secrets.legacy_entry_key("totp", "root", db.redacted(sqlite_url))
    secrets.store(old_key, secret)
    cleanup_keys.append(old_key)
    # The run dies after the commit, before the old entry is deleted.
    real_delete = secrets.delete
    monkeypatch.setattr(secrets, "delete", _raise(KeyboardInterrupt()))
    assert main(["--db", sqlite_url, "init"]) == 130
    monkeypatch.setattr(secrets, "delete", real_delete)
    assert secrets.load(old_key) == secret
    assert main(["--db", sqlite_url, "init"]) == 0
    assert secrets.load(old_key) is None
    assert _accepts(sqlite_url, "root", totp.code_for_step(secret, step)) == step
    with db.read_session(engine) as session:
        key = second_factor.secret_key(session, "root")
        assert key is not None
        cleanup_keys.append(key)
    engine.dispose()


def test_old_style_bind_password_moves_with_its_settings(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    engine = sqlite_engine
    with db.write_session(engine) as session:
        root = operators.add(session, None, name="root", roles=["admin"])
        directory_targets.add(session, root, **UNREACHABLE_TARGET)
    url = engine.url.render_as_string(hide_password=False)
    with db.read_session(engine) as session:
        memory_keyring.entries.clear()
        old_key = secrets.legacy_entry_key("directory", "ldap", db.redacted(url))
        memory_keyring.entries[(secrets.SERVICE, old_key)] = "hunter2"
    assert main(["--db", url, "init"]) == 0
    with db.read_session(engine) as session:
        target = directory_targets.find(session, "ldap")
        assert directory_targets.bind_password(session, target) == "hunter2"
    assert (secrets.SERVICE, old_key) not in memory_keyring.entries


def test_a_bind_password_is_not_sent_to_settings_changed_by_sql(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    engine = sqlite_engine
    with db.write_session(engine) as session:
        root = operators.add(session, None, name="root", roles=["admin"])
        directory_targets.add(session, root, **UNREACHABLE_TARGET)
    with db.read_session(engine) as session:
        target = directory_targets.find(session, "ldap")
        assert directory_targets.bind_password(session, target) == "never used"
    for column, value in (
        ("url", "ldap://attacker.example:389"),
        ("bind_dn", "cn=other,dc=x"),
        ("tls_name", "attacker.example"),
        ("ca_file", "/tmp/evil.pem"),
        ("starttls", True),
        ("insecure_plaintext", False),
    ):
        with engine.begin() as connection:
            original = connection.execute(
                sa.text(f"SELECT {column} FROM directory_target WHERE name = 'ldap'")
            ).scalar()
            connection.execute(
                sa.text(f"UPDATE directory_target SET {column} = :v WHERE name = 'ldap'"),
                {"v": value},
            )
        with db.read_session(engine) as session:
            target = directory_targets.find(session, "ldap")
            with pytest.raises(ConfigurationError, match=r"directory 'ldap'.*settings changed"):
                directory_targets.bind_password(session, target)
        with engine.begin() as connection:
            connection.execute(
                sa.text(f"UPDATE directory_target SET {column} = :v WHERE name = 'ldap'"),
                {"v": original},
            )
    # A password stored the old way, bare, is refused too (init moves it with its digest).
    with db.read_session(engine) as session:
        memory_keyring.entries[
            (secrets.SERVICE, directory_targets.password_key(session, "ldap"))
        ] = "bare"
        with pytest.raises(ConfigurationError, match="without the settings"):
            directory_targets.bind_password(session, directory_targets.find(session, "ldap"))

"""Directory targets' bind passwords reach the keyring only with a committed change: a
rolled-back add or remove leaves the keyring as it was, and of two processes racing to add
the same target on PostgreSQL only the winner's password is ever written."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import keyring
import pytest
import sqlalchemy as sa
from keyring.backend import KeyringBackend
from keyring.compat import properties
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from govtui import db
from govtui.models import DirectoryTarget
from govtui.security import secrets
from govtui.services import directory_targets, operators

from .conftest import PG_URL, _reset_postgres, bootstrap_admin
from .memory_keyring import MemoryKeyring

CONTEXT = multiprocessing.get_context("spawn")
TIMEOUT = 60.0
SETTINGS: dict[str, Any] = dict(
    url="ldap://127.0.0.1:1",
    insecure_plaintext=True,
    bind_dn="cn=admin,dc=x",
    users_base="ou=people,dc=x",
    groups_base="ou=groups,dc=x",
)


class CommitFailed(Exception):
    """Stands for whatever can make a commit fail after the service call returned."""


def _fail_commit(session: Session) -> None:
    raise CommitFailed("disk full")


def _add(session: Session, name: str, password: str) -> DirectoryTarget:
    root = operators.find(session, "root")
    return directory_targets.add(session, root, name=name, password=password, **SETTINGS)


def _password(engine: Engine, name: str) -> str | None:
    """The bind password stored for `name` (kept with its settings' digest), or None."""
    with db.read_session(engine) as session:
        stored = secrets.load(directory_targets.password_key(session, name))
    if stored is None:
        return None
    password: str = json.loads(stored)["password"]
    return password


def _targets(engine: Engine) -> list[str]:
    with db.read_session(engine) as session:
        return [t.name for t in session.exec(select(DirectoryTarget))]


@pytest.fixture
def root(engine: Engine, memory_keyring: MemoryKeyring) -> Engine:
    bootstrap_admin(engine)
    return engine


def test_a_failed_commit_after_add_or_remove_leaves_the_keyring_as_it_was(
    root: Engine, memory_keyring: MemoryKeyring
) -> None:
    with pytest.raises(CommitFailed), db.write_session(root) as session:
        sa.event.listen(session, "before_commit", _fail_commit)
        _add(session, "ldap", "never-stored")
    assert memory_keyring.entries == {}
    assert _targets(root) == []

    with db.write_session(root) as session:
        _add(session, "ldap", "stored")
        assert memory_keyring.entries == {}  # not before the commit
    assert _password(root, "ldap") == "stored"

    with pytest.raises(CommitFailed), db.write_session(root) as session:
        sa.event.listen(session, "before_commit", _fail_commit)
        directory_targets.remove(session, operators.find(session, "root"), name="ldap")
    assert _password(root, "ldap") == "stored"
    assert _targets(root) == ["ldap"]

    with db.write_session(root) as session:
        directory_targets.remove(session, operators.find(session, "root"), name="ldap")
    assert _password(root, "ldap") is None
    assert _targets(root) == []


class SharedFileKeyring(KeyringBackend):
    """A keyring that several test processes share through one JSON file, logging every
    write, so a test can tell which process's password was ever stored."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("only for tests that install it explicitly")

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = Path(path)

    def _update(self, change: Any) -> dict[str, Any]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text()) if self.path.exists() else {}
            data.setdefault("entries", {})
            data.setdefault("writes", [])
            if change is not None:
                change(data)
                self.path.write_text(json.dumps(data))
            return data

    def get_password(self, service: str, username: str) -> str | None:
        found: str | None = self._update(None)["entries"].get(f"{service}/{username}")
        return found

    def set_password(self, service: str, username: str, password: str) -> None:
        def change(data: dict[str, Any]) -> None:
            data["entries"][f"{service}/{username}"] = password
            data["writes"].append(password)

        self._update(change)

    def delete_password(self, service: str, username: str) -> None:
        self._update(lambda data: data["entries"].pop(f"{service}/{username}", None))


def _adder(url: str, keyring_file: str, password: str, barrier: Any, results: Any) -> None:
    """A child: adds target 'shared' with its own password. Both children pass the check that
    no such target exists before either inserts (the barrier sits at the first flush)."""
    try:
        keyring.set_keyring(SharedFileKeyring(keyring_file))
        engine = db.make_engine(url)
        waited = threading.Event()

        def meet(*_: object) -> None:
            if not waited.is_set():
                waited.set()
                barrier.wait()

        try:
            with db.write_session(engine) as session:
                sa.event.listen(session, "before_flush", meet)
                _add(session, "shared", password)
        finally:
            engine.dispose()
    except BaseException as exc:
        barrier.abort()
        results.put((password, type(exc).__name__))
        return
    results.put((password, "ok"))


@pytest.mark.postgres
def test_two_processes_adding_one_target_leave_only_the_winners_password(
    tmp_path: Path,
) -> None:
    if PG_URL is None:
        pytest.skip("no PostgreSQL: run the suite with scripts/test")
    _reset_postgres(PG_URL)
    engine = db.make_engine(PG_URL)
    from govtui import migrations

    migrations.upgrade(engine)
    keyring_file = str(tmp_path / "keyring.json")
    previous = keyring.get_keyring()
    keyring.set_keyring(SharedFileKeyring(keyring_file))
    try:
        bootstrap_admin(engine)
        engine.dispose()
        barrier = CONTEXT.Barrier(2, timeout=TIMEOUT / 2)
        results = CONTEXT.Queue()
        children = [
            CONTEXT.Process(
                target=_adder,
                args=(PG_URL, keyring_file, password, barrier, results),
                daemon=True,
            )
            for password in ("pw-first", "pw-second")
        ]
        for child in children:
            child.start()
        outcomes = dict(results.get(timeout=TIMEOUT) for _ in children)
        for child in children:
            child.join(timeout=10)
        # Both passed the existence check, so the loser met the unique name at its insert.
        assert sorted(outcomes.values()) == ["IntegrityError", "ok"], outcomes
        winner = next(p for p, kind in outcomes.items() if kind == "ok")
        assert _targets(engine) == ["shared"]
        assert _password(engine, "shared") == winner
        writes = json.loads(Path(keyring_file).read_text())["writes"]
        # the loser's password was never written, not even briefly
        assert [json.loads(w)["password"] for w in writes] == [winner]
    finally:
        keyring.set_keyring(previous)
        engine.dispose()

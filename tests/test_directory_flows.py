"""The directory flows both front ends share, held by tests:

- No network call inside an open database transaction (DESIGN, architecture): while govtui
  talks to a directory (reconcile, `directory test`, the health check, sync, a fix), no
  connection of ours is checked out, and on PostgreSQL no session of our database is
  `idle in transaction`.
- A reconcile fix corrects only the confirmed drift that is still there when it runs, from
  the command line as from the TUI (reconcile.fix_confirmed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.directory import groups, probe
from govtui.services import convergence, directory_targets, reconcile, sync

from .directory_support import Directory, add_target, norm
from .factories import World


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    return directory


PAIRS_READ = "acme-rlhf-pairs-read"


class TransactionWatch:
    """Counts the engine's checked-out connections; on PostgreSQL also asks the server, from
    a connection of its own, which sessions of the database sit idle in a transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.checked_out = 0
        self.seen: list[tuple[str, int, list[str]]] = []  # (where, checked out, idle in txn)
        self._observer = (
            sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
            if engine.dialect.name == "postgresql"
            else None
        )
        event.listen(engine, "checkout", self._out)
        event.listen(engine, "checkin", self._in)

    def _out(self, *_args: Any) -> None:
        self.checked_out += 1

    def _in(self, *_args: Any) -> None:
        self.checked_out -= 1

    def idle_in_transaction(self) -> list[str]:
        if self._observer is None:
            return []
        with self._observer.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT state || ': ' || query FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND state LIKE 'idle in transaction%'"
                )
            )
            return [row[0] for row in rows]

    def check(self, where: str) -> None:
        self.seen.append((where, self.checked_out, self.idle_in_transaction()))

    def close(self) -> None:
        event.remove(self.engine, "checkout", self._out)
        event.remove(self.engine, "checkin", self._in)
        if self._observer is not None:
            self._observer.dispose()


@pytest.fixture
def watch(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[TransactionWatch]:
    """Checks the database at every directory connect and every group read."""
    watcher = TransactionWatch(world.engine)
    real_connect = directory_targets.connect
    real_read = groups.read_members

    def connect(*args: Any, **kwargs: Any) -> ldap3.Connection:
        watcher.check("connect")
        return real_connect(*args, **kwargs)

    def read_members(conn: ldap3.Connection, group_dn: str) -> set[str] | None:
        watcher.check(f"read {group_dn}")
        return real_read(conn, group_dn)

    monkeypatch.setattr(directory_targets, "connect", connect)
    # `directory test` and the health check connect through the probe's steps.
    monkeypatch.setattr(probe, "connect", connect)
    # The command line works on the watched engine too, not on one of its own.
    monkeypatch.setattr(db, "make_engine", lambda _url: world.engine)
    monkeypatch.setattr(groups, "read_members", read_members)
    yield watcher
    watcher.close()


def _cli(world: World, *args: str) -> int:
    return main(["--db", world.engine.url.render_as_string(hide_password=False), *args])


OPERATIONS: dict[str, Callable[[World], object]] = {
    "reconcile": lambda world: reconcile.compare(world.engine, "ldap"),
    "reconcile --fix": lambda world: _cli(world, "--as", "root", "reconcile", "ldap", "--fix"),
    "directory test": lambda world: _cli(world, "--as", "root", "directory", "test", "ldap"),
    "health check": lambda world: convergence.check_targets(world.engine),
    "sync": lambda world: sync.run_once(world.engine),
    "pause --dry-run": lambda world: _cli(
        world, "--as", "root", "client", "pause", "acme", "--reason", "x", "--dry-run"
    ),
    "pause --strict": lambda world: _cli(
        world, "--as", "root", "client", "pause", "acme", "--reason", "x", "--strict"
    ),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_no_transaction_is_open_while_the_directory_is_asked(
    world: World, ldap: Directory, watch: TransactionWatch, operation: str
) -> None:
    world.approve(world.request())  # an add to sync, an expected member to compare
    if operation != "sync":
        sync.run_once(world.engine)
        ldap.add_member(ldap.group(PAIRS_READ), ldap.user("bo"))  # drift to fix
    watch.seen.clear()
    OPERATIONS[operation](world)
    assert watch.seen, "the directory was never asked"
    assert [s for s in watch.seen if s[1] or s[2]] == []


def test_cli_fix_leaves_alone_what_stopped_drifting_since_it_was_reported(
    world: World,
    ldap: Directory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pairs = ldap.group(PAIRS_READ)
    world.approve(world.request("E1"))
    sync.run_once(world.engine)
    ldap.add_member(pairs, ldap.user("bo"))  # by hand: bo has no grant (yet)

    real_compare = reconcile.compare
    calls: list[int] = []

    def compare(engine: Engine, target_name: str) -> list[reconcile.Drift]:
        drift = real_compare(engine, target_name)
        calls.append(len(drift))
        if len(calls) == 1:
            # After the drift is reported and before it is fixed, bo's grant is approved.
            world.approve(world.request("E2"), by="bob")
        return drift

    monkeypatch.setattr(reconcile, "compare", compare)
    url = world.engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "--as", "root", "reconcile", "ldap", "--fix"]) == 0
    out = capsys.readouterr().out
    assert "unexpected_member" in out  # what was reported
    assert "fix: 1 no longer drifted, left alone" in out
    assert norm(ldap.user("bo")) in (ldap.members(pairs) or set())
    assert real_compare(world.engine, "ldap") == []

"""Issue 11 (attack findings 3, 5, 6): a database with events but no checkpoint is not written
to until `audit verify --accept-missing-checkpoint` adopts it; the chain, not the operator
table, decides the bootstrap; role provenance changed by SQL is named by verify."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.services import audit_checkpoint, audit_state, privilege
from govtui.services.workspace import Workspace

from .conftest import FakeClock, snapshot
from .memory_keyring import MemoryKeyring
from .test_bound_identity import Login, cli, logged_in_as, one_line, separate_world

__all__ = ["logged_in_as"]  # the fixture, used by name

SIGNED_ROWS = ("act_signature", "operator_key", "evidence_key")


def _checkpoint(engine: Engine) -> Path:
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    return path


def _problems(engine: Engine) -> list[str]:
    with db.read_session(engine) as session:
        return audit_state.check(session).problems


def test_a_new_database_without_checkpoint_writes_and_records_one(
    engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    assert not _checkpoint(engine).exists()
    separate_world(engine)
    recorded = audit_checkpoint.read_checkpoint(_checkpoint(engine))
    assert recorded is not None and recorded.seq > 0


def test_a_moved_database_is_refused_until_verify_adopts_it(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    capsys: pytest.CaptureFixture[str],
) -> None:
    separate_world(engine)
    logged_in_as("alice")
    path = _checkpoint(engine)
    path.unlink()
    before = snapshot(engine)
    capsys.readouterr()
    assert cli(engine, "client", "add", "beta", actor="root") == 2
    assert one_line(capsys) == (
        f"the audit checkpoint {path} is missing: run `govtui audit verify`; if the database "
        "was moved without it, `govtui audit verify --accept-missing-checkpoint` records a new one"
    )
    assert snapshot(engine) == before and not path.exists()
    assert cli(engine, "audit", "verify") == 1
    assert not path.exists()  # a plain verify adopts nothing
    capsys.readouterr()
    assert cli(engine, "audit", "verify", "--accept-missing-checkpoint") == 0
    out = capsys.readouterr().out
    head = audit_checkpoint.read_checkpoint(path)
    assert head is not None
    assert f"recorded a new audit checkpoint at {path}: the chain up to event {head.seq}" in out
    assert cli(engine, "client", "add", "beta", actor="root") == 0
    assert cli(engine, "audit", "verify") == 0


def test_verify_does_not_adopt_a_database_whose_state_is_not_backed(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login
) -> None:
    separate_world(engine)
    logged_in_as("alice")
    path = _checkpoint(engine)
    path.unlink()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM operator_client"))
    assert cli(engine, "audit", "verify", "--accept-missing-checkpoint") == 1
    assert not path.exists()
    assert cli(engine, "client", "add", "beta", actor="root") == 2


def test_no_bootstrap_after_sql_delete_in_one_line(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    capsys: pytest.CaptureFixture[str],
) -> None:
    separate_world(engine)
    with engine.begin() as conn:
        # Signing keys and signatures (schema version 6) point at operators: deleted first.
        for table in (*SIGNED_ROWS, "operator_client", "operator_role", "operator"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    logged_in_as("mallory")
    capsys.readouterr()
    assert cli(engine, "operator", "add", "mallory", "--role", "admin") == 2
    assert "records operators whose rows are gone" in one_line(capsys)
    problems = _problems(engine)
    for name in ("root", "req", "ann"):
        assert f"operator {name!r} has an operator.add event but no row (deleted by SQL?)" in (
            problems
        )


@pytest.mark.parametrize("table", ["operator_role", "operator_client"])
@pytest.mark.parametrize("column", ["granted_by", "confirmed_by"])
def test_provenance_changed_by_sql_is_named(
    engine: Engine, memory_keyring: MemoryKeyring, table: str, column: str
) -> None:
    separate_world(engine)
    assert _problems(engine) == []
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE {table} SET {column} = (SELECT id FROM operator WHERE name = 'req') "
                "WHERE operator_id = (SELECT id FROM operator WHERE name = 'ann')"
            )
        )
    problems = _problems(engine)
    assert problems and all("its event says" in p and "'ann'" in p for p in problems), problems


def test_provenance_of_role_and_approves_adds_is_replayed(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    """operator.role_add / approves_add: the event's actor granted, details name who
    confirmed; the rows agree, and a row rewritten to another granter is named."""
    world = separate_world(engine)
    logged_in_as("alice")
    ws = Workspace(engine, "root")
    ws.act(
        privilege.add_role, name="req", role="approver", codes=privilege.Codes(world.code("root"))
    )
    fake_clock.advance(seconds=30)
    ws.act(
        privilege.add_approves, name="req", client="acme", codes=privilege.Codes(world.code("root"))
    )
    assert _problems(engine) == []
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE operator_role SET granted_by = (SELECT id FROM operator WHERE name = "
                "'ann') WHERE role = 'approver' AND operator_id = "
                "(SELECT id FROM operator WHERE name = 'req')"
            )
        )
    assert _problems(engine) == [
        "operator_role: role 'approver' of operator 'req' was granted by 'ann', confirmed by "
        "None; its event says 'root', None (changed by SQL?)"
    ]

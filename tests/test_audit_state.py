"""`audit verify` also checks that the state is backed by the chain: a row inserted or changed
by SQL leaves the chain intact, and is named here (finding 2: `INSERT INTO operator_role ...
'admin'` went unnoticed)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.services import audit_state, pause

from .factories import UNREACHABLE_TARGET, World, small_vendor
from .memory_keyring import MemoryKeyring


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with db.write_session(engine) as session:
        session.execute(sa.text(statement), params)


def _check(engine: Engine) -> audit_state.StateResult:
    with db.read_session(engine) as session:
        return audit_state.check(session)


def _id(engine: Engine, statement: str, **params: Any) -> int:
    with db.read_session(engine) as session:
        return int(session.execute(sa.text(statement), params).scalar_one())


@pytest.fixture
def lived_in(engine: Engine, memory_keyring: object) -> World:
    """A vendor with an active grant, a requested one, a paused-and-resumed client, a
    paused one and a directory target, all made through the services."""
    world = small_vendor(engine)
    with db.write_session(engine) as session:
        from govtui.services import directory_targets, operators

        directory_targets.add(session, operators.find(session, "root"), **UNREACHABLE_TARGET)
    active = world.request()
    world.approve(active, by="ann")
    world.request(contractor="E2", scope="acme/rlhf/notes")
    with db.write_session(engine) as session:
        from govtui.services import operators

        pause.pause(session, operators.find(session, "ann"), client="acme", reason="incident")
    with db.write_session(engine) as session:
        pause.resume(session, operators.find(session, "bob"), client="acme", code=world.code("bob"))
    with db.write_session(engine) as session:
        pause.pause(session, operators.find(session, "olga"), client="other", reason="audit")
    return world


def test_state_made_by_the_services_is_backed(lived_in: World) -> None:
    result = _check(lived_in.engine)
    assert result.ok, result.problems


def test_a_role_inserted_by_sql_is_named(lived_in: World) -> None:
    req = _id(lived_in.engine, "SELECT id FROM operator WHERE name = 'req'")
    _sql(
        lived_in.engine, "INSERT INTO operator_role (operator_id, role) VALUES (:o, 'admin')", o=req
    )
    assert _check(lived_in.engine).problems == [
        "operator_role: operator 'req' has role 'admin' that no event gave"
    ]


def test_an_operator_and_an_approves_link_inserted_by_sql_are_named(lived_in: World) -> None:
    engine = lived_in.engine
    _sql(
        engine,
        "INSERT INTO operator (name, created_at, totp_failures, shared_login) VALUES ('mallory', '2026-01-01 00:00:00', 0, false)",
    )
    req = _id(engine, "SELECT id FROM operator WHERE name = 'req'")
    other = _id(engine, "SELECT id FROM client WHERE name = 'other'")
    _sql(
        engine,
        "INSERT INTO operator_client (operator_id, client_id) VALUES (:o, :c)",
        o=req,
        c=other,
    )
    problems = _check(engine).problems
    assert any("'mallory'" in p and "operator.add" in p for p in problems)
    assert "operator_client: operator 'req' approves 'other' by no event" in problems


def test_a_grant_made_active_or_lengthened_by_sql_is_named(lived_in: World) -> None:
    engine = lived_in.engine
    requested = _id(engine, "SELECT id FROM access_grant WHERE state = 'requested'")
    _sql(
        engine,
        "UPDATE access_grant SET state = 'active', starts_at = requested_at, expires_at = requested_at WHERE id = :g",
        g=requested,
    )
    active = _id(
        engine, "SELECT id FROM access_grant WHERE state = 'active' AND id <> :g", g=requested
    )
    _sql(
        engine, "UPDATE access_grant SET expires_at = '2099-01-01 00:00:00' WHERE id = :g", g=active
    )
    problems = _check(engine).problems
    assert f"grant {requested} is active but no approval event activated it" in problems
    assert any(p.startswith(f"grant {active} expires 2099-01-01") for p in problems)


def test_a_grant_inserted_or_switched_to_write_by_sql_is_named(lived_in: World) -> None:
    engine = lived_in.engine
    active = _id(engine, "SELECT id FROM access_grant WHERE state = 'active'")
    _sql(engine, "UPDATE access_grant SET access = 'write' WHERE id = :g", g=active)
    _sql(
        engine,
        "INSERT INTO access_grant (contractor_id, scope_id, access, state, reason, requested_by,"
        " requested_days, requested_at, starts_at, expires_at) SELECT contractor_id, scope_id,"
        " 'read', 'active', 'x', requested_by, 1, requested_at, starts_at, expires_at"
        " FROM access_grant WHERE id = :g",
        g=active,
    )
    problems = _check(engine).problems
    assert any(
        p.startswith(f"grant {active} (") and "differs from its request" in p for p in problems
    )
    assert any("no grant.request event" in p for p in problems)


def test_a_pause_ended_by_sql_a_scope_relaxed_and_a_target_changed_are_named(
    lived_in: World,
) -> None:
    engine = lived_in.engine
    _sql(
        engine,
        "UPDATE client_pause SET resumed_at = paused_at, resumed_by = paused_by WHERE resumed_at IS NULL",
    )
    _sql(engine, "UPDATE dataset_scope SET sensitivity = 'internal' WHERE name = 'redteam'")
    _sql(engine, "UPDATE directory_target SET url = 'ldap://evil.example'")
    problems = _check(engine).problems
    assert any("pause" in p and "'other'" in p and "client.resume" in p for p in problems)
    assert (
        "scope 'acme/rlhf/redteam' is internal/14 days, its event says restricted/14" in problems
        or any("acme/rlhf/redteam" in p for p in problems)
    )
    assert "directory target 'ldap': url differs from its event" in problems


def test_cli_verify_names_the_row_and_exits_1(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> int:
        return main(["--db", db_url, "--as", "root", *args])

    assert main(["--db", db_url, "init"]) == 0
    assert run("operator", "add", "root", "--role", "admin") == 0
    assert run("audit", "verify") == 0
    engine = db.make_engine(db_url)
    root = _id(engine, "SELECT id FROM operator WHERE name = 'root'")
    _sql(engine, "INSERT INTO operator_role (operator_id, role) VALUES (:o, 'approver')", o=root)
    engine.dispose()
    capsys.readouterr()
    assert run("audit", "verify") == 1
    out = capsys.readouterr().out
    assert "operator 'root' has role 'approver' that no event gave" in out
    assert "intact" not in out.splitlines()[-1]


def test_state_check_reads_in_batches_across_their_boundaries(
    lived_in: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events and grants are read BATCH rows at a time; a tiny BATCH must give the same answer."""
    monkeypatch.setattr(audit_state, "BATCH", 2)
    assert _check(lived_in.engine).ok
    _sql(lived_in.engine, "UPDATE access_grant SET access = 'write' WHERE state = 'active'")
    assert len(_check(lived_in.engine).problems) == 1


def test_demo_grants_are_backed_by_their_events_and_a_later_sql_grant_is_not(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], memory_keyring: MemoryKeyring
) -> None:
    """The demo makes its grants through the services (no bulk exemption any more)."""
    assert main(["--db", sqlite_url, "init"]) == 0
    assert main(["--db", sqlite_url, "demo", "--contractors", "20"]) == 0
    engine = db.make_engine(sqlite_url)
    assert _check(engine).ok
    _sql(
        engine,
        "INSERT INTO access_grant (contractor_id, scope_id, access, state, reason, requested_by,"
        " requested_days, requested_at, starts_at, expires_at) SELECT c.id, s.id, 'read', 'active',"
        " 'x', 1, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2099-01-01 00:00:00'"
        " FROM contractor c, dataset_scope s WHERE NOT EXISTS (SELECT 1 FROM access_grant g"
        " WHERE g.contractor_id = c.id AND g.scope_id = s.id AND g.access = 'read') LIMIT 1",
    )
    problems = _check(engine).problems
    engine.dispose()
    assert len(problems) == 1 and "no grant.request event" in problems[0]


def test_a_binding_changed_by_sql_is_named(lived_in: World) -> None:
    """Rebinding an approver to another login would let that login act as them."""
    _sql(
        lived_in.engine,
        "UPDATE operator SET login = 'mallory', shared_login = true WHERE name = 'ann'",
    )
    problems = _check(lived_in.engine).problems
    assert len(problems) == 1 and problems[0].startswith(
        "operator 'ann' is bound to login 'mallory'"
    )

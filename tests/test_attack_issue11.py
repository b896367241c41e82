"""Red-team reproductions against the issue-11 controls. Each test FAILS on main at cd5cd20:
it pins what the issue says must hold, and today govtui lets the attack through."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import PolicyError
from govtui.services import enrollment, privilege
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import code, enroll
from .memory_keyring import MemoryKeyring
from .test_bound_identity import Login, cli, separate_world


@pytest.fixture
def logged_in_as(monkeypatch: pytest.MonkeyPatch) -> Login:
    """Pretend the OS login running govtui is another one (as test_bound_identity does)."""
    from govtui.services import identity

    def become(login: str) -> None:
        monkeypatch.setattr(identity, "os_login", lambda: login)

    return become


def _secret(uri: str) -> str:
    return parse_qs(urlparse(uri).query)["secret"][0]


def _exec(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def test_one_admin_alone_cannot_be_their_own_second_admin_by_enrolling_them(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    """root (login alice) adds admin vera (login vera), starts and confirms vera's first
    enrolment from alice's login (so root sees vera's QR secret and it sits in alice's
    keyring), then supplies 'vera's code' as --second-admin. vera's person never took part:
    the two-admin rule is one admin. Today every step succeeds."""
    world = separate_world(engine)
    logged_in_as("alice")
    ws = Workspace(engine, "root")
    with pytest.raises(PolicyError):
        ws.act(
            privilege.add_operator,
            name="vera",
            roles=["admin"],
            login="vera",
            codes=privilege.Codes(world.code("root")),
        )
        fake_clock.advance(seconds=30)
        uri = ws.act(enrollment.start, name="vera", admin_code=world.code("root"))
        vera_secret = _secret(uri)
        ws.act(enrollment.confirm, name="vera", code=code(vera_secret))
        fake_clock.advance(seconds=30)
        ws.act(
            privilege.add_operator,
            name="rita",
            roles=["approver"],
            approves=["acme"],
            login="rita",
            codes=privilege.Codes(world.code("root"), "vera", code(vera_secret)),
        )


def test_dropping_the_other_admins_role_does_not_lift_the_two_admin_rule(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    """Two enrolled admins: root takes vera's admin role away (no code), adds an approver on
    his code alone, and gives vera the role back on his code alone. Today all succeed."""
    world = separate_world(engine)
    logged_in_as("alice")
    ws = Workspace(engine, "root")
    ws.act(
        privilege.add_operator,
        name="vera",
        roles=["admin"],
        login="vera",
        codes=privilege.Codes(world.code("root")),
    )
    fake_clock.advance(minutes=2)
    enroll(engine, "vera")
    with pytest.raises(PolicyError):
        ws.act(privilege.remove_role, name="vera", role="admin")
        fake_clock.advance(seconds=30)
        ws.act(
            privilege.add_operator,
            name="rita",
            roles=["approver"],
            approves=["acme"],
            login="rita",
            codes=privilege.Codes(world.code("root")),
        )


def test_no_bootstrap_admin_on_a_database_whose_operators_were_deleted_by_sql(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login
) -> None:
    """DELETE every operator row by SQL, then `operator add mallory --role admin --role
    approver --approves acme`: today it is 'the first operator' (no code) and audit verify
    says intact and backed."""
    separate_world(engine)
    _exec(
        engine, "DELETE FROM operator_client", "DELETE FROM operator_role", "DELETE FROM operator"
    )
    logged_in_as("mallory")
    args = ("operator", "add", "mallory", "--role", "admin", "--role", "approver")
    rc = cli(engine, *args, "--approves", "acme")
    assert rc == 2, "a new first admin was minted on a chain that has operators"


def test_audit_verify_names_operators_deleted_by_sql(
    engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    separate_world(engine)
    _exec(
        engine, "DELETE FROM operator_client", "DELETE FROM operator_role", "DELETE FROM operator"
    )
    assert cli(engine, "audit", "verify") == 1


def test_audit_verify_names_role_provenance_changed_by_sql(
    engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    """operator_role.granted_by / confirmed_by decide the restricted-scope independence rule
    (privilege.provenance), yet rewriting them by SQL leaves `audit verify` green."""
    separate_world(engine)
    _exec(
        engine,
        "UPDATE operator_role SET confirmed_by = (SELECT id FROM operator WHERE name = 'req') "
        "WHERE operator_id = (SELECT id FROM operator WHERE name = 'ann')",
        "UPDATE operator_client SET confirmed_by = (SELECT id FROM operator WHERE name = 'req') "
        "WHERE operator_id = (SELECT id FROM operator WHERE name = 'ann')",
    )
    assert cli(engine, "audit", "verify") == 1


def test_no_write_on_a_cut_chain_after_the_checkpoint_file_is_deleted(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login
) -> None:
    """Delete the last events, fix the head row, rm the checkpoint: the next write is
    accepted and re-creates the checkpoint, and verify (chain part) says intact."""
    separate_world(engine)
    logged_in_as("alice")
    with engine.begin() as conn:
        top = conn.execute(sa.text("SELECT max(seq) FROM audit_event")).scalar_one()
        conn.execute(sa.text("DELETE FROM audit_event WHERE seq > :s"), {"s": top - 2})
        conn.execute(
            sa.text(
                "UPDATE audit_head SET seq = :s, hash = "
                "(SELECT hash FROM audit_event WHERE seq = :s)"
            ),
            {"s": top - 2},
        )
    from govtui.services import audit_checkpoint

    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    if path is None:
        pytest.skip("no checkpoint for this database")
    path.unlink()
    assert cli(engine, "client", "add", "beta", actor="root") == 2


def test_a_failed_second_admin_code_still_uses_up_the_actors_code(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    """root's accepted code is rolled back with the operation when vera's code is wrong, so
    root replays ONE code five times and locks vera out within one step (a colleague's DoS
    at keyboard speed, and root's code is not 'used once')."""
    world = separate_world(engine)
    logged_in_as("alice")
    ws = Workspace(engine, "root")
    ws.act(
        privilege.add_operator,
        name="vera",
        roles=["admin"],
        login="vera",
        codes=privilege.Codes(world.code("root")),
    )
    fake_clock.advance(minutes=2)
    vera = enroll(engine, "vera")
    root_code = world.code("root")
    wrong = f"{(int(code(vera)) + 1) % 1_000_000:06d}"
    messages = []
    for _ in range(5):
        with pytest.raises(PolicyError) as info:
            ws.act(
                privilege.add_role,
                name="req",
                role="approver",
                codes=privilege.Codes(root_code, "vera", wrong),
            )
        messages.append(str(info.value))
    assert "already used" in messages[1], messages
    with db.read_session(engine) as session:
        locked = session.execute(
            sa.text("SELECT totp_locked_until FROM operator WHERE name = 'vera'")
        ).scalar_one()
    assert locked is None, "vera was locked out by root replaying one code"

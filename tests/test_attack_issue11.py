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
    """root (login alice) adds admin vera (login vera) and tries to start vera's first
    enrolment from alice's login, to see vera's QR secret (it would sit in alice's keyring)
    and then supply 'vera's code' himself. Fixed: only vera starts her enrolment, and a
    second admin's code is only ever checked in that admin's own session."""
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
    fake_clock.advance(seconds=30)
    with pytest.raises(PolicyError, match="only 'vera' can enrol themself"):
        ws.act(enrollment.start, name="vera")
    # Nor can root confirm an enrolment for her, or name her as the confirming admin.
    with pytest.raises(PolicyError, match="only 'vera' can confirm"):
        ws.act(enrollment.confirm, name="vera", code="123456")
    assert not hasattr(privilege.Codes(world.code("root")), "second_code")
    # root allows it; vera enrols under her own login; the secret is made in her session.
    ws.act(enrollment.allow, name="vera", code=world.code("root"))
    logged_in_as("vera")
    uri = Workspace(engine, "vera").act(enrollment.start, name="vera")
    Workspace(engine, "vera").act(enrollment.confirm, name="vera", code=code(_secret(uri)))
    # Now an approver made by root waits for vera, in her own session.
    logged_in_as("alice")
    fake_clock.advance(seconds=30)
    changes = ws.act(
        privilege.add_operator,
        name="rita",
        roles=["approver"],
        approves=["acme"],
        login="rita",
        codes=privilege.Codes(world.code("root")),
    )
    assert len(changes) == 2
    with db.read_session(engine) as session:
        rows = session.execute(
            sa.text(
                "SELECT count(*) FROM operator_role r JOIN operator o ON o.id = r.operator_id "
                "WHERE o.name = 'rita'"
            )
        ).scalar_one()
    assert rows == 0, "rita got a role on root's say-so alone"


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
    # Fixed: dropping vera's admin role would lift the rule, so it waits for vera to confirm.
    change = ws.act(privilege.remove_role, name="vera", role="admin")
    assert change is not None
    fake_clock.advance(seconds=30)
    later = ws.act(
        privilege.add_operator,
        name="rita",
        roles=["approver"],
        approves=["acme"],
        login="rita",
        codes=privilege.Codes(world.code("root")),
    )
    assert later, "an approver was made on root's code alone"
    with db.read_session(engine) as session:
        assert privilege.needs_second_admin(session)
        roles = session.execute(
            sa.text(
                "SELECT count(*) FROM operator_role r JOIN operator o ON o.id = r.operator_id "
                "WHERE o.name = 'vera' AND r.role = 'admin'"
            )
        ).scalar_one()
    assert roles == 1


def test_no_bootstrap_admin_on_a_database_whose_operators_were_deleted_by_sql(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login
) -> None:
    """DELETE every operator row by SQL, then `operator add mallory --role admin --role
    approver --approves acme`: today it is 'the first operator' (no code) and audit verify
    says intact and backed."""
    separate_world(engine)
    _exec(
        engine,
        # Signing keys and signatures (schema version 6) point at operators: deleted first.
        "DELETE FROM act_signature",
        "DELETE FROM operator_key",
        "DELETE FROM evidence_key",
        "DELETE FROM operator_client",
        "DELETE FROM operator_role",
        "DELETE FROM operator",
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
        engine,
        # Signing keys and signatures (schema version 6) point at operators: deleted first.
        "DELETE FROM act_signature",
        "DELETE FROM operator_key",
        "DELETE FROM evidence_key",
        "DELETE FROM operator_client",
        "DELETE FROM operator_role",
        "DELETE FROM operator",
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


def test_a_colleague_cannot_submit_or_spend_the_second_admins_code(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    """Before: root supplied vera's code with his own, and a wrong one rolled back the
    acceptance of his, so he replayed one code and locked vera out. Fixed: root only ever
    submits his own code (used once), and vera's is checked in vera's session alone."""
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
    change = ws.act(
        privilege.add_role, name="req", role="approver", codes=privilege.Codes(root_code)
    )
    assert change is not None
    for _ in range(5):
        with pytest.raises(PolicyError, match="different admin"):
            ws.act(privilege.confirm, change_id=change, codes=privilege.Codes(root_code))
    with pytest.raises(PolicyError, match="already used"):
        ws.act(privilege.add_role, name="req", role="admin", codes=privilege.Codes(root_code))
    with db.read_session(engine) as session:
        locked = session.execute(
            sa.text("SELECT totp_locked_until FROM operator WHERE name = 'vera'")
        ).scalar_one()
    assert locked is None, "vera was locked out by root"
    logged_in_as("vera")
    Workspace(engine, "vera").act(
        privilege.confirm, change_id=change, codes=privilege.Codes(code(vera))
    )

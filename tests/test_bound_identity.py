"""Issue 11, findings 1 and 5: operators are bound to the principal that may act as them,
privilege changes need admins' codes, a restricted grant needs approvers not made by one admin
alone, and only the requester, an approver of the client or an admin may revoke."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from govtui import db
from govtui.cli import main
from govtui.errors import PolicyError
from govtui.models import Operator, OperatorClient, OperatorRole
from govtui.services import grants, identity, operators, privilege
from govtui.services.workspace import Workspace

from .conftest import PG_URL, FakeClock, snapshot
from .factories import (
    Op,
    Person,
    Scope,
    World,
    add_catalog,
    add_people,
    bound,
    build_world,
    code,
    enroll,
)
from .memory_keyring import MemoryKeyring

Login = Callable[[str], None]


@pytest.fixture
def logged_in_as(monkeypatch: pytest.MonkeyPatch) -> Login:
    """Pretend the OS login running govtui is another one (what a second account would be)."""

    def become(login: str) -> None:
        monkeypatch.setattr(identity, "os_login", lambda: login)

    return become


def cli(engine: Engine, *args: str, actor: str | None = None) -> int:
    url = engine.url.render_as_string(hide_password=False)
    return main(["--db", url, *(["--as", actor] if actor else []), *args])


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("govtui: error: "), err
    return err.removeprefix("govtui: error: ").rstrip("\n")


def separate_world(engine: Engine) -> World:
    """A vendor with one login per person: root (admin, login alice, enrolled), req
    (requester, login req), ann (approver for acme, login ann); client acme with a
    restricted scope; contractor E1."""
    with db.write_session(engine) as session:
        operators.add(session, None, name="root", roles=["admin"], login="alice")
    secrets = {"root": enroll(engine, "root")}  # alone: the bootstrap enrolment
    with db.write_session(engine) as session:
        root = operators.find(session, "root")
        add_catalog(session, root, [Scope("acme/rlhf/redteam", "restricted")])
        operators.add(session, root, name="req", roles=["requester"], login="req")
        operators.add(session, root, name="ann", roles=["approver"], approves=["acme"], login="ann")
        add_people(session, root, [Person("E1", "Ada", "ada")])
    return World(engine, {**secrets, "ann": enroll(engine, "ann")})


def acting(_session: Session, actor: Operator) -> str:
    """An operation that only says who acted."""
    return actor.name


# --- who is at the keyboard --------------------------------------------------------------------


def test_the_os_login_is_the_effective_uid_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("USER", "LOGNAME", "USERNAME", "LNAME"):
        monkeypatch.setenv(name, "someone-else")
    assert identity.os_login() == pwd.getpwuid(os.geteuid()).pw_name


def test_as_naming_an_operator_bound_to_another_login_is_refused_in_one_line(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    separate_world(engine)
    logged_in_as("req")
    before = snapshot(engine)
    args = ("grant", "request", "E1", "acme/rlhf/redteam", "--access", "read", "--days", "3")
    assert cli(engine, *args, "--reason", "x", actor="ann") == 2
    assert one_line(capsys) == "operator 'ann' is bound to login 'ann'; you are logged in as 'req'"
    monkeypatch.setenv("GOVTUI_OPERATOR", "root")
    assert cli(engine, "client", "add", "beta") == 2
    assert one_line(capsys) == (
        "operator 'root' is bound to login 'alice'; you are logged in as 'req'"
    )
    assert snapshot(engine) == before
    # Without --as or GOVTUI_OPERATOR, req acts as the operator named like their login.
    monkeypatch.delenv("GOVTUI_OPERATOR")
    assert cli(engine, *args, "--reason", "x") == 0


def test_a_removed_operator_cannot_act(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login
) -> None:
    separate_world(engine)
    logged_in_as("alice")
    Workspace(engine, "root").act(privilege.remove_operator, name="req", reason="left")
    logged_in_as("req")
    with pytest.raises(PolicyError, match="'req' was removed and can no longer act"):
        Workspace(engine, "req").act(acting)
    with db.read_session(engine) as session:
        req = operators.find(session, "req")
        assert req.disabled_at is not None and operators.roles_of(session, req) == set()
    # History stays: the row is there, and removing the last admin is refused.
    logged_in_as("alice")
    with pytest.raises(PolicyError, match="last enabled admin"):
        Workspace(engine, "root").act(privilege.remove_operator, name="root", reason="x")
    assert cli(engine, "audit", "verify") == 0


def test_a_login_shared_by_two_operators_needs_shared_login_on_each(
    engine: Engine, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    me = identity.os_login()
    with db.write_session(engine) as session:
        operators.add(session, None, name="root", roles=["admin", "requester"])  # bound to me
    root_secret = enroll(engine, "root")
    before = snapshot(engine)
    add = ("operator", "add", "twin", "--role", "requester", "--login", me)
    assert cli(engine, *add, "--totp", code(root_secret), actor="root") == 2
    assert f"login {me!r} is bound to root already" in one_line(capsys)
    # --shared-login on the new one is not enough: root is not marked shared.
    assert cli(engine, *add, "--shared-login", "--totp", code(root_secret), actor="root") == 2
    assert "without --shared-login" in one_line(capsys)
    assert snapshot(engine) == before
    bind = ("operator", "bind", "root", "--shared-login")
    assert cli(engine, *bind, "--totp", code(root_secret), actor="root") == 0
    assert cli(engine, *add, "--shared-login", "--totp", code(root_secret, 1), actor="root") == 0
    capsys.readouterr()
    assert cli(engine, "operator", "list") == 0
    out = capsys.readouterr().out
    assert f"{me} SHARED" in out and f"login {me} is shared by root, twin" in out
    with db.read_session(engine) as session:
        events = session.execute(sa.text("SELECT action, details FROM audit_event")).all()
    assert any(a == "operator.bind" and '"shared_login":true' in d for a, d in events)
    assert any(a == "operator.add" and '"shared_login":true' in d for a, d in events)
    assert cli(engine, "audit", "verify") == 0


def test_a_database_role_is_refused_on_sqlite(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    with (
        db.write_session(sqlite_engine) as session,
        pytest.raises(PolicyError, match="--db-role needs PostgreSQL"),
    ):
        operators.add(session, None, name="root", roles=["admin"], db_role="root")


def test_operator_views_show_the_binding(world: World) -> None:
    with db.read_session(world.engine) as session:
        views = {v.name: v for v in operators.list_all(session)}
    ann = views["ann"]
    assert (ann.login, ann.db_role, ann.shared_login, ann.disabled) == (
        identity.os_login(),
        None,
        True,
        False,
    )


@pytest.fixture
def pg_role() -> str:
    """A real PostgreSQL login role of the test cluster (trust authentication on loopback)."""
    if PG_URL is None:
        pytest.skip("no PostgreSQL: run the suite with scripts/test")
    return "govtui_ann"


@pytest.mark.postgres
def test_a_database_role_is_checked_against_session_user(
    memory_keyring: MemoryKeyring, pg_role: str
) -> None:
    from govtui import migrations

    from .conftest import _reset_postgres

    assert PG_URL is not None
    _reset_postgres(PG_URL)
    engine = db.make_engine(PG_URL)
    migrations.upgrade(engine)
    with engine.begin() as connection:
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": pg_role}
        ).first()
        if exists is None:
            connection.exec_driver_sql(f"CREATE ROLE {pg_role} LOGIN")
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {pg_role}")
        connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {pg_role}")
        connection.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {pg_role}")
    with db.write_session(engine) as session:
        root = operators.add(session, None, name="root", roles=["admin"], **bound())
        operators.add(session, root, name="ann", roles=["requester"], db_role=pg_role, **bound())
    as_ann = db.make_engine(sa.make_url(PG_URL).set(username=pg_role).render_as_string(False))
    try:
        with pytest.raises(PolicyError, match=f"bound to database role '{pg_role}'.*'postgres'"):
            Workspace(engine, "ann").act(acting)
        with pytest.raises(PolicyError, match=f"bound to database role '{pg_role}'"):
            Workspace(engine, "ann").read_as(acting)
        assert Workspace(as_ann, "ann").act(acting) == "ann"
        # root has no database role: any role that can connect may act as them.
        assert Workspace(as_ann, "root").act(acting) == "root"
    finally:
        as_ann.dispose()
        engine.dispose()


# --- privilege changes need codes ---------------------------------------------------------------


def test_the_four_eyes_bypass_of_issue_11_fails_at_its_first_step(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = separate_world(engine)
    logged_in_as("req")  # the requester at their own keyboard
    before = snapshot(engine)
    add = ("operator", "add", "req2", "--role", "approver", "--approves", "acme")
    assert cli(engine, *add, "--totp", "123456", actor="root") == 2
    assert one_line(capsys) == (
        "operator 'root' is bound to login 'alice'; you are logged in as 'req'"
    )
    # The later steps fail too: req2 does not exist, and req cannot approve as ann.
    assert cli(engine, "operator", "enroll", "req2", "--print-uri", actor="req2") == 2
    assert "unknown operator 'req2'" in one_line(capsys)
    assert snapshot(engine) == before
    grant = world.request(scope="acme/rlhf/redteam", by="req")
    assert cli(engine, "grant", "approve", str(grant), "--totp", "123456", actor="ann") == 2
    assert one_line(capsys) == "operator 'ann' is bound to login 'ann'; you are logged in as 'req'"
    # Even the real admin, at their own keyboard, adds nobody without their code.
    logged_in_as("alice")
    assert cli(engine, *add, actor="root") == 2
    assert "no TOTP code" in one_line(capsys)
    assert cli(engine, *add, "--totp", "000000", actor="root") == 2
    assert "a wrong code for 'root'" in one_line(capsys)
    with db.read_session(engine) as session:
        assert session.exec(select(Operator).where(Operator.name == "req2")).first() is None


def test_a_restricted_grant_refuses_two_approvers_made_by_one_admin_alone(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    fake_clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = separate_world(engine)
    logged_in_as("alice")
    add = ("operator", "add", "bob", "--role", "approver", "--approves", "acme", "--login", "bob")
    assert cli(engine, *add, "--totp", world.code("root"), actor="root") == 0
    fake_clock.advance(minutes=2)  # enroll() uses root's codes of steps after the last one
    bob_secret = enroll(engine, "bob")
    grant = world.request(scope="acme/rlhf/redteam", by="req")
    logged_in_as("ann")
    assert (
        cli(engine, "grant", "approve", str(grant), "--totp", world.code("ann"), actor="ann") == 0
    )
    logged_in_as("bob")
    capsys.readouterr()
    assert cli(engine, "grant", "approve", str(grant), "--totp", code(bob_secret), actor="bob") == 2
    assert one_line(capsys) == (
        f"grant {grant}: 'ann' and 'bob' were both made approvers for 'acme' by 'root' alone; "
        "a restricted scope needs approvers vouched for by more than one admin"
    )
    assert world.grant(grant).state == "requested"
    # A second admin's say-so on bob's role makes the two approvals independent.
    with db.write_session(engine) as session:
        root = operators.find(session, "root")
        vera = operators.add(session, root, name="vera", roles=["admin"], login="vera")
        bob = operators.find(session, "bob")
        for row in (
            session.get(OperatorRole, (bob.id, "approver")),
            session.exec(select(OperatorClient).where(OperatorClient.operator_id == bob.id)).one(),
        ):
            assert row is not None
            row.confirmed_by = vera.id
            session.add(row)
    fake_clock.advance(seconds=30)
    assert cli(engine, "grant", "approve", str(grant), "--totp", code(bob_secret), actor="bob") == 0
    assert world.grant(grant).state == "active"


def test_approvers_without_provenance_from_before_v4_are_not_refused(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login
) -> None:
    # Decided: rows from before schema version 4 (NULL provenance) cannot be judged, and
    # refusing them would stop every restricted approval at the upgrade (privilege.provenance).
    world = separate_world(engine)
    with db.write_session(engine) as session:
        root = operators.find(session, "root")
        operators.add(session, root, name="bob", roles=["approver"], approves=["acme"], login="bob")
        for table in ("operator_role", "operator_client"):
            session.execute(sa.text(f"UPDATE {table} SET granted_by = NULL"))
    secrets = {"bob": enroll(engine, "bob")}
    grant = world.request(scope="acme/rlhf/redteam", by="req")
    logged_in_as("ann")
    world.approve(grant, by="ann")
    logged_in_as("bob")
    (outcome,) = world.approve(grant, by="bob", totp=code(secrets["bob"]))
    assert outcome.activated


def test_second_admin_needed_once_two_enrolled_admins_exist(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    fake_clock: FakeClock,
) -> None:
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
    fake_clock.advance(minutes=2)  # enroll() uses root's codes of steps after the last one
    vera = enroll(engine, "vera")
    # A requester needs only root's code; an approver role needs vera's too.
    ws.act(
        privilege.add_operator,
        name="rita",
        roles=["requester"],
        login="rita",
        codes=privilege.Codes(world.code("root")),
    )
    fake_clock.advance(seconds=30)
    # An approver role is only requested: nothing changes until another admin confirms.
    change = ws.act(
        privilege.add_role, name="rita", role="approver", codes=privilege.Codes(world.code("root"))
    )
    assert change is not None
    with db.read_session(engine) as session:
        assert operators.roles_of(session, operators.find(session, "rita")) == {"requester"}
    fake_clock.advance(seconds=30)
    with pytest.raises(PolicyError, match="different admin than its requester"):
        ws.act(privilege.confirm, change_id=change, codes=privilege.Codes(world.code("root")))
    # vera confirms in her own session (her login, her keyring), with her own code.
    logged_in_as("vera")
    Workspace(engine, "vera").act(
        privilege.confirm, change_id=change, codes=privilege.Codes(code(vera))
    )
    logged_in_as("alice")
    link_change = ws.act(
        privilege.add_approves,
        name="rita",
        client="acme",
        codes=privilege.Codes(world.code("root")),
    )
    assert link_change is not None
    fake_clock.advance(seconds=30)
    logged_in_as("vera")
    Workspace(engine, "vera").act(
        privilege.confirm, change_id=link_change, codes=privilege.Codes(code(vera))
    )
    logged_in_as("alice")
    with db.read_session(engine) as session:
        rita = operators.find(session, "rita")
        role = session.get(OperatorRole, (rita.id, "approver"))
        link = session.exec(
            select(OperatorClient).where(OperatorClient.operator_id == rita.id)
        ).one()
        root_id, vera_id = operators.find(session, "root").id, operators.find(session, "vera").id
    assert role is not None and (role.granted_by, role.confirmed_by) == (root_id, vera_id)
    assert (link.granted_by, link.confirmed_by) == (root_id, vera_id)
    assert role.granted_at is not None
    # Removing privilege needs no code.
    ws.act(privilege.remove_approves, name="rita", client="acme")
    ws.act(privilege.remove_role, name="rita", role="approver")
    with db.read_session(engine) as session:
        assert operators.roles_of(session, operators.find(session, "rita")) == {"requester"}
    # Every privilege change is an event the chain checker replays (audit_state).
    assert cli(engine, "audit", "verify") == 0


def test_the_first_operator_needs_no_code_and_is_bound_to_the_current_login(
    db_url: str, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", db_url, "init"]) == 0
    assert main(["--db", db_url, "operator", "add", "boss", "--role", "admin"]) == 0
    engine = db.make_engine(db_url)
    with db.read_session(engine) as session:
        boss = operators.find(session, "boss")
        role = session.get(OperatorRole, (boss.id, "admin"))
    assert boss.login == identity.os_login() and role is not None and role.granted_by == boss.id
    engine.dispose()


# --- who may revoke -------------------------------------------------------------------------------


def test_revoke_is_for_the_requester_an_approver_of_the_client_or_an_admin(
    engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    world = build_world(
        engine,
        scopes=[Scope("acme/rlhf/pairs", "confidential"), Scope("other/p/s")],
        ops=[
            Op("req", ("requester",)),
            Op("req2", ("requester",)),
            Op("ann", ("approver",), ("acme",), enrol=True),
            Op("olga", ("approver",), ("other",)),
            Op("rev", ("reviewer",)),
        ],
        people=[Person("E1", "Ada", "ada")],
    )
    first = world.request(by="req")
    for who in ("rev", "olga", "req2"):
        with pytest.raises(PolicyError, match=f"not {who!r}"):
            Workspace(engine, who).act(grants.revoke, grant_id=first, reason="x")
    assert world.grant(first).state == "requested"
    Workspace(engine, "req").act(grants.revoke, grant_id=first, reason="mine")
    second = world.request(by="req2")  # ann approves for acme
    Workspace(engine, "ann").act(grants.revoke, grant_id=second, reason="approver")
    third = world.request(scope="other/p/s", by="req")
    Workspace(engine, "root").act(grants.revoke, grant_id=third, reason="admin")
    assert {world.grant(g).state for g in (first, second, third)} == {"revoked"}


def test_init_binds_the_first_admin_of_an_upgraded_database_to_the_current_login(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_migrations import _make_v1

    engine = _make_v1(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE operator SET name = 'boss'"))
        connection.execute(sa.text("INSERT INTO operator_role VALUES (1, 'admin')"))
    assert main(["--db", db_url, "init"]) == 0
    assert f"operator boss (the first admin) is bound to login {identity.os_login()}" in (
        capsys.readouterr().out
    )
    with db.read_session(engine) as session:
        boss = operators.find(session, "boss")
        events = session.execute(sa.text("SELECT actor, action FROM audit_event")).all()
    assert boss.login == identity.os_login()
    assert [tuple(e)[1] for e in events] == ["operator.bind"]
    assert main(["--db", db_url, "init"]) == 0  # idempotent: nothing more to bind
    engine.dispose()


def test_any_approver_of_the_client_may_resume_it(world: World) -> None:
    from govtui.services import pause

    Workspace(world.engine, "ann").act(pause.pause, client="acme", reason="incident")
    result = Workspace(world.engine, "bob").act(pause.resume, client="acme", code=world.code("bob"))
    assert result is not None
    Workspace(world.engine, "ann").act(pause.pause, client="acme", reason="again")
    with pytest.raises(PolicyError, match="'olga' is not an approver for client 'acme'"):
        Workspace(world.engine, "olga").act(pause.resume, client="acme", code=world.code("olga"))

"""Two-person privilege changes (issue 11, the attack on the second admin's code): a change
that needs a second admin is requested in one admin's session and confirmed in another's, each
with their own code; removing another admin that would lift the rule waits for them too."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import ConflictError, PolicyError
from govtui.models import PrivilegeChange
from govtui.services import operators, privilege
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import World, code, enroll
from .memory_keyring import MemoryKeyring
from .test_bound_identity import Login, cli, logged_in_as, separate_world

__all__ = ["logged_in_as"]  # the fixture, used by name


def _two_admins(engine: Engine, fake_clock: FakeClock, login: Login) -> tuple[World, str]:
    world = separate_world(engine)
    login("alice")
    Workspace(engine, "root").act(
        privilege.add_operator,
        name="vera",
        roles=["admin"],
        login="vera",
        codes=privilege.Codes(world.code("root")),
    )
    fake_clock.advance(minutes=2)
    vera = enroll(engine, "vera")
    fake_clock.advance(seconds=30)
    return world, vera


def _state(engine: Engine, change_id: int) -> str:
    with db.read_session(engine) as session:
        change = session.get(PrivilegeChange, change_id)
        assert change is not None
        return change.state


def test_removing_the_other_admin_waits_for_them_and_says_so(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    logged_in_as: Login,
    fake_clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _world, vera = _two_admins(engine, fake_clock, logged_in_as)
    capsys.readouterr()
    assert cli(engine, "operator", "remove", "vera", "--reason", "gone", actor="root") == 0
    out = capsys.readouterr().out
    assert "would leave fewer than two admins" in out and "operator confirm" in out
    with db.read_session(engine) as session:
        assert operators.find(session, "vera").disabled_at is None
        (view,) = privilege.pending(session)
    assert (view.kind, view.operator, view.requested_by) == ("operator_remove", "vera", "root")
    assert cli(engine, "operator", "pending", actor="root") == 0
    assert "operator_remove" in capsys.readouterr().out
    # vera confirms her own removal, in her session, with her code.
    logged_in_as("vera")
    confirm = ("operator", "confirm", str(view.id), "--totp", code(vera))
    assert cli(engine, *confirm, actor="vera") == 0
    with db.read_session(engine) as session:
        assert operators.find(session, "vera").disabled_at is not None
        assert not privilege.needs_second_admin(session)
    assert _state(engine, view.id) == "confirmed"
    assert cli(engine, "audit", "verify") == 0


def test_self_removal_of_the_admin_role_needs_no_second_admin(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    _two_admins(engine, fake_clock, logged_in_as)
    logged_in_as("vera")
    assert Workspace(engine, "vera").act(privilege.remove_role, name="vera", role="admin") is None
    with db.read_session(engine) as session:
        assert operators.roles_of(session, operators.find(session, "vera")) == set()


def test_a_pending_change_can_be_cancelled_and_expires(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    world, vera = _two_admins(engine, fake_clock, logged_in_as)
    ws = Workspace(engine, "root")
    first = ws.act(
        privilege.add_role, name="req", role="approver", codes=privilege.Codes(world.code("root"))
    )
    assert first is not None
    with pytest.raises(ConflictError, match="pending already"):
        ws.act(privilege.add_role, name="req", role="approver", codes=privilege.Codes("000000"))
    logged_in_as("vera")
    Workspace(engine, "vera").act(privilege.cancel, change_id=first)  # either admin
    assert _state(engine, first) == "cancelled"
    with pytest.raises(ConflictError, match="cancelled, not pending"):
        Workspace(engine, "vera").act(
            privilege.confirm, change_id=first, codes=privilege.Codes(code(vera))
        )
    logged_in_as("alice")
    fake_clock.advance(seconds=30)
    second = ws.act(
        privilege.add_role, name="req", role="approver", codes=privilege.Codes(world.code("root"))
    )
    assert second is not None
    fake_clock.advance(seconds=privilege.PENDING_FOR.total_seconds())
    logged_in_as("vera")
    with pytest.raises(PolicyError, match="expired"):
        Workspace(engine, "vera").act(
            privilege.confirm, change_id=second, codes=privilege.Codes(code(vera))
        )
    with db.read_session(engine) as session:
        assert privilege.pending(session) == []
        assert operators.roles_of(session, operators.find(session, "req")) == {"requester"}


def test_approves_waits_for_its_pending_role_and_provenance_names_both_admins(
    engine: Engine, memory_keyring: MemoryKeyring, logged_in_as: Login, fake_clock: FakeClock
) -> None:
    world, vera = _two_admins(engine, fake_clock, logged_in_as)
    role, link = Workspace(engine, "root").act(
        privilege.add_operator,
        name="rita",
        roles=["approver"],
        approves=["acme"],
        login="rita",
        codes=privilege.Codes(world.code("root")),
    )
    logged_in_as("vera")
    vws = Workspace(engine, "vera")
    with pytest.raises(PolicyError, match="lacks the approver role"):
        vws.act(privilege.confirm, change_id=link, codes=privilege.Codes(code(vera)))
    vws.act(privilege.confirm, change_id=role, codes=privilege.Codes(code(vera)))
    fake_clock.advance(seconds=30)
    vws.act(privilege.confirm, change_id=link, codes=privilege.Codes(code(vera)))
    with db.read_session(engine) as session:
        rita = operators.find(session, "rita")
        ids = {operators.find(session, n).id for n in ("root", "vera")}
        acme = privilege._client(session, "acme")
        assert privilege.provenance(session, rita, acme) == frozenset(ids)
    assert cli(engine, "audit", "verify") == 0

"""Lock-out that cannot be turned into a weapon (issue 11, finding 4), and first enrolments
that need an admin's code (finding 1's enrolment step): a replayed code is "already used",
not a failure; a wrong --confirm code counts; a lock-out shows in `operator list` and on the
dashboard, and another approver or an admin lifts it with their own code; a reset of a lost
enrolment is asked by one admin and confirmed by another, each in their own session."""

from __future__ import annotations

import multiprocessing
from datetime import datetime
from typing import Any

import keyring
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli import main
from govtui.errors import ConflictError, PolicyError
from govtui.models import AuditEvent
from govtui.security.secrets import SERVICE
from govtui.services import dashboard, enrollment, lockout, operators, privilege, second_factor
from govtui.services.second_factor import MAX_FAILURES, CodeRejected
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import World, bound, enroll, small_vendor
from .memory_keyring import MemoryKeyring

CONTEXT = multiprocessing.get_context("spawn")


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return small_vendor(engine)


def _verify_as(engine: Engine, name: str, given: str) -> int:
    return Workspace(engine, name).act(
        lambda s, actor: second_factor.verify(s, actor, given, purpose="test")
    )


def _submit(
    url: str, name: str, secret: str, given: str, at: datetime, barrier: Any, out: Any
) -> None:
    """A child process: its own keyring, engine and clock; one submit after the barrier."""
    try:
        keyring.set_keyring(MemoryKeyring())
        engine = db.make_engine(url)
        with db.read_session(engine) as session:
            key = second_factor.secret_key(session, name)
            assert key is not None
            keyring.set_password(SERVICE, key, secret)
        clock.set_source(lambda: at)
        barrier.wait()
        _verify_as(engine, name, given)
        out.put("accepted")
    except CodeRejected as exc:
        out.put(f"rejected: {exc}")
    except BaseException as exc:
        out.put(f"error: {type(exc).__name__}: {exc}")


def test_eight_concurrent_submits_of_one_code_one_accepted_no_lock_out(
    world: World, db_url: str
) -> None:
    given = world.code("ann")
    barrier = CONTEXT.Barrier(8, timeout=60)
    out = CONTEXT.Queue()
    children = [
        CONTEXT.Process(
            target=_submit,
            args=(db_url, "ann", world.secrets["ann"], given, clock.now(), barrier, out),
        )
        for _ in range(8)
    ]
    for child in children:
        child.start()
    results = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert results.count("accepted") == 1, results
    assert all("already used" in r for r in results if r != "accepted"), results
    ann = world.op("ann")
    assert ann.totp_failures == 0 and ann.totp_locked_until is None
    assert _verify_as(world.engine, "ann", world.code("ann", 1))


def test_a_replay_is_already_used_and_never_counted(world: World) -> None:
    given = world.code("ann")
    _verify_as(world.engine, "ann", given)
    for _ in range(MAX_FAILURES + 2):
        with pytest.raises(CodeRejected, match="already used"):
            _verify_as(world.engine, "ann", given)
        with pytest.raises(CodeRejected, match="already used"):
            _verify_as(world.engine, "ann", world.code("ann", -1))  # an earlier step
    assert world.op("ann").totp_failures == 0
    assert world.op("ann").totp_locked_until is None


def _lock(world: World, name: str) -> None:
    for _ in range(MAX_FAILURES):
        with pytest.raises(CodeRejected):
            _verify_as(world.engine, name, "000000")
    assert second_factor.remaining_lockout(world.op(name)) is not None


def test_wrong_confirm_codes_count_towards_the_lock_out(world: World) -> None:
    Workspace(world.engine, "ann").act(enrollment.start, name="ann", current_code=world.code("ann"))
    for n in range(MAX_FAILURES):
        with pytest.raises(CodeRejected, match="does not match the new secret"):
            Workspace(world.engine, "ann").act(enrollment.confirm, name="ann", code="000000")
        assert world.op("ann").totp_failures == (n + 1) % MAX_FAILURES
    assert second_factor.remaining_lockout(world.op("ann")) is not None
    with pytest.raises(CodeRejected, match="locked out"):
        Workspace(world.engine, "ann").act(enrollment.confirm, name="ann", code="000000")
    # counted even when an admin confirms for them
    actions = _actions(world.engine)
    assert actions.count("totp.failure") == MAX_FAILURES - 1 and "totp.lockout" in actions


def _actions(engine: Engine) -> list[str]:
    with db.read_session(engine) as session:
        return list(
            session.execute(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).scalars()
        )


def test_a_lock_out_shows_in_operator_list_and_on_the_dashboard(
    world: World, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _lock(world, "ann")
    overview = Workspace(world.engine, "root").read(dashboard.overview)
    assert [locked.name for locked in overview.locked_operators] == ["ann"]
    views = {v.name: v for v in Workspace(world.engine, "root").read(operators.list_all)}
    assert views["ann"].totp_locked_until is not None and views["bob"].totp_locked_until is None
    capsys.readouterr()
    assert main(["--db", db_url, "--as", "root", "operator", "list"]) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith("ann ")]
    assert "LOCKED until" in line


def test_a_fellow_approver_or_an_admin_unlocks_with_their_own_code(world: World) -> None:
    _lock(world, "ann")
    for outsider, why in (
        ("olga", "only an admin or an approver of a client"),  # another client's approver
        ("req", "only an admin or an approver of a client"),  # a requester
        ("ann", "cannot lift their own lock-out"),
    ):
        with pytest.raises(PolicyError, match=why):
            Workspace(world.engine, outsider).act(
                lockout.unlock, name="ann", code=world.code(outsider) if outsider != "req" else "1"
            )
    with pytest.raises(CodeRejected, match="wrong code"):
        Workspace(world.engine, "bob").act(lockout.unlock, name="ann", code="000000")
    assert second_factor.remaining_lockout(world.op("ann")) is not None
    Workspace(world.engine, "bob").act(lockout.unlock, name="ann", code=world.code("bob"))
    assert second_factor.remaining_lockout(world.op("ann")) is None
    assert _verify_as(world.engine, "ann", world.code("ann"))
    assert "totp.unlock" in _actions(world.engine)
    with pytest.raises(ConflictError, match="not locked"):
        Workspace(world.engine, "root").act(lockout.unlock, name="ann", code=world.code("root"))
    _lock(world, "bob")
    Workspace(world.engine, "root").act(lockout.unlock, name="bob", code=world.code("root", 1))
    assert second_factor.remaining_lockout(world.op("bob")) is None


def _second_admin(world: World, name: str = "adm2") -> str:
    with db.write_session(world.engine) as session:
        operators.add(
            session, operators.find(session, "root"), name=name, roles=["admin"], **bound()
        )
    world.secrets[name] = enroll(world.engine, name)
    return name


def test_two_admins_codes_reset_an_enrolment_and_it_can_be_redone(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    adm2 = _second_admin(world)
    old_key = Workspace(world.engine, "root").read(second_factor.secret_key, "ann")
    assert old_key is not None and keyring.get_password(SERVICE, old_key) is not None
    ask = ["--db", db_url, "--as", "root", "operator", "reset-enrolment", "ann"]
    # the inline second admin is gone: each admin's code only in their own session
    with pytest.raises(SystemExit):
        main([*ask, "--totp", world.code("root"), "--second-admin", adm2])
    assert main([*ask, "--totp", world.code("root")]) == 0
    assert world.op("ann").totp_enrolled_at is not None  # only requested
    (pending,) = Workspace(world.engine, "root").read(privilege.pending)
    assert (pending.kind, pending.operator, pending.requested_by) == ("totp_reset", "ann", "root")

    def confirm(by: str, totp: str) -> int:
        return main(
            ["--db", db_url, "--as", by, "operator", "confirm", str(pending.id), "--totp", totp]
        )

    # not by the requester, nor with a wrong code
    assert confirm("root", world.code("root", 1)) == 2
    assert confirm(adm2, "000000") == 2
    assert world.op("ann").totp_enrolled_at is not None
    assert confirm(adm2, world.code(adm2)) == 0
    ann = world.op("ann")
    assert ann.totp_enrolled_at is None and ann.totp_secret_ref is None
    assert keyring.get_password(SERVICE, old_key) is None
    with db.read_session(world.engine) as session:
        event = session.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "totp.reset")
        ).scalar_one()
    assert event.actor == adm2 and "root" in event.details and event.object == "operator:ann"
    fake_clock.advance(seconds=120)  # the factories enrol on root's codes of past steps
    world.secrets["ann"] = enroll(world.engine, "ann")
    assert _verify_as(world.engine, "ann", world.code("ann"))


def test_a_first_enrolment_needs_an_admins_allowance_and_is_done_by_the_operator(
    world: World,
) -> None:
    with db.write_session(world.engine) as session:
        operators.add(
            session,
            operators.find(session, "root"),
            name="req2",
            roles=["approver"],
            approves=["acme"],
            **bound(),
        )
    # the four-eyes bypass's step: enrolling oneself without anyone's say-so
    with pytest.raises(PolicyError, match="needs an admin's allowance"):
        Workspace(world.engine, "req2").act(enrollment.start, name="req2")
    # an admin never starts it (the secret would be made in the admin's keyring, shown to them)
    with pytest.raises(PolicyError, match="only 'req2' can enrol themself"):
        Workspace(world.engine, "root").act(enrollment.start, name="req2")
    with pytest.raises(CodeRejected, match="wrong code"):
        Workspace(world.engine, "root").act(enrollment.allow, name="req2", code="000000")
    assert world.op("root").totp_failures == 1
    with pytest.raises(PolicyError, match="cannot allow their own"):
        Workspace(world.engine, "req2").act(enrollment.allow, name="req2", code="000000")
    Workspace(world.engine, "root").act(enrollment.allow, name="req2", code=world.code("root"))
    assert world.op("req2").enrol_allowed_by == world.op("root").id
    uri = Workspace(world.engine, "req2").act(enrollment.start, name="req2")
    assert uri.startswith("otpauth://")
    # An unenrolled admin who is not the only operator cannot enrol themself either.
    with db.write_session(world.engine) as session:
        operators.add(
            session, operators.find(session, "root"), name="adm3", roles=["admin"], **bound()
        )
    with pytest.raises(PolicyError, match="needs an admin's allowance"):
        Workspace(world.engine, "adm3").act(enrollment.start, name="adm3")


def test_an_allowance_expires(world: World, fake_clock: FakeClock) -> None:
    with db.write_session(world.engine) as session:
        operators.add(
            session, operators.find(session, "root"), name="req2", roles=["requester"], **bound()
        )
    Workspace(world.engine, "root").act(enrollment.allow, name="req2", code=world.code("root"))
    fake_clock.advance(seconds=enrollment.ALLOWANCE.total_seconds())
    with pytest.raises(PolicyError, match="needs an admin's allowance"):
        Workspace(world.engine, "req2").act(enrollment.start, name="req2")


def test_the_bypass_path_through_the_cli_is_refused(
    world: World, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with db.write_session(world.engine) as session:
        operators.add(
            session,
            operators.find(session, "root"),
            name="req2",
            roles=["approver"],
            approves=["acme"],
            **bound(),
        )
    capsys.readouterr()
    assert main(["--db", db_url, "--as", "req2", "operator", "enroll", "req2", "--print-uri"]) != 0
    assert "needs an admin's allowance" in capsys.readouterr().err
    assert world.op("req2").totp_pending_at is None
    # the admin, with their code, allows it; req2 starts it
    allow = ["operator", "enroll", "req2", "--allow", "--totp", world.code("root")]
    assert main(["--db", db_url, "--as", "root", *allow]) == 0
    capsys.readouterr()
    assert main(["--db", db_url, "--as", "req2", "operator", "enroll", "req2", "--print-uri"]) == 0
    assert capsys.readouterr().out.startswith("otpauth://")


def test_unlock_through_the_cli(
    world: World, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _lock(world, "ann")
    assert (
        main(
            [
                "--db",
                db_url,
                "--as",
                "bob",
                "operator",
                "unlock",
                "ann",
                "--totp",
                world.code("bob"),
            ]
        )
        == 0
    )
    assert "operator ann unlocked" in capsys.readouterr().out
    assert second_factor.remaining_lockout(world.op("ann")) is None


def test_locked_operators_lists_only_current_lock_outs(world: World, fake_clock: FakeClock) -> None:
    _lock(world, "ann")
    with db.read_session(world.engine) as session:
        assert [o.name for o in lockout.locked_operators(session)] == ["ann"]
    fake_clock.advance(seconds=second_factor.LOCKOUT.total_seconds())
    with db.read_session(world.engine) as session:
        assert lockout.locked_operators(session) == []

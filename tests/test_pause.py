"""Pausing a client and resuming it exactly (DESIGN invariants 3, 4 and 5), on SQLite and
PostgreSQL, and against the real slapd: after a pause no contractor of the client is in any of
its groups; after resume exactly the restored ones are back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from govtui import db
from govtui.cli import main
from govtui.errors import ConflictError, PolicyError
from govtui.models import AuditEvent, Client, ClientPause, Grant, PausedGrant
from govtui.services import audit, contractors, grants, pause, pause_views, sync
from govtui.services.second_factor import CodeRejected

from .conftest import FakeClock, snapshot
from .directory_support import Directory, add_target, norm, outbox, private_subtree
from .factories import World, small_vendor
from .memory_keyring import MemoryKeyring


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return small_vendor(engine)


def next_step(fake_clock: FakeClock) -> None:
    fake_clock.advance(seconds=31)


def states(world: World) -> dict[int, str]:
    with db.read_session(world.engine) as session:
        return dict(session.execute(sa.select(col(Grant.id), col(Grant.state))).all())


def do_pause(world: World, client: str = "acme", by: str = "root") -> pause.PauseResult:
    with db.write_session(world.engine) as session:
        return pause.pause(session, world.op(by), client=client, reason="the lab called")


def do_resume(
    world: World, client: str = "acme", by: str = "bob", code: str | None = None
) -> pause.ResumeResult:
    with db.write_session(world.engine) as session:
        return pause.resume(
            session, world.op(by), client=client, code=code if code is not None else world.code(by)
        )


def revoke(world: World, grant_id: int) -> None:
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=grant_id, reason="off the project")


def add_contractor(world: World, external_id: str, uid: str) -> None:
    with db.write_session(world.engine) as session:
        contractors.add(
            session,
            world.op("root"),
            external_id=external_id,
            name=f"Person {uid}",
            email=f"{uid}@x.example",
            directory_uid=uid,
            contract_end=date(2027, 12, 31),
        )


class Every:
    """Grants of acme in every state, and one of the other client."""

    def __init__(self, world: World, fake_clock: FakeClock) -> None:
        for n in range(3, 8):
            add_contractor(world, f"E{n}", f"u{n}")
        self.active = world.request("E1")
        world.approve(self.active)
        next_step(fake_clock)
        self.short = world.request("E3", days=2)  # expires while the client is paused
        world.approve(self.short, totp=world.code("ann"))
        next_step(fake_clock)
        self.revoked_later = world.request("E4")  # revoked while the client is paused
        world.approve(self.revoked_later, totp=world.code("ann"))
        next_step(fake_clock)
        self.requested = world.request("E5")
        self.half = world.request("E6", scope="acme/rlhf/redteam")  # 1 of 2 approvals
        world.approve(self.half, totp=world.code("ann"))
        self.denied = world.request("E7")
        with db.write_session(world.engine) as session:
            grants.deny(session, world.op("bob"), grant_ids=[self.denied], reason="no")
        self.ended = world.request("E1", access="label")
        world.approve(self.ended, by="bob")
        revoke(world, self.ended)
        self.other = world.request("E1", scope="other/p/s")
        world.approve(self.other, by="olga")
        self.other_request = world.request("E3", scope="other/p/s")


def test_pause_suspends_every_active_grant_and_request_in_one_event(
    world: World, fake_clock: FakeClock
) -> None:
    g = Every(world, fake_clock)
    before = states(world)
    with db.read_session(world.engine) as session:
        expiries = {gid: session.get(Grant, gid).expires_at for gid in before}  # type: ignore[union-attr]
        events_before = session.execute(
            sa.select(sa.func.count()).select_from(AuditEvent)
        ).scalar_one()

    result = do_pause(world)

    after = states(world)
    suspended = {g.active, g.short, g.revoked_later, g.requested, g.half}
    assert {gid for gid, st in after.items() if st == "suspended"} == suspended
    assert (result.suspended_active, result.suspended_requests) == (3, 2)
    for gid in before.keys() - suspended:
        assert after[gid] == before[gid]  # denied, revoked and the other client's: untouched
    with db.read_session(world.engine) as session:
        record = session.exec(select(ClientPause)).one()
        assert (record.reason, record.paused_by, record.resumed_at) == (
            "the lab called",
            world.op("root").id,
            None,
        )
        assert session.exec(select(Client).where(Client.name == "acme")).one().status == "paused"
        assert session.exec(select(Client).where(Client.name == "other")).one().status == "active"
        recorded = {
            p.grant_id: p.prior_state
            for p in session.exec(select(PausedGrant).where(PausedGrant.pause_id == record.id))
        }
        assert recorded == {
            g.active: "active",
            g.short: "active",
            g.revoked_later: "active",
            g.requested: "requested",
            g.half: "requested",
        }
        for gid in suspended:  # the window is kept as it was, for resume
            assert session.get(Grant, gid).expires_at == expiries[gid]  # type: ignore[union-attr]
        events = session.exec(select(AuditEvent).where(AuditEvent.seq > events_before)).all()
    (event,) = events  # one event, not one per grant
    details = json.loads(event.details)
    assert (event.action, event.object) == ("client.pause", "client:acme")
    assert details["count"] == 5 and details["active"] == 3 and details["requested"] == 2
    assert details["ids_sha256"] == audit.id_summary(sorted(suspended))["ids_sha256"]
    with db.read_session(world.engine) as session:
        assert audit.verify(session, world.engine).ok


def test_while_paused_nothing_can_be_requested_approved_or_extended(
    world: World, fake_clock: FakeClock
) -> None:
    active = world.request("E1")
    world.approve(active)
    waiting = world.request("E1", access="label")
    next_step(fake_clock)
    do_pause(world)

    with pytest.raises(PolicyError, match="client 'acme' is paused: no grant can be requested"):
        world.request("E1", access="write")
    with pytest.raises(PolicyError, match="client 'acme' is paused: no grant can be approved"):
        world.approve(waiting, totp=world.code("ann"))
    with (
        pytest.raises(PolicyError, match="client 'acme' is paused: no grant can be extended"),
        db.write_session(world.engine) as session,
    ):
        grants.extend(session, world.op("req"), grant_id=active, days=5, reason="more")
    # Removing access keeps working on suspended grants.
    revoke(world, waiting)
    fake_clock.advance(days=11)
    with db.write_session(world.engine) as session:
        assert grants.expire_due(session, actor_name="cron") == [active]
    assert states(world)[waiting] == "revoked"


def test_pause_twice_and_resume_when_not_paused_are_refused(world: World) -> None:
    do_pause(world)
    before = snapshot(world.engine)
    with pytest.raises(ConflictError, match="paused already"):
        do_pause(world)
    assert snapshot(world.engine) == before
    with pytest.raises(ConflictError, match="'other' is not paused"):
        do_resume(world, client="other", by="olga")


def test_only_an_admin_or_an_approver_of_the_client_may_pause(world: World) -> None:
    with pytest.raises(PolicyError, match="an admin or one of its approvers"):
        do_pause(world, by="req")
    with pytest.raises(PolicyError, match="an admin or one of its approvers"):
        do_pause(world, by="olga")  # approves for another client
    assert do_pause(world, by="ann").client == "acme"


def test_resume_restores_exactly_with_the_original_expiry(
    world: World, fake_clock: FakeClock
) -> None:
    g = Every(world, fake_clock)
    with db.read_session(world.engine) as session:
        original = {gid: session.get(Grant, gid).expires_at for gid in (g.active,)}  # type: ignore[union-attr]
    do_pause(world)
    revoke(world, g.revoked_later)
    fake_clock.advance(days=3)  # g.short (2 days) runs out while the client is paused

    result = do_resume(world)

    after = states(world)
    assert after[g.active] == "active"
    assert after[g.requested] == "requested" and after[g.half] == "requested"
    assert after[g.revoked_later] == "revoked"
    assert after[g.short] == "expired"
    assert (result.restored_active, result.restored_requests, result.not_restored) == (1, 2, 2)
    with db.read_session(world.engine) as session:
        assert session.get(Grant, g.active).expires_at == original[g.active]  # type: ignore[union-attr]
        record = session.exec(select(ClientPause)).one()
        assert record.resumed_by == world.op("bob").id and record.resumed_at is not None
        assert session.exec(select(Client).where(Client.name == "acme")).one().status == "active"
    # The half-approved restricted request needs its second approver still, not a new first.
    world.approve(g.half, by="bob", totp=world.code("bob", 1))
    assert states(world)[g.half] == "active"
    # And a new pause starts afresh.
    assert do_pause(world).suspended_active == 2


def test_resume_needs_a_valid_code_of_an_approver_for_the_client(
    world: World, fake_clock: FakeClock
) -> None:
    active = world.request("E1")
    world.approve(active)
    next_step(fake_clock)
    do_pause(world)
    before = states(world)
    with pytest.raises(PolicyError, match="'olga' is not an approver for client 'acme'"):
        do_resume(world, by="olga")
    with pytest.raises(PolicyError, match="'root' is not an approver"):
        do_resume(world, by="root", code="123456")
    with pytest.raises(CodeRejected, match="wrong code"):
        do_resume(world, code="000000")
    assert states(world) == before
    with db.read_session(world.engine) as session:
        assert session.exec(select(Client).where(Client.name == "acme")).one().status == "paused"
        assert world.op("bob").totp_failures == 1  # the wrong code counts towards lock-out
    do_resume(world)
    # The code is spent: the same one cannot resume a second pause.
    do_pause(world)
    with pytest.raises(CodeRejected):
        do_resume(world)


def test_blast_radius_counts_and_writes_nothing(world: World, fake_clock: FakeClock) -> None:
    g = Every(world, fake_clock)
    before = snapshot(world.engine)
    with db.read_session(world.engine) as session:
        radius = pause_views.blast_radius(session, "acme")
    assert snapshot(world.engine) == before
    assert (radius.active, radius.requested, radius.grants) == (3, 2, 5)
    assert radius.contractors == 5  # E1, E3, E4, E5, E6
    assert {(s.scope, s.access, s.active, s.requested) for s in radius.scopes} == {
        ("pairs", "read", 3, 1),
        ("redteam", "read", 0, 1),
    }
    assert radius.groups == []  # no directory target
    assert g.other not in {gid for gid, st in states(world).items() if st == "suspended"}


def test_status_without_a_pause_and_without_targets(world: World) -> None:
    with db.read_session(world.engine) as session:
        assert (
            pause_views.status(session, "acme").summary
            == "client acme is active; it has never been paused"
        )
    active = world.request("E1")
    world.approve(active)
    do_pause(world)
    with db.read_session(world.engine) as session:
        state = pause_views.status(session, "acme")
    assert state.pause is not None and state.pause.suspended == 1
    assert state.removals is not None and state.removals.queued == 0 and state.removals.complete
    assert state.summary.startswith("client acme is PAUSED; no directory removals")


# -- the CLI ----------------------------------------------------------------------------------


def run(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    url = world.engine.url.render_as_string(hide_password=False)
    code = main(["--db", url, "--as", argv[0], *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_dry_run_pause_status_and_bad_input(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    active = world.request("E1")
    world.approve(active)
    before = snapshot(world.engine)
    code, out, _ = run(
        world, capsys, "root", "client", "pause", "acme", "--reason", "x", "--dry-run"
    )
    assert code == 0 and "would suspend 1 active grants and 0 requests of 1 contractors" in out
    code, out, _ = run(
        world, capsys, "root", "client", "pause", "acme", "--reason", "x", "--dry-run", "--json"
    )
    assert code == 0 and json.loads(out)["active"] == 1
    for argv, message in (
        (("client", "pause", "nope", "--reason", "x"), "unknown client 'nope'"),
        (("client", "pause", "acme", "--reason", "  "), "reason"),
        (("client", "resume", "acme", "--totp", "123456"), "not paused"),
        (("client", "status", "nope"), "unknown client 'nope'"),
    ):
        code, _, err = run(world, capsys, "bob", *argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and message in err, err
    assert snapshot(world.engine) == before

    code, out, _ = run(world, capsys, "root", "client", "pause", "acme", "--reason", "lab call")
    assert code == 0
    assert "client acme paused (pause 1): 1 active grants and 0 requests suspended" in out
    code, out, _ = run(world, capsys, "root", "client", "status", "acme", "--json")
    state = json.loads(out)
    assert state["status"] == "paused" and state["pause"]["suspended"] == 1
    assert state["removals"]["complete"] is True
    next_step(fake_clock)
    code, _, err = run(world, capsys, "bob", "client", "resume", "acme", "--totp", "000000")
    assert code == 2 and "wrong code" in err
    code, out, _ = run(
        world, capsys, "bob", "client", "resume", "acme", "--totp", world.code("bob")
    )
    assert code == 0 and "1 grants restored with their original expiry" in out
    assert states(world)[active] == "active"


# -- against the real slapd -------------------------------------------------------------------


@pytest.fixture
def directory() -> Iterator[Directory]:
    yield from private_subtree()


def group_members(directory: Directory, dn: str) -> set[str]:
    return (directory.members(dn) or set()) - {norm(directory.placeholder)}


def test_directory_follows_pause_and_resume_exactly(
    world: World, directory: Directory, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    add_target(world.engine, directory)
    for uid in ("ada", "bo", "u3", "u4", "u5"):
        directory.add_person(uid)
    for n in (3, 4, 5):
        add_contractor(world, f"E{n}", f"u{n}")
    pairs = directory.group("acme-rlhf-pairs-read")
    notes = directory.group("acme-rlhf-notes-label")
    other = directory.group("other-p-s-read")
    keep = world.request("E1")
    world.approve(keep)
    next_step(fake_clock)
    gone = world.request("E3")
    world.approve(gone, totp=world.code("ann"))
    next_step(fake_clock)
    labeller = world.request("E4", scope="acme/rlhf/notes", access="label")
    world.approve(labeller, totp=world.code("ann"))
    outsider = world.request("E5", scope="other/p/s")
    world.approve(outsider, by="olga")
    sync.run_once(world.engine)
    assert group_members(directory, pairs) == {
        norm(directory.user("ada")),
        norm(directory.user("u3")),
    }
    assert group_members(directory, notes) == {norm(directory.user("u4"))}

    with db.read_session(world.engine) as session:
        radius = pause_views.blast_radius(session, "acme")
    assert {(g.group_dn, g.members) for g in radius.groups} == {(pairs, 2), (notes, 1)}

    code, out, _ = run(world, capsys, "root", "client", "pause", "acme", "--reason", "lab call")
    assert code == 0, out
    assert "complete: 3/3 directory removals confirmed" in out
    assert group_members(directory, pairs) == set() and group_members(directory, notes) == set()
    assert group_members(directory, other) == {norm(directory.user("u5"))}  # another client's
    assert {op.pause_id for op in outbox(world.engine) if op.operation == "remove_member"} == {1}

    revoke(world, gone)
    code, out, _ = run(
        world, capsys, "bob", "client", "resume", "acme", "--totp", world.code("bob")
    )
    assert code == 0, out
    assert "complete: 2/2 directory additions confirmed" in out
    assert group_members(directory, pairs) == {norm(directory.user("ada"))}
    assert group_members(directory, notes) == {norm(directory.user("u4"))}


def test_status_says_not_complete_while_the_directory_is_down(
    world: World, directory: Directory, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    add_target(world.engine, directory)
    directory.add_person("ada")
    active = world.request("E1")
    world.approve(active)
    sync.run_once(world.engine)
    directory.stop_server()
    try:
        code, out, _ = run(world, capsys, "root", "client", "pause", "acme", "--reason", "now")
    finally:
        directory.start_server()
    assert code == 1  # paused in govtui, the directory has not confirmed
    assert (
        "client acme paused" in out
        and "NOT complete: 0/1 directory removals confirmed, 1 pending" in out
    )
    assert states(world)[active] == "suspended"
    with db.read_session(world.engine) as session:
        assert not pause_views.status(session, "acme").removals.complete  # type: ignore[union-attr]
    fake_clock.advance(seconds=20)  # past the retry's backoff
    code, out, _ = run(world, capsys, "root", "sync")
    assert code == 0, out
    code, out, _ = run(world, capsys, "root", "client", "status", "acme")
    assert "complete: 1/1 directory removals confirmed" in out
    assert group_members(directory, directory.group("acme-rlhf-pairs-read")) == set()

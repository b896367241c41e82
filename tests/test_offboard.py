"""Offboarding a contractor: every live grant ends everywhere, nothing new can be requested,
and the directory account is disabled (DESIGN invariants 3 and 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from govtui import db
from govtui.cli import main
from govtui.errors import ConflictError, PolicyError
from govtui.models import AuditEvent, Contractor, Grant, GrantExtension
from govtui.services import grants, offboarding, pause, sync

from .conftest import FakeClock, snapshot
from .directory_support import Directory, add_target, norm, outbox, private_subtree
from .factories import World, small_vendor
from .memory_keyring import MemoryKeyring


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return small_vendor(engine)


def next_step(fake_clock: FakeClock) -> None:
    fake_clock.advance(seconds=31)


def offboard(world: World, external_id: str = "E1", by: str = "root") -> offboarding.OffboardResult:
    with db.write_session(world.engine) as session:
        return offboarding.offboard(
            session, world.op(by), external_id=external_id, reason="contract terminated"
        )


def states(world: World) -> dict[int, str]:
    with db.read_session(world.engine) as session:
        return dict(session.execute(sa.select(col(Grant.id), col(Grant.state))).all())


def test_offboarding_ends_every_live_grant_everywhere(world: World, fake_clock: FakeClock) -> None:
    active = world.request("E1")
    world.approve(active)
    next_step(fake_clock)
    extended = world.request("E1", scope="acme/rlhf/notes")
    world.approve(extended)
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("req"), grant_id=extended, days=5, reason="more")
    other = world.request("E1", scope="other/p/s")
    world.approve(other, by="olga")
    waiting = world.request("E1", access="label")
    short = world.request("E1", access="write", days=1)
    world.approve(short, by="bob")
    fake_clock.advance(days=2)
    with db.write_session(world.engine) as session:
        grants.expire_due(session, actor_name="cron")
    bystander = world.request("E2")
    with db.write_session(world.engine) as session:
        pause.pause(session, world.op("root"), client="other", reason="lab call")

    result = offboard(world)

    after = states(world)
    assert {gid for gid, st in after.items() if st == "revoked"} == {
        active,
        extended,
        other,
        waiting,
    }
    assert after[short] == "expired" and after[bystander] == "requested"
    assert result.ended == 4 and result.directory_ops == 0  # no directory target
    with db.read_session(world.engine) as session:
        person = session.exec(select(Contractor).where(Contractor.external_id == "E1")).one()
        assert person.status == "offboarded"
        ended = session.get(Grant, active)
        assert ended is not None and ended.end_reason == "offboarded: contract terminated"
        assert ended.ended_by == world.op("root").id
        assert {e.state for e in session.exec(select(GrantExtension))} == {"void"}
        event = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    assert event is not None and (event.action, event.object) == (
        "contractor.offboard",
        "contractor:E1",
    )
    assert json.loads(event.details)["count"] == 4

    with pytest.raises(PolicyError, match="contractor 'E1' is offboarded"):
        world.request("E1", access="write")
    # A resume never brings back what offboarding ended.
    with db.write_session(world.engine) as session:
        restored = pause.resume(session, world.op("olga"), client="other", code=world.code("olga"))
    assert (restored.restored_active, restored.not_restored) == (0, 1)
    assert states(world)[other] == "revoked"


def test_offboarding_is_refused_twice_for_non_admins_and_unknown_ids(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    url = world.engine.url.render_as_string(hide_password=False)
    before = snapshot(world.engine)
    for actor, external_id, message in (
        ("ann", "E1", "lacks the admin role"),
        ("root", "E404", "unknown contractor"),
    ):
        code = main(
            ["--db", url, "--as", actor, "contractor", "offboard", external_id, "--reason", "x"]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, err
    code = main(["--db", url, "--as", "root", "contractor", "offboard", "E1", "--reason", " "])
    assert code == 2 and "give a reason" in capsys.readouterr().err
    assert snapshot(world.engine) == before
    offboard(world)
    with pytest.raises(ConflictError, match="offboarded already"):
        offboard(world)


@pytest.fixture
def directory() -> Iterator[Directory]:
    yield from private_subtree()


def test_offboarding_leaves_no_group_membership_and_a_disabled_account(
    world: World, directory: Directory, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    add_target(world.engine, directory)
    ada, bo = directory.add_person("ada"), directory.add_person("bo")
    pairs = directory.group("acme-rlhf-pairs-read")
    first = world.request("E1")
    world.approve(first)
    next_step(fake_clock)
    second = world.request("E1", scope="acme/rlhf/notes", access="label")
    world.approve(second)
    keep = world.request("E2")
    world.approve(keep, by="bob")
    sync.run_once(world.engine)
    assert norm(ada) in (directory.members(pairs) or set())

    url = world.engine.url.render_as_string(hide_password=False)
    code = main(["--db", url, "--as", "root", "contractor", "offboard", "E1", "--reason", "left"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "contractor E1 offboarded: 2 grants ended; 3 directory operations queued" in out
    assert "directory: 3 confirmed" in out
    assert directory.members(pairs) == {norm(directory.placeholder), norm(bo)}
    assert norm(ada) not in (directory.members(directory.group("acme-rlhf-notes-label")) or set())
    assert directory.attribute(ada, "pwdAccountLockedTime")  # OpenLDAP ppolicy: locked
    assert not directory.attribute(bo, "pwdAccountLockedTime")
    assert {op.state for op in outbox(world.engine)} == {"done"}
    assert [op.operation for op in outbox(world.engine)].count("disable_account") == 1

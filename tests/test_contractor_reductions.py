"""Every reduction of access a contractor import makes reaches the directory (issue 10, item 6),
in the same transaction as the import:

- a changed directory uid moves the live grants from the old account to the new one: the old
  uid's removal for every grant in the directory (active and suspended), the new uid's
  addition for the active ones; the audit event says whose uid changed, from what to what;
- a contract end brought forward caps the live grants' windows at the contract end instant,
  and ends at once (expired, removals queued) those already past it; requests stay.

On SQLite and PostgreSQL (the `world` fixture runs on both)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from govtui import db
from govtui.errors import PolicyError
from govtui.models import AuditEvent, OutboxOp
from govtui.services import contractor_import, directory_targets, grants, operators, pause
from govtui.services.grants import contract_end_instant

from .conftest import FakeClock
from .factories import UNREACHABLE_TARGET, World

HEADER = "external_id,name,email,directory_uid,contract_end\n"
ADA = "E1,Ada,ada@x.example,{uid},{end}\n"
BO = "E2,Bo,bo@x.example,{uid},{end}\n"


@pytest.fixture
def target(world: World) -> World:
    with db.write_session(world.engine) as session:
        directory_targets.add(session, operators.find(session, "root"), **UNREACHABLE_TARGET)
    return world


def _import(world: World, tmp_path: Path, *lines: str) -> contractor_import.ImportResult:
    path = tmp_path / f"roster-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(HEADER + "".join(lines))
    rows, digest = contractor_import.parse(path)
    with db.write_session(world.engine) as session:
        return contractor_import.apply(
            session, world.op("root"), rows, source=str(path), sha256=digest
        )


def _last_op(world: World) -> int:
    with db.read_session(world.engine) as session:
        return int(
            session.execute(
                sa.select(sa.func.coalesce(sa.func.max(col(OutboxOp.id)), 0))
            ).scalar_one()
        )


def _pending_after(world: World, after: int) -> list[tuple[int | None, str, str]]:
    with db.read_session(world.engine) as session:
        return [
            (op.grant_id, op.operation, op.directory_uid)
            for op in session.exec(
                select(OutboxOp)
                .where(OutboxOp.state == "pending", col(OutboxOp.id) > after)
                .order_by(col(OutboxOp.id))
            )
        ]


def _import_details(world: World) -> dict[str, object]:
    with db.read_session(world.engine) as session:
        event = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "contractor.import")
            .order_by(col(AuditEvent.seq).desc())
        ).first()
        assert event is not None
        details: dict[str, object] = json.loads(event.details)
        return details


def test_a_uid_change_moves_the_live_grants_to_the_new_account(
    target: World, tmp_path: Path
) -> None:
    world = target
    active = world.request("E1")
    world.approve(active)
    other = world.request("E1", scope="other/p/s")
    world.approve(other, by="olga")
    waiting = world.request("E1", access="label")
    with db.write_session(world.engine) as session:
        pause.pause(session, world.op("root"), client="other", reason="breach")
    assert world.grant(other).state == "suspended"
    start = _last_op(world)

    result = _import(world, tmp_path, ADA.format(uid="ada2", end="2027-12-31"))

    assert result.uid_changes == 1 and result.directory_ops == 3
    # The old account leaves every group a grant of it may be in (the suspended grant's
    # pause removal may be pending still); the new one joins the active grant's only.
    assert _pending_after(world, start) == [
        (active, "remove_member", "ada"),
        (other, "remove_member", "ada"),
        (active, "add_member", "ada2"),
    ]
    assert all(gid != waiting for gid, _, _ in _pending_after(world, start))
    assert _import_details(world)["uid_changes"] == {
        "count": 1,
        "sha256": hashlib.sha256(b"E1 ada ada2").hexdigest(),
        "first": [{"external_id": "E1", "before": "ada", "after": "ada2"}],
    }


def test_an_import_that_changes_nothing_queues_nothing(target: World, tmp_path: Path) -> None:
    world = target
    world.approve(world.request("E1"))
    start = _last_op(world)
    result = _import(world, tmp_path, ADA.format(uid="ada", end="2028-06-30"))
    assert (result.uid_changes, result.capped, result.ended, result.directory_ops) == (0, 0, 0, 0)
    assert _pending_after(world, start) == []
    details = _import_details(world)
    assert "uid_changes" not in details and "grants_capped" not in details


def test_many_uid_changes_are_audited_bounded(
    target: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = target
    monkeypatch.setattr(contractor_import, "MAX_REPORTED", 1)
    _import(
        world,
        tmp_path,
        ADA.format(uid="ada2", end="2027-12-31"),
        BO.format(uid="bo2", end="2026-03-06"),
    )
    changes = _import_details(world)["uid_changes"]
    assert changes == {
        "count": 2,
        "sha256": hashlib.sha256(b"E1 ada ada2\nE2 bo bo2").hexdigest(),
        "first": [{"external_id": "E1", "before": "ada", "after": "ada2"}],
    }


def test_a_contract_ended_in_the_past_ends_the_live_grants_now(
    target: World, tmp_path: Path, fake_clock: FakeClock
) -> None:
    world = target
    active = world.request("E1")
    world.approve(active)
    waiting = world.request("E1", access="label")
    start = _last_op(world)

    # Yesterday was the contract's last day: it ended at midnight, before now (09:00).
    result = _import(world, tmp_path, ADA.format(uid="ada", end="2026-03-01"))

    assert (result.ended, result.capped, result.directory_ops) == (1, 0, 1)
    ended = world.grant(active)
    assert (ended.state, ended.ended_at, ended.ended_by) == ("expired", fake_clock.current, None)
    assert ended.end_reason == "contract ended 2026-03-02T00:00:00+00:00"
    assert _pending_after(world, start) == [(active, "remove_member", "ada")]
    # A request stays as it is: approval refuses a contract that has ended.
    assert world.grant(waiting).state == "requested"
    with pytest.raises(PolicyError, match="contract ended"):
        world.approve(waiting)
    details = _import_details(world)
    assert details["contracts_shortened"] == 1
    assert details["grants_ended"] == {
        "count": 1,
        "ids_sha256": hashlib.sha256(str(active).encode()).hexdigest(),
        "first_ids": [active],
    }


def test_a_contract_shortened_into_the_future_caps_the_window_and_expire_ends_it_on_time(
    target: World, tmp_path: Path, fake_clock: FakeClock
) -> None:
    world = target
    long = world.request("E1", days=10)  # to 2026-03-12 09:00
    world.approve(long)
    short = world.request("E1", access="write", days=1)  # to 2026-03-03 09:00
    world.approve(short, by="bob")
    before_short = world.grant(short).expires_at
    start = _last_op(world)

    result = _import(world, tmp_path, ADA.format(uid="ada", end="2026-03-05"))

    until = contract_end_instant(date(2026, 3, 5))
    assert (result.capped, result.ended, result.directory_ops) == (1, 0, 0)
    assert world.grant(long).expires_at == until and world.grant(long).state == "active"
    assert world.grant(short).expires_at == before_short  # already ends earlier: untouched
    assert _pending_after(world, start) == []

    def expire() -> list[int]:
        with db.write_session(world.engine) as session:
            return grants.expire_due(session, actor_name="cron")

    fake_clock.current = until - timedelta(seconds=1)  # the contract's last second
    assert long not in expire()
    fake_clock.current = until
    assert long in expire()
    assert world.grant(long).state == "expired"
    assert _pending_after(world, start)[-1] == (long, "remove_member", "ada")


def test_a_lengthened_contract_leaves_the_windows_alone(target: World, tmp_path: Path) -> None:
    world = target
    grant_id = world.request("E2", days=2)
    world.approve(grant_id)
    before = world.grant(grant_id).expires_at
    result = _import(world, tmp_path, BO.format(uid="bo", end="2029-01-01"))
    assert (result.capped, result.ended) == (0, 0)
    assert world.grant(grant_id).expires_at == before

"""The grant lifecycle and its rules (DESIGN invariants 1-3): each test fails if its rule goes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import Approval, DatasetScope, Grant
from govtui.services import catalog, grant_views, grants
from govtui.services.second_factor import CodeRejected

from .conftest import FakeClock, snapshot
from .factories import World, small_vendor


@pytest.fixture
def world(engine: Engine, memory_keyring: object) -> World:
    return small_vendor(engine)


def test_request_then_approve_activates_at_approval(world: World, fake_clock: FakeClock) -> None:
    grant_id = world.request(days=10)
    requested = world.grant(grant_id)
    assert requested.state == "requested" and requested.starts_at is None
    fake_clock.advance(hours=5)
    (outcome,) = world.approve(grant_id)
    active = world.grant(grant_id)
    assert active.state == "active" and outcome.activated
    assert active.starts_at == fake_clock.current  # at approval, not at request
    assert active.expires_at == fake_clock.current + timedelta(days=10)


@pytest.mark.parametrize(
    ("days", "scope", "contract_end", "expected_days"),
    [
        (5, "acme/rlhf/notes", date(2027, 12, 31), 5),  # requested days are smallest
        (80, "acme/rlhf/notes", date(2027, 12, 31), 60),  # the scope's max days
        (80, "acme/rlhf/pairs", date(2027, 12, 31), 30),  # the confidential tier's cap
        (80, "acme/rlhf/notes", date(2026, 3, 20), 18),  # days left on the contract
    ],
    ids=["requested", "scope-max", "tier-cap", "contract-end"],
)
def test_expiry_takes_the_smallest_of_four_limits(
    world: World,
    fake_clock: FakeClock,
    days: int,
    scope: str,
    contract_end: date,
    expected_days: int,
) -> None:
    with db.write_session(world.engine) as session:
        session.execute(
            sa.text("UPDATE contractor SET contract_end = :d WHERE external_id = 'E1'"),
            {"d": contract_end},
        )
    grant_id = world.request(days=days, scope=scope)
    world.approve(grant_id)
    expires = world.grant(grant_id).expires_at
    assert expires is not None
    if scope == "acme/rlhf/notes" and contract_end == date(2026, 3, 20):
        assert expires == datetime(2026, 3, 21, tzinfo=UTC)  # the end of the contract's last day
    assert (expires - fake_clock.current).days == expected_days


def test_restricted_needs_two_distinct_approvers(world: World) -> None:
    grant_id = world.request(scope="acme/rlhf/redteam", days=5)
    (first,) = world.approve(grant_id, by="ann")
    assert not first.activated and world.grant(grant_id).state == "requested"
    with pytest.raises(PolicyError, match="approved it already"):
        world.approve(grant_id, by="ann", totp=world.code("ann", 1))
    (second,) = world.approve(grant_id, by="bob")
    assert second.activated and world.grant(grant_id).state == "active"
    with db.read_session(world.engine) as session:
        approvers = (
            session.execute(sa.select(Approval.approver_id).where(Approval.grant_id == grant_id))
            .scalars()
            .all()
        )  # type: ignore[call-overload]
    assert len(set(approvers)) == 2


def test_an_approver_cannot_approve_their_own_request(world: World) -> None:
    grant_id = world.request(by="ann")
    with pytest.raises(PolicyError, match="your own request"):
        world.approve(grant_id, by="ann")


def test_approver_must_hold_the_role_for_that_client(world: World) -> None:
    grant_id = world.request()
    with pytest.raises(PolicyError, match="not an approver for client 'acme'"):
        world.approve(grant_id, by="olga")
    with pytest.raises(PolicyError, match="not an approver"):
        world.approve(grant_id, by="root", totp="123456")


def test_batch_is_all_or_nothing_and_names_the_bad_request(world: World) -> None:
    good = [world.request(contractor="E1", access=a) for a in ("read", "label")]
    own = world.request(contractor="E1", access="write", by="ann")
    before = snapshot(world.engine)
    with pytest.raises(PolicyError, match=f"grant {own}: you cannot approve your own request"):
        world.approve(*good, own)
    assert snapshot(world.engine) == before
    outcomes = world.approve(*good)
    assert [o.activated for o in outcomes] == [True, True]


def test_one_code_approves_a_batch_but_only_once(world: World) -> None:
    ids = [world.request(contractor="E1", access=a) for a in ("read", "label", "write")]
    world.approve(*ids[:2])
    with pytest.raises(CodeRejected, match="already used"):
        world.approve(ids[2])  # same time step as the batch before it
    world.approve(ids[2], totp=world.code("ann", 1))


def test_wrong_code_is_refused_and_counted(world: World) -> None:
    grant_id = world.request()
    with pytest.raises(CodeRejected, match="wrong code"):
        world.approve(grant_id, totp="000000")
    assert world.grant(grant_id).state == "requested"
    assert world.op("ann").totp_failures == 1  # committed although the approval failed


def test_requests_refused_with_their_own_message(world: World, fake_clock: FakeClock) -> None:
    def refused(error: type[Exception], match: str, **kw: object) -> None:
        args: dict[str, object] = dict(
            contractor="E1", scope_path="acme/rlhf/pairs", access="read", days=3, reason="why"
        )
        args.update(kw)
        with pytest.raises(error, match=match), db.write_session(world.engine) as session:
            grants.request(session, world.op("req"), **args)  # type: ignore[arg-type]

    refused(NotFoundError, "unknown scope", scope_path="acme/rlhf/nope")
    refused(NotFoundError, "unknown contractor", contractor="E404")
    refused(InputError, "invalid access level", access="admin")
    refused(InputError, "at least 1", days=0)
    refused(InputError, "at least 1", days=-3)
    refused(InputError, "reason", reason="  ")
    fake_clock.advance(days=5)  # E2's contract ended on 2026-03-06
    refused(PolicyError, "contract ended", contractor="E2")
    with db.write_session(world.engine) as session:
        session.execute(
            sa.text("UPDATE contractor SET status = 'offboarded' WHERE external_id = 'E1'")
        )
    refused(PolicyError, "offboarded")
    with pytest.raises(PolicyError, match="requester"), db.write_session(world.engine) as session:
        grants.request(
            session,
            world.op("bob"),
            contractor="E1",
            scope_path="acme/rlhf/pairs",
            access="read",
            days=3,
            reason="r",
        )


def test_second_live_grant_for_same_triple_is_refused(world: World) -> None:
    first = world.request()
    with pytest.raises(ConflictError, match=f"grant {first}"):
        world.request()
    world.approve(first)
    with pytest.raises(ConflictError, match="active"):
        world.request()
    world.request(access="label")  # another access level is another grant


def test_database_refuses_a_second_live_grant_too(world: World) -> None:
    world.request()
    with db.write_session(world.engine) as session:
        row = session.execute(sa.select(Grant)).scalars().first()
        assert row is not None
        values = {c.name: getattr(row, c.name) for c in Grant.__table__.columns if c.name != "id"}  # type: ignore[attr-defined]
    with pytest.raises(sa.exc.IntegrityError), db.write_session(world.engine) as session:
        session.execute(sa.insert(Grant), [values])


def test_revoke_needs_no_code_and_keeps_the_row(world: World, fake_clock: FakeClock) -> None:
    grant_id = world.request()
    world.approve(grant_id)
    fake_clock.advance(hours=1)
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=grant_id, reason="left the project")
    ended = world.grant(grant_id)
    assert ended.state == "revoked" and ended.ended_at == fake_clock.current
    assert ended.end_reason == "left the project" and ended.ended_by == world.op("req").id
    with (
        pytest.raises(PolicyError, match="revoked already"),
        db.write_session(world.engine) as session,
    ):
        grants.revoke(session, world.op("req"), grant_id=grant_id, reason="again")
    requested = world.request()
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=requested, reason="not needed")
    assert world.grant(requested).state == "revoked"


def test_deny_ends_a_request(world: World) -> None:
    grant_id = world.request()
    with db.write_session(world.engine) as session:
        grants.deny(session, world.op("bob"), grant_ids=[grant_id], reason="not on this project")
    denied = world.grant(grant_id)
    assert denied.state == "denied" and denied.end_reason == "not on this project"
    with pytest.raises(PolicyError, match="not awaiting approval"):
        world.approve(grant_id)


def test_extend_needs_approval_and_keeps_the_grant_active_meanwhile(
    world: World, fake_clock: FakeClock
) -> None:
    grant_id = world.request(days=10)
    world.approve(grant_id)
    first_end = world.grant(grant_id).expires_at
    assert first_end is not None
    fake_clock.advance(days=8)
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("req"), grant_id=grant_id, days=10, reason="more batches")
    assert world.grant(grant_id).state == "active" and world.grant(grant_id).expires_at == first_end
    with (
        pytest.raises(ConflictError, match="awaiting approval already"),
        db.write_session(world.engine) as session,
    ):
        grants.extend(session, world.op("req"), grant_id=grant_id, days=5, reason="again")
    with db.read_session(world.engine) as session:
        assert [r.id for r in grant_views.pending_for(session, world.op("ann"))] == [grant_id]
    (outcome,) = world.approve(grant_id)
    assert outcome.round == 1 and outcome.activated
    assert world.grant(grant_id).expires_at == fake_clock.current + timedelta(days=10)
    with db.read_session(world.engine) as session:
        events = [h.event for h in grant_views.show(session, grant_id).history]
    assert events == [
        "requested",
        "approved",
        "active",
        "extension requested",
        "approved",
        "extension approved",
    ]


def test_extension_still_capped_by_tier(world: World, fake_clock: FakeClock) -> None:
    grant_id = world.request(days=30)
    world.approve(grant_id)
    fake_clock.advance(days=1)
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("req"), grant_id=grant_id, days=365, reason="long")
    world.approve(grant_id)
    assert world.grant(grant_id).expires_at == fake_clock.current + timedelta(days=30)


def test_expire_ends_due_grants_in_bulk(world: World, fake_clock: FakeClock) -> None:
    short = world.request(days=2)
    long = world.request(days=20, access="label")
    world.approve(short, long)
    fake_clock.advance(days=2)
    with db.write_session(world.engine) as session:
        assert grants.expire_due(session, actor_name="cron") == [short]
    assert (
        world.grant(short).state == "expired" and world.grant(short).ended_at == fake_clock.current
    )
    assert world.grant(long).state == "active"
    with db.write_session(world.engine) as session:
        assert grants.expire_due(session, actor_name="cron") == []


def test_paused_client_refuses_request_and_approval(world: World) -> None:
    grant_id = world.request()
    with db.write_session(world.engine) as session:
        catalog.find_client(session, "acme").status = "paused"
    with pytest.raises(PolicyError, match="paused"):
        world.approve(grant_id)
    with pytest.raises(PolicyError, match="paused"):
        world.request(access="label")


def test_grant_list_filters(world: World, fake_clock: FakeClock) -> None:
    a = world.request(days=3)
    b = world.request(days=25, access="label")
    world.request(contractor="E1", scope="other/p/s")
    world.approve(a, b)
    with db.read_session(world.engine) as session:
        assert [r.id for r in grant_views.list_grants(session, expiring_within=7)] == [a]
        assert {r.id for r in grant_views.list_grants(session, state="active")} == {a, b}
        assert len(grant_views.list_grants(session, client="other")) == 1
        rows = grant_views.list_grants(session, contractor="E1", limit=2)
    assert len(rows) == 2 and rows[0].approvals in (["ann"], [])


def test_scope_max_days_column_is_used(world: World) -> None:
    with db.read_session(world.engine) as session:
        scope = session.execute(
            sa.select(DatasetScope).where(DatasetScope.name == "notes")
        ).scalar_one()  # type: ignore[arg-type]
    assert scope.max_grant_days == 60

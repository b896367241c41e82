"""Starting an access review (issue 12), on SQLite and PostgreSQL: the population frozen at
start (a grant approved later is not in it), a digest that recomputes from the items, every
item assigned to an independent reviewer (requester, approvers of every round, extension
requesters excluded), eligible reviewers only, drift refused unless --despite-drift, and a
dry run that writes nothing and says exactly what start writes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import clock, db
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import (
    AuditEvent,
    DatasetScope,
    Grant,
    Operator,
    OutboxOp,
    Project,
    ReviewCampaign,
    ReviewItem,
    ReviewReviewer,
)
from govtui.services import audit, grants, pause, reviews
from govtui.services.workspace import Workspace

from .conftest import FakeClock, snapshot
from .factories import UNREACHABLE_TARGET, World, review_vendor
from .memory_keyring import MemoryKeyring


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return review_vendor(engine)


def next_step(fake_clock: FakeClock) -> None:
    fake_clock.advance(seconds=31)


def spec(*reviewers: str, name: str = "q1 acme", **fields: Any) -> reviews.CampaignSpec:
    return reviews.CampaignSpec(
        name=name,
        client=fields.pop("client", "acme"),
        reviewers=reviewers or ("rita",),
        due_at=fields.pop("due_at", clock.now() + timedelta(days=14)),
        if_no_answer=fields.pop("if_no_answer", "keep"),
        **fields,
    )


def start(
    world: World, the_spec: reviews.CampaignSpec, by: str = "root", despite: str | None = None
) -> reviews.Started:
    return Workspace(world.engine, by).act(reviews.start, spec=the_spec, despite_drift=despite)


def plan(world: World, the_spec: reviews.CampaignSpec, by: str = "root") -> reviews.StartPlan:
    return Workspace(world.engine, by).read_as(reviews.plan_start, spec=the_spec)


def granted(
    world: World,
    fake_clock: FakeClock,
    contractor: str = "E1",
    scope: str = "acme/rlhf/pairs",
    access: str = "read",
    by: str = "req",
    approvers: tuple[str, ...] = ("ann",),
) -> int:
    """An active grant: requested by `by`, approved by each of `approvers` in turn."""
    grant_id = world.request(contractor, scope, access, by=by)
    for approver in approvers:
        next_step(fake_clock)
        world.approve(grant_id, by=approver)
    assert world.grant(grant_id).state == "active"
    return grant_id


def items(engine: Engine, campaign_id: int) -> dict[int, str]:
    """grant id -> assigned reviewer's name."""
    with db.read_session(engine) as session:
        rows = session.execute(
            sa.select(col(ReviewItem.grant_id), col(Operator.name))
            .join(Operator, col(Operator.id) == col(ReviewItem.reviewer_id))
            .where(col(ReviewItem.campaign_id) == campaign_id)
        ).all()
    return {int(g): str(n) for g, n in rows}


def events(engine: Engine, action: str) -> list[dict[str, Any]]:
    with db.read_session(engine) as session:
        rows = session.execute(
            sa.select(col(AuditEvent.details))
            .where(col(AuditEvent.action) == action)
            .order_by(col(AuditEvent.seq))
        ).scalars()
        return [json.loads(r) for r in rows]


def verify_chain(engine: Engine) -> None:
    with db.read_session(engine) as session:
        result = audit.verify(session, engine)
    assert result.problem is None, result.problem


# --- the population ------------------------------------------------------------------------


def test_population_is_frozen_at_start(world: World, fake_clock: FakeClock) -> None:
    """Active and suspended grants are in; a request (even one approved right after start),
    a revoked grant and another client's grant are not; the digest recomputes from the items
    and matches the campaign row and the audit event."""
    first = granted(world, fake_clock, "E1")
    second = granted(world, fake_clock, "E2", "acme/rlhf/notes")
    revoked = granted(world, fake_clock, "E3")
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=revoked, reason="left the project")
    waiting = world.request("E3", "acme/rlhf/notes", "label")
    other = granted(world, fake_clock, "E1", "other/p/s", by="root", approvers=("olga",))

    started = start(world, spec("rita"))
    assert sorted(items(world.engine, started.campaign_id)) == [first, second]
    next_step(fake_clock)
    world.approve(waiting, by="ann")  # approved after start: not in the population
    late = granted(world, fake_clock, "E3", "acme/rlhf/pairs", "write")
    assert world.grant(waiting).state == "active"
    assert sorted(items(world.engine, started.campaign_id)) == [first, second]
    assert other not in items(world.engine, started.campaign_id)
    assert late not in items(world.engine, started.campaign_id)

    expected = hashlib.sha256(f"{first},{second}".encode()).hexdigest()
    (event,) = events(world.engine, "review.start")
    with db.read_session(world.engine) as session:
        row = session.get(ReviewCampaign, started.campaign_id)
        assert row is not None
        stored = sorted(
            session.execute(
                sa.select(col(ReviewItem.grant_id)).where(
                    col(ReviewItem.campaign_id) == started.campaign_id
                )
            ).scalars()
        )
    recomputed = audit.id_summary(stored)["ids_sha256"]
    assert started.population_sha256 == row.population_sha256 == expected == recomputed
    assert event["population_sha256"] == expected
    assert row.item_count == event["item_count"] == started.item_count == 2
    assert event["client"] == "acme" and event["reviewers"] == ["rita"]
    assert event["by_reviewer"] == {"rita": 2} and event["despite_drift"] is None
    assert event["if_no_answer"] == "keep" and event["due_at"].startswith("2026-03-16")
    verify_chain(world.engine)


def test_suspended_grants_are_in_the_population(world: World, fake_clock: FakeClock) -> None:
    """A paused client's grants are suspended, and a resume would restore them: reviewed."""
    first = granted(world, fake_clock)
    with db.write_session(world.engine) as session:
        pause.pause(session, world.op("root"), client="acme", reason="the lab called")
    assert world.grant(first).state == "suspended"
    started = start(world, spec("rita"))
    assert list(items(world.engine, started.campaign_id)) == [first]


def test_narrowing_by_project_scope_and_sensitivity(world: World, fake_clock: FakeClock) -> None:
    pairs = granted(world, fake_clock, "E1", "acme/rlhf/pairs")
    notes = granted(world, fake_clock, "E1", "acme/rlhf/notes")
    by_scope = start(world, spec("rita", name="a", scope="acme/rlhf/notes"))
    by_level = start(world, spec("rita", name="b", sensitivity="confidential"))
    by_project = start(world, spec("rita", name="c", project="rlhf"))
    assert list(items(world.engine, by_scope.campaign_id)) == [notes]
    assert list(items(world.engine, by_level.campaign_id)) == [pairs]
    assert sorted(items(world.engine, by_project.campaign_id)) == [pairs, notes]
    with db.read_session(world.engine) as session:
        row = session.get(ReviewCampaign, by_scope.campaign_id)
        assert row is not None and row.scope_id is not None and row.project_id is not None


def test_bad_specs_are_refused_and_write_nothing(world: World, fake_clock: FakeClock) -> None:
    granted(world, fake_clock)
    before = snapshot(world.engine)
    bad: list[tuple[type[Exception], reviews.CampaignSpec, str]] = [
        (InputError, spec("rita", name="bad\x1bname"), "control character"),
        (InputError, spec("rita", name=""), "campaign name"),
        (NotFoundError, spec("rita", client="nobody"), "unknown client"),
        (NotFoundError, spec("rita", project="nope"), "unknown project"),
        (InputError, spec("rita", scope="other/p/s"), "not a scope of client"),
        (InputError, spec("rita", scope="acme/rlhf/pairs", sensitivity="internal"), "is confid"),
        (InputError, spec("rita", sensitivity="secret"), "invalid sensitivity"),
        (InputError, spec("rita", due_at=clock.now() - timedelta(hours=1)), "not in the future"),
        (InputError, spec("rita", due_at=clock.now().replace(tzinfo=None)), "aware"),
        (InputError, spec("rita", if_no_answer="maybe"), "--if-no-answer"),  # type: ignore[arg-type]
        (InputError, spec("rita", "rita"), "named once"),
        (NotFoundError, spec("nobody"), "unknown operator"),
        (
            InputError,
            reviews.CampaignSpec("x", "acme", (), clock.now() + timedelta(days=1), "keep"),
            "at least one",
        ),
    ]
    for error, the_spec, words in bad:
        with pytest.raises(error, match=words):
            start(world, the_spec)
    with pytest.raises(PolicyError, match="lacks the admin role"):
        start(world, spec("rita"), by="rita")
    with pytest.raises(ConflictError, match="no active or suspended grant"):
        start(world, spec("rita", scope="acme/rlhf/redteam"))
    assert snapshot(world.engine) == before
    start(world, spec("rita"))
    with pytest.raises(ConflictError, match="exists already"):
        start(world, spec("rita"))


def test_ineligible_reviewers_are_refused_naming_them(world: World, fake_clock: FakeClock) -> None:
    """The reviewer role, reviewing this client, and not removed: for listed and fallback."""
    granted(world, fake_clock)
    with pytest.raises(PolicyError, match="'otto' does not review client 'acme'"):
        start(world, spec("rita", "otto"))
    with pytest.raises(PolicyError, match="'bob' lacks the reviewer role"):
        start(world, spec("rita", fallback_reviewer="bob"))
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(Operator).where(col(Operator.name) == "ravi").values(disabled_at=clock.now())
        )
    with pytest.raises(PolicyError, match="'ravi' was removed"):
        start(world, spec("ravi"))
    with pytest.raises(PolicyError, match="fallback reviewer 'ravi' was removed"):
        plan(world, spec("rita", fallback_reviewer="ravi"))


# --- independence ---------------------------------------------------------------------------


def test_independence_in_each_position(world: World, fake_clock: FakeClock) -> None:
    """Each item goes to the first listed reviewer independent of its grant."""
    by_req = granted(world, fake_clock, "E1", by="req", approvers=("bob",))
    by_ann = granted(world, fake_clock, "E2", by="root", approvers=("ann",))
    # Restricted: bob approves first, ann second; ann is the second approver.
    second = granted(
        world, fake_clock, "E1", "acme/rlhf/redteam", by="root", approvers=("bob", "ann")
    )
    extended = granted(world, fake_clock, "E3", by="root", approvers=("bob",))
    plain = granted(world, fake_clock, "E3", "acme/rlhf/notes", by="root", approvers=("bob",))
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("ann"), grant_id=extended, days=5, reason="more work")

    started = start(world, spec("req", "ann", "rita"))
    assigned = items(world.engine, started.campaign_id)
    assert assigned == {
        by_req: "ann",  # req requested it
        by_ann: "req",  # ann approved it
        second: "req",
        extended: "req",
        plain: "req",
    }
    started = start(world, spec("ann", "req", "rita", name="q2"))
    assigned = items(world.engine, started.campaign_id)
    assert assigned == {
        by_req: "ann",
        by_ann: "req",
        second: "req",  # ann approved its second round: not ann
        extended: "req",  # ann requested its extension: not ann
        plain: "ann",
    }


def test_fallback_takes_what_no_listed_reviewer_may(world: World, fake_clock: FakeClock) -> None:
    both = granted(world, fake_clock, "E1", by="req", approvers=("ann",))
    free = granted(world, fake_clock, "E2", by="root", approvers=("bob",))
    started = start(world, spec("req", "ann", fallback_reviewer="rita"))
    assert items(world.engine, started.campaign_id) == {both: "rita", free: "req"}
    assert started.by_reviewer == {"req": 1, "ann": 0, "rita": 1}
    with db.read_session(world.engine) as session:
        listed = session.execute(
            sa.select(col(ReviewReviewer.position), col(Operator.name))
            .join(Operator, col(Operator.id) == col(ReviewReviewer.operator_id))
            .where(col(ReviewReviewer.campaign_id) == started.campaign_id)
            .order_by(col(ReviewReviewer.position))
        ).all()
    assert [tuple(r) for r in listed] == [(1, "req"), (2, "ann")]


def test_start_is_refused_naming_grants_nobody_may_review(
    world: World, fake_clock: FakeClock
) -> None:
    """No listed reviewer and no independent fallback: refused, naming the grants."""
    both = granted(world, fake_clock, "E1", by="req", approvers=("ann",))
    granted(world, fake_clock, "E2", by="root", approvers=("bob",))
    before = snapshot(world.engine)
    with pytest.raises(
        PolicyError, match=rf"1 grant\(s\) have no independent reviewer.*grants {both};"
    ):
        start(world, spec("req", "ann"))
    # A fallback who is not independent either does not help.
    with pytest.raises(PolicyError, match=rf"grants {both};"):
        start(world, spec("req", fallback_reviewer="ann"))
    assert snapshot(world.engine) == before
    assert plan(world, spec("req", "ann")).unassignable == [both]
    # start finds the unassignable through the INSERT's failure: it rests on this constraint.
    columns = {c["name"]: c for c in sa.inspect(world.engine).get_columns("review_item")}
    assert columns["reviewer_id"]["nullable"] is False


def test_start_analyzes_the_items_on_postgresql(world: World, fake_clock: FakeClock) -> None:
    """The planner knows the frozen population's size at once (the items windows sort it)."""
    if world.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    for person in ("E1", "E2", "E3"):
        granted(world, fake_clock, person, by="root", approvers=("bob",))
    start(world, spec("rita"))
    with world.engine.connect() as connection:
        tuples, rows = connection.execute(
            sa.text(
                "SELECT reltuples, (SELECT count(*) FROM review_item) FROM pg_class"
                " WHERE relname = 'review_item'"
            )
        ).one()
    assert rows >= 3 and tuples == rows  # never analyzed: -1


def test_refusal_names_at_most_twenty(
    world: World, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reviews, "NAMED", 1)
    first = granted(world, fake_clock, "E1", by="req", approvers=("bob",))
    granted(world, fake_clock, "E2", by="req", approvers=("bob",))
    with pytest.raises(PolicyError, match=rf"grants {first} and 1 more;"):
        start(world, spec("req"))


# --- drift ----------------------------------------------------------------------------------


def test_drift_refuses_unless_despite_drift(
    engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    """Directory operations of grants in scope still pending or failed: the directory has not
    confirmed what the grants say, so start is refused unless told why to go ahead."""
    world = review_vendor(engine, target=UNREACHABLE_TARGET)
    first = granted(world, fake_clock, "E1")
    granted(world, fake_clock, "E2", "other/p/s", by="root", approvers=("olga",))
    with db.write_session(engine) as session:
        session.execute(
            sa.update(OutboxOp).where(col(OutboxOp.grant_id) == first).values(state="failed")
        )
    granted(world, fake_clock, "E2")
    before = snapshot(engine)
    with pytest.raises(ConflictError) as refused:
        start(world, spec("rita"))
    message = str(refused.value)
    assert "\n" not in message
    assert "1 pending and 1 failed directory operation(s)" in message
    assert "--despite-drift REASON" in message
    assert snapshot(engine) == before
    assert plan(world, spec("rita")).drift == [
        "1 directory operation(s) not yet applied and read back (pending)",
        "1 directory operation(s) failed",
    ]
    with pytest.raises(InputError, match="reason"):
        start(world, spec("rita"), despite="  ")
    # Narrowed to a scope without open operations: no drift.
    assert plan(world, spec("rita", scope="acme/rlhf/notes")).drift == []

    started = start(world, spec("rita"), despite="ldap maintenance, checked by hand")
    with db.read_session(engine) as session:
        row = session.get(ReviewCampaign, started.campaign_id)
        assert row is not None and row.despite_drift == "ldap maintenance, checked by hand"
    (event,) = events(engine, "review.start")
    assert event["despite_drift"] == "ldap maintenance, checked by hand"
    assert len(event["drift"]) == 2
    verify_chain(engine)


# --- the dry run ----------------------------------------------------------------------------


def test_dry_run_writes_nothing_and_equals_start(world: World, fake_clock: FakeClock) -> None:
    granted(world, fake_clock, "E1", by="req", approvers=("ann",))
    granted(world, fake_clock, "E2", by="root", approvers=("bob",))
    granted(world, fake_clock, "E3", "acme/rlhf/notes", "label", by="root", approvers=("ann",))
    granted(world, fake_clock, "E1", "acme/rlhf/notes", "write", by="req", approvers=("bob",))
    the_spec = spec("ann", "req", fallback_reviewer="rita")
    before = snapshot(world.engine)
    dry = plan(world, the_spec)
    assert snapshot(world.engine) == before
    assert dry.unassignable == [] and dry.drift == []
    started = start(world, the_spec)
    assert dry.item_count == started.item_count == 4
    assert dry.population_sha256 == started.population_sha256
    assert dry.by_reviewer == started.by_reviewer == {"ann": 2, "req": 1, "rita": 1}
    with db.read_session(world.engine) as session:
        written = session.execute(
            sa.select(
                col(Project.name), col(DatasetScope.name), col(Grant.access), col(Operator.name)
            )
            .select_from(ReviewItem)
            .join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
            .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
            .join(Project, col(Project.id) == col(DatasetScope.project_id))
            .join(Operator, col(Operator.id) == col(ReviewItem.reviewer_id))
            .where(col(ReviewItem.campaign_id) == started.campaign_id)
        ).all()
    counted = Counter(tuple(r) for r in written)
    assert {(r.project, r.scope, r.access, r.reviewer): r.items for r in dry.rows} == counted
    assert dry.rows == sorted(dry.rows, key=lambda r: (r.project, r.scope, r.access, r.reviewer))


def test_start_of_many_grants_is_bulk(world: World, fake_clock: FakeClock) -> None:
    """Thousands of grants in a handful of statements: counted, not timed (the benchmark
    times 100,000)."""
    from govtui.services import catalog

    from .factories import BulkGrant, import_contractors, insert_grants

    now = clock.now()
    with db.write_session(world.engine) as session:
        root = world.op("root")
        people = import_contractors(session, root, 3_000, external_id="B{i:05d}", uid="b{i:05d}")
        scopes = [s for s in catalog.list_scopes(session) if s.client == "acme"]
        insert_grants(
            session,
            [BulkGrant(i, scope, "read") for scope in scopes for i in range(3_000)],
            people,
            starts_at=now,
            expires_at=now + timedelta(days=5),
            requested_days=5,
        )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(world.engine, "before_cursor_execute", count)
    try:
        started = start(world, spec("req", "rita"))
    finally:
        sa.event.remove(world.engine, "before_cursor_execute", count)
    assert started.item_count == 9_000
    # root (operator 1) requested them all; req is independent of each.
    assert started.by_reviewer == {"req": 9_000, "rita": 0}
    assert len(statements) < 60, len(statements)

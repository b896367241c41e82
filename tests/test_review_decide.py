"""Reviewers' decisions (issue 12), on SQLite and PostgreSQL: keep and shorten need one valid,
unused TOTP code per batch and revoke none; only the assigned reviewer decides, and a reviewer
who became conflicted since start is refused with an audit event that survives the rollback;
decisions change while the campaign is open and never after; ended grants are skipped; a
restricted scope needs a reason of a few words; the chain verifies after all of it."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    OperatorReviewClient,
    ReviewCampaign,
    ReviewItem,
)
from govtui.services import audit, catalog, grants, review_decisions, reviews
from govtui.services.review_decisions import ItemSelection
from govtui.services.second_factor import CodeRejected
from govtui.services.workspace import Workspace
from govtui.vocabulary import ReviewDecision

from .conftest import FakeClock, snapshot
from .factories import BulkGrant, World, import_contractors, insert_grants, review_vendor
from .memory_keyring import MemoryKeyring

KEEP, REVOKE, SHORTEN = ReviewDecision.KEEP, ReviewDecision.REVOKE, ReviewDecision.SHORTEN
CAMPAIGN = "q1 acme"


def next_step(fake_clock: FakeClock) -> None:
    fake_clock.advance(seconds=31)


@dataclass
class Setup:
    """A campaign with reviewers ann, then rita: ann gets the grants she is independent of
    (a, c), rita the others (b: ann approved it; r: restricted, ann its second approver)."""

    world: World
    campaign_id: int
    a: int
    b: int
    c: int
    r: int

    def item(self, grant_id: int) -> ReviewItem:
        with db.read_session(self.world.engine) as session:
            found = session.execute(
                sa.select(ReviewItem).where(
                    col(ReviewItem.campaign_id) == self.campaign_id,
                    col(ReviewItem.grant_id) == grant_id,
                )
            ).scalar_one()
            return found

    def decide(
        self,
        by: str,
        decision: ReviewDecision,
        *grant_ids: int,
        reason: str = "still on the project",
        days: int | None = None,
        code: str | None = None,
        all_mine: bool = False,
        items: tuple[int, ...] = (),
    ) -> review_decisions.Decided:
        return Workspace(self.world.engine, by).act(
            review_decisions.decide,
            campaign=CAMPAIGN,
            selection=ItemSelection(item_ids=items, grant_ids=grant_ids, all_mine=all_mine),
            decision=decision,
            reason=reason,
            days=days,
            code=code,
        )


def granted(
    world: World,
    fake_clock: FakeClock,
    contractor: str,
    scope: str,
    by: str,
    approvers: tuple[str, ...],
) -> int:
    grant_id = world.request(contractor, scope, "read", by=by)
    for approver in approvers:
        next_step(fake_clock)
        world.approve(grant_id, by=approver)
    return grant_id


@pytest.fixture
def setup(engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock) -> Setup:
    world = review_vendor(engine)
    a = granted(world, fake_clock, "E1", "acme/rlhf/pairs", "root", ("bob",))
    b = granted(world, fake_clock, "E2", "acme/rlhf/pairs", "req", ("ann",))
    c = granted(world, fake_clock, "E3", "acme/rlhf/notes", "root", ("bob",))
    r = granted(world, fake_clock, "E1", "acme/rlhf/redteam", "root", ("bob", "ann"))
    started = Workspace(engine, "root").act(
        reviews.start,
        spec=reviews.CampaignSpec(
            name=CAMPAIGN,
            client="acme",
            reviewers=("ann", "rita"),
            due_at=clock.now() + timedelta(days=14),
            if_no_answer="keep",
        ),
    )
    next_step(fake_clock)
    found = Setup(world, started.campaign_id, a, b, c, r)
    assert found.item(a).reviewer_id == found.item(c).reviewer_id == world.op("ann").id
    assert found.item(b).reviewer_id == found.item(r).reviewer_id == world.op("rita").id
    return found


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


def test_keep_needs_a_valid_unused_code(setup: Setup, fake_clock: FakeClock) -> None:
    world = setup.world
    with pytest.raises(InputError, match="TOTP code"):
        setup.decide("rita", KEEP, setup.b)
    with pytest.raises(CodeRejected, match="wrong code"):
        setup.decide(
            "rita", KEEP, setup.b, code="000000" if world.code("rita") != "000000" else "111111"
        )
    assert world.op("rita").totp_failures == 1  # counted although the decision was refused
    assert setup.item(setup.b).decision is None
    code = world.code("rita")
    done = setup.decide("rita", KEEP, setup.b, code=code)
    assert done.item_ids == [setup.item(setup.b).id] and done.changed == 0
    item = setup.item(setup.b)
    assert item.decision == "keep" and item.totp_step is not None
    assert item.decided_by == world.op("rita").id and item.reason == "still on the project"
    assert world.op("rita").totp_failures == 0
    with pytest.raises(CodeRejected, match="already used"):
        setup.decide("rita", KEEP, setup.r, reason="still on the red team", code=code)
    assert setup.item(setup.r).decision is None
    next_step(fake_clock)
    setup.decide("rita", KEEP, setup.r, reason="still on the red team", code=world.code("rita"))
    assert setup.item(setup.r).decision == "keep"
    (first, second) = events(world.engine, "review.decide")
    assert first["decision"] == "keep" and first["count"] == 1 and first["changed"] == 0
    assert first["totp_step"] == item.totp_step
    assert second["totp_step"] > first["totp_step"]
    verify_chain(world.engine)


def test_revoke_needs_no_code_and_decisions_change_while_open(
    setup: Setup, fake_clock: FakeClock
) -> None:
    world = setup.world
    done = setup.decide("rita", REVOKE, setup.b)  # no code asked
    item = setup.item(setup.b)
    assert (item.decision, item.totp_step, done.changed) == ("revoke", None, 0)
    changed = setup.decide("rita", KEEP, setup.b, code=world.code("rita"))
    assert changed.changed == 1 and setup.item(setup.b).decision == "keep"
    next_step(fake_clock)
    shortened = setup.decide(
        "rita", SHORTEN, setup.b, days=10, code=world.code("rita"), reason="ends next week"
    )
    item = setup.item(setup.b)
    assert shortened.changed == 1
    assert (item.decision, item.shorten_days) == ("shorten", 10)
    assert item.shorten_until == clock.now() + timedelta(days=10)
    back = setup.decide("rita", REVOKE, setup.b, reason="left after all")
    item = setup.item(setup.b)
    assert back.changed == 1
    assert (item.decision, item.shorten_days, item.shorten_until, item.totp_step) == (
        "revoke",
        None,
        None,
        None,
    )
    decided = events(world.engine, "review.decide")
    assert [e["decision"] for e in decided] == ["revoke", "keep", "shorten", "revoke"]
    assert [e["changed"] for e in decided] == [0, 1, 1, 1]
    assert decided[2]["days"] == 10 and decided[2]["reason"] == "ends next week"
    verify_chain(world.engine)


def test_bad_decisions_are_refused_and_write_nothing(setup: Setup) -> None:
    world = setup.world
    before = snapshot(world.engine)
    cases: list[tuple[type[Exception], dict[str, Any], str]] = [
        (InputError, {"days": 0}, "from 1 to 3650"),
        (InputError, {"days": 3651}, "from 1 to 3650"),
        (InputError, {"days": None}, "from 1 to 3650"),
        (InputError, {"reason": "  "}, "reason"),
        (InputError, {"reason": "bad\x1b[31m"}, "control character"),
    ]
    for error, fields, words in cases:
        arguments: dict[str, Any] = {"days": 5, "code": world.code("rita"), **fields}
        with pytest.raises(error, match=words):
            setup.decide("rita", SHORTEN, setup.b, **arguments)
    with pytest.raises(InputError, match="takes no days"):
        setup.decide("rita", REVOKE, setup.b, days=5)
    with pytest.raises(InputError, match="one"):
        setup.decide("rita", REVOKE)
    with pytest.raises(InputError, match="one"):
        setup.decide("rita", REVOKE, setup.b, all_mine=True)
    with pytest.raises(NotFoundError, match="not grants of campaign"):
        setup.decide("rita", REVOKE, setup.b, 999_999)
    with pytest.raises(NotFoundError, match="not items of campaign"):
        setup.decide("rita", REVOKE, items=(999_999,))
    with pytest.raises(NotFoundError, match="unknown review campaign"):
        Workspace(world.engine, "rita").act(
            review_decisions.decide,
            campaign="nope",
            selection=ItemSelection(all_mine=True),
            decision=REVOKE,
            reason="x",
        )
    assert snapshot(world.engine) == before


def test_only_the_assigned_reviewer_decides(setup: Setup) -> None:
    world = setup.world
    before = snapshot(world.engine)
    with pytest.raises(PolicyError, match=r"assigned to another reviewer.*not 'rita'"):
        setup.decide("rita", REVOKE, setup.a, setup.b)
    with pytest.raises(PolicyError, match="assigned to another reviewer"):
        setup.decide("ravi", REVOKE, setup.b)  # reviews acme, not assigned
    with pytest.raises(PolicyError, match="'root' is not a reviewer for client 'acme'"):
        setup.decide("root", REVOKE, setup.b)  # not even an admin
    assert snapshot(world.engine) == before
    # --all-mine takes exactly one's own items.
    mine = setup.decide("ann", REVOKE, all_mine=True)
    assert mine.item_ids == sorted([setup.item(setup.a).id, setup.item(setup.c).id])
    # A reviewer who no longer reviews the client may not decide even their own items.
    with db.write_session(world.engine) as session:
        session.execute(
            sa.delete(OperatorReviewClient).where(
                col(OperatorReviewClient.operator_id) == world.op("rita").id
            )
        )
    with pytest.raises(PolicyError, match="not a reviewer for client 'acme'"):
        setup.decide("rita", REVOKE, setup.b)


def test_only_a_reviewer_of_the_campaign_decides_even_an_item_assigned_by_sql(
    setup: Setup,
) -> None:
    """ravi reviews acme but is not named in the campaign: an item reassigned to him on the
    database stays undecidable; the fallback reviewer decides what start gave her."""
    world = setup.world
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(ReviewItem)
            .where(col(ReviewItem.id) == setup.item(setup.b).id)
            .values(reviewer_id=world.op("ravi").id)
        )
    before = snapshot(world.engine)
    refused = "neither a listed reviewer nor the fallback"
    with pytest.raises(PolicyError, match=refused):
        setup.decide("ravi", REVOKE, items=(setup.item(setup.b).id,))
    with pytest.raises(PolicyError, match=refused):
        setup.decide("ravi", KEEP, all_mine=True, code=world.code("ravi"))
    assert snapshot(world.engine) == before
    Workspace(world.engine, "root").act(
        reviews.start,
        spec=reviews.CampaignSpec(
            name="with fallback",
            client="acme",
            reviewers=("ann",),
            fallback_reviewer="rita",
            due_at=clock.now() + timedelta(days=14),
            if_no_answer="keep",
        ),
    )
    done = Workspace(world.engine, "rita").act(
        review_decisions.decide,
        campaign="with fallback",
        selection=ItemSelection(grant_ids=[setup.b]),
        decision=REVOKE,
        reason="not on the project",
    )
    assert len(done.item_ids) == 1 and done.ended == []


def test_a_conflicted_decision_is_refused_and_audited(setup: Setup, fake_clock: FakeClock) -> None:
    """ann was independent of grant a at start; then she asked for its extension. Deciding it
    now (any decision, alone or in a batch) is refused, and the refusal is an audit event."""
    world = setup.world
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("ann"), grant_id=setup.a, days=5, reason="more work")
    code = world.code("ann")
    with pytest.raises(PolicyError, match=r"may not decide item\(s\) .*requested an extension"):
        setup.decide("ann", KEEP, setup.a, code=code)
    with pytest.raises(PolicyError, match="may not decide"):
        setup.decide("ann", REVOKE, all_mine=True)
    assert setup.item(setup.a).decision is None
    assert setup.item(setup.c).decision is None  # the batch is refused as a whole
    refused = events(world.engine, "review.refused")
    assert len(refused) == 2
    assert refused[0]["decision"] == "keep" and refused[0]["grants"] == [setup.a]
    assert refused[0]["first_ids"] == [setup.item(setup.a).id]
    assert refused[1]["count"] == 1 and refused[1]["why"] == "conflict of interest"
    # The code was not used by the refused keep.
    setup.decide("ann", KEEP, setup.c, code=code)
    assert setup.item(setup.c).decision == "keep"
    verify_chain(world.engine)


def test_a_conflict_by_approving_an_extension_is_refused(
    setup: Setup, fake_clock: FakeClock
) -> None:
    """An approval of a later round conflicts as much as the first one."""
    world = setup.world
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("root"), grant_id=setup.c, days=5, reason="more work")
    world.approve(setup.c, by="ann")
    next_step(fake_clock)
    with pytest.raises(PolicyError, match="may not decide"):
        setup.decide("ann", REVOKE, setup.c)
    assert len(events(world.engine, "review.refused")) == 1
    assert setup.item(setup.c).decision is None


@pytest.mark.parametrize("state", ["closing", "closed"])
def test_no_decision_on_a_campaign_that_is_not_open(setup: Setup, state: str) -> None:
    world = setup.world
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(ReviewCampaign)
            .where(col(ReviewCampaign.id) == setup.campaign_id)
            .values(state=state)
        )
    before = snapshot(world.engine)
    with pytest.raises(ConflictError, match=f"is {state}: decisions are taken only while"):
        setup.decide("rita", REVOKE, setup.b)
    with pytest.raises(ConflictError, match=f"is {state}"):
        setup.decide("rita", KEEP, setup.b, code=world.code("rita"))
    assert snapshot(world.engine) == before


def test_ended_grants_are_skipped(setup: Setup) -> None:
    world = setup.world
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=setup.b, reason="left the project")
    done = setup.decide("rita", REVOKE, all_mine=True, reason="not needed any more")
    assert done.ended == [setup.item(setup.b).id]
    assert done.item_ids == [setup.item(setup.r).id]
    assert setup.item(setup.b).decision is None
    # Only ended items selected: nothing to decide, no code asked for, no event.
    nothing = setup.decide("rita", KEEP, setup.b)
    assert nothing.item_ids == [] and nothing.ended == [setup.item(setup.b).id]
    (event,) = events(world.engine, "review.decide")
    assert event["ended_skipped"] == 1 and event["count"] == 1


def test_restricted_scopes_need_a_reason_of_three_words(setup: Setup) -> None:
    world = setup.world
    with pytest.raises(InputError, match="at least 3 words"):
        setup.decide("rita", REVOKE, setup.r, reason="gone now")
    with pytest.raises(InputError, match="at least 3 words"):
        setup.decide("rita", REVOKE, setup.b, setup.r, reason="gone")
    setup.decide("rita", REVOKE, setup.b, reason="gone")  # confidential: one word will do
    setup.decide("rita", REVOKE, setup.r, reason="left the red team")
    assert setup.item(setup.r).decision == "revoke"
    verify_chain(world.engine)


def test_all_mine_over_many_items_is_bulk(setup: Setup) -> None:
    """Thousands of items in a handful of statements (the benchmark times 50,000)."""
    world = setup.world
    now = clock.now()
    with db.write_session(world.engine) as session:
        root = world.op("root")
        people = import_contractors(session, root, 4_000, external_id="B{i:05d}", uid="b{i:05d}")
        scopes = [s for s in catalog.list_scopes(session) if s.path == "acme/rlhf/notes"]
        insert_grants(
            session,
            [BulkGrant(i, scopes[0], "label") for i in range(4_000)],
            people,
            starts_at=now,
            expires_at=now + timedelta(days=5),
            requested_days=5,
        )
    Workspace(world.engine, "root").act(
        reviews.start,
        spec=reviews.CampaignSpec(
            name="bulk",
            client="acme",
            reviewers=("rita",),
            due_at=now + timedelta(days=3),
            if_no_answer="revoke",
            scope="acme/rlhf/notes",
        ),
    )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(world.engine, "before_cursor_execute", count)
    try:
        done = Workspace(world.engine, "rita").act(
            review_decisions.decide,
            campaign="bulk",
            selection=ItemSelection(all_mine=True),
            decision=KEEP,
            reason="still labelling",
            code=world.code("rita"),
        )
    finally:
        sa.event.remove(world.engine, "before_cursor_execute", count)
    assert len(done.item_ids) == 4_001  # with grant c
    assert len(statements) < 40, len(statements)
    with db.read_session(world.engine) as session:
        kept = session.execute(
            sa.select(sa.func.count())
            .select_from(ReviewItem)
            .join(ReviewCampaign, col(ReviewCampaign.id) == col(ReviewItem.campaign_id))
            .where(col(ReviewCampaign.name) == "bulk", col(ReviewItem.decision) == "keep")
        ).scalar_one()
    assert kept == 4_001
    assert world.op("rita").totp_last_step is not None


def test_a_refusal_is_audited_outside_the_workspace_too(setup: Setup) -> None:
    """A script calling decide in its own write session gets the same audited refusal."""
    world = setup.world
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("ann"), grant_id=setup.a, days=5, reason="more work")
    with (
        pytest.raises(PolicyError, match="may not decide"),
        db.write_session(world.engine) as session,
    ):
        review_decisions.decide(
            session,
            world.op("ann"),
            campaign=CAMPAIGN,
            selection=ItemSelection(grant_ids=[setup.a]),
            decision=REVOKE,
            reason="gone",
        )
    assert len(events(world.engine, "review.refused")) == 1
    assert setup.item(setup.a).decision is None
    verify_chain(world.engine)

"""The approval queue as the services read it: windows and counts over the whole filter, a
mark of "every request matching this filter, as of now" held in SQL terms (newest ids and a
count, no id list), the batch approving or denying exactly what was marked and still waits,
and a non-approver told for which clients requests wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govtui import db
from govtui.errors import ConflictError, InputError
from govtui.services import grant_views, grants, operators
from govtui.services.grant_views import QueueMark, QueueQuery, WaitingElsewhere
from tests.conftest import FakeClock
from tests.factories import ADMIN, World


def _queue(world: World, name: str, query: QueueQuery | None = None, **kw: object) -> list[int]:
    with db.read_session(world.engine) as session:
        rows = grant_views.queue_window(session, world.op(name), query, **kw)  # type: ignore[arg-type]
        return [row.id for row in rows]


def _mark(world: World, name: str, query: QueueQuery | None = None) -> QueueMark:
    with db.read_session(world.engine) as session:
        return grant_views.mark_all(session, world.op(name), query)


def _approve_mark(world: World, mark: QueueMark, by: str = "ann") -> list[grants.ApprovalOutcome]:
    with db.write_session(world.engine) as session:
        return grants.approve(session, operators.find(session, by), mark=mark, code=world.code(by))


def test_the_queue_is_windowed_counted_and_sorted_by_expiry_first(
    world: World, fake_clock: FakeClock
) -> None:
    requests = [world.request(scope="acme/rlhf/pairs", contractor=c) for c in ("E1", "E2")]
    extended = world.request(scope="acme/rlhf/notes", days=3)
    world.approve(extended)
    fake_clock.advance(days=1)
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("req"), grant_id=extended, days=5, reason="more")
    other = world.request(scope="other/p/s")  # olga's, not ann's

    # Soonest expiry first: the extension of a live grant, then the requests (no expiry yet).
    assert _queue(world, "ann") == [extended, *requests]
    assert _queue(world, "ann", limit=2) == [extended, requests[0]]
    assert _queue(world, "ann", from_end=True, limit=1) == [requests[1]]
    after = grant_views.sort_key("expires", _row(world, extended))
    assert _queue(world, "ann", after=after) == requests
    assert _queue(world, "ann", sort="newest") == [extended, requests[1], requests[0]]
    assert _queue(world, "olga") == [other]
    with db.read_session(world.engine) as session:
        counts = grant_views.queue_counts(session, world.op("ann"))
        narrowed = grant_views.queue_counts(
            session, world.op("ann"), QueueQuery(contractor_search="bo")
        )
    assert (counts.total, counts.approver, counts.approves_for) == (3, True, ("acme",))
    assert counts.elsewhere == (WaitingElsewhere("other", 1),)
    assert narrowed.total == 1
    assert _queue(world, "ann", QueueQuery(contractor_search="bo")) == [requests[1]]
    assert _queue(world, "ann", QueueQuery(client="other")) == []
    # The CLI's list is the same queue, oldest first.
    with db.read_session(world.engine) as session:
        assert [r.id for r in grant_views.pending_for(session, world.op("ann"))] == [
            *requests,
            extended,
        ]


def _row(world: World, grant_id: int) -> grant_views.GrantRow:
    with db.read_session(world.engine) as session:
        return grant_views.show(session, grant_id).grant


def test_a_mark_approves_exactly_what_matched_when_marked(world: World) -> None:
    first = world.request(scope="acme/rlhf/pairs", contractor="E1")
    second = world.request(scope="acme/rlhf/notes", contractor="E1")
    mark = _mark(world, "ann")
    assert (mark.count, mark.marked) == (2, 2)
    # Requested after the mark: never in it, whatever the filter says.
    later = world.request(scope="acme/rlhf/pairs", contractor="E2")
    outcomes = _approve_mark(world, mark)
    assert sorted(o.grant_id for o in outcomes) == [first, second]
    assert [world.grant(g).state for g in (first, second, later)] == [
        "active",
        "active",
        "requested",
    ]
    assert _queue(world, "ann") == [later]


def test_a_mark_leaves_out_the_excluded_and_those_decided_meanwhile(world: World) -> None:
    ids = [world.request(scope=s) for s in ("acme/rlhf/pairs", "acme/rlhf/notes")]
    ids.append(world.request(scope="acme/rlhf/pairs", contractor="E2"))
    mark = _mark(world, "ann")
    excluded = QueueMark(**{**mark.__dict__, "excluded": frozenset({ids[0]})})
    assert excluded.marked == 2
    # Another approver decides one meanwhile: the batch is what still waits.
    world.approve(ids[1], by="bob")
    outcomes = _approve_mark(world, excluded)
    assert [o.grant_id for o in outcomes] == [ids[2]]
    assert world.grant(ids[0]).state == "requested"
    # Nothing left of the mark: said so, nothing written.
    with pytest.raises(ConflictError, match="none of the marked requests"):
        _approve_mark(world, excluded, by="ann")


def test_a_mark_of_a_filter_is_that_filters_and_more_than_marked_is_refused(
    world: World,
) -> None:
    mine = world.request(scope="acme/rlhf/pairs", contractor="E2")
    world.request(scope="acme/rlhf/notes", contractor="E1")
    mark = _mark(world, "ann", QueueQuery(contractor_search="bo"))
    assert mark.count == 1
    with db.write_session(world.engine) as session:
        denied = grants.deny(
            session, operators.find(session, "ann"), mark=mark, reason="not this project"
        )
    assert denied == 1 and world.grant(mine).state == "denied"
    assert len(_queue(world, "ann")) == 1
    # A mark that says it held fewer than it finds (a request still being written when it
    # was read, on PostgreSQL): refused, nothing approved.
    world.request(scope="acme/rlhf/pairs", contractor="E2", days=5)
    short = QueueMark(**{**_mark(world, "ann").__dict__, "count": 1})
    with pytest.raises(ConflictError, match="are 2 now, not the 1 marked"):
        _approve_mark(world, short)
    assert len(_queue(world, "ann")) == 2
    with pytest.raises(InputError, match="not both"), db.write_session(world.engine) as session:
        grants.approve(
            session, operators.find(session, "ann"), grant_ids=[mine], mark=short, code="000000"
        )


def test_a_non_approver_is_told_for_which_clients_requests_wait(world: World) -> None:
    world.request(scope="acme/rlhf/pairs")
    world.request(scope="acme/rlhf/notes")
    world.request(scope="other/p/s")
    own = world.request(scope="other/p/s", contractor="E2", by="ann")
    with db.read_session(world.engine) as session:
        root = grant_views.queue_counts(session, world.op(ADMIN))
        req = grant_views.queue_counts(session, world.op("req"))
        ann = grant_views.queue_counts(session, world.op("ann"))
        olga = grant_views.queue_counts(session, world.op("olga"))
        assert grant_views.mark_all(session, world.op("req")).count == 0
    assert (root.total, root.approver, root.approves_for) == (0, False, ())
    assert root.elsewhere == (WaitingElsewhere("acme", 2), WaitingElsewhere("other", 2))
    # Their own requests are not ones they would need to approve.
    assert (req.approver, req.elsewhere) == (False, (WaitingElsewhere("other", 1),))
    assert ann.elsewhere == (WaitingElsewhere("other", 1),)
    assert (olga.total, olga.elsewhere) == (2, (WaitingElsewhere("acme", 2),))
    assert _queue(world, "olga")[-1] == own


def test_an_approver_role_removed_empties_the_queue(world: World, fake_clock: FakeClock) -> None:
    world.request()
    assert len(_queue(world, "bob")) == 1
    with db.write_session(world.engine) as session:
        bob = operators.find(session, "bob")
        bob.disabled_at = fake_clock.current - timedelta(seconds=1)
        session.add(bob)
    with db.read_session(world.engine) as session:
        counts = grant_views.queue_counts(session, world.op("bob"))
    assert _queue(world, "bob") == [] and not counts.approver

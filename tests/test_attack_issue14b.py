"""Attack on issue 14's second wave: mark-all "as of now" in the approvals queue, the request
form's effective days, and the contractor filter, as a colleague at the same keyboard would
try them (acting in another terminal meanwhile, editing rows, planting wildcards)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from govtui import db
from govtui.errors import ConflictError
from govtui.models import Client, Contractor, OperatorClient
from govtui.services import grant_views, grants, operators
from govtui.services.grant_views import QueueMark, QueueQuery
from tests.conftest import FakeClock
from tests.factories import ADMIN, World


def _mark(world: World, name: str, query: QueueQuery | None = None) -> QueueMark:
    with db.read_session(world.engine) as session:
        return grant_views.mark_all(session, world.op(name), query)


def _approve_mark(world: World, mark: QueueMark, by: str = "ann") -> list[grants.ApprovalOutcome]:
    with db.write_session(world.engine) as session:
        return grants.approve(session, operators.find(session, by), mark=mark, code=world.code(by))


def _rename(world: World, external_id: str, name: str) -> None:
    with db.write_session(world.engine) as session:
        person = session.exec(select(Contractor).where(Contractor.external_id == external_id)).one()
        person.name = name
        session.add(person)


def test_a_mark_never_approves_an_old_request_that_joined_its_filter_after_it(
    world: World,
) -> None:
    """One marked request leaves (a colleague approves it), an older one that did not match
    when marked joins (its contractor renamed by the HR import meanwhile): the count is the
    same, and the batch approved the request nobody marked."""
    marked = world.request(scope="acme/rlhf/pairs", contractor="E2")  # Bo: matches "bo"
    unmarked = world.request(scope="acme/rlhf/notes", contractor="E1")  # Ada: does not
    mark = _mark(world, "ann", QueueQuery(contractor_search="bo"))
    assert mark.count == 1
    world.approve(marked, by="bob")  # decided elsewhere meanwhile
    _rename(world, "E1", "Ada Bourne")  # now matches "bo"; requested before the mark
    with pytest.raises(ConflictError):
        _approve_mark(world, mark)
    assert world.grant(unmarked).state == "requested"


def test_a_mark_never_approves_a_request_of_a_client_added_to_the_approver_after_it(
    world: World,
) -> None:
    """ann is made an approver for `other` after marking her whole queue: other's older
    request joins it while one of hers leaves, and the count still matches."""
    mine = world.request(scope="acme/rlhf/pairs", contractor="E1")
    theirs = world.request(scope="other/p/s", contractor="E1")
    mark = _mark(world, "ann")
    assert mark.count == 1
    world.approve(mine, by="bob")
    with db.write_session(world.engine) as session:
        other = session.exec(select(Client).where(Client.name == "other")).one()
        root = operators.find(session, ADMIN)
        session.add(
            OperatorClient(operator_id=world.op("ann").id, client_id=other.id, granted_by=root.id)
        )
    with pytest.raises(ConflictError):
        _approve_mark(world, mark)
    assert world.grant(theirs).state == "requested"


def test_excluding_a_row_that_is_not_in_the_mark_does_not_change_what_it_holds(
    world: World,
) -> None:
    """Space on a row requested after the mark (shown unmarked) put its id in `excluded`:
    the mark then said it held one fewer than it did, and the batch was refused."""
    first = world.request(scope="acme/rlhf/pairs", contractor="E1")
    mark = _mark(world, "ann")
    later = world.request(scope="acme/rlhf/notes", contractor="E1")
    toggled = QueueMark(**{**mark.__dict__, "excluded": frozenset({later})})
    assert toggled.marked == 1
    assert [o.grant_id for o in _approve_mark(world, toggled)] == [first]
    assert world.grant(later).state == "requested"


@pytest.mark.parametrize("days", [1, 31, 61, 3650])
@pytest.mark.parametrize("contractor", ["E1", "E2"])
@pytest.mark.parametrize("scope", ["acme/rlhf/pairs", "acme/rlhf/notes", "acme/rlhf/redteam"])
def test_the_forms_effective_days_are_what_an_approval_now_grants(
    world: World, fake_clock: FakeClock, days: int, contractor: str, scope: str
) -> None:
    with db.read_session(world.engine) as session:
        shown = grants.effective_days(session, scope_path=scope, days=days, contractor=contractor)
    grant_id = world.request(scope=scope, contractor=contractor, days=days)
    approvers = ("ann", "bob") if scope.endswith("redteam") else ("ann",)
    for by in approvers:
        world.approve(grant_id, by=by)
    granted = world.grant(grant_id)
    assert granted.expires_at is not None and granted.starts_at is not None
    assert granted.expires_at == shown.ends_at
    length = granted.expires_at - granted.starts_at
    assert shown.days == length // timedelta(days=1)


def test_the_contractor_filter_takes_planted_wildcards_literally(world: World) -> None:
    """A name with LIKE wildcards planted in it (by SQL) matches only a search for them."""
    world.request(scope="acme/rlhf/pairs", contractor="E1")
    bo = world.request(scope="acme/rlhf/pairs", contractor="E2")
    _rename(world, "E2", "Bo_%[red]x[/red]\\")
    with db.read_session(world.engine) as session:
        ann = world.op("ann")

        def found(search: str) -> list[int]:
            rows = grant_views.queue_window(session, ann, QueueQuery(contractor_search=search))
            return [r.id for r in rows]

        assert found("%") == [bo]
        assert found("_%") == [bo]
        assert found("o_%[red]") == [bo]
        assert found("\\") == [bo]
        assert found("a_a") == []

"""Reviewers bound to clients (issue 12, independence; issue 11, privilege needs codes): a
reviews link is added with the acting admin's code, and once two enrolled admins exist it waits
for a different admin's; removing it needs none; only a reviewer may hold one; `audit verify`
names a link no event made; `is_reviewer_for` ends with the link, the role or the operator."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import ConflictError, NotFoundError, PolicyError
from govtui.models import AuditEvent, Client, OperatorReviewClient, ReviewCampaign, ReviewItem
from govtui.services import audit_state, demo, operator_views, operators, privilege, second_factor
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import World, code, enroll, review_vendor
from .memory_keyring import MemoryKeyring
from .test_bound_identity import cli, one_line


@pytest.fixture
def vendor(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    """review_vendor: root is the only enrolled admin (vera is not), so no second admin yet."""
    return review_vendor(engine)


def _reviews(engine: Engine, name: str, client: str) -> bool:
    with db.read_session(engine) as session:
        found = session.exec(sa.select(Client).where(Client.name == client)).scalars().one()  # type: ignore[call-overload]
        return operators.is_reviewer_for(session, operators.find(session, name), found)


def _link(engine: Engine, name: str, client: str) -> tuple[str | None, str | None] | None:
    """(granted_by, confirmed_by) names of the link, or None when there is none."""
    with db.read_session(engine) as session:
        op, found = operators.find(session, name), privilege._client(session, client)
        row = session.get(OperatorReviewClient, (op.id, found.id))
        if row is None:
            return None
        assert row.granted_at is not None
        return operators.name_of(session, row.granted_by), operators.name_of(
            session, row.confirmed_by
        )


def _events(engine: Engine, action: str) -> list[dict[str, Any]]:
    with db.read_session(engine) as session:
        rows = session.exec(sa.select(AuditEvent).where(AuditEvent.action == action))  # type: ignore[call-overload]
        return [json.loads(e.details) for e in rows.scalars()]


def _problems(engine: Engine) -> list[str]:
    with db.read_session(engine) as session:
        return audit_state.check(session).problems


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with db.write_session(engine) as session:
        session.execute(sa.text(statement), params)


def _add(world: World, name: str, client: str, totp: str | None = None) -> int | None:
    return Workspace(world.engine, "root").act(
        privilege.add_reviews,
        name=name,
        client=client,
        codes=privilege.Codes(totp if totp is not None else world.code("root")),
    )


# --- codes: adding needs the admin's, removing none ------------------------------------------


def test_adding_a_reviews_link_needs_the_admins_code_and_records_who(vendor: World) -> None:
    engine = vendor.engine
    assert not _reviews(engine, "otto", "acme")
    with pytest.raises(second_factor.CodeRejected):
        _add(vendor, "otto", "acme", totp="000000")
    assert _link(engine, "otto", "acme") is None  # the refusal undid the link
    assert _add(vendor, "otto", "acme") is None  # one admin enrolled: done at once
    assert _reviews(engine, "otto", "acme")
    assert _link(engine, "otto", "acme") == ("root", None)
    (event,) = _events(engine, "operator.reviews_add")
    assert event == {"client": "acme", "granted_by": "root", "confirmed_by": None}
    assert _problems(engine) == []


def test_removing_a_reviews_link_needs_no_code(vendor: World) -> None:
    engine = vendor.engine
    assert _reviews(engine, "rita", "acme")
    Workspace(engine, "root").act(privilege.remove_reviews, name="rita", client="acme")
    assert not _reviews(engine, "rita", "acme")
    assert _link(engine, "rita", "acme") is None
    assert _events(engine, "operator.reviews_remove") == [{"client": "acme"}]
    with pytest.raises(NotFoundError, match="does not review 'acme'"):
        Workspace(engine, "root").act(privilege.remove_reviews, name="rita", client="acme")
    assert _problems(engine) == []


def test_only_an_admin_adds_or_removes_a_reviews_link(vendor: World) -> None:
    with pytest.raises(PolicyError, match="lacks the admin role"):
        Workspace(vendor.engine, "ravi").act(
            privilege.add_reviews, name="ravi", client="acme", codes=privilege.Codes("1")
        )
    with pytest.raises(PolicyError, match="lacks the admin role"):
        Workspace(vendor.engine, "ravi").act(privilege.remove_reviews, name="rita", client="acme")
    assert _reviews(vendor.engine, "rita", "acme")


def test_a_reviews_link_needs_the_reviewer_role_and_is_not_given_twice(vendor: World) -> None:
    engine = vendor.engine
    with pytest.raises(PolicyError, match="'bob' lacks the reviewer role"):
        _add(vendor, "bob", "acme")
    with pytest.raises(ConflictError, match="'rita' reviews 'acme' already"):
        _add(vendor, "rita", "acme")
    with pytest.raises(PolicyError, match="--reviews needs the reviewer role"):
        Workspace(engine, "root").act(
            privilege.add_operator,
            name="nina",
            roles=["requester"],
            reviews=["acme"],
            codes=privilege.Codes(vendor.code("root")),
        )
    with db.read_session(engine) as session:
        assert session.get(OperatorReviewClient, (vendor.op("bob").id, 1)) is None
        assert "nina" not in {v.name for v in operators.list_all(session)}


# --- two enrolled admins: pending, confirmed by the other one ----------------------------------


def test_with_two_admins_a_reviews_link_waits_for_a_different_admins_code(
    vendor: World, fake_clock: FakeClock
) -> None:
    engine = vendor.engine
    vera = enroll(engine, "vera")
    change = _add(vendor, "otto", "acme")
    assert change is not None
    assert not _reviews(engine, "otto", "acme") and _link(engine, "otto", "acme") is None
    with db.read_session(engine) as session:
        (view,) = privilege.pending(session)
    assert (view.kind, view.operator, view.client, view.requested_by) == (
        "reviews_add",
        "otto",
        "acme",
        "root",
    )
    fake_clock.advance(seconds=30)
    with pytest.raises(PolicyError, match="different admin than its requester"):
        Workspace(engine, "root").act(
            privilege.confirm, change_id=change, codes=privilege.Codes(vendor.code("root"))
        )
    with pytest.raises(second_factor.CodeRejected):
        Workspace(engine, "vera").act(
            privilege.confirm, change_id=change, codes=privilege.Codes("000000")
        )
    assert not _reviews(engine, "otto", "acme")
    done = Workspace(engine, "vera").act(
        privilege.confirm, change_id=change, codes=privilege.Codes(code(vera))
    )
    assert done == "operator otto reviews acme"
    assert _reviews(engine, "otto", "acme")
    assert _link(engine, "otto", "acme") == ("root", "vera")
    (event,) = _events(engine, "operator.reviews_add")
    assert event == {"client": "acme", "granted_by": "root", "confirmed_by": "vera"}
    assert _problems(engine) == []


def test_with_two_admins_operator_add_reviews_is_pending_but_the_reviewer_role_is_not(
    vendor: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = vendor.engine
    vera = enroll(engine, "vera")
    capsys.readouterr()
    add = ("operator", "add", "nina", "--role", "reviewer", "--reviews", "acme")
    assert cli(engine, *add, "--reviews", "other", "--totp", vendor.code("root")) == 0
    out = capsys.readouterr().out
    assert out.count("operator confirm") == 2, out
    with db.read_session(engine) as session:
        nina = operators.find(session, "nina")
        assert operators.roles_of(session, nina) == {"reviewer"}
        changes = {v.client: v.id for v in privilege.pending(session) if v.kind == "reviews_add"}
    assert set(changes) == {"acme", "other"} and not _reviews(engine, "nina", "acme")
    confirm = ("operator", "confirm", str(changes["acme"]), "--totp", code(vera))
    assert cli(engine, *confirm, actor="vera") == 0
    assert "operator nina reviews acme" in capsys.readouterr().out
    assert _reviews(engine, "nina", "acme") and not _reviews(engine, "nina", "other")
    assert _link(engine, "nina", "acme") == ("root", "vera")
    assert cli(engine, "audit", "verify") == 0


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_operator_add_with_reviews_and_operator_list_shows_them(
    vendor: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = vendor.engine
    add = ("operator", "add", "nina", "--role", "reviewer", "--reviews", "other")
    assert cli(engine, *add, "--reviews", "acme", "--totp", vendor.code("root")) == 0
    assert _reviews(engine, "nina", "acme") and _reviews(engine, "nina", "other")
    assert _link(engine, "nina", "acme") == ("root", None)
    fake_clock.advance(seconds=30)
    assert (
        cli(engine, "operator", "reviews", "add", "otto", "acme", "--totp", vendor.code("root"))
        == 0
    )
    assert "operator otto reviews acme" in capsys.readouterr().out
    assert cli(engine, "operator", "reviews", "remove", "ravi", "other") == 0
    assert "operator ravi no longer reviews other" in capsys.readouterr().out
    assert cli(engine, "operator", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "REVIEWS" in lines[0].split()
    otto = next(line for line in lines if line.startswith("otto "))
    assert "acme,other" in otto.split()
    assert cli(engine, "operator", "list", "--json") == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["nina"]["reviews"] == ["acme", "other"]
    assert listed["ravi"]["reviews"] == ["acme"]
    assert listed["bob"]["reviews"] == []
    assert cli(engine, "audit", "verify") == 0


@pytest.mark.parametrize(
    "args",
    [
        ("operator", "reviews", "add", "rita", "nosuch"),
        ("operator", "add", "nina", "--role", "reviewer", "--reviews", "nosuch"),
    ],
)
def test_cli_an_unknown_client_is_one_line_exit_2_and_writes_nothing(
    vendor: World, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    engine = vendor.engine
    with db.read_session(engine) as session:
        before = session.exec(sa.select(sa.func.count()).select_from(AuditEvent)).one()  # type: ignore[call-overload]
    capsys.readouterr()
    assert cli(engine, *args, "--totp", vendor.code("root")) == 2
    assert one_line(capsys) == "unknown client 'nosuch'"
    with db.read_session(engine) as session:
        assert session.exec(sa.select(sa.func.count()).select_from(AuditEvent)).one() == before  # type: ignore[call-overload]
        assert "nina" not in {v.name for v in operators.list_all(session)}


def test_cli_reviews_without_the_reviewer_role_is_one_line_exit_2(
    vendor: World, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    add = ("operator", "add", "nina", "--role", "approver", "--reviews", "acme")
    assert cli(vendor.engine, *add, "--totp", vendor.code("root")) == 2
    assert one_line(capsys) == "--reviews needs the reviewer role"
    assert cli(vendor.engine, "operator", "reviews", "remove", "bob", "acme") == 2
    assert one_line(capsys) == "operator 'bob' does not review 'acme'"


# --- is_reviewer_for ends with the link, the role, or the operator ------------------------------


@pytest.mark.parametrize("how", ["link", "role", "operator"])
def test_is_reviewer_for_is_false_once_the_link_the_role_or_the_operator_is_gone(
    vendor: World, how: str
) -> None:
    engine = vendor.engine
    ws = Workspace(engine, "root")
    assert _reviews(engine, "rita", "acme")
    if how == "link":
        ws.act(privilege.remove_reviews, name="rita", client="acme")
    elif how == "role":
        ws.act(privilege.remove_role, name="rita", role="reviewer")
    else:
        ws.act(privilege.remove_operator, name="rita", reason="left the vendor")
    assert not _reviews(engine, "rita", "acme")
    assert _reviews(engine, "ravi", "acme")  # nobody else lost anything
    with db.read_session(engine) as session:
        assert operator_views.state(session, vendor.op("rita")).reviews == ()
        assert operator_views.state(session, vendor.op("ravi")).reviews == ("acme", "other")
    assert _problems(engine) == []


# --- audit verify names what SQL did to the links ----------------------------------------------


def test_audit_verify_names_a_reviews_link_inserted_by_sql(
    vendor: World, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = vendor.engine
    _sql(
        engine,
        "INSERT INTO operator_review_client (operator_id, client_id, granted_by)"
        " SELECT o.id, c.id, o.id FROM operator o, client c"
        " WHERE o.name = 'otto' AND c.name = 'acme'",
    )
    assert _reviews(engine, "otto", "acme")  # it works: that is why verify must see it
    assert _problems(engine) == [
        "operator_review_client: operator 'otto' reviews 'acme' by no event"
    ]
    capsys.readouterr()
    assert cli(engine, "audit", "verify") == 1
    assert "operator_review_client: operator 'otto' reviews 'acme' by no event" in (
        capsys.readouterr().out
    )


def test_audit_verify_names_a_reviews_link_deleted_or_reattributed_by_sql(vendor: World) -> None:
    engine = vendor.engine
    _sql(
        engine,
        "DELETE FROM operator_review_client WHERE operator_id = (SELECT id FROM operator"
        " WHERE name = 'ravi') AND client_id = (SELECT id FROM client WHERE name = 'other')",
    )
    _sql(
        engine,
        "UPDATE operator_review_client SET confirmed_by = (SELECT id FROM operator"
        " WHERE name = 'vera') WHERE operator_id = (SELECT id FROM operator WHERE name = 'rita')",
    )
    assert _problems(engine) == [
        "operator_review_client: 'rita' reviewing 'acme' was granted by 'root', confirmed by"
        " 'vera'; its event says 'root', None (changed by SQL?)",
        "operator_review_client: 'ravi' reviewing 'other' removed by no event",
    ]


# --- the demo ----------------------------------------------------------------------------------


def test_the_demo_reviewers_review_every_client_and_one_campaign_is_open_for_dana(
    engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    with db.write_session(engine) as session:
        demo.load(session, contractors=40)
    for client in demo.CLIENTS:
        assert _reviews(engine, "dana", client) and _reviews(engine, "rita", client)
    with db.read_session(engine) as session:
        (campaign,) = session.exec(sa.select(ReviewCampaign)).scalars().all()  # type: ignore[call-overload]
        assigned = session.execute(
            sa.select(ReviewItem.reviewer_id, sa.func.count())  # type: ignore[call-overload]
            .where(ReviewItem.campaign_id == campaign.id)
            .group_by(ReviewItem.reviewer_id)
        ).all()
        dana = operators.find(session, "dana").id
        # dana and rita neither requested nor approved a demo grant: dana, listed first, has all.
        assert (campaign.name, campaign.state) == (demo.CAMPAIGN, "open")
        assert [(reviewer, n) for reviewer, n in assigned] == [(dana, campaign.item_count)]
        assert campaign.item_count > 0
    assert _problems(engine) == []

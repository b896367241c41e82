"""Red-team reproductions against the issue-12 access-review controls. Each test FAILS on main
at 35a2c52: it pins what the issue (or DESIGN.md's threat model) says must hold, and today
govtui lets the attack through."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.errors import GovtuiError, PolicyError
from govtui.services import (
    audit_state,
    grants,
    operators,
    privilege,
    review_close,
    review_decisions,
    reviews,
)
from govtui.services.workspace import Workspace
from govtui.vocabulary import ReviewDecision

from .conftest import FakeClock
from .factories import UNREACHABLE_TARGET, World, review_vendor
from .memory_keyring import MemoryKeyring
from .test_review_cli import run
from .test_review_close import (
    campaign_row,
    decide,
    do_close,
    grant,
    grant_rows,
    next_step,
    plan_of,
    start_review,
)


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return review_vendor(engine, target=UNREACHABLE_TARGET)


def _exec(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _problems(engine: Engine) -> list[str]:
    with db.read_session(engine) as session:
        return audit_state.check(session).problems


def test_shorten_into_the_past_ends_the_whole_population_without_confirm_count(
    world: World, fake_clock: FakeClock
) -> None:
    """Attack: rather than `revoke` (which trips the 25% rule), the reviewer shortens every
    item by 1 day; close runs two days later and ends all of them, as expired, with no
    --confirm-count. Safe: grants close ENDS count towards the rule, whatever the decision
    that ends them (plan.needs_confirm_count covers plan.expire too)."""
    ids = [grant(world, fake_clock, p) for p in ("E1", "E2", "E3")]
    start_review(world)
    decide(world, "q1", ids, "shorten", days=1)
    fake_clock.advance(days=2)
    plan = plan_of(world)
    assert plan.revoke == [] and sorted(plan.expire) == sorted(ids)  # the dry run knows
    assert plan.needs_confirm_count, "3 of 3 grants end at close: the count must be typed back"
    with pytest.raises(PolicyError, match="confirm-count"):
        do_close(world)
    assert all(state == "active" for state, _e, _x in grant_rows(world).values())


def test_close_notices_an_item_deleted_from_the_frozen_population(
    world: World, fake_clock: FakeClock
) -> None:
    """Attack: a colleague on the database deletes their friend's review_item row from an
    if-no-answer=revoke campaign; close revokes everybody else and reports the campaign
    closed, the friend's grant untouched, though the frozen population's count and digest
    no longer match. Safe: close (and `review show`) recompute item_count and
    population_sha256 from the items and refuse a population that changed."""
    friend = grant(world, fake_clock, "E1")
    others = [grant(world, fake_clock, p) for p in ("E2", "E3")]
    campaign_id = start_review(world, if_no_answer="revoke")
    _exec(
        world.engine,
        "DELETE FROM review_item WHERE campaign_id = :c AND grant_id = :g",
        c=campaign_id,
        g=friend,
    )
    with pytest.raises(GovtuiError, match="population"):
        do_close(world, confirm_count=len(others))
    assert grant_rows(world)[friend][0] == "active"
    assert campaign_row(world).state == "open"


def test_a_keep_written_by_sql_without_a_code_is_not_applied(
    world: World, fake_clock: FakeClock
) -> None:
    """Attack: on an if-no-answer=revoke campaign the reviewer revoked grant g; a colleague
    on the database flips that item to decision='keep' (no totp_step, no decided_by: a row
    decide can never write, since keep needs the reviewer's code). close keeps g alive and
    `audit state` says nothing. Safe: close refuses (or treats as undecided) a keep or
    shorten that carries no TOTP step and no decider; audit_state names it. (A forged row
    WITH a plausible step is what only signed evidence, issue 13, could catch.)"""
    g = grant(world, fake_clock, "E1")
    for person in ("E2", "E3"):
        grant(world, fake_clock, person)
    campaign_id = start_review(world, if_no_answer="revoke")
    decide(world, "q1", [g], "revoke")
    _exec(
        world.engine,
        "UPDATE review_item SET decision = 'keep', totp_step = NULL, decided_by = NULL "
        "WHERE campaign_id = :c AND grant_id = :g",
        c=campaign_id,
        g=g,
    )
    plan = plan_of(world)
    refused = False
    try:
        do_close(world, confirm_count=len(plan.revoke))  # the count the dry run shows
    except GovtuiError:
        refused = True
    state = grant_rows(world)[g][0]
    assert refused or state == "revoked", (
        f"a keep nobody confirmed with a code was applied: grant {g} is {state}; "
        f"audit state: {_problems(world.engine)}"
    )


def test_decide_refuses_an_item_reassigned_by_sql_to_a_reviewer_not_of_the_campaign(
    world: World, fake_clock: FakeClock
) -> None:
    """Attack: ravi reviews acme but was not named a reviewer of campaign q1 (only rita
    was); a colleague on the database sets review_item.reviewer_id to ravi and ravi
    decides it. Safe: decide refuses an item whose reviewer is neither a listed reviewer of
    the campaign (review_reviewer) nor its fallback: the assignment is checkable."""
    g = grant(world, fake_clock, "E1")
    campaign_id = start_review(world)
    ravi = world.op("ravi").id
    _exec(
        world.engine,
        "UPDATE review_item SET reviewer_id = :r WHERE campaign_id = :c AND grant_id = :g",
        r=ravi,
        c=campaign_id,
        g=g,
    )
    with pytest.raises(PolicyError):
        Workspace(world.engine, "ravi").act(
            review_decisions.decide,
            campaign="q1",
            selection=review_decisions.ItemSelection(grant_ids=[g]),
            decision=ReviewDecision.REVOKE,
            reason="ravi took this one over",
        )


def test_a_creator_whose_admin_role_was_removed_cannot_close(
    world: World, fake_clock: FakeClock
) -> None:
    """Attack: admin vera starts a campaign (if no answer: revoke); root then takes vera's
    admin role away (she now holds no role at all); vera closes the campaign anyway and
    revokes every unanswered grant of the client. Safe: 'the campaign's creator or an
    admin' means a creator who still may (an admin, or at least an operator with a role);
    _may_close re-checks the creator's standing, as decide re-checks a reviewer's."""
    ids = [grant(world, fake_clock, p) for p in ("E1", "E2", "E3")]
    spec = reviews.CampaignSpec(
        name="q1",
        client="acme",
        reviewers=("rita",),
        due_at=clock.now() + timedelta(days=14),
        if_no_answer="revoke",
    )
    Workspace(world.engine, "vera").act(
        reviews.start, spec=spec, despite_drift="the test target is never synced"
    )
    next_step(fake_clock)
    assert (
        Workspace(world.engine, "root").act(privilege.remove_role, name="vera", role="admin")
        is None
    )
    with pytest.raises(PolicyError, match="may not close"):
        Workspace(world.engine, "vera").act(review_close.close, campaign="q1", confirm_count=3)
    assert all(grant_rows(world)[g][0] == "active" for g in ids)


def test_an_extension_pending_at_close_cannot_undo_a_review_shorten(
    world: World, fake_clock: FakeClock
) -> None:
    """Attack: req asks for a 30-day extension of grant g; the reviewer shortens g to 2
    days; close brings g's expiry forward; ann then approves the extension that was waiting
    all along, and g runs 30 days from now: the review's decision is silently undone.
    Safe: close's shorten voids the grant's pending extensions (as end does for a revoke),
    so the shortened end stands until somebody requests new time after the review."""
    g = grant(world, fake_clock, "E1")
    with db.write_session(world.engine) as session:
        grants.extend(
            session, operators.find(session, "req"), grant_id=g, days=30, reason="more pairs"
        )
    start_review(world)
    shorten_at = decide(world, "q1", [g], "shorten", days=2)
    do_close(world)
    assert grant_rows(world)[g][1] == shorten_at + timedelta(days=2)
    next_step(fake_clock)
    with contextlib.suppress(GovtuiError):  # refused: nothing waits any more
        world.approve(g, by="ann")
    expires = grant_rows(world)[g][1]
    assert expires is not None and expires <= shorten_at + timedelta(days=2), (
        f"the extension requested before the review outlived its shorten: grant {g} now "
        f"expires {expires:%Y-%m-%d}"
    )


def test_a_keep_with_a_code_of_unicode_digits_is_one_line_exit_2(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: `review decide q1 ITEM keep --totp 12345٣` (an Arabic-Indic digit, which
    str.isdigit accepts). Today hmac.compare_digest raises TypeError in totp.matching_step
    and the CLI dies with a traceback (the TUI's TOTP prompt takes the same path). Safe: one
    line, exit 2, the wrong code counted like any other; the fix is `isascii()` beside
    `isdigit()` in govtui/security/totp.py."""
    g = grant(world, fake_clock, "E1")
    start_review(world)
    capsys.readouterr()
    rc = run(
        world,
        "review",
        "decide",
        "q1",
        "--grant",
        str(g),
        "keep",
        "--reason",
        "still on it",
        "--totp",
        "12345\u0663",
        actor="rita",
    )
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err

"""`govtui review reassign` (issue 13's "original reviewer when reassigned"), on SQLite and
PostgreSQL: only undecided items of an open campaign move, all or nothing, to a target who
reviews the client and is independent of every item moved; the first reviewer is kept; one
audit event with the digest of the moved ids; the dry run writes nothing; one UPDATE; the
campaign row is locked against a close; a reviewer who lost the role or the link is named by
`review show`/`review due` and their items can still be moved; decide follows the move; the
evidence pack names the original reviewer."""

from __future__ import annotations

import csv
import io
import json
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import clock, db
from govtui.cli import main
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import AuditEvent, ReviewCampaign, ReviewItem, ReviewReviewer
from govtui.services import (
    audit,
    catalog,
    evidence_keys,
    evidence_pack,
    grants,
    operators,
    privilege,
    review_close,
    review_decisions,
    review_reassign,
    review_views,
    reviews,
)
from govtui.services.review_decisions import ItemSelection
from govtui.services.second_factor import CodeRejected
from govtui.services.workspace import Workspace
from govtui.vocabulary import ReviewDecision

from .conftest import FakeClock, snapshot
from .factories import ADMIN, BulkGrant, World, import_contractors, insert_grants, review_vendor
from .memory_keyring import MemoryKeyring

KEEP, REVOKE = ReviewDecision.KEEP, ReviewDecision.REVOKE
CAMPAIGN = "q1 acme"


def next_step(fake_clock: FakeClock) -> None:
    fake_clock.advance(seconds=31)


@dataclass
class Setup:
    """Reviewers ann then rita: ann holds a and c (requested by root, approved by bob), rita
    holds b (requested by req, approved by ann) and r (restricted; bob and ann approved).
    ravi reviews acme and is not in the campaign; otto reviews only other."""

    world: World
    fake_clock: FakeClock
    campaign_id: int
    a: int
    b: int
    c: int
    r: int

    def item(self, grant_id: int) -> ReviewItem:
        with db.read_session(self.world.engine) as session:
            found: ReviewItem = session.execute(
                sa.select(ReviewItem).where(
                    col(ReviewItem.campaign_id) == self.campaign_id,
                    col(ReviewItem.grant_id) == grant_id,
                )
            ).scalar_one()
            return found

    def reviewer(self, grant_id: int) -> tuple[str | None, str | None]:
        """(assigned, original) reviewer names of the grant's item."""
        item = self.item(grant_id)
        with db.read_session(self.world.engine) as session:
            return (
                operators.name_of(session, item.reviewer_id),
                operators.name_of(session, item.original_reviewer_id),
            )

    def reassign(
        self,
        source: str,
        target: str,
        *grant_ids: int,
        reason: str = "rita is on leave",
        dry_run: bool = False,
        code: str | None = None,
        by: str = ADMIN,
    ) -> review_reassign.Reassigned:
        ws = Workspace(self.world.engine, by)
        items = [self.item(g).id or 0 for g in grant_ids]
        given: dict[str, Any] = {
            "campaign": CAMPAIGN,
            "from_reviewer": source,
            "to_reviewer": target,
            "reason": reason,
            "item_ids": items,
        }
        if dry_run:
            return ws.read_as(review_reassign.reassign, dry_run=True, **given)
        if code is None:
            next_step(self.fake_clock)
            code = self.world.code(by)
        return ws.act(review_reassign.reassign, code=code, **given)

    def decide(
        self, by: str, decision: ReviewDecision, *grant_ids: int, code: str | None = None
    ) -> review_decisions.Decided:
        return Workspace(self.world.engine, by).act(
            review_decisions.decide,
            campaign=CAMPAIGN,
            selection=ItemSelection(grant_ids=grant_ids),
            decision=decision,
            reason="still on the project team",
            code=code,
        )


def granted(world: World, fake_clock: FakeClock, contractor: str, scope: str, by: str,
            approvers: tuple[str, ...]) -> int:  # fmt: skip
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
    found = Setup(world, fake_clock, started.campaign_id, a, b, c, r)
    assert found.reviewer(a) == found.reviewer(c) == ("ann", None)
    assert found.reviewer(b) == found.reviewer(r) == ("rita", None)
    return found


def events(engine: Engine, action: str) -> list[dict[str, Any]]:
    with db.read_session(engine) as session:
        rows = session.execute(
            sa.select(col(AuditEvent.details))
            .where(col(AuditEvent.action) == action)
            .order_by(col(AuditEvent.seq))
        ).scalars()
        return [json.loads(r) for r in rows]


def listed(engine: Engine, campaign_id: int) -> list[tuple[int, str]]:
    """The campaign's review_reviewer rows: (position, name)."""
    with db.read_session(engine) as session:
        rows = session.execute(
            sa.text(
                "SELECT r.position, o.name FROM review_reviewer r JOIN operator o ON "
                "o.id = r.operator_id WHERE r.campaign_id = :c ORDER BY r.position"
            ),
            {"c": campaign_id},
        ).all()
    return [(int(p), str(n)) for p, n in rows]


def verify_chain(engine: Engine) -> None:
    with db.read_session(engine) as session:
        result = audit.verify(session, engine)
    assert result.problem is None, result.problem


# --- what moves ------------------------------------------------------------------------------


def test_undecided_items_move_decided_ones_stay_and_decide_follows(setup: Setup) -> None:
    world = setup.world
    setup.decide("ann", REVOKE, setup.a)  # decided: stays with ann
    done = setup.reassign("ann", "ravi")
    c_item = setup.item(setup.c).id
    assert (done.count, done.item_ids, done.decided) == (1, [c_item], [setup.item(setup.a).id])
    assert done.added_reviewer and not done.dry_run and done.from_cannot_decide == ""
    assert setup.reviewer(setup.c) == ("ravi", "ann")
    assert setup.reviewer(setup.a) == ("ann", None)
    assert setup.item(setup.a).decision == "revoke"
    # ravi, not in the campaign before, is listed last: decide accepts him.
    assert listed(world.engine, setup.campaign_id) == [(1, "ann"), (2, "rita"), (3, "ravi")]
    with pytest.raises(PolicyError, match="assigned to another reviewer"):
        setup.decide("ann", REVOKE, setup.c)
    assert setup.item(setup.c).decision is None
    setup.decide("ravi", KEEP, setup.c, code=world.code("ravi"))
    item = setup.item(setup.c)
    assert item.decision == "keep" and item.decided_by == world.op("ravi").id
    (event,) = events(world.engine, "review.reassign")
    assert event["campaign"] == CAMPAIGN and event["from"] == "ann" and event["to"] == "ravi"
    assert event["reason"] == "rita is on leave" and event["count"] == 1
    assert event["ids_sha256"] == audit.id_summary([c_item])["ids_sha256"] == done.ids_sha256
    assert event["decided_not_moved"] == 1 and event["added_reviewer"] is True
    assert event["totp_step"] is not None
    verify_chain(world.engine)


def test_a_second_reassignment_keeps_the_first_reviewer(setup: Setup) -> None:
    world = setup.world
    setup.reassign("ann", "ravi")
    assert setup.reviewer(setup.a) == setup.reviewer(setup.c) == ("ravi", "ann")
    before = listed(world.engine, setup.campaign_id)
    setup.reassign("ravi", "rita")  # rita is listed already: no new row
    assert setup.reviewer(setup.a) == setup.reviewer(setup.c) == ("rita", "ann")
    assert listed(world.engine, setup.campaign_id) == before
    # Back to ann: still "reassigned", still from ann first.
    setup.reassign("rita", "ann", setup.a)
    assert setup.reviewer(setup.a) == ("ann", "ann")
    assert setup.reviewer(setup.c) == ("rita", "ann")
    assert setup.reviewer(setup.b) == ("rita", None)  # rita's own items never moved
    assert [e["count"] for e in events(world.engine, "review.reassign")] == [2, 2, 1]
    verify_chain(world.engine)


def test_only_the_named_items_move(setup: Setup) -> None:
    done = setup.reassign("ann", "ravi", setup.c)
    assert done.count == 1 and setup.reviewer(setup.c) == ("ravi", "ann")
    assert setup.reviewer(setup.a) == ("ann", None)
    (event,) = events(setup.world.engine, "review.reassign")
    assert event["named"] is True and event["first_ids"] == [setup.item(setup.c).id]


def test_named_items_must_be_the_campaigns_and_from_s(setup: Setup) -> None:
    before = snapshot(setup.world.engine)
    with pytest.raises(PolicyError, match=r"item\(s\) .* are not assigned to 'ann'"):
        setup.reassign("ann", "ravi", setup.c, setup.b)
    with pytest.raises(NotFoundError, match="not items of campaign"):
        Workspace(setup.world.engine, ADMIN).act(
            review_reassign.reassign,
            campaign=CAMPAIGN,
            from_reviewer="ann",
            to_reviewer="ravi",
            reason="x",
            item_ids=[999_999],
            code=setup.world.code(ADMIN),
        )
    assert snapshot(setup.world.engine) == before


def test_nothing_undecided_is_refused(setup: Setup) -> None:
    setup.decide("ann", REVOKE, setup.a, setup.c)
    before = snapshot(setup.world.engine)
    with pytest.raises(ConflictError, match=r"no undecided item .*2 decided"):
        setup.reassign("ann", "ravi")
    assert snapshot(setup.world.engine) == before


# --- who may receive ---------------------------------------------------------------------------


def test_a_conflicted_target_is_refused_and_nothing_moves(setup: Setup) -> None:
    """req requested b (not r); ann approved both b and r: all or nothing, named."""
    before = snapshot(setup.world.engine)
    b_item = setup.item(setup.b).id
    with pytest.raises(PolicyError, match=rf"'req' may not review item\(s\) {b_item} \("):
        setup.reassign("rita", "req")
    with pytest.raises(PolicyError, match="'ann' may not review item"):
        setup.reassign("rita", "ann")
    with pytest.raises(PolicyError, match="may not review"):
        setup.reassign("rita", "ann", dry_run=True)
    assert snapshot(setup.world.engine) == before
    # r alone is fine for req.
    setup.reassign("rita", "req", setup.r)
    assert setup.reviewer(setup.r) == ("req", "rita")


def test_a_target_who_requested_an_extension_is_refused(setup: Setup) -> None:
    world = setup.world
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("req"), grant_id=setup.a, days=5, reason="more work")
    before = snapshot(world.engine)
    with pytest.raises(PolicyError, match=rf"item\(s\) {setup.item(setup.a).id} \("):
        setup.reassign("ann", "req")
    assert snapshot(world.engine) == before
    setup.reassign("ann", "req", setup.c)
    assert setup.reviewer(setup.c) == ("req", "ann")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("otto", "does not review client 'acme'"),
        ("bob", "lacks the reviewer role"),
        ("nobody", "unknown operator 'nobody'"),
    ],
)
def test_the_target_must_be_eligible_as_at_start(setup: Setup, target: str, message: str) -> None:
    before = snapshot(setup.world.engine)
    with pytest.raises((PolicyError, NotFoundError), match=message):
        setup.reassign("ann", target)
    assert snapshot(setup.world.engine) == before


def test_a_target_who_lost_the_link_or_was_removed_is_refused(setup: Setup) -> None:
    world = setup.world
    with db.write_session(world.engine) as session:
        privilege.remove_reviews(session, world.op(ADMIN), name="ravi", client="acme")
    with pytest.raises(PolicyError, match="'ravi' does not review client 'acme'"):
        setup.reassign("ann", "ravi")
    with db.write_session(world.engine) as session:
        privilege.remove_operator(session, world.op(ADMIN), name="rita", reason="left us")
    with pytest.raises(PolicyError, match="'rita' was removed"):
        setup.reassign("ann", "rita")
    assert setup.reviewer(setup.a) == ("ann", None)


def test_only_an_admin_reassigns_with_a_valid_code(setup: Setup) -> None:
    world = setup.world
    with pytest.raises(PolicyError, match="lacks the admin role"):
        setup.reassign("ann", "ravi", by="rita", code=world.code("rita"))
    with pytest.raises(InputError, match="TOTP code"):
        Workspace(world.engine, ADMIN).act(
            review_reassign.reassign,
            campaign=CAMPAIGN,
            from_reviewer="ann",
            to_reviewer="ravi",
            reason="x",
        )
    wrong = "000000" if world.code(ADMIN) != "000000" else "111111"
    with pytest.raises(CodeRejected, match="wrong code"):
        setup.reassign("ann", "ravi", code=wrong)
    assert world.op(ADMIN).totp_failures == 1
    assert setup.reviewer(setup.a) == ("ann", None)
    assert events(world.engine, "review.reassign") == []


@pytest.mark.parametrize("state", ["closing", "closed"])
def test_a_campaign_that_is_not_open_is_refused(setup: Setup, state: str) -> None:
    with db.write_session(setup.world.engine) as session:
        session.execute(
            sa.update(ReviewCampaign)
            .where(col(ReviewCampaign.id) == setup.campaign_id)
            .values(state=state)
        )
    before = snapshot(setup.world.engine)
    with pytest.raises(ConflictError, match=f"is {state}: items are reassigned only while"):
        setup.reassign("ann", "ravi")
    with pytest.raises(ConflictError, match=f"is {state}"):
        setup.reassign("ann", "ravi", dry_run=True)
    assert snapshot(setup.world.engine) == before


# --- a reviewer who can no longer decide -----------------------------------------------------


def test_a_reviewer_who_lost_the_link_is_named_and_their_items_move(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    world = setup.world
    with db.write_session(world.engine) as session:
        privilege.remove_reviews(session, world.op(ADMIN), name="rita", client="acme")
    with db.read_session(world.engine) as session:
        detail = review_views.campaign(session, CAMPAIGN)
    (why,) = [w for n, (count, w) in detail.cannot_decide.items() if n == "rita" and count == 2]
    assert "does not review client 'acme'" in why
    assert "ann" not in detail.cannot_decide
    setup.fake_clock.advance(days=12)  # due within 3 days: `review due` lists it
    with db.read_session(world.engine) as session:
        due = {d.reviewer: d for d in review_close.due(session)}
    assert due["rita"].cannot_decide and due["ann"].cannot_decide == ""
    assert run(world, "review", "show", CAMPAIGN) == 0
    assert "CANNOT DECIDE: 2 undecided items of rita" in capsys.readouterr().out
    assert run(world, "review", "due") == 0
    out = capsys.readouterr().out
    assert "REVIEWER CANNOT DECIDE" in out.split("rita")[1].splitlines()[0]
    done = setup.reassign("rita", "ravi")
    assert done.count == 2 and "does not review client" in done.from_cannot_decide
    assert setup.reviewer(setup.b) == setup.reviewer(setup.r) == ("ravi", "rita")
    with db.read_session(world.engine) as session:
        assert review_views.campaign(session, CAMPAIGN).cannot_decide == {}
    (event,) = events(world.engine, "review.reassign")
    assert "does not review" in event["from_cannot_decide"]


def test_a_removed_reviewer_s_items_move_too(setup: Setup) -> None:
    world = setup.world
    with db.write_session(world.engine) as session:
        privilege.remove_operator(session, world.op(ADMIN), name="ann", reason="left us")
    with db.read_session(world.engine) as session:
        assert "was removed" in review_views.campaign(session, CAMPAIGN).cannot_decide["ann"][1]
    setup.reassign("ann", "ravi")
    assert setup.reviewer(setup.a) == setup.reviewer(setup.c) == ("ravi", "ann")


# --- dry run, bulk, lock ------------------------------------------------------------------------


def test_the_dry_run_writes_nothing_and_matches_the_real_one(setup: Setup) -> None:
    before = snapshot(setup.world.engine)
    dry = setup.reassign("ann", "ravi", dry_run=True)
    assert snapshot(setup.world.engine) == before
    assert dry.dry_run and dry.added_reviewer
    real = setup.reassign("ann", "ravi")
    assert (dry.count, dry.ids_sha256, dry.item_ids, dry.decided) == (
        real.count,
        real.ids_sha256,
        real.item_ids,
        real.decided,
    )


def test_many_items_move_in_one_update(setup: Setup) -> None:
    world = setup.world
    now = clock.now()
    with db.write_session(world.engine) as session:
        root = world.op("root")
        people = import_contractors(session, root, 3_000, external_id="B{i:05d}", uid="b{i:05d}")
        scopes = [s for s in catalog.list_scopes(session) if s.path == "acme/rlhf/notes"]
        insert_grants(
            session,
            [BulkGrant(i, scopes[0], "label") for i in range(3_000)],
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
    next_step(setup.fake_clock)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(world.engine, "before_cursor_execute", count)
    try:
        done = Workspace(world.engine, ADMIN).act(
            review_reassign.reassign,
            campaign="bulk",
            from_reviewer="rita",
            to_reviewer="ravi",
            reason="rita is on leave",
            code=world.code(ADMIN),
        )
    finally:
        sa.event.remove(world.engine, "before_cursor_execute", count)
    assert done.count == 3_001  # with grant c
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE REVIEW_ITEM")]
    assert len(updates) == 1, updates
    assert len(statements) < 40, len(statements)
    locks = [s for s in statements if "FROM review_campaign" in s and "FOR UPDATE" in s]
    if world.engine.dialect.name == "postgresql":
        assert locks, "the campaign row is not locked"


def test_a_close_committing_first_wins_over_a_reassignment(setup: Setup) -> None:
    """A close holding the campaign row: the reassignment waits for it, then sees the
    campaign is no longer open (on PostgreSQL only the FOR UPDATE makes it wait)."""
    world = setup.world
    next_step(setup.fake_clock)
    code = world.code(ADMIN)
    outcome: list[BaseException | review_reassign.Reassigned] = []

    def reassign() -> None:
        try:
            outcome.append(
                Workspace(world.engine, ADMIN).act(
                    review_reassign.reassign,
                    campaign=CAMPAIGN,
                    from_reviewer="ann",
                    to_reviewer="ravi",
                    reason="on leave",
                    code=code,
                )
            )
        except BaseException as exc:
            outcome.append(exc)

    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(ReviewCampaign)
            .where(col(ReviewCampaign.id) == setup.campaign_id)
            .values(state="closing")
        )
        worker = threading.Thread(target=reassign)
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and not outcome, outcome
    worker.join(30)
    (result,) = outcome
    assert isinstance(result, ConflictError) and "is closing" in str(result)
    assert setup.reviewer(setup.a) == ("ann", None)


# --- the CLI -----------------------------------------------------------------------------------


def run(world: World, *args: str, actor: str = ADMIN) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    try:
        return main(["--db", url, "--as", actor, *args])
    except SystemExit as exited:
        return int(exited.code or 0)


def test_cli_reassigns_and_says_so(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    world = setup.world
    setup.decide("ann", REVOKE, setup.a)
    c_item = str(setup.item(setup.c).id)
    base = ["review", "reassign", CAMPAIGN, "--from", "ann", "--to", "ravi"]
    assert run(world, *base, "--reason", "ann on leave", "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"campaign {CAMPAIGN}: would move 1 undecided items from ann to ravi" in out
    assert "1 decided items stay with ann" in out and "ravi would become" in out
    assert setup.reviewer(setup.c) == ("ann", None)
    next_step(setup.fake_clock)
    code = world.code(ADMIN)
    args = [*base, "--item", c_item, "--reason", "ann on leave", "--totp", code, "--json"]
    assert run(world, *args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["count"] == 1
        and shown["to_reviewer"] == "ravi"
        and shown["item_ids"] == [int(c_item)]
    )
    assert setup.reviewer(setup.c) == ("ravi", "ann")


CLI_ERRORS = [
    (["nosuch", "--from", "ann", "--to", "ravi"], "unknown review campaign 'nosuch'"),
    ([CAMPAIGN, "--from", "nobody", "--to", "ravi"], "unknown operator 'nobody'"),
    ([CAMPAIGN, "--from", "ann", "--to", "nobody"], "unknown operator 'nobody'"),
    ([CAMPAIGN, "--from", "rita", "--to", "req"], "'req' may not review item(s)"),
    ([CAMPAIGN, "--from", "ann", "--to", "otto"], "does not review client 'acme'"),
    ([CAMPAIGN, "--from", "ann", "--to", "ann"], "nothing to reassign"),
    ([CAMPAIGN, "--from", "ann", "--to", "ravi", "--item", "0"], "out of range"),
    ([CAMPAIGN, "--from", "ann", "--to", "ravi", "--item", "99999"], "not items of campaign"),
    ([CAMPAIGN, "--from", "ann", "--to", "ravi", "--totp", "12345x"], "wrong code"),
    ([CAMPAIGN, "--from", "ann", "--to", "ravi"], "no TOTP code"),  # no terminal to ask on
    ([CAMPAIGN, "--to", "ravi"], "--from"),
]


@pytest.mark.parametrize(("args", "message"), CLI_ERRORS)
def test_cli_errors_are_one_line_exit_2_and_change_nothing(
    setup: Setup,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    world = setup.world
    before = snapshot(world.engine)
    capsys.readouterr()
    if "--totp" not in args and message != "no TOTP code":
        # A valid code, never used: every refusal comes before the code is checked.
        args = [*args, "--totp", world.code(ADMIN)]
    code = run(world, "review", "reassign", *args, "--reason", "on leave")
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    after = snapshot(world.engine)
    if message == "wrong code":
        # Only the failure count (and its audit event) is written: lock-out must count it.
        changed = {t for t in before if before[t] != after[t]}
        assert changed <= {"operator", "audit_event", "audit_head"}, changed
        assert world.op(ADMIN).totp_failures == 1
    else:
        assert after == before


def test_cli_refuses_a_closed_campaign(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    world = setup.world
    closed = Workspace(world.engine, ADMIN).act(
        review_close.close, campaign=CAMPAIGN, confirm_count=None
    )
    assert closed.state == "closed"  # keep-if-no-answer: nothing to remove
    before = snapshot(world.engine)
    capsys.readouterr()
    next_step(setup.fake_clock)
    args = ["--from", "ann", "--to", "ravi", "--reason", "late", "--totp", world.code(ADMIN)]
    assert run(world, "review", "reassign", CAMPAIGN, *args) == 2
    err = capsys.readouterr().err
    assert "is closed: items are reassigned only while it is open" in err
    assert err.count("\n") == 1 and snapshot(world.engine) == before


# --- the evidence pack -------------------------------------------------------------------------


def test_the_evidence_pack_names_the_original_reviewer(setup: Setup, tmp_path: Path) -> None:
    world = setup.world
    setup.reassign("ann", "ravi", setup.c)
    setup.reassign("ravi", "rita", setup.c)
    next_step(setup.fake_clock)
    Workspace(world.engine, ADMIN).act(evidence_keys.init_key, code=world.code(ADMIN))
    path = tmp_path / "q1.zip"
    with path.open("wb") as out:
        Workspace(world.engine, ADMIN).read_as(
            evidence_pack.export_campaign, campaign=CAMPAIGN, out=out
        )
    with zipfile.ZipFile(path) as z:
        text = z.read("decisions.csv").decode("utf-8")
        audit_lines = z.read("audit.jsonl").decode("utf-8")
    decisions = {int(r["grant_id"]): r for r in csv.DictReader(io.StringIO(text, newline=""))}
    assert (decisions[setup.c]["reviewer"], decisions[setup.c]["original_reviewer"]) == (
        "rita",
        "ann",
    )
    assert (decisions[setup.a]["reviewer"], decisions[setup.a]["original_reviewer"]) == ("ann", "")
    assert audit_lines.count('"review.reassign"') == 2


def test_review_reviewer_rows_stay_unique(setup: Setup) -> None:
    """Reassigning to the fallback or a listed reviewer never duplicates a row."""
    setup.reassign("ann", "rita", setup.a)
    with db.read_session(setup.world.engine) as session:
        rows = session.execute(
            sa.select(col(ReviewReviewer.operator_id)).where(
                col(ReviewReviewer.campaign_id) == setup.campaign_id
            )
        ).all()
    assert len(rows) == 2

"""`govtui review ...` from the command line, and the read facade behind it (review_views):
output and --json shapes, exit codes (2 on bad input with the database unchanged, 1 from
`due` when something is overdue), item windows over a large campaign, and the decision
helpers' values (peers, previous decision, offboarded, paused, ended before decision)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import clock, db
from govtui.cli import main
from govtui.models import Grant, ReviewCampaign, ReviewItem, ReviewReviewer
from govtui.services import audit, operators, review_views

from .conftest import FakeClock, snapshot
from .factories import (
    ADMIN,
    Op,
    Scope,
    World,
    bulk_vendor,
    every_pair,
    review_vendor,
)
from .memory_keyring import MemoryKeyring


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return review_vendor(engine)


def run(world: World, *args: str, actor: str = ADMIN) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    try:
        return main(["--db", url, "--as", actor, *args])
    except SystemExit as exited:  # argparse's refusals
        return int(exited.code or 0)


def out_json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


# --- building campaigns ----------------------------------------------------------------------


def grants_of_acme(world: World) -> dict[str, int]:
    """Four live grants of acme: E1 and E2 read pairs (each other's peers), E3 label notes,
    E1 read notes requested by root; all approved by ann."""
    ids = {
        "ada_pairs": world.request("E1", "acme/rlhf/pairs", "read"),
        "bo_pairs": world.request("E2", "acme/rlhf/pairs", "read"),
        "cy_notes": world.request("E3", "acme/rlhf/notes", "label"),
        "ada_notes": world.request("E1", "acme/rlhf/notes", "read", by=ADMIN),
    }
    world.approve(*ids.values())
    return ids


def freeze(
    engine: Engine,
    name: str,
    grant_ids: Sequence[int],
    reviewers: Sequence[str],
    *,
    client: str = "acme",
    due_in: timedelta = timedelta(days=14),
    decisions: dict[int, str] | None = None,
    state: str = "open",
) -> int:
    """A campaign written straight into its tables (as start leaves one), items assigned in
    turn to `reviewers`: for the views' tests, independent of the start service."""
    now = clock.now()
    with db.write_session(engine) as session:
        ops = [operators.find(session, r) for r in reviewers]
        client_id = session.execute(sa.text("SELECT id FROM client WHERE name = :n"), {"n": client})
        campaign = ReviewCampaign(
            name=name,
            client_id=client_id.scalar_one(),
            due_at=now + due_in,
            if_no_answer="keep",
            state=state,
            item_count=len(grant_ids),
            population_sha256=audit.id_summary(sorted(grant_ids))["ids_sha256"],
            created_by=1,
            created_at=now,
        )
        session.add(campaign)
        session.flush()
        campaign_id = db.ident(campaign)
        for position, op in enumerate(ops):
            session.add(
                ReviewReviewer(campaign_id=campaign_id, position=position, operator_id=db.ident(op))
            )
        decided = decisions or {}
        rows = [
            {
                "campaign_id": campaign_id,
                "grant_id": g,
                "reviewer_id": db.ident(ops[k % len(ops)]),
                "decision": decided.get(g),
                "reason": "reviewed" if g in decided else None,
                "decided_by": db.ident(ops[k % len(ops)]) if g in decided else None,
                "decided_at": now if g in decided else None,
            }
            for k, g in enumerate(grant_ids)
        ]
        session.execute(sa.insert(ReviewItem.__table__), rows)  # type: ignore[attr-defined]
    return campaign_id


# --- the decision helpers ---------------------------------------------------------------------


def test_items_carry_the_decision_helpers(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = grants_of_acme(world)
    # An earlier campaign of acme decided two of these grants.
    freeze(
        world.engine,
        "q4",
        [ids["ada_pairs"], ids["bo_pairs"]],
        ["rita"],
        decisions={ids["ada_pairs"]: "keep", ids["bo_pairs"]: "revoke"},
        state="closed",
    )
    fake_clock.advance(days=3, hours=2)
    freeze(world.engine, "q1", list(ids.values()), ["rita", "ravi"])
    assert run(world, "review", "items", "q1", "--json") == 0
    rows = {r["grant_id"]: r for r in out_json(capsys)}  # type: ignore[union-attr]
    ada = rows[ids["ada_pairs"]]
    assert ada["days_since_granted"] == 3
    assert ada["days_left"] == 6  # 10 days from approval, 3 days 2 hours gone
    assert ada["contract_end"] == "2027-12-31"
    assert ada["requester"] == "req" and ada["approvers"] == ["ann"]
    assert ada["peers"] == 1  # Bo holds pairs at read too
    assert ada["previous_decision"] == "keep"
    assert rows[ids["bo_pairs"]]["previous_decision"] == "revoke"
    assert rows[ids["cy_notes"]]["peers"] == 0  # E1 holds notes at read, not label
    assert rows[ids["ada_notes"]]["peers"] == 0
    assert rows[ids["ada_notes"]]["requester"] == ADMIN
    assert rows[ids["cy_notes"]]["previous_decision"] is None
    assert not any(r["client_paused"] or r["contractor_offboarded"] for r in rows.values())
    assert not any(r["ended_before_decision"] for r in rows.values())
    assert {r["reviewer"] for r in rows.values()} == {"rita", "ravi"}
    assert set(ada) >= {
        "item_id",
        "grant_id",
        "contractor",
        "directory_uid",
        "project",
        "scope",
        "access",
        "reviewer",
        "grant_state",
        "decision",
        "shorten_days",
        "reason",
        "decided_by",
        "decided_at",
        "outcome",
    }
    assert ada["contractor"] == "E1" and ada["directory_uid"] == "ada"
    assert (ada["project"], ada["scope"], ada["access"]) == ("rlhf", "pairs", "read")


def test_offboarded_and_paused_helpers(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    ids = grants_of_acme(world)
    freeze(world.engine, "q1", list(ids.values()), ["rita"])
    assert run(world, "contractor", "offboard", "E3", "--reason", "left", "--no-sync") == 0
    assert run(world, "client", "pause", "acme", "--reason", "breach", "--no-sync") == 0
    capsys.readouterr()
    assert run(world, "review", "items", "q1", "--jsonl") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {r["grant_id"]: r for r in map(json.loads, lines)}
    cy = rows[ids["cy_notes"]]
    assert cy["contractor_offboarded"] and cy["ended_before_decision"]
    assert cy["grant_state"] == "revoked" and cy["days_left"] is None
    ada = rows[ids["ada_pairs"]]
    # Suspended by the pause: still needs a decision (a resume would restore it).
    assert ada["client_paused"] and ada["grant_state"] == "suspended"
    assert not ada["ended_before_decision"] and ada["days_left"] == 10
    assert ada["peers"] == 1  # Bo's grant is suspended too: still held
    assert run(world, "review", "items", "q1", "--undecided", "--json") == 0
    undecided = {r["grant_id"] for r in out_json(capsys)}  # type: ignore[union-attr]
    assert undecided == set(ids.values()) - {ids["cy_notes"]}
    assert run(world, "review", "show", "q1", "--json") == 0
    shown = out_json(capsys)
    assert isinstance(shown, dict)
    assert shown["summary"]["ended"] == 1 and shown["summary"]["decided"] == 0
    assert shown["summary"]["reviewers"] == [
        {"reviewer": "rita", "decided": 0, "total": 4, "ended": 1}
    ]


def test_mine_undecided_and_sorts(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    ids = grants_of_acme(world)
    order = sorted(ids.values())
    freeze(world.engine, "q1", order, ["rita", "ravi"], decisions={order[0]: "keep"})
    assert run(world, "review", "items", "q1", "--mine", "--json", actor="rita") == 0
    mine = out_json(capsys)
    assert [r["grant_id"] for r in mine] == [order[0], order[2]]  # type: ignore[union-attr]
    assert run(world, "review", "items", "q1", "--mine", "--undecided", "--json", actor="rita") == 0
    assert [r["grant_id"] for r in out_json(capsys)] == [order[2]]  # type: ignore[union-attr]
    assert run(world, "review", "items", "q1", "--sort", "project", "--json") == 0
    by_project = [(r["scope"], r["access"]) for r in out_json(capsys)]  # type: ignore[union-attr]
    assert by_project == sorted(by_project)
    # days_left: the grant expiring first comes first (shorter requests end sooner).
    short = world.request("E2", "acme/rlhf/notes", "read", days=2)
    world.approve(short, totp=world.code("ann", 1))
    freeze(world.engine, "q2", [*order, short], ["rita"])
    assert run(world, "review", "items", "q2", "--sort", "days_left", "--json") == 0
    rows = out_json(capsys)
    assert isinstance(rows, list) and rows[0]["grant_id"] == short
    # A campaign's own decision is not its "previous" one; the next campaign sees it.
    previous = {r["grant_id"]: r["previous_decision"] for r in rows}
    assert previous[order[0]] == "keep" and previous[order[1]] is None
    assert run(world, "review", "items", "q1", "--json") == 0
    assert {r["previous_decision"] for r in out_json(capsys)} == {None}  # type: ignore[union-attr]


def test_items_table_windows_and_says_n_of_m(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = grants_of_acme(world)
    freeze(world.engine, "q1", sorted(ids.values()), ["rita"])
    capsys.readouterr()
    assert run(world, "review", "items", "q1", "--limit", "2", "--offset", "1") == 0
    out, err = capsys.readouterr()
    body = out.splitlines()
    assert body[0].split()[:3] == ["ITEM", "GRANT", "CONTRACTOR"] and len(body) == 3
    assert [int(line.split()[1]) for line in body[1:]] == sorted(ids.values())[1:3]
    assert err.strip() == "2-3 of 4 items (--offset/--limit for more, --json for all)"
    # The whole campaign as one JSON array; a window of it with --limit.
    assert run(world, "review", "items", "q1", "--json", "--limit", "1", "--offset", "3") == 0
    assert [r["grant_id"] for r in out_json(capsys)] == [max(ids.values())]  # type: ignore[union-attr]
    assert run(world, "review", "items", "q1", "--json", "--offset", "9") == 0
    assert out_json(capsys) == []
    assert run(world, "review", "items", "q1", "--offset", "9") == 0
    out, err = capsys.readouterr()
    assert out.strip() == "(none)" and err.strip().startswith("none at offset 9 of 4 items")


def test_iter_items_streams_windows(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = grants_of_acme(world)
    freeze(world.engine, "q1", sorted(ids.values()), ["rita"])
    seen: list[int] = []
    rows = review_views._rows

    def counted(session: object, record: object, window: Sequence[int]) -> object:
        seen.append(len(window))
        return rows(session, record, window)  # type: ignore[arg-type]

    monkeypatch.setattr(review_views, "_rows", counted)
    for sort in review_views.ITEM_SORTS:
        seen.clear()
        with db.read_session(world.engine) as session:
            actor = operators.find(session, "rita")
            got = list(review_views.iter_items(session, actor, campaign="q1", sort=sort, window=3))
        assert sorted(r.grant_id for r in got) == sorted(ids.values())
        assert seen == [3, 1]  # two windows: memory bounded by one window


def test_hostile_names_are_escaped(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    ids = grants_of_acme(world)
    freeze(world.engine, "q1", list(ids.values()), ["rita"])
    freeze(world.engine, "q2", list(ids.values()), ["rita"])
    with db.write_session(world.engine) as session:
        # A row written before input refused control characters.
        session.execute(
            sa.text("UPDATE contractor SET external_id = 'E\x1b[2J1' WHERE external_id = 'E1'")
        )
        session.execute(
            sa.text("UPDATE review_campaign SET name = 'q\x1b]0;x\x071' WHERE name = 'q1'")
        )
    capsys.readouterr()
    assert run(world, "review", "list") == 0
    assert run(world, "review", "items", "q\x1b]0;x\x071") == 2  # refused before parsing
    assert run(world, "review", "items", "q2") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "q\\x1b]0;x\\x071" in out
    assert "E\\x1b[2J1" in out


# --- list, show, exit codes -------------------------------------------------------------------


def test_list_and_show_json_shapes(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    ids = grants_of_acme(world)
    freeze(
        world.engine,
        "q1",
        list(ids.values()),
        ["rita", "ravi"],
        decisions={ids["ada_pairs"]: "revoke"},
    )
    assert run(world, "review", "list", "--json") == 0
    (row,) = out_json(capsys)  # type: ignore[misc]
    assert row["name"] == "q1" and row["client"] == "acme" and row["state"] == "open"
    assert (row["total"], row["decided"], row["ended"], row["overdue"]) == (4, 1, 0, False)
    assert row["due_at"] == "2026-03-16T09:00:00Z" and row["if_no_answer"] == "keep"
    assert {r["reviewer"] for r in row["reviewers"]} == {"rita", "ravi"}
    assert run(world, "review", "show", "q1", "--json") == 0
    shown = out_json(capsys)
    assert isinstance(shown, dict)
    assert set(shown) == {
        "summary",
        "population_sha256",
        "despite_drift",
        "directory",
        "unconfirmed",
        "population_intact",
        "cannot_decide",
        "in_words",
    }
    assert shown["population_sha256"] == audit.id_summary(sorted(ids.values()))["ids_sha256"]
    assert shown["population_intact"] is True
    assert shown["directory"] is None and shown["unconfirmed"] == []
    assert run(world, "review", "show", "q1") == 0
    out = capsys.readouterr().out
    assert "campaign q1 of client acme is open: 1/4 decided, 3 undecided" in out
    assert run(world, "review", "list") == 0
    assert "1/4 decided, 3 undecided" in capsys.readouterr().out


def test_overdue_campaign_is_marked(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = grants_of_acme(world)
    freeze(world.engine, "q1", list(ids.values()), ["rita"], due_in=timedelta(days=1))
    fake_clock.advance(days=2)
    assert run(world, "review", "list", "--json") == 0
    (row,) = out_json(capsys)  # type: ignore[misc]
    assert row["overdue"] is True
    assert run(world, "review", "list") == 0
    assert "OVERDUE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "actor", "message"),
    [
        (["review", "items", "nosuch"], ADMIN, "unknown review campaign 'nosuch'"),
        (["review", "show", "nosuch"], ADMIN, "unknown review campaign 'nosuch'"),
        (["review", "items", "q1", "--limit", "0"], ADMIN, "out of range"),
        (["review", "items", "q1", "--sort", "nosuch"], ADMIN, "invalid choice"),
        (["review", "decide", "q1", "1", "2", "--reason", "ok"], "rita", "no decision given"),
        (["review", "decide", "q1", "1", "shorten", "--reason", "ok"], "rita", "shorten takes one"),
        (["review", "decide", "q1", "1", "shorten", "0", "--reason", "ok"], "rita", "out of range"),
        (["review", "decide", "q1", "x", "revoke", "--reason", "ok"], "rita", "not a whole number"),
        (["review", "decide", "q1", "revoke", "--reason", "ok"], "rita", "no item ids given"),
        (
            ["review", "decide", "q1", "1", "revoke", "7", "--reason", "ok"],
            "rita",
            "nothing may follow",
        ),
        (
            ["review", "decide", "q1", "--all-mine", "1", "revoke", "--reason", "ok"],
            "rita",
            "--all-mine takes no ids",
        ),
        (
            ["review", "decide", "q1", "--all-mine", "keep", "--reason", "ok"],
            "rita",
            "no TOTP code",
        ),
        (
            ["review", "decide", "q1", "--all-mine", "--grant", "1", "keep", "--reason", "ok"],
            "rita",
            "not allowed with",
        ),
        (
            [
                "review",
                "start",
                "q2",
                "--client",
                "acme",
                "--reviewer",
                "rita",
                "--due",
                "2026-03-01",
                "--if-no-answer",
                "keep",
            ],
            ADMIN,
            "--due 2026-03-01 is past",
        ),
        (
            [
                "review",
                "start",
                "q2",
                "--client",
                "acme",
                "--reviewer",
                "rita",
                "--due",
                "2026-02-30",
                "--if-no-answer",
                "keep",
            ],
            ADMIN,
            "--due",
        ),
        (
            [
                "review",
                "start",
                "q2",
                "--client",
                "acme",
                "--reviewer",
                "rita",
                "--due-in",
                "0",
                "--if-no-answer",
                "keep",
            ],
            ADMIN,
            "out of range",
        ),
        (
            [
                "review",
                "start",
                "q2",
                "--client",
                "acme",
                "--reviewer",
                "rita",
                "--due-in",
                "3",
                "--due",
                "2026-04-01",
                "--if-no-answer",
                "keep",
            ],
            ADMIN,
            "not allowed with",
        ),
        (
            [
                "review",
                "start",
                "q2",
                "--client",
                "acme",
                "--reviewer",
                "rita",
                "--due-in",
                "3",
                "--if-no-answer",
                "maybe",
            ],
            ADMIN,
            "invalid choice",
        ),
        (["review", "close", "q1", "--confirm-count", "-1"], ADMIN, "out of range"),
        (["review", "close", "nosuch"], ADMIN, "unknown review campaign 'nosuch'"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    actor: str,
    message: str,
) -> None:
    ids = grants_of_acme(world)
    freeze(world.engine, "q1", list(ids.values()), ["rita"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: no code prompt
    before = snapshot(world.engine)
    capsys.readouterr()
    assert run(world, *args, actor=actor) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert snapshot(world.engine) == before


# --- a large campaign -------------------------------------------------------------------------


def test_a_window_of_a_100000_item_campaign_reads_a_window_in_a_few_statements(
    engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    vendor = bulk_vendor(
        engine,
        scopes=[Scope(f"acme/p{p}/s{s}") for p in range(4) for s in range(5)],
        contractors=5_000,
        ops=[
            Op("rita", ("reviewer",), reviews=("acme",)),
            Op("ravi", ("reviewer",), reviews=("acme",)),
        ],
        target=None,
    )
    vendor.grant(every_pair(range(5_000), vendor.scopes), expires_in=timedelta(days=30))
    with db.read_session(engine) as session:
        grant_ids = list(
            session.execute(sa.select(col(Grant.id)).order_by(col(Grant.id))).scalars()
        )
    assert len(grant_ids) == 100_000
    freeze(engine, "big", grant_ids, ["rita", "ravi"])
    if engine.dialect.name == "postgresql":
        # As autovacuum would within a minute of the bulk insert: without statistics the
        # planner guesses one row per table and walks 100,000 nested-loop lookups.
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    # Speed is measured in scripts/bench_review, not here: what must hold at any size is that
    # a window costs a few statements returning a few rows, never one per item.
    statements: list[str] = []

    def count(conn: object, cursor: Any, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    with db.read_session(engine) as session:
        rita = operators.find(session, "rita")
        for mine, undecided, sort, offset in [
            (False, False, "id", 0),
            (True, False, "id", 40_000),
            (True, True, "days_left", 0),
            (False, True, "project", 90_000),
        ]:
            statements.clear()
            window = review_views.items(
                session,
                rita,
                campaign="big",
                mine=mine,
                undecided=undecided,
                sort=sort,  # type: ignore[arg-type]
                offset=offset,
                limit=200,
            )
            assert len(window.rows) == 200
            assert window.total == (50_000 if mine else 100_000)
            assert window.rows[0].peers == 4_999
            assert len(statements) <= 12, (mine, undecided, sort, statements)
        statements.clear()
        summaries = review_views.campaigns(session)
        assert summaries[0].total == 100_000
        assert len(statements) <= 6, statements
    sa.event.remove(engine, "before_cursor_execute", count)


# --- start, decide, close, due through the command line ---------------------------------------

START = ("--reviewer", "req", "--reviewer", "rita", "--if-no-answer", "keep")


def test_start_decide_close(
    world: World,
    fake_clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = grants_of_acme(world)
    before = snapshot(world.engine)
    capsys.readouterr()
    argv = ["review", "start", "q1", "--client", "acme", *START, "--due-in", "14"]
    assert run(world, *argv, "--dry-run", "--json") == 0
    plan = out_json(capsys)
    assert isinstance(plan, dict) and snapshot(world.engine) == before  # nothing written
    assert plan["item_count"] == 4 and plan["by_reviewer"] == {"rita": 3, "req": 1}
    assert plan["unassignable"] == [] and plan["drift"] == []
    assert run(world, *argv, "--dry-run") == 0
    text = capsys.readouterr().out
    assert "campaign q1 would hold 4 items of client acme" in text and "REVIEWER" in text
    assert run(world, *argv) == 0
    text = capsys.readouterr().out
    assert text.startswith("campaign q1 started: 4 items, due 2026-03-16 09:00 UTC")
    assert "by reviewer: req 1, rita 3" in text
    # A second start of the same name: refused, one line, nothing written.
    before = snapshot(world.engine)
    assert run(world, *argv) == 2
    assert capsys.readouterr().err.count("\n") == 1 and snapshot(world.engine) == before

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: nothing prompts
    # revoke never asks for a code.
    assert (
        run(
            world,
            "review",
            "decide",
            "q1",
            "--grant",
            str(ids["ada_pairs"]),
            "revoke",
            "--reason",
            "left the project",
            actor="rita",
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "campaign q1: 1 items decided revoke"
    assert run(world, "review", "items", "q1", "--mine", "--undecided", "--json", actor="rita") == 0
    rita_left = [r["item_id"] for r in out_json(capsys)]  # type: ignore[union-attr]
    assert len(rita_left) == 2
    assert (
        run(
            world,
            "review",
            "decide",
            "q1",
            str(rita_left[0]),
            "shorten",
            "3",
            "--reason",
            "wrapping up",
            "--totp",
            world.code("rita"),
            actor="rita",
        )
        == 0
    )
    assert "1 items decided shorten 3 days" in capsys.readouterr().out
    fake_clock.advance(seconds=30)  # a fresh code: a used one is refused (replay)
    assert (
        run(
            world,
            "review",
            "decide",
            "q1",
            "--all-mine",
            "keep",
            "--reason",
            "still needed",
            "--totp",
            world.code("rita"),
            actor="rita",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3 items decided keep (2 changed from another decision)" in out
    assert run(world, "review", "show", "q1") == 0
    assert "3/4 decided, 1 undecided" in capsys.readouterr().out

    before = snapshot(world.engine)
    assert run(world, "review", "close", "q1", "--dry-run") == 0
    out = capsys.readouterr().out
    assert (
        out.startswith("closing q1 would revoke 0 of 4 grants") and snapshot(world.engine) == before
    )
    assert (
        run(
            world,
            "review",
            "decide",
            "q1",
            "--grant",
            str(ids["ada_pairs"]),
            "revoke",
            "--reason",
            "left the project",
            actor="rita",
        )
        == 0
    )
    assert run(world, "review", "close", "q1", "--dry-run", "--json") == 0
    capsys.readouterr()
    assert run(world, "review", "close", "q1", "--dry-run", "--json") == 0
    plan = out_json(capsys)
    assert isinstance(plan, dict) and plan["revoke"] == [ids["ada_pairs"]]
    assert run(world, "review", "close", "q1") == 0
    out = capsys.readouterr().out
    assert f"revoke: {ids['ada_pairs']}" in out
    assert "campaign q1 closing: 1 grants revoked" in out
    assert out.rstrip().endswith(
        "campaign q1 is closed: no directory removals were needed (no target or no member)"
    )
    assert world.grant(ids["ada_pairs"]).state == "revoked"
    assert run(world, "review", "close", "q1") == 0  # closed already: says so, changes nothing
    assert "is closed already" in capsys.readouterr().out
    assert (
        run(
            world,
            "review",
            "decide",
            "q1",
            "--all-mine",
            "revoke",
            "--reason",
            "late",
            actor="rita",
        )
        == 2
    )
    assert run(world, "review", "list", "--json") == 0
    (row,) = out_json(capsys)  # type: ignore[misc]
    assert row["state"] == "closed"


def test_close_follows_the_directory_and_says_why_not_closed(
    engine: Engine, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    from .factories import UNREACHABLE_TARGET

    world = review_vendor(engine, target=UNREACHABLE_TARGET)
    ids = grants_of_acme(world)
    capsys.readouterr()
    argv = ["review", "start", "q1", "--client", "acme", *START, "--due-in", "14"]
    # The approvals' additions never reached the directory: drift, refused without a reason.
    assert run(world, *argv) == 2
    assert "--despite-drift" in capsys.readouterr().err
    assert run(world, *argv, "--dry-run") == 0
    assert "start would be REFUSED for the drift above" in capsys.readouterr().out
    assert run(world, *argv, "--despite-drift", "directory down for maintenance") == 0
    assert (
        run(
            world,
            "review",
            "decide",
            "q1",
            "--grant",
            str(ids["ada_pairs"]),
            str(ids["bo_pairs"]),
            "revoke",
            "--reason",
            "left",
            actor="rita",
        )
        == 0
    )
    capsys.readouterr()
    before = snapshot(world.engine)
    assert run(world, "review", "close", "q1") == 2  # half the population: needs the count
    assert "--confirm-count 2" in capsys.readouterr().err and snapshot(world.engine) == before
    # Closing: the directory is unreachable.
    assert run(world, "review", "close", "q1", "--confirm-count", "2") == 1
    out = capsys.readouterr().out
    assert "2 directory removals queued" in out
    assert "campaign q1 is CLOSING, not closed yet: NOT complete: 0/2 directory removals" in out
    assert "unconfirmed: 2 pending on ldap" in out
    assert run(world, "review", "show", "q1", "--json") == 0
    shown = out_json(capsys)
    assert isinstance(shown, dict)
    assert shown["summary"]["state"] == "closing" and shown["despite_drift"]
    assert shown["directory"]["queued"] == 2 and shown["directory"]["complete"] is False
    assert shown["unconfirmed"][0].startswith("2 pending on ldap")
    # Closing again only follows: nothing more is revoked.
    assert run(world, "review", "close", "q1", "--no-sync") == 1
    assert "CLOSING" in capsys.readouterr().out


def test_due_exit_codes_and_close_overdue(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    grants_of_acme(world)
    assert run(world, "review", "due") == 0
    assert capsys.readouterr().out.strip() == "(none)"
    base = ["review", "start"]
    assert run(world, *base, "soft", "--client", "acme", *START, "--due-in", "2") == 0
    assert (
        run(
            world,
            *base,
            "hard",
            "--client",
            "acme",
            "--reviewer",
            "rita",
            "--if-no-answer",
            "revoke",
            "--due-in",
            "5",
        )
        == 0
    )
    capsys.readouterr()
    assert run(world, "review", "due", "--json") == 0  # due soon, nothing overdue yet
    lines = out_json(capsys)
    assert isinstance(lines, list)
    # Within 7 days both are listed (issue 13: reminders a week ahead), neither overdue.
    assert [(d["campaign"], d["reviewer"], d["undecided"], d["overdue"]) for d in lines] == [
        ("soft", "req", 1, False),
        ("soft", "rita", 3, False),
        ("hard", "rita", 4, False),
    ]
    assert lines[0]["due_at"] == "2026-03-04T09:00:00Z"
    fake_clock.advance(days=6)
    assert run(world, "review", "due") == 1
    out = capsys.readouterr().out
    assert "OVERDUE" in out and "hard" in out
    before = snapshot(world.engine)
    assert run(world, "review", "due", "--close-overdue") == 1  # hard needs --confirm-count
    out = capsys.readouterr().out
    assert (
        "campaign hard not closed: it would end 4 of 4 grants; run `govtui review close hard --confirm-count 4`"
        in out
    )
    assert "campaign soft is closed" in out
    assert snapshot(world.engine)["review_campaign"] != before["review_campaign"]
    assert run(world, "review", "close", "hard") == 2
    assert "--confirm-count 4" in capsys.readouterr().err
    assert run(world, "review", "close", "hard", "--confirm-count", "3") == 2
    assert run(world, "review", "close", "hard", "--confirm-count", "4") == 0
    assert run(world, "review", "due") == 0

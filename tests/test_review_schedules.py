"""Recurring access reviews (review_schedules): add, list and remove through the command line
with the tier defaults and one-line refusals; `review due --start-scheduled` starting a due
schedule exactly once, also with two processes at the same instant (on both backends); a
refused start staying due; the reminders of `review due` (7 days, 1 day, overdue) on the
command line, the dashboard and the TUI's text."""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import keyring
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from govtui import clock, db
from govtui.cli import main
from govtui.models import AuditEvent, ReviewCampaign, ReviewSchedule
from govtui.services import audit, dashboard, grants, review_close, review_schedules
from govtui.services.workspace import Workspace
from govtui.tui.review_text import reminders_text

from .conftest import FakeClock, snapshot
from .factories import ADMIN, SECOND_ADMIN, World, review_vendor
from .memory_keyring import MemoryKeyring

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # conftest's fake clock starts here


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return review_vendor(engine)


def run(world: World, *args: str, actor: str = ADMIN) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    try:
        return main(["--db", url, "--as", actor, *args])
    except SystemExit as exited:  # argparse's refusals
        return int(exited.code or 0)


def grant(world: World, fake_clock: FakeClock, contractor: str = "E1", by: str = "ann") -> int:
    """An active grant of acme/rlhf/pairs (read), requested by req, approved by `by`."""
    gid = world.request(contractor, "acme/rlhf/pairs", "read")
    fake_clock.advance(seconds=31)  # a fresh TOTP step for each approval
    world.approve(gid, by=by)
    return gid


ADD = ["review", "schedule", "add"]
SHAPE = ["--client", "acme", "--reviewer", "rita", "--if-no-answer", "revoke", "--due-in", "7"]


def add(world: World, name: str = "monthly", *extra: str, shape: list[str] = SHAPE) -> int:
    return run(world, *ADD, name, *shape, *extra)


def schedule_row(world: World, name: str = "monthly") -> ReviewSchedule:
    with db.read_session(world.engine) as session:
        return session.exec(select(ReviewSchedule).where(ReviewSchedule.name == name)).one()


def campaigns(world: World) -> list[ReviewCampaign]:
    with db.read_session(world.engine) as session:
        return list(session.exec(select(ReviewCampaign).order_by(col(ReviewCampaign.id))).all())


def events(world: World, action: str) -> list[dict[str, Any]]:
    with db.read_session(world.engine) as session:
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))
        ).all()
        return [json.loads(r.details) | {"_object": r.object} for r in rows]


def chain_verifies(world: World) -> None:
    with db.read_session(world.engine) as session:
        result = audit.verify(session, world.engine)
    assert result.ok, result.problem


# --- add, list, remove ------------------------------------------------------------------------


def test_add_list_remove(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert add(world, "monthly", "--fallback-reviewer", "ravi", "--project", "rlhf") == 0
    out = capsys.readouterr().out
    assert "review schedule monthly added: every 30 days (tier restricted)" in out
    assert run(world, "review", "schedule", "list", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {
        "name": "monthly",
        "client": "acme",
        "project": "rlhf",
        "sensitivity": None,
        "every_days": 30,
        "due_in_days": 7,
        "if_no_answer": "revoke",
        "reviewers": ["rita"],
        "fallback": "ravi",
        "next_start_at": "2026-03-02T09:00:00Z",
        "created_by": "root",
        "created_at": "2026-03-02T09:00:00Z",
        "last_campaign": None,
    }
    assert run(world, "review", "schedule", "list") == 0
    assert "monthly" in capsys.readouterr().out
    assert run(world, "review", "schedule", "remove", "monthly") == 0
    assert "review schedule monthly removed" in capsys.readouterr().out
    assert run(world, "review", "schedule", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert schedule_row(world).removed_at == T0 and schedule_row(world).removed_by is not None
    (added,) = events(world, "review.schedule_add")
    assert (added["every_days"], added["every_from"], added["reviewers"]) == (
        30,
        "tier restricted",
        ["rita"],
    )
    assert [e["_object"] for e in events(world, "review.schedule_remove")] == [
        "review_schedule:monthly"
    ]
    # Removed is removed: neither listed, nor started, nor removable again, nor its name reused.
    assert run(world, "review", "schedule", "remove", "monthly") == 2
    assert "unknown review schedule" in capsys.readouterr().err
    assert add(world, "monthly") == 2
    assert "exists already (removed" in capsys.readouterr().err
    assert run(world, "review", "due", "--start-scheduled") == 0
    assert campaigns(world) == []
    chain_verifies(world)


@pytest.mark.parametrize(
    ("extra", "every", "source"),
    [
        ([], 30, "tier restricted"),  # acme has a restricted scope
        (["--project", "rlhf"], 30, "tier restricted"),
        (["--sensitivity", "restricted"], 30, "tier restricted"),
        (["--sensitivity", "confidential"], 90, "tier confidential"),
        (["--sensitivity", "internal"], 180, "tier internal"),
        (["--sensitivity", "internal", "--every", "45"], 45, "--every"),
    ],
)
def test_every_defaults_by_tier(
    world: World, extra: list[str], every: int, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(world, "r", *extra, "--json") == 0
    added = json.loads(capsys.readouterr().out)
    assert (added["every_days"], added["every_from"]) == (every, source)
    assert schedule_row(world, "r").every_days == every


def test_every_default_follows_the_project_and_needs_a_scope(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The most sensitive scope of the project, not of the client; no scope: no default."""
    with db.write_session(world.engine) as session:
        from govtui.services import catalog, operators

        root = operators.find(session, ADMIN)
        catalog.add_project(session, root, path="acme/chat")
        catalog.add_project(session, root, path="acme/empty")
        catalog.add_scope(session, root, path="acme/chat/logs", sensitivity="confidential")
    assert add(world, "chat", "--project", "chat", "--json") == 0
    assert json.loads(capsys.readouterr().out)["every_days"] == 90
    assert add(world, "empty", "--project", "empty") == 2
    assert "has no scopes yet" in capsys.readouterr().err
    assert add(world, "empty", "--project", "empty", "--every", "60") == 0


REFUSALS = [
    (["--client", "nope"], "unknown client"),
    (["--project", "nope"], "unknown project"),
    (["--reviewer", "rita"], "each reviewer may be named once"),
    (["--reviewer", "bob"], "lacks the reviewer role"),
    (["--reviewer", "otto"], "does not review client 'acme'"),
    (["--fallback-reviewer", "otto"], "fallback reviewer 'otto' does not review"),
    (["--reviewer", "nobody"], "unknown operator"),
    (["--every", "5"], "longer than the schedule's 5 days"),
    (["--first", "2026-03-01"], "is past"),
    (["--first", "2026-3-1"], "write it as YYYY-MM-DD"),
    (["--every", "0"], "--every"),
    (["--sensitivity", "secret"], "--sensitivity"),
]


@pytest.mark.parametrize(("extra", "message"), REFUSALS)
def test_bad_input_one_line_exit_2_nothing_written(
    world: World, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(world.engine)
    shape = [*SHAPE]
    if extra[0] == "--client":  # replace, not repeat
        shape[1] = extra[1]
        extra = []
    assert add(world, "monthly", *extra, shape=shape) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 or err.startswith("usage:"), err
    assert snapshot(world.engine) == before


def test_refusals_of_who_and_what(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(world.engine)
    assert run(world, *ADD, "monthly", *SHAPE, actor="rita") == 2  # not an admin
    assert "admin" in capsys.readouterr().err
    assert add(world, "bad/name") == 2
    assert "invalid schedule name" in capsys.readouterr().err
    assert add(world, "x" * 54) == 2  # its campaigns' names would pass 64 characters
    assert "at most 53 characters" in capsys.readouterr().err
    assert snapshot(world.engine) == before
    assert add(world, "monthly") == 0
    assert add(world, "monthly") == 2
    assert "exists already" in capsys.readouterr().err
    # --start-scheduled acts as the operator running it: an admin, or one line and exit 2.
    before = snapshot(world.engine)
    assert run(world, "review", "due", "--start-scheduled", actor="rita") == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert snapshot(world.engine) == before


# --- starting what is due ---------------------------------------------------------------------


def test_a_due_schedule_starts_once_and_again_only_at_its_next_time(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = grant(world, fake_clock, "E1"), grant(world, fake_clock, "E3")
    fake_clock.current = T0
    assert add(world, "monthly", "--first", "2026-03-02") == 0
    assert run(world, "review", "due", "--start-scheduled") == 0
    out = capsys.readouterr().out
    assert "schedule monthly: started campaign monthly-2026-03-02 (2 items)" in out
    (first,) = campaigns(world)
    sched = schedule_row(world)
    assert first.name == "monthly-2026-03-02" and first.schedule_id == sched.id
    assert first.due_at == clock.now() + timedelta(days=7)
    assert first.if_no_answer == "revoke" and first.item_count == 2
    assert sched.next_start_at == T0 + timedelta(days=30)
    # Again at once, and up to just before the next start: nothing more.
    assert run(world, "review", "due", "--start-scheduled") == 0
    fake_clock.current = T0 + timedelta(days=30) - timedelta(seconds=1)
    assert run(world, "review", "due", "--start-scheduled") in (0, 1)  # q1 may be overdue
    assert [c.name for c in campaigns(world)] == ["monthly-2026-03-02"]
    fake_clock.current = T0 + timedelta(days=30)
    run(world, "review", "due", "--start-scheduled")
    assert [c.name for c in campaigns(world)] == ["monthly-2026-03-02", "monthly-2026-04-01"]
    assert schedule_row(world).next_start_at == T0 + timedelta(days=60)
    # Cron down for 100 days: one campaign, named for the day it was due, and the next
    # start is in the future (missed periods are not started one after another).
    fake_clock.current = T0 + timedelta(days=160)
    run(world, "review", "due", "--start-scheduled")
    run(world, "review", "due", "--start-scheduled")
    names = [c.name for c in campaigns(world)]
    assert names[2:] == ["monthly-2026-05-01"]
    assert schedule_row(world).next_start_at == T0 + timedelta(days=180)
    started = events(world, "review.schedule_start")
    assert [e["campaign"] for e in started] == names
    assert a and b
    assert run(world, "review", "schedule", "list", "--json") == 0
    capsys.readouterr()
    chain_verifies(world)


def test_a_refused_start_stays_due_and_is_reported_every_run(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """ann approved every grant, so she may review none: the start is refused, the schedule
    does not advance, each run says so (exit 1) and one audit event records it; once the
    grants are reviewable the next run starts it."""
    old = grant(world, fake_clock, "E1", by="ann")
    fake_clock.current = T0
    shape = ["--client", "acme", "--reviewer", "ann", "--if-no-answer", "keep", "--due-in", "7"]
    assert add(world, "monthly", shape=shape) == 0
    capsys.readouterr()
    for _ in range(2):
        assert run(world, "review", "due", "--start-scheduled") == 1
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert line.startswith(
            "schedule monthly: campaign monthly-2026-03-02 due since 2026-03-02 09:00 UTC NOT "
            "started, retried next run: 1 grant(s) have no independent reviewer"
        ), line
        assert schedule_row(world).next_start_at == T0
    assert campaigns(world) == []
    (refused,) = events(world, "review.schedule_refused")
    assert refused["campaign"] == "monthly-2026-03-02"
    with db.write_session(world.engine) as session:
        from govtui.services import operators

        grants.revoke(session, operators.find(session, "req"), grant_id=old, reason="moved on")
    grant(world, fake_clock, "E3", by="bob")
    assert run(world, "review", "due", "--start-scheduled") == 0
    assert [c.name for c in campaigns(world)] == ["monthly-2026-03-02"]
    assert schedule_row(world).next_start_at == T0 + timedelta(days=30)
    chain_verifies(world)


def test_nothing_to_review_advances_with_an_audit_event(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(world, "monthly") == 0
    assert run(world, "review", "due", "--start-scheduled") == 0
    assert "schedule monthly: nothing to review" in capsys.readouterr().out
    assert campaigns(world) == []
    assert schedule_row(world).next_start_at == T0 + timedelta(days=30)
    (skipped,) = events(world, "review.schedule_skipped")
    assert skipped["scheduled_for"] == audit.format_time(T0)
    chain_verifies(world)


# --- exactly once, two processes at the same instant ------------------------------------------

RACE = multiprocessing.get_context("spawn")
RACE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Round:
    at: datetime
    hold: bool  # root stops inside its transaction (claimed, campaign written) until released


def _cron(
    url: str, who: str, tasks: Any, barrier: Any, go: Any, release: Any, results: Any
) -> None:
    """A child process: `govtui review due --start-scheduled`'s service as `who`, per round."""
    keyring.set_keyring(MemoryKeyring())
    engine = db.make_engine(url)
    instant: list[datetime] = []
    clock.set_source(lambda: instant[-1])
    holding: list[int] = []
    real_append = audit.append

    def append(session: Any, **kw: Any) -> AuditEvent:
        event = real_append(session, **kw)
        if holding and kw.get("action") == "review.schedule_start":
            i = holding.pop()
            results.put((who, i, "held", ""))
            if not release[i].wait(RACE_TIMEOUT):
                raise RuntimeError("never released")
        return event

    audit.append = append  # type: ignore[assignment]  # in this child process only
    try:
        i = 0
        while True:
            r: Round | None = tasks.get(timeout=RACE_TIMEOUT)
            if r is None:
                return
            instant.append(r.at)
            barrier.wait()
            if r.hold and who == ADMIN:
                holding.append(i)
            elif r.hold and not go[i].wait(RACE_TIMEOUT):
                results.put((who, i, "done", "GoTimeout"))
                i += 1
                continue
            results.put((who, i, "start", ""))
            try:
                done = review_schedules.start_due(Workspace(engine, who))
                outcome = json.dumps([(d.outcome, d.campaign) for d in done])
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            results.put((who, i, "done", outcome))
            i += 1
    finally:
        engine.dispose()


class Inbox:
    def __init__(self, results: Any) -> None:
        self.results = results
        self.seen: dict[tuple[str, int, str], str] = {}

    def wait(self, who: str, i: int, phase: str) -> str:
        deadline = time.monotonic() + RACE_TIMEOUT
        while (who, i, phase) not in self.seen:
            assert time.monotonic() < deadline, f"no {phase} from {who} in round {i}: {self.seen}"
            try:
                got_who, got_i, got_phase, detail = self.results.get(timeout=1.0)
            except queue.Empty:
                continue
            self.seen[(got_who, got_i, got_phase)] = detail
        return self.seen[(who, i, phase)]


def test_exactly_once_with_two_crons_at_the_same_instant(
    world: World, fake_clock: FakeClock, db_url: str
) -> None:
    """Two processes (two admins, so neither waits on the other's operator row) start the
    same due schedule at the same instant: one campaign, one start event, no refusal. In the
    first round root stops inside its transaction, claim and campaign written, until vera
    has started (on PostgreSQL she then waits on the schedule's row, and must find the claim
    gone: a claim that did not check the value read would start, or refuse, a second);
    the other rounds race freely from one barrier."""
    grant(world, fake_clock, "E1")
    grant(world, fake_clock, "E3")
    fake_clock.current = T0
    assert add(world, "monthly", "--every", "10") == 0
    holds = [True, False, False, False]
    go = [RACE.Event() for _ in holds]
    release = [RACE.Event() for _ in holds]
    barrier = RACE.Barrier(2, timeout=RACE_TIMEOUT)
    results = RACE.Queue()
    tasks = {who: RACE.Queue() for who in (ADMIN, SECOND_ADMIN)}
    children = [
        RACE.Process(
            target=_cron,
            args=(db_url, who, tasks[who], barrier, go, release, results),
            daemon=True,
        )
        for who in tasks
    ]
    for child in children:
        child.start()
    inbox = Inbox(results)
    try:
        for i, hold in enumerate(holds):
            at = T0 + timedelta(days=10 * i, minutes=5)
            for q in tasks.values():
                q.put(Round(at, hold))
            if hold:
                inbox.wait(ADMIN, i, "held")
                go[i].set()
                inbox.wait(SECOND_ADMIN, i, "start")
                time.sleep(0.5)  # vera now waits on the schedule's row (or the writer lock)
                release[i].set()
            outcomes = [json.loads(inbox.wait(who, i, "done")) for who in tasks]
            flat = [tuple(o) for got in outcomes for o in got]
            day = f"monthly-{(T0 + timedelta(days=10 * i)).date().isoformat()}"
            assert sorted(flat, key=str) in (
                [("started", day)],
                [("started", day), ("taken", None)],
            ), (i, outcomes)
            if hold:
                assert outcomes[0] == [["started", day]], outcomes  # root claimed first
        for q in tasks.values():
            q.put(None)
        for child in children:
            child.join(RACE_TIMEOUT)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    names = [c.name for c in campaigns(world)]
    assert names == [
        f"monthly-{(T0 + timedelta(days=10 * i)).date().isoformat()}" for i in range(4)
    ]
    assert [e["campaign"] for e in events(world, "review.schedule_start")] == names
    assert events(world, "review.schedule_refused") == []
    assert schedule_row(world).next_start_at == T0 + timedelta(days=40)
    chain_verifies(world)


# --- reminders --------------------------------------------------------------------------------


def test_reminders_at_7_days_1_day_and_overdue(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    grant(world, fake_clock, "E1")
    start = ["review", "start", "q1", "--client", "acme", "--reviewer", "rita"]
    assert run(world, *start, "--if-no-answer", "keep", "--due-in", "10") == 0
    due_at = clock.now() + timedelta(days=10)
    capsys.readouterr()

    def due_json() -> tuple[int, list[dict[str, Any]]]:
        code = run(world, "review", "due", "--json")
        return code, json.loads(capsys.readouterr().out)

    assert due_json() == (0, [])  # 10 days away: not yet
    fake_clock.current = due_at - timedelta(days=7)
    code, lines = due_json()
    assert code == 0 and [(d["reviewer"], d["urgency"], d["overdue"]) for d in lines] == [
        ("rita", "7d", False)
    ]
    fake_clock.current = due_at - timedelta(days=1, seconds=1)
    assert [d["urgency"] for d in due_json()[1]] == ["7d"]
    fake_clock.current = due_at - timedelta(days=1)
    code, lines = due_json()
    assert code == 0 and [d["urgency"] for d in lines] == ["1d"]
    assert run(world, "review", "due") == 0
    assert "within 1 day" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        reminders = dashboard.overview(session).reminders
    assert [(r.campaign, r.reviewer, r.undecided, r.urgency) for r in reminders] == [
        ("q1", "rita", 1, "1d")
    ]
    assert "1 due within 1 day (rita 1 in q1)" in reminders_text(reminders).plain
    fake_clock.current = due_at
    code, lines = due_json()
    assert code == 1 and [(d["urgency"], d["overdue"]) for d in lines] == [("overdue", True)]
    assert run(world, "review", "due") == 1
    assert "OVERDUE" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        assert reminders_text(review_close.due(session)).plain.startswith(
            "Reminders: 1 overdue (rita 1 in q1)"
        )
    assert reminders_text([]).plain == "Reminders: no undecided items due within 7 days"


def test_the_claim_is_conditional(world: World) -> None:
    """The claim itself: a second claim from the value already moved on claims nothing."""
    assert add(world, "monthly") == 0
    sched = schedule_row(world)
    assert sched.id is not None
    with db.write_session(world.engine) as session:
        later = T0 + timedelta(days=30)
        assert review_schedules._claim(session, sched.id, T0, later)
        assert not review_schedules._claim(session, sched.id, T0, later)
    with db.read_session(world.engine) as session:
        count = session.execute(sa.select(sa.func.count()).select_from(ReviewSchedule)).scalar()
    assert count == 1

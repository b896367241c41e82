"""Approvals raced by real OS processes (DESIGN invariants 2 and 5): two approvers, or one
approver at two terminals, hit the same request or the same TOTP time step at the same moment.

Children are spawned, not forked, so they inherit nothing: each opens its own engine on the
test database (the parent disposes its own first), installs its own in-memory keyring holding
the approvers' secrets, runs on a clock the parent fixes, and waits at a shared barrier before
each attempt so that the attempts collide. Children report every outcome over a queue; every
wait has a timeout, so a bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.process import BaseProcess
from typing import Any, NamedTuple

import keyring
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import clock, db
from govtui.models import Approval, AuditEvent, Operator
from govtui.security import totp
from govtui.security.secrets import SERVICE
from govtui.services import audit, grants, operators, second_factor
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import Person, World
from .memory_keyring import MemoryKeyring

# "spawn": a child shares no connection, keyring or clock with the parent by accident. "fork"
# works as well and saves about 8 s, but would hide a child that forgot to set them up.
CONTEXT = multiprocessing.get_context("spawn")
BARRIER_TIMEOUT = 30.0  # longer than SQLite's busy timeout (15 s), so only a real hang trips it
RUN_TIMEOUT = 120.0  # a whole race, all rounds
JOIN_TIMEOUT = 10.0
STEP = timedelta(seconds=totp.STEP_SECONDS)
SETUP = "setup"


@dataclass(frozen=True)
class Attempt:
    """One approval a child makes right after the barrier: `by` approves `grant_ids` at the
    instant `at`, with `code`, or else with the code of `at`'s time step plus `step_offset`.
    An idle attempt only meets the barrier, so that the other process's attempt still runs."""

    tag: str
    by: str
    grant_ids: tuple[int, ...] = ()
    at: datetime | None = None
    code: str | None = None
    step_offset: int = 0
    idle: bool = False


class Outcome(NamedTuple):
    kind: str  # "ok", "idle", or the class name of the exception
    message: str = ""
    activated: tuple[bool, ...] = ()


def _attempt(engine: Engine, by: str, grant_ids: Sequence[int], code: str) -> Outcome:
    # Through the Workspace, as the CLI and the TUI approve.
    try:
        done = Workspace(engine, by).act(grants.approve, grant_ids=list(grant_ids), code=code)
    except Exception as exc:
        return Outcome(type(exc).__name__, str(exc))
    return Outcome("ok", activated=tuple(o.activated for o in done))


def _approver_process(
    url: str,
    approver_secrets: dict[str, str],
    attempts: list[Attempt],
    barrier: Any,
    results: Any,
    label: str,
) -> None:
    """A child: its own keyring, engine and clock; one attempt per barrier round."""
    try:
        keyring.set_keyring(MemoryKeyring())
        engine = db.make_engine(url)
        with db.read_session(engine) as session:
            for name, secret in approver_secrets.items():
                keyring.set_password(SERVICE, second_factor.secret_key(session, name), secret)
        instant: list[datetime] = []
        clock.set_source(lambda: instant[-1])
    except BaseException as exc:
        results.put((label, SETUP, Outcome(type(exc).__name__, str(exc))))
        if barrier is not None:
            barrier.abort()  # the sibling must not wait for a process that will never come
        return
    try:
        for attempt in attempts:
            code = attempt.code
            if not attempt.idle:
                assert attempt.at is not None
                instant.append(attempt.at)
                if code is None:
                    step = totp.step_of(attempt.at) + attempt.step_offset
                    code = totp.code_for_step(approver_secrets[attempt.by], step)
            if barrier is not None:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    results.put((label, attempt.tag, Outcome("BrokenBarrierError")))
                    return
            if attempt.idle:
                results.put((label, attempt.tag, Outcome("idle")))
                continue
            assert code is not None
            results.put((label, attempt.tag, _attempt(engine, attempt.by, attempt.grant_ids, code)))
    finally:
        engine.dispose()


def _race(
    engine: Engine, url: str, approver_secrets: dict[str, str], plans: dict[str, list[Attempt]]
) -> dict[tuple[str, str], Outcome]:
    """Run one child per plan (a barrier round per attempt when there are several) and
    return every outcome by (child label, attempt tag)."""
    rounds = {len(p) for p in plans.values()}
    assert len(rounds) == 1, "every child must meet the barrier equally often"
    engine.dispose()  # the parent holds no connection while the children race
    results = CONTEXT.Queue()
    barrier = CONTEXT.Barrier(len(plans), timeout=BARRIER_TIMEOUT) if len(plans) > 1 else None
    children: list[BaseProcess] = [
        CONTEXT.Process(
            target=_approver_process,
            args=(url, approver_secrets, attempts, barrier, results, label),
            name=f"race-{label}",
            daemon=True,
        )
        for label, attempts in plans.items()
    ]
    expected = sum(len(p) for p in plans.values())
    outcomes: dict[tuple[str, str], Outcome] = {}
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        for child in children:
            child.start()
        while len(outcomes) < expected and time.monotonic() < deadline:
            try:
                label, tag, outcome = results.get(timeout=0.5)
            except queue.Empty:
                if not any(c.is_alive() for c in children) and results.empty():
                    break
                continue
            outcomes[(label, tag)] = outcome
    finally:
        for child in children:
            child.join(timeout=JOIN_TIMEOUT)
            if child.is_alive():
                child.terminate()
                child.join(timeout=JOIN_TIMEOUT)
        results.close()
    broken = {k: o for k, o in outcomes.items() if k[1] == SETUP or o.kind == "BrokenBarrierError"}
    assert not broken, f"a child could not take part: {broken}"
    assert len(outcomes) == expected, f"children reported {len(outcomes)} of {expected} outcomes"
    assert [c.exitcode for c in children] == [0] * len(children)
    return outcomes


# --- the world every race starts from -------------------------------------------------------


def _contractors(world: World, count: int) -> list[str]:
    return world.add_people(Person(f"R{i:02d}", f"Racer {i}", f"racer{i}") for i in range(count))


def _requests(world: World, people: Sequence[str], scope: str) -> list[int]:
    with db.write_session(world.engine) as session:
        requester = operators.find(session, "req")
        return [
            db.ident(
                grants.request(
                    session,
                    requester,
                    contractor=person,
                    scope_path=scope,
                    access="read",
                    days=10,
                    reason="race",
                )
            )
            for person in people
        ]


def _approvals(world: World, grant_id: int) -> list[tuple[str, int, str, int | None]]:
    """(approver, round, decision, time step) of every approval of a grant."""
    with db.read_session(world.engine) as session:
        rows = session.execute(
            sa.select(
                col(Operator.name),
                col(Approval.round),
                col(Approval.decision),
                col(Approval.totp_step),
            )
            .join(Operator, col(Operator.id) == col(Approval.approver_id))
            .where(col(Approval.grant_id) == grant_id)
            .order_by(col(Approval.id))
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _events(world: World, action: str, obj: str | None = None) -> list[AuditEvent]:
    with db.read_session(world.engine) as session:
        query = sa.select(AuditEvent).where(col(AuditEvent.action) == action)
        if obj is not None:
            query = query.where(col(AuditEvent.object) == obj)
        return list(session.execute(query.order_by(col(AuditEvent.seq))).scalars())


def _chain_intact(world: World) -> None:
    with db.read_session(world.engine) as session:
        result = audit.verify(session, world.engine)
    assert result.ok, result.problem


def _one_winner(outcomes: dict[str, Outcome]) -> tuple[str, str]:
    winners = [label for label, o in outcomes.items() if o.kind == "ok"]
    assert len(winners) == 1, f"exactly one attempt must succeed: {outcomes}"
    (loser,) = set(outcomes) - set(winners)
    return winners[0], loser


# --- the races -------------------------------------------------------------------------------


def test_two_approvers_racing_for_one_request_activate_it_once(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    """50 requests, each approved by ann and bob at the same moment: one transition each."""
    ids = _requests(world, _contractors(world, 50), "acme/rlhf/pairs")
    times = [fake_clock.current + i * STEP for i in range(len(ids))]  # a fresh step per round
    plans = {
        name: [Attempt(str(g), name, (g,), at) for g, at in zip(ids, times, strict=True)]
        for name in ("ann", "bob")
    }
    outcomes = _race(world.engine, db_url, world.secrets, plans)
    wins = {"ann": 0, "bob": 0}
    for grant_id, at in zip(ids, times, strict=True):
        winner, loser = _one_winner({n: outcomes[(n, str(grant_id))] for n in plans})
        wins[winner] += 1
        assert outcomes[(winner, str(grant_id))].activated == (True,)
        refused = outcomes[(loser, str(grant_id))]
        assert refused.kind == "PolicyError", refused
        assert f"grant {grant_id} is active, not awaiting approval" in refused.message
        grant = world.grant(grant_id)
        assert (grant.state, grant.starts_at) == ("active", at)
        assert _approvals(world, grant_id) == [(winner, 0, "approve", totp.step_of(at))]
        events = _events(world, "grant.approve", f"grant:{grant_id}")
        assert [e.actor for e in events] == [winner]
    assert sum(wins.values()) == len(ids)
    _chain_intact(world)


def test_two_approvers_racing_for_a_restricted_request_both_count(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    """Restricted scope: ann and bob at once both approve; the later one activates it."""
    ids = _requests(world, _contractors(world, 20), "acme/rlhf/redteam")
    times = [fake_clock.current + i * STEP for i in range(len(ids))]
    plans = {
        name: [Attempt(str(g), name, (g,), at) for g, at in zip(ids, times, strict=True)]
        for name in ("ann", "bob")
    }
    outcomes = _race(world.engine, db_url, world.secrets, plans)
    for grant_id in ids:
        pair = {n: outcomes[(n, str(grant_id))] for n in plans}
        assert [o.kind for o in pair.values()] == ["ok", "ok"], pair
        # Exactly one of the two saw both approvals: it activated the grant, the other did not.
        assert sorted(o.activated for o in pair.values()) == [(False,), (True,)], pair
        assert world.grant(grant_id).state == "active"
        approvals = _approvals(world, grant_id)
        assert sorted((name, rnd, decision) for name, rnd, decision, _ in approvals) == [
            ("ann", 0, "approve"),
            ("bob", 0, "approve"),
        ]
        events = _events(world, "grant.approve", f"grant:{grant_id}")
        assert sorted(e.actor for e in events) == ["ann", "bob"]
        assert sorted("expires_at" in json.loads(e.details) for e in events) == [False, True]
    _chain_intact(world)


def test_one_approver_racing_with_two_codes_approves_a_restricted_request_once(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    """ann at two terminals, codes of steps t and t+1 at once: one approval, never two."""
    ids = _requests(world, _contractors(world, 20), "acme/rlhf/redteam")
    # Two steps per round, so neither code of a round was used in an earlier round.
    times = [fake_clock.current + 2 * i * STEP for i in range(len(ids))]
    plans = {
        f"ann-{offset}": [
            Attempt(str(g), "ann", (g,), at, step_offset=offset)
            for g, at in zip(ids, times, strict=True)
        ]
        for offset in (0, 1)
    }
    outcomes = _race(world.engine, db_url, world.secrets, plans)
    for grant_id, at in zip(ids, times, strict=True):
        winner, loser = _one_winner({label: outcomes[(label, str(grant_id))] for label in plans})
        assert outcomes[(winner, str(grant_id))].activated == (False,)
        refused = outcomes[(loser, str(grant_id))]
        assert refused.kind == "PolicyError", refused
        assert "'ann' approved it already" in refused.message
        step = totp.step_of(at) + int(winner.removeprefix("ann-"))
        assert _approvals(world, grant_id) == [("ann", 0, "approve", step)]
        assert world.grant(grant_id).state == "requested"  # still needs a second person
        assert len(_events(world, "grant.approve", f"grant:{grant_id}")) == 1
    _chain_intact(world)


def test_one_code_used_by_two_processes_at_once_is_accepted_once(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    """The same code of ann's, at once, for two different requests: one of them only."""
    rounds = 20
    ids = _requests(world, _contractors(world, 2 * rounds), "acme/rlhf/pairs")
    firsts, seconds = ids[:rounds], ids[rounds:]
    times = [fake_clock.current + i * STEP for i in range(rounds)]
    codes = [totp.code_for_step(world.secrets["ann"], totp.step_of(at)) for at in times]
    plans = {
        label: [Attempt(str(i), "ann", (which[i],), times[i], code=codes[i]) for i in range(rounds)]
        for label, which in (("ann-1", firsts), ("ann-2", seconds))
    }
    outcomes = _race(world.engine, db_url, world.secrets, plans)
    for i in range(rounds):
        winner, loser = _one_winner({label: outcomes[(label, str(i))] for label in plans})
        refused = outcomes[(loser, str(i))]
        assert refused.kind == "CodeRejected", refused
        assert "that code for 'ann' was already used" in refused.message
        won, lost = (firsts[i], seconds[i]) if winner == "ann-1" else (seconds[i], firsts[i])
        assert _approvals(world, won) == [("ann", 0, "approve", totp.step_of(times[i]))]
        assert _approvals(world, lost) == []
        assert (world.grant(won).state, world.grant(lost).state) == ("active", "requested")
    # A refused replay is the right code sent twice, not a guess: never counted (issue 11:
    # counting it let one double submit lock the real approver out).
    assert _events(world, "totp.failure") == []
    ann = world.op("ann")
    assert (ann.totp_last_step, ann.totp_failures) == (totp.step_of(times[-1]), 0)
    assert ann.totp_locked_until is None
    _chain_intact(world)


def test_lockout_counts_wrong_codes_from_two_processes(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    """5 wrong codes from two processes lock ann; a third process's right code is refused
    until the lock-out has run out. The wrong codes are raced in 10 cycles (each starting
    when the previous lock-out ends), so a count lost between the processes would show."""
    cycles = 10
    g1, g2, g3 = _requests(world, _contractors(world, 3), "acme/rlhf/pairs")
    starts = [fake_clock.current + c * second_factor.LOCKOUT for c in range(cycles)]
    valid = {
        totp.code_for_step(world.secrets["ann"], totp.step_of(at) + k)
        for at in starts
        for k in (-1, 0, 1)
    }
    wrong = next(c for c in (f"{n:06d}" for n in range(0, 10**6, 7919)) if c not in valid)
    # Per cycle: two rounds in which both processes send a wrong code at once, then a fifth.
    plans: dict[str, list[Attempt]] = {"ann-1": [], "ann-2": []}
    for c, at in enumerate(starts):
        plans["ann-1"] += [Attempt(f"{c}.1.{i}", "ann", (g1,), at, code=wrong) for i in range(3)]
        plans["ann-2"] += [Attempt(f"{c}.2.{i}", "ann", (g2,), at, code=wrong) for i in range(2)]
        plans["ann-2"].append(Attempt(f"{c}.idle", "ann", idle=True))
    outcomes = _race(world.engine, db_url, world.secrets, plans)
    for c in range(cycles):
        refusals = [
            o for (_, tag), o in outcomes.items() if tag.startswith(f"{c}.") and o.kind != "idle"
        ]
        assert [o.kind for o in refusals] == ["CodeRejected"] * 5, refusals
        assert all("a wrong code for 'ann'" in o.message for o in refusals)
        locking = [
            o for o in refusals if "approvals locked for 15 minutes after 5 failures" in o.message
        ]
        assert len(locking) == 1, f"cycle {c}: {refusals}"
    # No count was lost to the race: in every cycle the failures were 1, 2, 3, 4, then the lock.
    counted = [json.loads(e.details)["failures"] for e in _events(world, "totp.failure")]
    assert sorted(counted) == sorted([1, 2, 3, 4] * cycles)
    assert len(_events(world, "totp.lockout")) == cycles
    until = starts[-1] + second_factor.LOCKOUT
    assert world.op("ann").totp_locked_until == until
    assert (world.grant(g1).state, world.grant(g2).state) == ("requested", "requested")

    third = {
        "ann-3": [
            Attempt("locked", "ann", (g3,), starts[-1]),  # the right code, in a fresh process
            Attempt("still", "ann", (g3,), until - timedelta(seconds=1)),
            Attempt("free", "ann", (g3,), until),
        ]
    }
    late = _race(world.engine, db_url, world.secrets, third)
    assert late[("ann-3", "locked")] == Outcome(
        "CodeRejected", "approvals by 'ann' are locked for 15 minutes after 5 wrong codes"
    )
    assert late[("ann-3", "still")] == Outcome(
        "CodeRejected", "approvals by 'ann' are locked for 1 minute after 5 wrong codes"
    )
    assert late[("ann-3", "free")] == Outcome("ok", activated=(True,))
    assert world.grant(g3).state == "active"
    assert _approvals(world, g3) == [("ann", 0, "approve", totp.step_of(until))]
    _chain_intact(world)


def test_racing_wrong_codes_get_no_more_tries_than_the_lockout_allows(
    world: World, db_url: str, fake_clock: FakeClock
) -> None:
    """Eight processes send a wrong code for ann at the same instant: exactly five are
    compared with the secret (each counted before the next is checked), the rest are refused
    as locked out, and every compared code has its audit event."""
    (g1,) = _requests(world, _contractors(world, 1), "acme/rlhf/pairs")
    at = fake_clock.current
    valid = {totp.code_for_step(world.secrets["ann"], totp.step_of(at) + k) for k in (-1, 0, 1)}
    wrong = next(c for c in (f"{n:06d}" for n in range(0, 10**6, 7919)) if c not in valid)
    plans = {f"ann-{i}": [Attempt("guess", "ann", (g1,), at, code=wrong)] for i in range(8)}
    outcomes = _race(world.engine, db_url, world.secrets, plans)
    messages = sorted(o.message for o in outcomes.values())
    assert {o.kind for o in outcomes.values()} == {"CodeRejected"}, outcomes
    compared = [m for m in messages if m.startswith("a wrong code for 'ann'")]
    assert len(compared) == second_factor.MAX_FAILURES, messages
    assert len(_events(world, "totp.failure")) + len(_events(world, "totp.lockout")) == 5
    assert all("are locked for" in m for m in messages if m not in compared)
    _chain_intact(world)

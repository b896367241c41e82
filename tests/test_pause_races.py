"""Pauses raced by real OS processes (DESIGN invariants 4 and 5): an approval, a request or a
second pause of the same client at the same moment as a pause, on SQLite and PostgreSQL.

Each round races on a client of its own (c00, c01, ...), so a round's outcome stays as the
round left it and is checked after the race. Children are spawned (they inherit nothing),
open their own engine and keyring, run on a clock the parent fixes, and either meet at a
barrier before each attempt (a free race: whoever gets there first) or, in the forced races,
follow the parent's gates: one child stops inside its transaction, once its locks are taken,
until the other has started and (on PostgreSQL) is seen waiting for a lock. Every wait has a
timeout, so a bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.process import BaseProcess
from typing import Any, NamedTuple

import keyring
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui import clock, db
from govtui.models import (
    Approval,
    AuditEvent,
    Client,
    ClientPause,
    Contractor,
    DatasetScope,
    Grant,
    OutboxOp,
    PausedGrant,
    Project,
)
from govtui.security import totp
from govtui.security.secrets import SERVICE
from govtui.services import (
    audit,
    catalog,
    grants,
    operators,
    outbox,
    pause,
    second_factor,
)

from . import factories
from .conftest import FakeClock
from .factories import BulkGrant, Op, Person, Scope
from .memory_keyring import MemoryKeyring

CONTEXT = multiprocessing.get_context("spawn")
BARRIER_TIMEOUT = 30.0  # longer than SQLite's busy timeout (15 s), so only a real hang trips it
GATE_TIMEOUT = 30.0  # a forced race's gates and its held transaction
RUN_TIMEOUT = 180.0  # a whole race, all rounds
JOIN_TIMEOUT = 10.0
STEP = timedelta(seconds=totp.STEP_SECONDS)
ROUNDS = 30
EXTRA_ACTIVE = 20  # active grants of each client besides the raced one
BYSTANDER = "bystander"  # a client nobody pauses: its grants stay as they were
SETUP = "setup"


# --- what a child does -----------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One attempt by one child: approve a request, request a grant, or pause a client, at
    the instant `at`. `hold`: stop inside the transaction, right after its audit event (every
    lock taken, nothing committed), until the parent releases it."""

    tag: str
    kind: str  # "approve", "request", "pause"
    by: str
    at: datetime
    client: str
    grant_id: int = 0
    contractor: str = ""
    hold: bool = False


class Outcome(NamedTuple):
    kind: str  # "ok" or the class name of the exception
    message: str = ""
    value: int | None = None  # the pause made or the grant requested


# The audit action each kind of attempt writes last, where a held attempt stops.
HOLD_AT = {"approve": "grant.approve", "request": "grant.request", "pause": "client.pause"}


def _perform(engine: Engine, action: Action, code: str) -> Outcome:
    try:
        with db.write_session(engine) as session:
            actor = operators.find(session, action.by)
            if action.kind == "approve":
                grants.approve(session, actor, grant_ids=[action.grant_id], code=code)
                value = action.grant_id
            elif action.kind == "request":
                value = db.ident(
                    grants.request(
                        session,
                        actor,
                        contractor=action.contractor,
                        scope_path=f"{action.client}/p/s",
                        access="read",
                        days=10,
                        reason="race",
                    )
                )
            else:
                value = pause.pause(
                    session, actor, client=action.client, reason="the lab called"
                ).pause_id
    except Exception as exc:
        return Outcome(type(exc).__name__, str(exc))
    return Outcome("ok", value=value)


def _hold_inside(results: Any, label: str) -> Callable[[Action, Any], None]:
    """Make audit.append stop after the held action's own event until released; return a
    function that arms it for one action."""
    armed: list[tuple[Action, Any]] = []
    real_append = audit.append

    def append(session: Session, **kw: Any) -> AuditEvent:
        event = real_append(session, **kw)
        if armed and kw.get("action") == HOLD_AT[armed[0][0].kind]:
            action, release = armed.pop()
            results.put((label, action.tag, "held", None))
            if not release.wait(GATE_TIMEOUT):
                raise RuntimeError(f"{action.tag}: never released")
        return event

    audit.append = append  # in this child process only

    def arm(action: Action, release: Any) -> None:
        armed.append((action, release))

    return arm


def _child(
    url: str,
    secrets: dict[str, str],
    actions: list[Action],
    barrier: Any,
    gates: list[Any] | None,
    releases: list[Any] | None,
    results: Any,
    label: str,
) -> None:
    """A child: its own keyring, engine and clock. Before each action it meets the barrier
    (free race) or waits for its gate (forced race)."""
    try:
        keyring.set_keyring(MemoryKeyring())
        engine = db.make_engine(url)
        with db.read_session(engine) as session:
            for name, secret in secrets.items():
                keyring.set_password(SERVICE, second_factor.secret_key(session, name), secret)
        instant: list[datetime] = []
        clock.set_source(lambda: instant[-1])
        arm = _hold_inside(results, label)
    except BaseException as exc:
        results.put((label, SETUP, "done", Outcome(type(exc).__name__, str(exc))))
        if barrier is not None:
            barrier.abort()
        return
    try:
        for i, action in enumerate(actions):
            instant.append(action.at)
            code = totp.code_for_step(secrets["ann"], totp.step_of(action.at))
            if action.hold:
                assert releases is not None
                arm(action, releases[i])
            if gates is not None and not gates[i].wait(GATE_TIMEOUT):
                results.put((label, action.tag, "done", Outcome("GateTimeout")))
                return
            if barrier is not None:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    results.put((label, action.tag, "done", Outcome("BrokenBarrierError")))
                    return
            results.put((label, action.tag, "start", None))
            results.put((label, action.tag, "done", _perform(engine, action, code)))
    finally:
        engine.dispose()


class Inbox:
    """The children's messages, by (label, tag, phase), read from the queue as needed."""

    def __init__(self, results: Any, children: Sequence[BaseProcess]) -> None:
        self.results = results
        self.children = children
        self.seen: dict[tuple[str, str, str], Outcome | None] = {}

    def pump(self, timeout: float) -> bool:
        """Read one message; False if none came (and no child is alive to send one)."""
        try:
            label, tag, phase, outcome = self.results.get(timeout=timeout)
        except queue.Empty:
            return any(c.is_alive() for c in self.children)
        self.seen[(label, tag, phase)] = outcome
        if tag == SETUP or (outcome is not None and outcome.kind in BROKEN):
            raise AssertionError(f"child {label} could not take part: {tag} {outcome}")
        return True

    def wait(self, label: str, tag: str, phase: str, timeout: float = GATE_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while (label, tag, phase) not in self.seen:
            assert time.monotonic() < deadline, f"no {phase!r} from {label} for {tag}"
            assert self.pump(0.2), f"the children died before {label} said {phase!r} for {tag}"

    def outcome(self, label: str, tag: str) -> Outcome:
        found = self.seen[(label, tag, "done")]
        assert found is not None
        return found


BROKEN = ("BrokenBarrierError", "GateTimeout")


def _spawn(
    url: str,
    secrets: dict[str, str],
    plans: dict[str, list[Action]],
    barrier: Any,
    gates: dict[str, list[Any]] | None,
    releases: dict[str, list[Any]] | None,
    results: Any,
) -> list[BaseProcess]:
    children = [
        CONTEXT.Process(
            target=_child,
            args=(
                url,
                secrets,
                actions,
                barrier,
                gates[label] if gates else None,
                releases.get(label) if releases else None,
                results,
                label,
            ),
            name=f"race-{label}",
            daemon=True,
        )
        for label, actions in plans.items()
    ]
    for child in children:
        child.start()
    return children


def _reap(children: Sequence[BaseProcess], results: Any) -> None:
    for child in children:
        child.join(timeout=JOIN_TIMEOUT)
        if child.is_alive():
            child.terminate()
            child.join(timeout=JOIN_TIMEOUT)
    results.close()


def _race(
    engine: Engine, url: str, secrets: dict[str, str], plans: dict[str, list[Action]]
) -> dict[tuple[str, str], Outcome]:
    """Two children, one barrier round per action: every outcome by (label, tag)."""
    assert len({len(p) for p in plans.values()}) == 1, "every child meets the barrier equally often"
    engine.dispose()  # the parent holds no connection while the children race
    results = CONTEXT.Queue()
    barrier = CONTEXT.Barrier(len(plans), timeout=BARRIER_TIMEOUT)
    children = _spawn(url, secrets, plans, barrier, None, None, results)
    inbox = Inbox(results, children)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        for label, actions in plans.items():
            for action in actions:
                inbox.wait(label, action.tag, "done", deadline - time.monotonic())
    finally:
        _reap(children, results)
    assert [c.exitcode for c in children] == [0] * len(children)
    return {(label, a.tag): inbox.outcome(label, a.tag) for label, p in plans.items() for a in p}


def _lock_waiters(observer: Engine) -> int:
    """How many PostgreSQL sessions of the test database wait for a row or table lock."""
    with observer.connect() as connection:
        return int(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def _forced(
    engine: Engine, url: str, secrets: dict[str, str], rounds: list[tuple[Action, Action]]
) -> dict[str, tuple[Outcome, Outcome]]:
    """Per round: the first action runs until it holds its locks inside its transaction; the
    second then starts and (PostgreSQL) is seen waiting for a lock; the first commits. Returns
    (first outcome, second outcome) by round tag."""
    engine.dispose()
    observer = db.make_engine(url) if url.startswith("postgresql") else None
    plans = {"first": [r[0] for r in rounds], "second": [r[1] for r in rounds]}
    assert all(a.hold for a in plans["first"]) and not any(a.hold for a in plans["second"])
    gates = {label: [CONTEXT.Event() for _ in rounds] for label in plans}
    releases = {"first": [CONTEXT.Event() for _ in rounds]}
    results = CONTEXT.Queue()
    children = _spawn(url, secrets, plans, None, gates, releases, results)
    inbox = Inbox(results, children)
    try:
        for i, (first, second) in enumerate(rounds):
            gates["first"][i].set()
            inbox.wait("first", first.tag, "held")
            gates["second"][i].set()
            inbox.wait("second", second.tag, "start")
            if observer is not None:
                # The second attempt must really be blocked by the first one's locks.
                deadline = time.monotonic() + GATE_TIMEOUT
                while _lock_waiters(observer) < 1:
                    assert time.monotonic() < deadline, f"{second.tag} never waited for a lock"
                    assert ("second", second.tag, "done") not in inbox.seen, (
                        f"{second.tag} finished while {first.tag} held its locks: "
                        f"{inbox.seen[('second', second.tag, 'done')]}"
                    )
                    inbox.pump(0.01)
            assert ("second", second.tag, "done") not in inbox.seen
            releases["first"][i].set()
            inbox.wait("first", first.tag, "done")
            inbox.wait("second", second.tag, "done")
    finally:
        for event in (*gates["first"], *gates["second"], *releases["first"]):
            event.set()  # nobody is left waiting at a gate after a failure
        _reap(children, results)
        if observer is not None:
            observer.dispose()
    assert [c.exitcode for c in children] == [0, 0]
    return {
        first.tag: (inbox.outcome("first", first.tag), inbox.outcome("second", second.tag))
        for first, second in rounds
    }


# --- the world every race starts from -------------------------------------------------------


@dataclass
class RaceWorld:
    engine: Engine
    secrets: dict[str, str]
    clients: list[str]
    requests: dict[str, int]  # client → its pending request (when built with requests)
    extra: dict[str, set[int]]  # client → its other active grants


def _build(engine: Engine, fake_clock: FakeClock, rounds: int, *, with_requests: bool) -> RaceWorld:
    """One client per round (each with a scope c../p/s, EXTRA_ACTIVE active grants and,
    if asked, one request of E00's), a bystander client, and a directory target, so pauses
    and approvals queue outbox operations. The target is never contacted."""
    clients = [f"c{i:02d}" for i in range(rounds)]
    people = ["E00", *(f"A{k:02d}" for k in range(EXTRA_ACTIVE))]
    world = factories.build_world(
        engine,
        scopes=[Scope(f"{name}/p/s", "confidential") for name in [*clients, BYSTANDER]],
        ops=[Op("req", ("requester",)), Op("ann", ("approver",), tuple(clients), enrol=True)],
        people=[Person(ext, f"Person {ext}", ext.lower()) for ext in people],
        target=factories.UNREACHABLE_TARGET,
    )
    now = fake_clock.current
    with db.write_session(engine) as session:
        order = [*clients, BYSTANDER]  # the grants' ids in the order the clients were made
        scopes = sorted(catalog.list_scopes(session), key=lambda v: order.index(v.client))
        person = dict(
            session.execute(sa.select(col(Contractor.external_id), col(Contractor.id))).all()
        )
        factories.insert_grants(
            session,
            [BulkGrant(k, scope, "label") for scope in scopes for k in range(1, len(people))],
            {k: person[ext] for k, ext in enumerate(people)},
            starts_at=now - timedelta(days=1),
            expires_at=now + timedelta(days=9),
            requested_days=10,
            reason="race world",
        )
    requests: dict[str, int] = {}
    if with_requests:
        with db.write_session(engine) as session:
            requester = operators.find(session, "req")
            for name in clients:
                requests[name] = db.ident(
                    grants.request(
                        session,
                        requester,
                        contractor="E00",
                        scope_path=f"{name}/p/s",
                        access="read",
                        days=10,
                        reason="awaiting approval",
                    )
                )
    with db.read_session(engine) as session:
        extra: dict[str, set[int]] = {}
        for name, grant_id in session.execute(
            _on_clients(sa.select(col(Client.name), col(Grant.id))).where(
                col(Grant.access) == "label"
            )
        ):
            extra.setdefault(name, set()).add(grant_id)
    return RaceWorld(engine, world.secrets, clients, requests, extra)


def _on_clients(query: sa.Select[Any]) -> sa.Select[Any]:
    return (
        query.select_from(Grant)
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
    )


def _on_paused_clients(engine: Engine, state: str) -> list[tuple[str, int]]:
    """(client, grant id) of every grant in `state` on a paused client: must stay empty."""
    with db.read_session(engine) as session:
        rows = session.execute(
            _on_clients(sa.select(col(Client.name), col(Grant.id))).where(
                col(Client.status) == "paused", col(Grant.state) == state
            )
        ).all()
    return [(name, grant_id) for name, grant_id in rows]


@dataclass(frozen=True)
class ClientFacts:
    """Everything one round may have changed, for one client."""

    status: str
    pauses: list[tuple[int, int]]  # (pause id, paused_by)
    states: dict[int, str]  # grant id → state
    paused: dict[int, str]  # grant id → prior_state in the client's pauses
    ops: list[tuple[int | None, str, str, int | None, str | None]]  # grant, operation, state,
    # pause, last_error
    events: list[tuple[int, str, dict[str, Any]]]  # (seq, action, details) for its grants/client


def _facts(engine: Engine, client: str) -> ClientFacts:
    with db.read_session(engine) as session:
        status = session.execute(
            sa.select(col(Client.status)).where(col(Client.name) == client)
        ).scalar_one()
        pauses = [
            (pid, by)
            for pid, by in session.execute(
                sa.select(col(ClientPause.id), col(ClientPause.paused_by))
                .join(Client, col(Client.id) == col(ClientPause.client_id))
                .where(col(Client.name) == client)
            )
        ]
        states = dict(
            session.execute(
                _on_clients(sa.select(col(Grant.id), col(Grant.state))).where(
                    col(Client.name) == client
                )
            ).all()
        )
        paused = dict(
            session.execute(
                sa.select(col(PausedGrant.grant_id), col(PausedGrant.prior_state)).where(
                    col(PausedGrant.pause_id).in_([p for p, _ in pauses])
                )
            ).all()
        )
        ops = [
            (g, o, s, p, e)
            for g, o, s, p, e in session.execute(
                sa.select(
                    col(OutboxOp.grant_id),
                    col(OutboxOp.operation),
                    col(OutboxOp.state),
                    col(OutboxOp.pause_id),
                    col(OutboxOp.last_error),
                )
                .where(col(OutboxOp.grant_id).in_(list(states)))
                .order_by(col(OutboxOp.id))
            )
        ]
        objects = [f"client:{client}", *(f"grant:{g}" for g in states)]
        events = [
            (seq, action, json.loads(details))
            for seq, action, details in session.execute(
                sa.select(col(AuditEvent.seq), col(AuditEvent.action), col(AuditEvent.details))
                .where(col(AuditEvent.object).in_(objects))
                .order_by(col(AuditEvent.seq))
            )
        ]
    return ClientFacts(status, pauses, states, paused, ops, events)


def _approvals(engine: Engine, grant_id: int) -> list[tuple[int, int | None]]:
    with db.read_session(engine) as session:
        return [
            (a, s)
            for a, s in session.execute(
                sa.select(col(Approval.approver_id), col(Approval.totp_step)).where(
                    col(Approval.grant_id) == grant_id
                )
            )
        ]


def _chain_intact(engine: Engine) -> None:
    with db.read_session(engine) as session:
        result = audit.verify(session, engine)
    assert result.ok, result.problem


def _actions(facts: ClientFacts) -> list[str]:
    """The actions of the race itself (not the client's creation, not the request)."""
    return [a for _, a, _ in facts.events if a not in ("client.add", "grant.request")]


def _check_paused_once(world: RaceWorld, client: str, facts: ClientFacts) -> dict[str, Any]:
    """The client is paused by exactly one pause, which suspended every grant it has (the
    other active ones included) and queued one removal per active one; return the pause's
    audit details."""
    assert facts.status == "paused"
    assert len(facts.pauses) == 1, facts.pauses
    assert set(facts.states.values()) == {"suspended"}, facts.states
    assert set(facts.paused) == set(facts.states)
    assert all(facts.paused[g] == "active" for g in world.extra[client])
    pause_id = facts.pauses[0][0]
    removals = sorted(g for g, o, s, p, _ in facts.ops if o == "remove_member" and p == pause_id)
    active_before = sorted(g for g, prior in facts.paused.items() if prior == "active")
    assert removals == active_before
    assert all(s == "pending" for _, o, s, _, _ in facts.ops if o == "remove_member")
    (pause_event,) = [d for _, a, d in facts.events if a == "client.pause"]
    assert pause_event["pause_id"] == pause_id
    assert pause_event["count"] == len(facts.states)
    assert pause_event["active"] == len(active_before)
    assert pause_event["directory_ops"] == len(removals)
    return pause_event


def _check_bystander(world: RaceWorld) -> None:
    facts = _facts(world.engine, BYSTANDER)
    assert facts.status == "active" and facts.pauses == []
    assert set(facts.states.values()) == {"active"}


# --- the races -------------------------------------------------------------------------------


def test_an_approval_racing_a_pause_never_leaves_an_active_grant_on_the_paused_client(
    engine: Engine, db_url: str, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """Each round: ann approves c..'s request while root pauses c.., at the same moment.
    Either the approval came first and the pause suspended the grant it made active, or the
    pause came first and the approval was refused; never an active grant on a paused client."""
    world = _build(engine, fake_clock, ROUNDS, with_requests=True)
    times = [fake_clock.current + i * STEP for i in range(ROUNDS)]  # a fresh code per round
    plans = {
        "ann": [
            Action(c, "approve", "ann", at, c, grant_id=world.requests[c])
            for c, at in zip(world.clients, times, strict=True)
        ],
        "root": [
            Action(c, "pause", "root", at, c) for c, at in zip(world.clients, times, strict=True)
        ],
    }
    outcomes = _race(engine, db_url, world.secrets, plans)

    assert _on_paused_clients(engine, "active") == []
    assert _on_paused_clients(engine, "requested") == []
    won = {"approval": 0, "pause": 0}
    for client, at in zip(world.clients, times, strict=True):
        grant_id = world.requests[client]
        paused, approved = outcomes[("root", client)], outcomes[("ann", client)]
        assert paused.kind == "ok", paused  # removing access is never refused
        facts = _facts(engine, client)
        details = _check_paused_once(world, client, facts)
        if approved.kind == "ok":
            won["approval"] += 1
            # The approval committed first: the pause saw the grant active and suspended it,
            # its add superseded by the pause's removal.
            assert facts.paused[grant_id] == "active"
            assert (details["active"], details["requested"]) == (EXTRA_ACTIVE + 1, 0)
            assert _actions(facts) == ["grant.approve", "client.pause"]
            assert len(_approvals(engine, grant_id)) == 1
            mine = [(o, s, p, e) for g, o, s, p, e in facts.ops if g == grant_id]
            assert mine == [
                ("add_member", "done", None, outbox.SUPERSEDED),
                ("remove_member", "pending", paused.value, None),
            ]
        else:
            won["pause"] += 1
            # The pause committed first: the request was suspended, the approval refused.
            assert approved.kind == "PolicyError", approved
            assert approved.message == paused_message(client, "approved")
            assert facts.paused[grant_id] == "requested"
            assert (details["active"], details["requested"]) == (EXTRA_ACTIVE, 1)
            assert _actions(facts) == ["client.pause"]
            assert _approvals(engine, grant_id) == []
            assert [op for op in facts.ops if op[0] == grant_id] == []
        grant = _grant(engine, grant_id)
        assert grant.state == "suspended"
        assert (grant.starts_at is not None) == (approved.kind == "ok")
        if approved.kind == "ok":
            assert grant.starts_at == at
    assert sum(won.values()) == ROUNDS
    print(f"approval vs pause on {engine.dialect.name}: {won}")
    _check_bystander(world)
    _chain_intact(engine)


def test_two_pauses_of_the_same_client_at_once_make_one_pause(
    engine: Engine, db_url: str, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """root and ann pause the same client at the same moment: one pause, the other refused."""
    world = _build(engine, fake_clock, ROUNDS, with_requests=False)
    times = [fake_clock.current + i * STEP for i in range(ROUNDS)]
    plans = {
        by: [Action(c, "pause", by, at, c) for c, at in zip(world.clients, times, strict=True)]
        for by in ("root", "ann")
    }
    outcomes = _race(engine, db_url, world.secrets, plans)
    ids = {name: world_op_id(engine, name) for name in plans}
    for client in world.clients:
        pair = {by: outcomes[(by, client)] for by in plans}
        winners = [by for by, o in pair.items() if o.kind == "ok"]
        assert len(winners) == 1, pair
        (loser,) = set(plans) - set(winners)
        assert pair[loser] == Outcome("ConflictError", f"client {client!r} is paused already")
        facts = _facts(engine, client)
        details = _check_paused_once(world, client, facts)
        assert facts.pauses == [(pair[winners[0]].value, ids[winners[0]])]
        assert (details["active"], details["requested"]) == (EXTRA_ACTIVE, 0)
        assert len(facts.ops) == EXTRA_ACTIVE  # one removal each, queued once
    _check_bystander(world)
    _chain_intact(engine)


def test_a_request_racing_a_pause_never_leaves_a_request_on_the_paused_client(
    engine: Engine, db_url: str, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """req asks for E00's access to c.. while root pauses c..: the request is either made
    first and suspended by the pause, or refused because the client is paused."""
    world = _build(engine, fake_clock, ROUNDS, with_requests=False)
    times = [fake_clock.current + i * STEP for i in range(ROUNDS)]
    plans = {
        "req": [
            Action(c, "request", "req", at, c, contractor="E00")
            for c, at in zip(world.clients, times, strict=True)
        ],
        "root": [
            Action(c, "pause", "root", at, c) for c, at in zip(world.clients, times, strict=True)
        ],
    }
    outcomes = _race(engine, db_url, world.secrets, plans)
    assert _on_paused_clients(engine, "requested") == []
    assert _on_paused_clients(engine, "active") == []
    won = {"request": 0, "pause": 0}
    for client in world.clients:
        paused, asked = outcomes[("root", client)], outcomes[("req", client)]
        assert paused.kind == "ok", paused
        facts = _facts(engine, client)
        details = _check_paused_once(world, client, facts)
        if asked.kind == "ok":
            won["request"] += 1
            assert asked.value is not None
            assert facts.paused[asked.value] == "requested"
            assert (details["active"], details["requested"]) == (EXTRA_ACTIVE, 1)
            assert [a for _, a, _ in facts.events][-2:] == ["grant.request", "client.pause"]
        else:
            won["pause"] += 1
            assert asked == Outcome("PolicyError", paused_message(client, "requested"))
            assert set(facts.states) == world.extra[client]  # no grant was made
            assert (details["active"], details["requested"]) == (EXTRA_ACTIVE, 0)
    assert sum(won.values()) == ROUNDS
    print(f"request vs pause on {engine.dialect.name}: {won}")
    _check_bystander(world)
    _chain_intact(engine)


def test_each_order_of_a_pause_and_what_it_races_is_handled(
    engine: Engine, db_url: str, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """The free races may not hit every interleaving, so each is forced once: one attempt
    holds its locks inside its transaction while the other starts and (on PostgreSQL) waits
    for them, then the first commits and the second goes on with what it then sees."""
    world = _build(engine, fake_clock, 5, with_requests=True)
    c = world.clients
    at = [fake_clock.current + i * STEP for i in range(5)]

    def approve(i: int, hold: bool = False) -> Action:
        return Action(c[i], "approve", "ann", at[i], c[i], world.requests[c[i]], hold=hold)

    def stop(i: int, by: str = "root", hold: bool = False) -> Action:
        return Action(c[i], "pause", by, at[i], c[i], hold=hold)

    def ask(i: int, hold: bool = False) -> Action:
        return Action(c[i], "request", "req", at[i], c[i], contractor="A00", hold=hold)

    rounds = [
        (approve(0, hold=True), stop(0)),  # the pause waits for the approving transaction
        (stop(1, hold=True), approve(1)),  # the approval waits for the pausing transaction
        (ask(2, hold=True), stop(2)),  # the pause waits for a request (A00 reads c02)
        (stop(3, hold=True), ask(3)),  # the request waits for the pause
        (stop(4, hold=True), stop(4, by="ann")),  # a second pause waits for the first
    ]
    outcomes = _forced(engine, db_url, world.secrets, rounds)
    assert _on_paused_clients(engine, "active") == []
    assert _on_paused_clients(engine, "requested") == []
    for client in c:
        assert _check_paused_once(world, client, _facts(engine, client))

    first, second = outcomes[c[0]]
    assert (first.kind, second.kind) == ("ok", "ok")
    assert _facts(engine, c[0]).paused[world.requests[c[0]]] == "active"

    first, second = outcomes[c[1]]
    assert first.kind == "ok"
    assert second == Outcome("PolicyError", paused_message(c[1], "approved"))
    assert _facts(engine, c[1]).paused[world.requests[c[1]]] == "requested"

    first, second = outcomes[c[2]]
    assert (first.kind, second.kind) == ("ok", "ok")
    assert first.value is not None
    assert _facts(engine, c[2]).paused[first.value] == "requested"

    first, second = outcomes[c[3]]
    assert first.kind == "ok"
    assert second == Outcome("PolicyError", paused_message(c[3], "requested"))

    first, second = outcomes[c[4]]
    assert first.kind == "ok"
    assert second == Outcome("ConflictError", f"client {c[4]!r} is paused already")
    assert _facts(engine, c[4]).pauses == [(first.value, world_op_id(engine, "root"))]
    _check_bystander(world)
    _chain_intact(engine)


def paused_message(client: str, what: str) -> str:
    return f"client {client!r} is paused: no grant can be {what} until it is resumed"


def world_op_id(engine: Engine, name: str) -> int:
    with db.read_session(engine) as session:
        return db.ident(operators.find(session, name))


def _grant(engine: Engine, grant_id: int) -> Grant:
    with db.read_session(engine) as session:
        found = session.get(Grant, grant_id)
        assert found is not None
        return found

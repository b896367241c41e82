"""A pause is all or nothing (DESIGN invariant 5): `govtui client pause` of 50,000 grants,
killed with SIGKILL at random points of its run, leaves the database either fully paused or
not paused at all, on SQLite (many kills, each on a fresh copy of one database) and on
PostgreSQL (one kill in the middle of the transaction, then a full run on the same data).

The command runs as a subprocess through the real CLI (`govtui.cli.main`), with listeners that
write a marker line on stderr when the write transaction begins, when it first runs each of the
bulk statements, and when it has committed. The markers say where a kill landed: at least one
kill must fall between the first bulk statement and the commit and find nothing paused, and
one right after the commit must find everything paused. Every wait has a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import db, migrations
from govtui.cli.pause_commands import NOT_CONVERGED
from govtui.models import (
    AuditEvent,
    Client,
    ClientPause,
    DatasetScope,
    Grant,
    OutboxOp,
    PausedGrant,
    Project,
)
from govtui.services import audit

from . import factories
from .conftest import PG_URL, FakeClock, _reset_postgres
from .factories import Scope
from .memory_keyring import MemoryKeyring

CONTRACTORS = 5_000
SCOPES = 10  # 5,000 contractors x 10 scopes of acme = 50,000 active grants
GRANTS = CONTRACTORS * SCOPES
BYSTANDER_GRANTS = 100  # on another client, untouched either way
CLIENT = "acme"
RUN_TIMEOUT = 120.0  # one run of the command, start to exit
MARKER_TIMEOUT = 60.0
SETTLE_TIMEOUT = 30.0

# Runs govtui's CLI with markers on stderr: "@@begin" when a write session begins,
# "@@stmt NAME" before the first bulk statement of each kind, "@@committed" after a commit.
WRAPPER = r"""
import re
import sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

def mark(what):
    sys.stderr.write("@@" + what + "\n")
    sys.stderr.flush()

seen = set()

@event.listens_for(Session, "after_begin")
def begin(session, transaction, connection):
    # The Workspace's savepoint (db.begin_operation) begins no new write transaction.
    if transaction.nested:
        return
    if not connection.get_execution_options().get("govtui_readonly", False):
        mark("begin")

# INSERT INTO t / UPDATE t, perhaps after a WITH clause.
WRITE = re.compile(r"\s*(?:WITH\b.*?\)\s*)?(INSERT INTO|UPDATE) (\w+)", re.DOTALL)

@event.listens_for(Engine, "before_cursor_execute")
def statement(conn, cursor, sql, params, context, executemany):
    found = WRITE.match(sql)
    if found:
        name = (found.group(1).split()[0] + " " + found.group(2)).lower()
        if name not in seen:
            seen.add(name)
            mark("stmt " + name)

@event.listens_for(Session, "after_commit")
def committed(session):
    # Releasing the Workspace's savepoint also fires after_commit: only the real commit counts.
    if not session.in_nested_transaction():
        mark("committed")

from govtui.cli import main
sys.exit(main(sys.argv[1:]))
"""
MID_TRANSACTION = "stmt insert outbox_op"  # after the grants were suspended, before the commit


# --- building 50,000 grants quickly (tests/factories.py) -------------------------------------


def build(engine: Engine) -> None:
    """acme with one project of SCOPES scopes and CONTRACTORS contractors active on each,
    a bystander client, and a directory target (its password is only needed to sync)."""
    migrations.upgrade(engine)
    vendor = factories.bulk_vendor(
        engine,
        scopes=[*(Scope(f"{CLIENT}/p/s{s}") for s in range(SCOPES)), Scope("other/p/s")],
        contractors=CONTRACTORS,
        source="crash test",
    )
    vendor.grant(
        [
            *factories.every_pair(range(CONTRACTORS), vendor.scopes_of(CLIENT)),
            *factories.every_pair(range(BYSTANDER_GRANTS), vendor.scopes_of("other")),
        ],
        expires_in=timedelta(days=3650),  # the subprocess runs on the real clock
        reason="crash test",
    )
    engine.dispose()


# --- running and killing the command ---------------------------------------------------------


@dataclass
class Run:
    """One run of the command: markers with the time they were read, and how it ended."""

    started: float
    markers: list[tuple[float, str]] = field(default_factory=list)
    returncode: int | None = None
    killed_at: float | None = None

    def first(self, marker: str) -> float | None:
        return next((t for t, m in self.markers if m == marker), None)

    def has(self, marker: str) -> bool:
        return self.first(marker) is not None

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


class Command:
    """`govtui client pause` as a subprocess with its markers read by a thread."""

    def __init__(self, url: str, workdir: Path) -> None:
        argv = [
            sys.executable,
            "-c",
            WRAPPER,
            "--db",
            url,
            "--as",
            "root",
            "client",
            "pause",
            CLIENT,
            "--reason",
            "the lab called",
            "--no-sync",
        ]
        self.log = open(workdir / "stdout.log", "w")  # noqa: SIM115 (closed in finish)
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.PIPE, text=True, cwd=workdir
        )
        self.run = Run(started=time.monotonic())
        self.lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self.other: list[str] = []
        assert self.proc.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put(None)

    def _take(self, item: tuple[float, str] | None) -> bool:
        if item is None:
            return False
        at, line = item
        if line.startswith("@@"):
            self.run.markers.append((at, line[2:]))
        else:
            self.other.append(line)
        return True

    def wait_for(self, marker: str, timeout: float = MARKER_TIMEOUT) -> float | None:
        """The time `marker` was read, or None if the command ended without writing it."""
        deadline = time.monotonic() + timeout
        while (found := self.run.first(marker)) is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {marker!r} within {timeout} s: {self.run.markers}"
            try:
                item = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if not self._take(item):
                return None
        return found

    def kill_at(self, instant: float) -> None:
        """SIGKILL at `instant` (monotonic), unless the command has ended by then."""
        try:
            self.proc.wait(timeout=max(0.0, instant - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.run.killed_at = time.monotonic()
            self.proc.send_signal(signal.SIGKILL)

    def finish(self) -> Run:
        """Wait for the end (killing after RUN_TIMEOUT) and read every marker it wrote."""
        try:
            self.proc.wait(timeout=max(0.0, self.run.started + RUN_TIMEOUT - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"the command did not end within {RUN_TIMEOUT} s") from None
        finally:
            self.reader.join(timeout=10)
            while True:
                try:
                    item = self.lines.get_nowait()
                except queue.Empty:
                    break
                self._take(item)
            self.log.close()
        self.run.returncode = self.proc.returncode
        return self.run


# --- what a database looks like after a run --------------------------------------------------


def _acme(query: sa.Select[Any]) -> sa.Select[Any]:
    return (
        query.select_from(Grant)
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .where(col(Client.name) == CLIENT)
    )


def outcome(engine: Engine) -> str:
    """'not paused' or 'paused', after checking that the database is exactly one of them."""
    with db.read_session(engine) as session:
        if engine.dialect.name == "sqlite":
            assert session.execute(sa.text("PRAGMA integrity_check")).scalar_one() == "ok"
        status = session.execute(
            sa.select(col(Client.status)).where(col(Client.name) == CLIENT)
        ).scalar_one()
        pauses = session.execute(sa.select(col(ClientPause.id))).scalars().all()
        by_state = dict(
            session.execute(
                _acme(sa.select(col(Grant.state), sa.func.count())).group_by(col(Grant.state))
            ).all()
        )
        paused = session.execute(
            sa.select(col(PausedGrant.grant_id), col(PausedGrant.prior_state))
        ).all()
        ops = session.execute(
            sa.select(
                col(OutboxOp.grant_id),
                col(OutboxOp.operation),
                col(OutboxOp.state),
                col(OutboxOp.pause_id),
            )
        ).all()
        events = [
            json.loads(details)
            for details in session.execute(
                sa.select(col(AuditEvent.details)).where(col(AuditEvent.action) == "client.pause")
            ).scalars()
        ]
        other = session.execute(
            sa.select(sa.func.count())
            .select_from(Grant)
            .where(col(Grant.state) == "active", col(Grant.scope_id).not_in(_acme_scopes()))
        ).scalar_one()
        verified = audit.verify(session, engine)
    assert verified.ok, verified.problem
    assert other == BYSTANDER_GRANTS
    if status == "active":
        assert (pauses, paused, ops, events) == ([], [], [], [])
        assert by_state == {"active": GRANTS}
        return "not paused"
    assert status == "paused"
    assert len(pauses) == 1
    assert by_state == {"suspended": GRANTS}
    ids = sorted(g for g, _ in paused)
    assert len(ids) == GRANTS and {p for _, p in paused} == {"active"}
    assert sorted(g for g, *_ in ops) == ids
    assert {(o, s, p) for _, o, s, p in ops} == {("remove_member", "pending", pauses[0])}
    (details,) = events
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    assert (details["count"], details["ids_sha256"]) == (GRANTS, digest)
    assert (details["active"], details["requested"], details["directory_ops"]) == (
        GRANTS,
        0,
        GRANTS,
    )
    return "paused"


def _acme_scopes() -> sa.Select[Any]:
    return (
        sa.select(col(DatasetScope.id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .where(col(Client.name) == CLIENT)
    )


def consistent(run: Run, found: str) -> None:
    """What the markers say happened before the end agrees with what the database shows."""
    if run.has("committed"):
        assert found == "paused", run
    if not run.has("begin"):
        assert found == "not paused", run
    if not run.killed:
        # Paused, with the directory removals queued and not synced (--no-sync).
        assert run.returncode == NOT_CONVERGED and found == "paused", run


# --- the tests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """Where to kill: `delay` seconds after the command started or after a marker, or None
    to let it finish."""

    what: str
    after: str | None  # None: after the start
    delay: float | None


def test_sigkill_during_a_pause_of_50000_grants_leaves_all_or_nothing_sqlite(
    tmp_path: Path, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    base = tmp_path / "base.db"
    build(db.make_engine(f"sqlite:///{base}"))
    assert not base.with_name("base.db-wal").exists(), "the base database is not checkpointed"
    head = base.with_name("base.db.audit-head")

    def attempt(n: int, kill: Kill) -> tuple[Run, str]:
        work = tmp_path / f"attempt{n}"
        work.mkdir()
        copy = work / "govtui.db"
        shutil.copyfile(base, copy)
        shutil.copyfile(head, copy.with_name("govtui.db.audit-head"))
        url = f"sqlite:///{copy}"
        command = Command(url, work)
        try:
            if kill.delay is not None:
                anchor = command.run.started
                if kill.after is not None:
                    found = command.wait_for(kill.after)
                    assert found is not None, f"{kill.what}: ended before {kill.after!r}"
                    anchor = found
                command.kill_at(anchor + kill.delay)
        finally:
            run = command.finish()
        assert run.killed or run.returncode == NOT_CONVERGED, (kill, run, command.other)
        engine = db.make_engine(url)
        try:
            found_state = outcome(engine)
        finally:
            engine.dispose()
        consistent(run, found_state)
        return run, found_state

    # One full run first, to spread the kills over the time it takes.
    full, state = attempt(0, Kill("full run", None, None))
    assert state == "paused" and not full.killed
    begin, committed = full.first("begin"), full.first("committed")
    assert begin is not None and committed is not None
    assert [m for _, m in full.markers].count("begin") == 1, full.markers
    assert full.has(MID_TRANSACTION), full.markers
    total, startup, transaction = (
        committed - full.started + 0.2,
        begin - full.started,
        committed - begin,
    )

    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    kills = [
        Kill("anywhere in the run", None, rng.uniform(0, total)),
        Kill("during start-up", None, rng.uniform(0, startup)),
        *(
            Kill(
                f"quarter {q + 1} of the transaction",
                "begin",
                transaction * rng.uniform(q, q + 1) / 4,
            )
            for q in range(4)
        ),
        Kill("mid-transaction, on the outbox insert", MID_TRANSACTION, 0.0),
        Kill("right after the commit", "committed", 0.0),
    ]
    results = [(kill, *attempt(n, kill)) for n, kill in enumerate(kills, start=1)]
    summary = [
        (k.what, round(k.delay or 0, 3), r.killed, [m for _, m in r.markers], found)
        for k, r, found in results
    ]
    context = f"seed {seed}, start-up {startup:.2f} s, transaction {transaction:.2f} s: {summary}"
    # A kill inside the transaction, after its bulk statements began, found nothing paused ...
    assert any(
        r.killed
        and r.has("stmt update access_grant")
        and not r.has("committed")
        and f == "not paused"
        for _, r, f in results
    ), context
    # ... and one after the commit found everything paused.
    assert [f for k, _, f in results if k.after == "committed"] == ["paused"], context
    print(context)


def _wait_until_rolled_back(engine: Engine) -> None:
    """After the client was killed, its PostgreSQL backend must go and release its locks
    (it notices once the statement it was running ends)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        # A transaction of its own each time: PostgreSQL keeps what pg_stat_activity showed
        # for the rest of a transaction (stats_fetch_consistency = cache).
        with engine.connect() as connection:
            others = connection.execute(
                sa.text(
                    "SELECT pid, state, wait_event_type, wait_event, left(query, 60)"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).all()
        if not others:
            return
        assert time.monotonic() < deadline, f"sessions left after the kill: {others}"
        time.sleep(0.05)


@pytest.fixture
def pg_url() -> str:
    """The test PostgreSQL database wiped clean (as conftest's db_url does for "postgres")."""
    if PG_URL is None:
        if os.environ.get("CI"):
            pytest.fail("GOVTUI_TEST_PG_URL is not set: run the suite with scripts/test")
        pytest.skip("no PostgreSQL: run the suite with scripts/test")
    _reset_postgres(PG_URL)
    return PG_URL


@pytest.mark.postgres
def test_sigkill_during_a_pause_of_50000_grants_leaves_nothing_postgres(
    pg_url: str, tmp_path: Path, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """One kill in the middle of the transaction (PostgreSQL is one database, not a file to
    copy), then the same command left to finish on the same data."""
    db_url = pg_url
    engine = db.make_engine(db_url)
    build(engine)
    command = Command(db_url, tmp_path)
    try:
        found = command.wait_for(MID_TRANSACTION)
        assert found is not None, "the command ended before its outbox insert"
        command.kill_at(found)
    finally:
        run = command.finish()
    assert run.killed and not run.has("committed"), run
    _wait_until_rolled_back(engine)
    assert outcome(engine) == "not paused"
    # The same command, left to finish, pauses everything: the check can tell them apart.
    command = Command(db_url, tmp_path)
    run = command.finish()
    assert run.returncode == NOT_CONVERGED, command.other
    assert outcome(engine) == "paused"
    engine.dispose()

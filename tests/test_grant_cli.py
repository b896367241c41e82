"""`govtui grant ...` and `govtui expire` from the command line: output, exit codes, and
bad input leaving the database as it was."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy.engine import Engine

from govtui import db, migrations
from govtui.cli import main

from .conftest import FakeClock, snapshot
from .factories import World, small_vendor


@pytest.fixture
def world(engine: Engine, memory_keyring: object) -> World:
    return small_vendor(engine)


def run(world: World, *args: str, actor: str = "req") -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    try:
        return main(["--db", url, "--as", actor, *args])
    except SystemExit as exited:  # argparse's refusals (a --days out of range)
        return int(exited.code or 0)


def test_request_approve_show_list(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            world,
            "grant",
            "request",
            "E1",
            "acme/rlhf/pairs",
            "--access",
            "label",
            "--days",
            "7",
            "--reason",
            "batch 9",
        )
        == 0
    )
    grant_id = int(capsys.readouterr().out.strip())
    assert (
        run(world, "grant", "approve", str(grant_id), "--totp", world.code("ann"), actor="ann") == 0
    )
    assert "active until 2026-03-09 09:00 UTC" in capsys.readouterr().out
    assert run(world, "grant", "show", str(grant_id), "--json") == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["grant"]["state"] == "active" and detail["grant"]["approvals"] == ["ann"]
    assert [h["event"] for h in detail["history"]] == ["requested", "approved", "active"]
    assert run(world, "grant", "list", "--json", "--state", "active") == 0
    (row,) = json.loads(capsys.readouterr().out)
    for key in (
        "id",
        "contractor",
        "scope",
        "access",
        "state",
        "requested_by",
        "approvals",
        "starts_at",
        "expires_at",
        "ended_at",
        "end_reason",
    ):
        assert key in row
    assert row["expires_at"] == "2026-03-09T09:00:00Z"


@pytest.mark.parametrize(
    ("args", "actor", "message"),
    [
        (
            [
                "grant",
                "request",
                "E1",
                "acme/rlhf/pairs",
                "--access",
                "read",
                "--days",
                "0",
                "--reason",
                "r",
            ],
            "req",
            "out of range: use 1 to 36500",
        ),
        (
            [
                "grant",
                "request",
                "E1",
                "acme/rlhf/pairs",
                "--access",
                "read",
                "--days",
                "3",
                "--reason",
                " ",
            ],
            "req",
            "reason",
        ),
        (
            [
                "grant",
                "request",
                "E9",
                "acme/rlhf/pairs",
                "--access",
                "read",
                "--days",
                "3",
                "--reason",
                "r",
            ],
            "req",
            "unknown contractor",
        ),
        (
            [
                "grant",
                "request",
                "E1",
                "acme/x/pairs",
                "--access",
                "read",
                "--days",
                "3",
                "--reason",
                "r",
            ],
            "req",
            "unknown project",
        ),
        (["grant", "approve", "1", "--totp", "000000"], "ann", "wrong code"),
        (["grant", "approve", "1", "--totp", "123456"], "req", "your own request"),
        (["grant", "approve", "99", "--totp", "123456"], "ann", "unknown grant 99"),
        (["grant", "revoke", "1", "--reason", ""], "req", "reason"),
        (["grant", "extend", "1", "--days", "3", "--reason", "r"], "req", "only an active grant"),
    ],
)
def test_bad_input_exit_2_one_line(
    world: World, capsys: pytest.CaptureFixture[str], args: list[str], actor: str, message: str
) -> None:
    world.request()
    before = snapshot(world.engine)
    capsys.readouterr()
    assert run(world, *args, actor=actor) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    after = snapshot(world.engine)
    if "wrong code" in message:
        # the failed code is counted and audited; nothing else changes
        changed = {t for t in before if before[t] != after[t]}
        assert changed == {"operator", "audit_event", "audit_head"}
    else:
        assert after == before


def test_revoke_and_expire(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    a = world.request(days=1)
    b = world.request(days=9, access="label")
    world.approve(a, b)
    assert run(world, "grant", "revoke", str(b), "--reason", "contract paused") == 0
    fake_clock.advance(days=1)
    capsys.readouterr()
    assert run(world, "expire", actor="cron-user-not-an-operator") == 0
    assert capsys.readouterr().out.strip() == "expired 1 grant(s)"
    assert world.grant(a).state == "expired" and world.grant(b).state == "revoked"


def test_approve_batch_with_restricted_scope(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    r = world.request(scope="acme/rlhf/redteam")
    n = world.request(access="label")
    assert (
        run(world, "grant", "approve", str(r), str(n), "--totp", world.code("ann"), actor="ann")
        == 0
    )
    out = capsys.readouterr().out
    assert f"grant {r}: approval recorded; a second approver is needed" in out
    assert f"grant {n} approved" in out
    with db.read_session(world.engine) as session:
        from govtui.services import grant_views

        assert [g.id for g in grant_views.pending_for(session, world.op("bob"))] == [r]


def test_grant_list_reads_without_the_write_lock(
    sqlite_engine: Engine,
    memory_keyring: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`grant list` (with --pending too) answers while another process holds SQLite's write
    lock, say during a long pause: it reads in a read-only session, never BEGIN IMMEDIATE."""
    world = small_vendor(sqlite_engine)
    world.request()
    path = db.sqlite_path(sqlite_engine.url.render_as_string(hide_password=False))
    assert path is not None
    # Schema checks on start are the migrations' own concern; this is about the list itself.
    monkeypatch.setattr(migrations, "require_current", lambda _engine: None)
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)  # a write lock wait fails fast
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert run(world, "grant", "list", "--json") == 0
        assert len(json.loads(capsys.readouterr().out)) == 1
        assert run(world, "grant", "list", "--pending", "--json", actor="ann") == 0
        assert len(json.loads(capsys.readouterr().out)) == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()

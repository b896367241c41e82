"""The outbox queue on real directories (issue 10, items 4, 6 and 7): one bad operation or one
bad target never blocks the rest; removals are never given up; a person's sync runs now; a
target can be disabled or removed with open operations, which are then cancelled and said to
be so. The poison tests run on OpenLDAP and on the real AD DC, on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from govtui import db
from govtui.cli import main
from govtui.directory import connection
from govtui.errors import ConflictError, InputError, PolicyError
from govtui.models import AuditEvent, Contractor, DirectoryTarget, OutboxOp
from govtui.services import (
    audit,
    directory_targets,
    directory_views,
    operators,
    outbox,
    pause,
    pause_views,
    reconcile,
    sync,
)

from .ad_support import AdDirectory, private_ou
from .conftest import FakeClock, snapshot
from .directory_support import Directory, add_target, norm, reseal_password
from .directory_support import outbox as all_ops
from .factories import World

PAIRS_READ = "acme-rlhf-pairs-read"
PAIRS_LABEL = "acme-rlhf-pairs-label"
NOTES_READ = "acme-rlhf-notes-read"
TYPO_URL = "ldap://127.0.0.1:99999"  # the port is out of range: urlparse raises ValueError


def run(world: World, *args: str, actor: str = "root") -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", actor, *args])


def ops_of(engine: Engine, target: str) -> list[OutboxOp]:
    with db.read_session(engine) as session:
        target_id = session.exec(
            select(DirectoryTarget.id).where(col(DirectoryTarget.name).startswith(target))
        ).one()
        return list(
            session.exec(
                select(OutboxOp).where(OutboxOp.target_id == target_id).order_by(col(OutboxOp.id))
            )
        )


def set_sql(engine: Engine, statement: str) -> None:
    with db.write_session(engine) as session:
        session.execute(sa.text(statement))


def do_pause(world: World, client: str = "acme") -> None:
    with db.write_session(world.engine) as session:
        pause.pause(session, world.op("root"), client=client, reason="the lab called")


def client_status(world: World, client: str = "acme") -> pause_views.ClientStatus:
    with db.read_session(world.engine) as session:
        return pause_views.status(session, client)


_REAL_PUSH_GROUP = sync._push_group


def poison(monkeypatch: pytest.MonkeyPatch, *group_cns: str) -> set[str]:
    """These groups' push raises what a bug would (a TypeError), the others work; clear the
    set returned to cure them."""
    poisoned = set(group_cns)

    def push(conn: ldap3.Connection, target: Any, group_dn: str, *args: Any, **kw: Any) -> None:
        if any(group_dn.lower().startswith(f"cn={cn},") for cn in poisoned):
            raise TypeError("int() argument must be a string, not 'list'")
        _REAL_PUSH_GROUP(conn, target, group_dn, *args, **kw)

    monkeypatch.setattr(sync, "_push_group", push)
    return poisoned


# -- the two real directories, behind one small interface ------------------------------------


@dataclass
class Side:
    """One real directory as these tests use it: a target named 'dir' on it, and its groups."""

    flavour: str
    add_target: Callable[[Engine, str], None]
    group: Callable[[str], str]  # cn -> DN, as govtui names it
    user: Callable[[str], str]
    members: Callable[[str], set[str] | None]
    remove_member: Callable[[str, str], None]


def _openldap_side(directory: Directory) -> Side:
    directory.add_person("ada")
    directory.add_person("bo")
    return Side(
        "openldap",
        lambda engine, name: _add_openldap(engine, directory, name),
        directory.group,
        directory.user,
        directory.members,
        directory.remove_member,
    )


def _add_openldap(engine: Engine, directory: Directory, name: str) -> None:
    add_target(engine, directory, name=name)


def _ad_side(ad: AdDirectory, monkeypatch: pytest.MonkeyPatch) -> Side:
    users = {"ada": ad.add_user("Ada", "ada"), "bo": ad.add_user("Bo", "bo")}
    server = ad.server
    extra: dict[str, Any] = {}
    if "tls_name" in inspect.signature(directory_targets.add).parameters:
        extra["tls_name"] = server.tls_name
    else:
        # Before `--tls-name` exists: the DC's certificate names DC1.<realm>, the URL an
        # address; validate against that name the way ldap3's Tls(valid_names=...) does.
        real_server = connection._server

        def named_server(endpoint: connection.Endpoint) -> ldap3.Server:
            found = real_server(endpoint)
            if found.tls is not None:
                found.tls.valid_names = [server.tls_name]
            return found

        monkeypatch.setattr(connection, "_server", named_server)

    def add(engine: Engine, name: str) -> None:
        with db.write_session(engine) as session:
            directory_targets.add(
                session,
                operators.find(session, "root"),
                name=name,
                url=server.url,
                bind_dn=server.admin_dn,
                users_base=ad.people,
                groups_base=ad.groups,
                password=server.admin_password,
                flavour="ad",
                ca_file=server.ca_file,
                **extra,
            )

    return Side(
        "ad",
        add,
        lambda cn: f"CN={cn},{ad.groups}",
        users.__getitem__,
        ad.members,
        ad.remove_member,
    )


@pytest.fixture(params=["openldap", "ad"])
def side(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Side]:
    if request.param == "openldap":
        directory = request.getfixturevalue("directory")
        yield _openldap_side(directory)
    else:
        for ad in private_ou():
            yield _ad_side(ad, monkeypatch)


# -- 4. one bad operation, or one bad target, never blocks the rest --------------------------


def test_a_poison_op_and_a_target_with_a_bad_port_block_nothing(
    world: World, side: Side, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    side.add_target(world.engine, "dir")
    side.add_target(world.engine, "typo")
    # A row as an old `directory add` let it in: a port no socket can have.
    set_sql(world.engine, f"UPDATE directory_target SET url = '{TYPO_URL}' WHERE name = 'typo'")
    reseal_password(world.engine, "typo")  # an old row, not an edit behind govtui's back
    world.approve(
        world.request(contractor="E1"),
        world.request(contractor="E1", access="label"),
        world.request(contractor="E2", scope="acme/rlhf/notes"),
    )
    # The first group pushed is the poison: the groups after it must still go through.
    poisoned = poison(monkeypatch, PAIRS_READ)

    assert run(world, "sync") == 1  # not everything done
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "sync: 2 done, 4 to retry, 0 failed" in out
    assert any("99999" in line for line in err.splitlines())

    ada, bo = norm(side.user("ada")), norm(side.user("bo"))
    assert ada in (side.members(side.group(PAIRS_LABEL)) or set())
    assert bo in (side.members(side.group(NOTES_READ)) or set())
    by_group = {(op.group_dn or "").split(",")[0].lower(): op for op in ops_of(world.engine, "dir")}
    assert [(g, op.state) for g, op in sorted(by_group.items())] == [
        (f"cn={NOTES_READ}", "done"),
        (f"cn={PAIRS_LABEL}", "done"),
        (f"cn={PAIRS_READ}", "pending"),
    ]
    bad = by_group[f"cn={PAIRS_READ}"]
    assert bad.attempts == 1
    assert bad.last_error is not None and "TypeError" in bad.last_error
    assert "\n" not in bad.last_error and len(bad.last_error) <= 1000
    typo = ops_of(world.engine, "typo")
    assert [(op.state, op.attempts) for op in typo] == [("pending", 1)] * 3
    assert all("99999" in (op.last_error or "") for op in typo)

    # A pause with the bad target still there: no crash, the good target's removals land.
    code = run(world, "client", "pause", "acme", "--reason", "breach")
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err and "NOT complete" in out
    assert ada not in (side.members(side.group(PAIRS_LABEL)) or set())
    assert bo not in (side.members(side.group(NOTES_READ)) or set())
    removals = [op for op in ops_of(world.engine, "dir") if op.operation == "remove_member"]
    assert sorted(op.state for op in removals) == ["done", "done", "pending"]  # pairs: poison

    # The way out without SQL: remove the bad target; its removals are cancelled, and said to be.
    poisoned.clear()
    assert run(world, "directory", "remove", "typo", "--reason", "typo in the port") == 0
    assert "3 open operations cancelled" in capsys.readouterr().out
    assert run(world, "sync") == 0  # the poison is gone: what was left on 'dir' goes through
    capsys.readouterr()
    assert run(world, "client", "status", "acme") == 0
    out = capsys.readouterr().out
    assert "NOT complete" in out
    assert "removals cancelled with target typo (removed) (never applied)" in out


def test_a_poison_disable_is_that_ops_error_only(
    world: World, ldap_dir: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A per-account failure (here: the read-back raises a KeyError) is recorded on that
    disable_account op; the membership ops of the same run are confirmed."""
    world.approve(world.request(contractor="E1"))
    set_sql(world.engine, "UPDATE directory_target SET max_attempts = 1")
    with db.write_session(world.engine) as session:
        contractor = session.exec(select(Contractor).where(Contractor.directory_uid == "bo")).one()
        outbox.enqueue_disable(session, contractor)

    def broken(*args: Any) -> bool:
        raise KeyError("userAccountControl")

    monkeypatch.setattr(sync.groups, "is_disabled", broken)
    report = sync.run_once(world.engine, due="now")
    assert (report.done, report.failed) == (1, 1)
    disable = next(op for op in all_ops(world.engine) if op.operation == "disable_account")
    # A removal is never given up: failed, yet retried.
    assert (disable.state, disable.attempts) == ("failed", 1)
    assert "KeyError" in (disable.last_error or "")


@pytest.fixture
def ldap_dir(world: World, directory: Directory) -> Directory:
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    return directory


# -- 6. removals are never given up; additions may be; --retry-failed -------------------------


def test_a_failed_removal_is_retried_at_the_capped_backoff_until_it_lands(
    world: World, ldap_dir: Directory, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    set_sql(world.engine, "UPDATE directory_target SET max_attempts = 2")
    pairs = ldap_dir.group(PAIRS_READ)
    world.approve(world.request())
    assert sync.run_once(world.engine).done == 1
    do_pause(world)
    try:
        ldap_dir.stop_server()
        sync.run_once(world.engine, due="now")
        assert sync.run_once(world.engine, due="now").failed == 1
        [op] = [op for op in all_ops(world.engine) if op.operation == "remove_member"]
        assert (op.state, op.attempts) == ("failed", 2)
        assert "FAILED" in client_status(world).summary
        assert run(world, "sync", "status", "--json") == 0
        [row] = json.loads(capsys.readouterr().out)
        assert (row["pending"], row["failed"]) == (0, 1)
        assert row["next_retry"] == (fake_clock.current + sync.backoff(2)).isoformat().replace(
            "+00:00", "Z"
        )
        assert "connect failed" in row["last_error"] and len(row["last_error"]) <= 120

        # Failed, and still retried: by the background worker once its wait is over.
        assert sync.run_once(world.engine).failed == 0  # not due yet
        fake_clock.advance(seconds=int(sync.backoff(2).total_seconds()))
        assert sync.run_once(world.engine).failed == 1
        set_sql(world.engine, "UPDATE outbox_op SET attempts = 30 WHERE state = 'failed'")
        fake_clock.advance(hours=2)
        assert sync.run_once(world.engine).failed == 1
        [op] = [op for op in all_ops(world.engine) if op.operation == "remove_member"]
        assert (op.state, op.attempts) == ("failed", 31)
        assert op.next_attempt_at == fake_clock.current + sync.BACKOFF_CAP
    finally:
        ldap_dir.start_server()
    fake_clock.advance(seconds=int(sync.BACKOFF_CAP.total_seconds()))
    assert sync.run_once(world.engine).done == 1
    assert norm(ldap_dir.user("ada")) not in (ldap_dir.members(pairs) or set())
    assert client_status(world).removals is not None
    assert client_status(world).summary.endswith("complete: 1/1 directory removals confirmed")


def test_a_failed_addition_waits_for_retry_failed(
    world: World, ldap_dir: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    set_sql(world.engine, "UPDATE directory_target SET max_attempts = 1")
    set_sql(world.engine, "UPDATE contractor SET directory_uid = 'cy' WHERE external_id = 'E1'")
    world.approve(world.request())
    assert sync.run_once(world.engine, due="now").failed == 1
    # Given up: a person's sync does not pick it, however long it waited.
    assert run(world, "sync") == 0
    assert "0 done, 0 to retry, 0 failed" in capsys.readouterr().out
    assert run(world, "sync", "--retry-failed") == 1
    out, err = capsys.readouterr()
    assert "0 done, 0 to retry, 1 failed" in out and "no entry for uid 'cy'" in err
    [op] = all_ops(world.engine)
    assert (op.state, op.attempts) == ("failed", 2)
    ldap_dir.add_person("cy")
    assert run(world, "sync", "--retry-failed") == 0
    assert norm(ldap_dir.user("cy")) in (ldap_dir.members(ldap_dir.group(PAIRS_READ)) or set())
    assert [(op.state, op.attempts) for op in all_ops(world.engine)] == [("done", 3)]


def test_reconcile_supersedes_a_failed_removal_it_shows_unnecessary(
    world: World, ldap_dir: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's 'FAILED forever': once the member is gone from the group (by hand, or by
    another op), reconcile closes the failed removal and the pause reports complete. A failed
    removal whose member is still there stays open."""
    set_sql(world.engine, "UPDATE directory_target SET max_attempts = 1")
    pairs = ldap_dir.group(PAIRS_READ)
    world.approve(world.request(), world.request(contractor="E2", access="label"))
    assert sync.run_once(world.engine).done == 2
    poisoned = poison(monkeypatch, PAIRS_READ, PAIRS_LABEL)
    do_pause(world)
    assert sync.run_once(world.engine, due="now").failed == 2
    assert "2 FAILED" in client_status(world).summary

    ldap_dir.remove_member(pairs, ldap_dir.user("ada"))  # an admin did it by hand
    drift = reconcile.compare(world.engine, "ldap")
    assert [(d.kind, d.directory_uid) for d in drift] == [("unexpected_member", "bo")]
    by_uid = {op.directory_uid: op for op in all_ops(world.engine) if op.pause_id}
    assert (by_uid["ada"].state, by_uid["ada"].last_error) == ("done", outbox.SUPERSEDED)
    assert by_uid["bo"].state == "failed"  # bo is still in the label group: still to do
    assert "1 FAILED" in client_status(world).summary

    poisoned.clear()
    assert sync.run_once(world.engine, due="now").done == 1
    state = client_status(world)
    assert state.removals is not None and state.removals.complete
    assert state.removals.superseded == 1


# -- 7. manual sync means now; the background keeps the backoff ------------------------------


def test_a_persons_sync_runs_now_and_watch_keeps_the_backoff(
    world: World,
    ldap_dir: Directory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world.approve(world.request())
    try:
        ldap_dir.stop_server()
        assert sync.run_once(world.engine).retrying == 1  # waits 15 s
    finally:
        ldap_dir.start_server()
    assert sync.run_once(world.engine) == sync.SyncReport()  # the background waits

    def stop(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("govtui.cli.directory_commands.time.sleep", stop)
    assert run(world, "sync", "--watch") == 130
    assert "0 done, 0 to retry" in capsys.readouterr().out
    assert [op.state for op in all_ops(world.engine)] == ["pending"]

    assert run(world, "sync") == 0  # the person who fixed the server sees it work at once
    assert "1 done" in capsys.readouterr().out
    assert [op.state for op in all_ops(world.engine)] == ["done"]


def test_the_tui_sync_key_is_manual_and_the_worker_keeps_the_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from govtui.services import convergence
    from govtui.tui import app as tui_app

    asked: list[str] = []
    monkeypatch.setattr(
        convergence, "sync_now", lambda engine, progress=None, *, due: asked.append(due)
    )

    class Fake:
        workspace = type("W", (), {"engine": None})()
        _progress_from_thread = None
        SyncFinished = staticmethod(lambda run, manual: None)

        def post_message(self, message: object) -> None:
            pass

    run_sync = inspect.unwrap(tui_app.GovtuiApp.run_sync)
    run_sync(Fake(), True)
    run_sync(Fake(), False)
    assert asked == ["now", "backoff"]


def test_sync_status_text_shows_next_retry_and_the_error_cut(
    world: World, ldap_dir: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    set_sql(world.engine, "UPDATE contractor SET directory_uid = 'cy' WHERE external_id = 'E1'")
    world.approve(world.request())
    long_error = "refused: " + "x" * 400 + "\nsecond line"
    set_sql(world.engine, f"UPDATE outbox_op SET last_error = '{long_error}', attempts = 1")
    assert run(world, "sync", "status") == 0
    out = capsys.readouterr().out
    header, line = out.splitlines()
    assert header.split() == [
        "TARGET",
        "PENDING",
        "FAILED",
        "DONE",
        "CANCELLED",
        "NEXT",
        "RETRY",
        "LAST",
        "ERROR",
    ]
    assert line.split()[:6] == ["ldap", "1", "0", "0", "0", "now"]
    assert "second line" not in out and line.endswith("…") and "x" * 100 in line
    with db.read_session(world.engine) as session:
        [row] = directory_views.status(session)
    assert row.last_error is not None and len(row.last_error) == 120


# -- 6. disabling and removing a target with open operations ---------------------------------


def test_disable_cancels_open_ops_queues_none_and_enable_queues_nothing(
    world: World, ldap_dir: Directory, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ldap_dir.add_ou(f"ou=groups2,{ldap_dir.base}")
    add_target(world.engine, ldap_dir, name="second", groups_base=f"ou=groups2,{ldap_dir.base}")
    second_pairs = f"cn={PAIRS_READ},ou=groups2,{ldap_dir.base}"
    world.approve(world.request(), world.request(contractor="E2", scope="acme/rlhf/notes"))

    # Refusals: one line, exit 2 (argparse: no reason), nothing written.
    before = snapshot(world.engine)
    with pytest.raises(SystemExit) as exited:
        run(world, "directory", "disable", "second")
    assert exited.value.code == 2
    assert "required: --reason" in capsys.readouterr().err
    assert run(world, "directory", "disable", "second", "--reason", "x", actor="ann") == 2
    assert run(world, "directory", "disable", "nosuch", "--reason", "x") == 2
    err = capsys.readouterr().err
    assert "lacks the admin role" in err and "unknown directory target 'nosuch'" in err
    assert all(line.startswith("govtui: error:") for line in err.splitlines() if line)
    assert snapshot(world.engine) == before

    assert run(world, "directory", "disable", "second", "--reason", "DC decommissioned") == 0
    assert "2 open operations cancelled" in capsys.readouterr().out
    cancelled = ops_of(world.engine, "second")
    assert {(op.state, op.last_error) for op in cancelled} == {
        ("cancelled", "cancelled: target disabled: DC decommissioned")
    }
    with db.read_session(world.engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "directory.disable")
        ).one()
    assert json.loads(event.details)["cancelled"] == audit.id_summary(
        [op.id for op in cancelled if op.id is not None]
    )
    with (
        pytest.raises(ConflictError, match="disabled already"),
        db.write_session(world.engine) as session,
    ):
        directory_targets.disable(session, world.op("root"), name="second", reason="again")

    # Disabled: no new ops, no sync, not in the blast radius.
    fake_clock.advance(seconds=31)  # the approver's next code is a fresh one
    world.approve(world.request(contractor="E2"))
    assert len(ops_of(world.engine, "second")) == 2
    assert run(world, "sync") == 0
    assert ldap_dir.members(second_pairs) is None
    with db.read_session(world.engine) as session:
        radius = pause_views.blast_radius(session, "acme")
        rows = directory_views.status(session)
    assert {g.target for g in radius.groups} == {"ldap"}
    assert [(r.target, r.cancelled, r.disabled) for r in rows] == [
        ("ldap", 0, None),
        ("second", 2, "DC decommissioned"),
    ]
    capsys.readouterr()
    assert run(world, "sync", "status") == 0
    assert "second (disabled)" in capsys.readouterr().out

    assert run(world, "directory", "enable", "second") == 0
    assert "nothing was queued" in capsys.readouterr().out
    assert len(ops_of(world.engine, "second")) == 2
    missing = {
        (d.kind, d.directory_uid, d.group_dn) for d in reconcile.compare(world.engine, "second")
    }
    assert ("missing_member", "ada", second_pairs) in missing
    # Enabled again: new work reaches it.
    fake_clock.advance(seconds=31)
    world.approve(world.request(contractor="E2", access="label"))
    assert len(ops_of(world.engine, "second")) == 3


def test_remove_with_open_ops_needs_a_reason_and_leaves_a_record(
    world: World, ldap_dir: Directory, memory_keyring: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world.approve(world.request())
    assert sync.run_once(world.engine).done == 1
    do_pause(world)  # its removal is still pending

    before = snapshot(world.engine)
    assert run(world, "directory", "remove", "ldap") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 open operations: give --reason" in err
    assert snapshot(world.engine) == before
    with pytest.raises(InputError), db.write_session(world.engine) as session:
        directory_targets.remove(session, world.op("root"), name="ldap")
    with pytest.raises(PolicyError), db.write_session(world.engine) as session:
        directory_targets.remove(session, world.op("ann"), name="ldap", reason="r")

    assert run(world, "directory", "remove", "ldap", "--reason", "moved to AD") == 0
    capsys.readouterr()
    assert memory_keyring.entries == {} or all("ldap" not in k[1] for k in memory_keyring.entries)
    [removal] = [op for op in all_ops(world.engine) if op.operation == "remove_member"]
    assert (removal.state, removal.last_error) == (
        "cancelled",
        "cancelled: target removed: moved to AD",
    )
    state = client_status(world)
    assert state.removals is not None and not state.removals.complete
    assert state.summary.endswith(
        "NOT complete: 0/1 directory removals confirmed, "
        "1 removals cancelled with target ldap (removed) (never applied)"
    )
    assert run(world, "directory", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(world, "sync", "status", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["target"], row["cancelled"], row["done"]) == ("ldap (removed)", 1, 1)
    assert run(world, "sync") == 0  # nothing left to try, nothing crashes

    # The name is free again; the old record stays.
    add_target(world.engine, ldap_dir)
    assert "cancelled with target ldap (removed)" in client_status(world).summary
    with db.read_session(world.engine) as session:
        names = [t.name for t in directory_targets.all_targets(session)]
    assert names == ["ldap"]


def test_remove_without_open_ops_deletes_as_before(world: World, ldap_dir: Directory) -> None:
    world.approve(world.request())
    assert sync.run_once(world.engine).done == 1
    assert run(world, "directory", "remove", "ldap") == 0
    assert all_ops(world.engine) == []
    with db.read_session(world.engine) as session:
        assert directory_targets.all_targets(session, include_removed=True) == []


def test_remove_after_disable_keeps_the_cancelled_record(world: World, ldap_dir: Directory) -> None:
    world.approve(world.request())
    assert run(world, "directory", "disable", "ldap", "--reason", "audit") == 0
    assert run(world, "directory", "remove", "ldap") == 0  # the disable's reason serves
    [op] = all_ops(world.engine)
    assert (op.state, op.last_error) == ("cancelled", "cancelled: target disabled: audit")
    with db.read_session(world.engine) as session:
        [gone] = directory_targets.all_targets(session, include_removed=True)
    assert directory_targets.display_name(gone) == "ldap (removed)"


def test_a_backoff_wait_is_capped() -> None:
    assert sync.backoff(1) == timedelta(seconds=15)
    assert sync.backoff(50) == sync.backoff(10_000) == sync.BACKOFF_CAP  # retried for ever

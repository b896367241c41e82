"""An audit chain that refuses to shrink: every write first compares the database's head with
the checkpoint, and refuses (one line, exit 2, nothing committed) when events were deleted or
the event the checkpoint records was replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.models import AuditEvent, AuditHead, Client, Operator
from govtui.services import audit, audit_checkpoint, catalog

from .conftest import FakeClock, snapshot


def _changes(engine: Engine, admin: Operator, clock: FakeClock, n: int, prefix: str) -> None:
    for i in range(n):
        clock.advance(seconds=1)
        with db.write_session(engine) as session:
            catalog.add_client(session, admin, name=f"{prefix}-{i}")


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with db.write_session(engine) as session:
        session.execute(sa.text(statement), params)


def _verify(engine: Engine) -> audit.VerifyResult:
    with db.read_session(engine) as session:
        return audit.verify(session, engine)


def _cut_tail(engine: Engine, keep: int) -> None:
    """What the attacker did: delete the newest events and rewind the head row to match."""
    with db.read_session(engine) as session:
        kept = session.get(AuditEvent, keep)
        assert kept is not None
    _sql(engine, "DELETE FROM audit_event WHERE seq > :k", k=keep)
    _sql(engine, "UPDATE audit_head SET seq = :k, hash = :h", k=keep, h=kept.hash)


def test_writes_after_a_deleted_tail_are_refused_and_verify_stays_broken(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 5, "c")  # events 1..6
    _cut_tail(engine, 3)
    before = snapshot(engine)
    for i in range(4):  # the finding: 4 ordinary writes then made verify say "intact"
        with (
            pytest.raises(
                audit.AuditChainError,
                match=r"^events after #3 were deleted; run `govtui audit verify`$",
            ),
            db.write_session(engine) as session,
        ):
            catalog.add_client(session, admin, name=f"after-{i}")
    assert snapshot(engine) == before  # nothing committed
    result = _verify(engine)
    assert not result.ok and "deleted" in (result.problem or "")


def test_a_replaced_checkpointed_event_refuses_writes(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 3, "c")  # events 1..4, checkpoint at 4
    # Delete event 4 and forge another one in its place, linked and hashed correctly.
    with db.write_session(engine) as session:
        row = session.get(AuditEvent, 4)
        assert row is not None
        row.object = "client:forged"
        row.hash = audit.event_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            obj=row.object,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        head = session.get(AuditHead, 1)
        assert head is not None
        head.hash = row.hash
    with (
        pytest.raises(audit.AuditChainError, match=r"^event #4 differs from the audit checkpoint"),
        db.write_session(engine) as session,
    ):
        catalog.add_client(session, admin, name="after")
    with db.read_session(engine) as session:
        assert session.exec(sa.select(Client).where(Client.name == "after")).first() is None  # type: ignore[call-overload]


def test_a_missing_checkpointed_event_with_the_head_left_alone_refuses_writes(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 3, "c")
    _sql(engine, "DELETE FROM audit_event WHERE seq = 4")
    with (
        pytest.raises(audit.AuditChainError, match=r"^event #4\b.*; run `govtui audit verify`$"),
        db.write_session(engine) as session,
    ):
        catalog.add_client(session, admin, name="after")


def test_an_intact_chain_still_writes_after_another_writer_moved_ahead(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    """A checkpoint older than the head (another machine's writes, or a crash before the
    checkpoint was written) is not tampering: the write goes ahead and moves it."""
    _changes(engine, admin, fake_clock, 2, "c")
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    with db.read_session(engine) as session:
        first = session.get(AuditEvent, 1)
        assert first is not None
    path.unlink()
    audit_checkpoint.write_checkpoint(path, 1, first.hash)
    _changes(engine, admin, fake_clock, 1, "d")
    checkpoint = audit_checkpoint.read_checkpoint(path)
    assert checkpoint is not None and checkpoint.seq == 4
    assert _verify(engine).ok


def test_cli_refuses_in_one_line_with_exit_2(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> int:
        return main(["--db", db_url, "--as", "root", *args])

    assert main(["--db", db_url, "init"]) == 0
    assert run("operator", "add", "root", "--role", "admin") == 0
    for name in ("a", "b", "c", "d"):
        assert run("client", "add", name) == 0
    engine = db.make_engine(db_url)
    try:
        with db.read_session(engine) as session:
            head = session.get(AuditHead, 1)
            assert head is not None
            last = head.seq
        _cut_tail(engine, last - 3)
        capsys.readouterr()
        assert run("client", "add", "e") == 2
        err = capsys.readouterr().err
        assert (
            err
            == f"govtui: error: events after #{last - 3} were deleted; run `govtui audit verify`\n"
        )
        assert run("audit", "verify") == 1
    finally:
        engine.dispose()


# --- a missing checkpoint, or rows without events, is not "intact" ------------------------


def _checkpoint(engine: Engine) -> Path:
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    return path


def test_a_missing_checkpoint_fails_verify_unless_accepted(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 1, "c")
    _checkpoint(engine).unlink()
    result = _verify(engine)
    assert not result.ok and "no checkpoint" in (result.problem or "")
    with db.read_session(engine) as session:
        accepted = audit.verify(session, engine, accept_missing_checkpoint=True)
    assert accepted.ok and "no checkpoint" in (accepted.warning or "")


def test_deleting_every_event_and_the_checkpoint_is_not_intact(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 2, "c")
    _sql(engine, "DELETE FROM audit_event")
    _sql(engine, "UPDATE audit_head SET seq = 0, hash = :h", h="0" * 64)
    _checkpoint(engine).unlink()
    result = _verify(engine)
    assert not result.ok and "no events" in (result.problem or "")


def test_an_empty_database_without_checkpoint_is_intact(engine: Engine) -> None:
    result = _verify(engine)
    assert result.ok and result.checked == 0 and result.warning is None


def _cli(db_url: str, *args: str) -> int:
    return main(["--db", db_url, "--as", "root", *args])


def test_cli_verify_without_checkpoint_exits_1_and_the_flag_says_it_accepted(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", db_url, "init"]) == 0
    assert _cli(db_url, "operator", "add", "root", "--role", "admin") == 0
    engine = db.make_engine(db_url)
    _checkpoint(engine).unlink()
    engine.dispose()
    capsys.readouterr()
    assert _cli(db_url, "audit", "verify") == 1
    out = capsys.readouterr()
    assert "no checkpoint" in out.out + out.err and "intact" not in out.out
    assert _cli(db_url, "audit", "verify", "--accept-missing-checkpoint") == 0
    out = capsys.readouterr()
    assert "intact" in out.out and "accepted" in out.out + out.err


# --- a checkpoint that cannot be read or written ----------------------------------------


def _seed_cli(db_url: str) -> None:
    assert main(["--db", db_url, "init"]) == 0
    assert _cli(db_url, "operator", "add", "root", "--role", "admin") == 0


@pytest.mark.parametrize("damage", ["garbage", "folder"])
def test_an_unreadable_checkpoint_refuses_the_write_before_anything_is_committed(
    db_url: str, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The finding: the data was committed first, then the checkpoint read raised a traceback."""
    _seed_cli(db_url)
    engine = db.make_engine(db_url)
    path = _checkpoint(engine)
    path.unlink()
    if damage == "garbage":
        path.write_text("not json{")
    else:
        path.mkdir()
    before = snapshot(engine)
    capsys.readouterr()
    assert _cli(db_url, "client", "add", "acme") == 2
    err = capsys.readouterr().err
    assert err.startswith("govtui: error: the audit checkpoint") and err.count("\n") == 1
    assert snapshot(engine) == before
    engine.dispose()


def test_an_unwritable_checkpoint_folder_refuses_the_write_before_anything_is_committed(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_cli(db_url)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GOVTUI_AUDIT_HEAD", str(blocker / "head"))  # its folder is a file
    engine = db.make_engine(db_url)
    before = snapshot(engine)
    capsys.readouterr()
    assert _cli(db_url, "client", "add", "acme") == 2
    err = capsys.readouterr().err
    assert "audit checkpoint" in err and err.count("\n") == 1
    assert snapshot(engine) == before
    engine.dispose()


def test_a_checkpoint_write_failing_after_the_commit_is_reported_in_one_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What cannot be checked beforehand (a full disk) is said, exit 1, never silent; the next
    write goes ahead (the checkpoint only lags) and moves the checkpoint on."""
    _seed_cli(db_url)
    from govtui import private_files

    def full(*_args: object, **_kwargs: object) -> None:
        raise private_files.InputError("cannot write the audit checkpoint x: No space left")

    with monkeypatch.context() as patch:
        patch.setattr(private_files, "write_private", full)
        capsys.readouterr()
        assert _cli(db_url, "client", "add", "acme") == 1
    err = capsys.readouterr().err
    assert err.startswith("govtui: error: the change was committed, but then cannot write")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _cli(db_url, "client", "add", "beta") == 0
    assert _cli(db_url, "audit", "verify") == 0

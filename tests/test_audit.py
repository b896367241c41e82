"""The audit chain: every service change appends a linked event; verify catches an edited
field, a broken link, a gap, and a deleted tail (via the checkpoint kept outside the database)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import ConfigurationError
from govtui.models import AuditEvent, AuditHead, Operator
from govtui.services import audit, audit_checkpoint, catalog

from .conftest import FakeClock

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "audit-event.schema.json").read_text()
)


def _changes(engine: Engine, admin: Operator, clock: FakeClock, n: int = 5) -> None:
    for i in range(n):
        clock.advance(seconds=1)
        with db.write_session(engine) as session:
            catalog.add_client(session, admin, name=f"client-{i}")


def _verify(engine: Engine) -> audit.VerifyResult:
    with db.read_session(engine) as session:
        return audit.verify(session, engine)


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with db.write_session(engine) as session:
        session.execute(sa.text(statement), params)


def test_each_change_appends_a_linked_event(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 3)
    with db.read_session(engine) as session:
        events = session.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()  # type: ignore[arg-type]
    assert [e.seq for e in events] == [1, 2, 3, 4]  # operator.add + three client.add
    assert [e.action for e in events][1:] == ["client.add"] * 3
    assert events[0].prev_hash == "0" * 64
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert events[1].actor == "root" and events[1].object == "client:client-0"
    assert events[1].at == fake_clock.current.replace(second=1)
    result = _verify(engine)
    assert result.ok and result.checked == 4 and result.warning is None


def test_a_failed_change_writes_no_event(engine: Engine, admin: Operator) -> None:
    with db.write_session(engine) as session:
        catalog.add_client(session, admin, name="acme")
    with pytest.raises(Exception, match="exists already"), db.write_session(engine) as session:
        catalog.add_client(session, admin, name="acme")
    with db.read_session(engine) as session:
        assert session.get(AuditHead, 1).seq == 2  # type: ignore[union-attr]


def test_edited_field_is_caught(engine: Engine, admin: Operator, fake_clock: FakeClock) -> None:
    _changes(engine, admin, fake_clock)
    _sql(engine, "UPDATE audit_event SET actor = 'mallory' WHERE seq = 3")
    result = _verify(engine)
    assert not result.ok and result.first_bad_seq == 3 and "altered" in (result.problem or "")


def test_edited_details_are_caught(engine: Engine, admin: Operator, fake_clock: FakeClock) -> None:
    _changes(engine, admin, fake_clock)
    _sql(engine, "UPDATE audit_event SET details = :d WHERE seq = 4", d='{"x":1}')
    assert _verify(engine).first_bad_seq == 4


def test_rehashed_edit_breaks_the_next_link(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock)
    with db.write_session(engine) as session:
        row = session.get(AuditEvent, 2)
        assert row is not None
        row.actor = "mallory"
        row.hash = audit.event_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            obj=row.object,
            details=row.details,
            prev_hash=row.prev_hash,
        )
    result = _verify(engine)
    assert result.first_bad_seq == 3 and "does not link" in (result.problem or "")


def test_removed_event_is_caught(engine: Engine, admin: Operator, fake_clock: FakeClock) -> None:
    _changes(engine, admin, fake_clock)
    _sql(engine, "DELETE FROM audit_event WHERE seq = 3")
    result = _verify(engine)
    assert result.first_bad_seq == 3 and "missing" in (result.problem or "")


def test_truncated_tail_with_head_row_rewritten_is_caught_by_checkpoint(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock)
    with db.read_session(engine) as session:
        kept = session.get(AuditEvent, 4)
        assert kept is not None
    # A careful attacker deletes the newest events and rewinds the head row to match.
    _sql(engine, "DELETE FROM audit_event WHERE seq > 4")
    _sql(engine, "UPDATE audit_head SET seq = 4, hash = :h", h=kept.hash)
    result = _verify(engine)
    assert not result.ok and result.first_bad_seq == 5 and "deleted" in (result.problem or "")


def test_truncated_tail_without_head_update_is_caught(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock)
    _sql(engine, "DELETE FROM audit_event WHERE seq = 6")
    assert _verify(engine).first_bad_seq == 6


def test_checkpoint_records_the_newest_head(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 2)
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    checkpoint = audit_checkpoint.read_checkpoint(path)
    with db.read_session(engine) as session:
        head = session.get(AuditHead, 1)
    assert head is not None
    assert checkpoint == audit_checkpoint.Checkpoint(seq=head.seq, hash=head.hash)
    # An older head never replaces a newer one.
    audit_checkpoint.write_checkpoint(path, 1, "f" * 64)
    assert audit_checkpoint.read_checkpoint(path) == checkpoint


def test_missing_checkpoint_fails_verify(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 1)
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    path.unlink()
    result = _verify(engine)
    assert not result.ok and "no checkpoint" in (result.problem or "")


def test_export_lines_match_the_schema_and_recompute(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    _changes(engine, admin, fake_clock, 3)
    with db.read_session(engine) as session:
        lines = list(audit.export_lines(session))
    assert len(lines) == 4
    prev = "0" * 64
    for line in lines:
        record = json.loads(line)
        jsonschema.validate(record, SCHEMA)
        assert record["prev_hash"] == prev
        body = {k: record[k] for k in ("seq", "at", "actor", "action", "object", "prev_hash")}
        body["details"] = audit.canonical_json(record["details"])
        import hashlib

        assert hashlib.sha256(audit.canonical_json(body).encode()).hexdigest() == record["hash"]
        prev = record["hash"]


def _head_file(engine: Engine) -> Path:
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    return path


def test_checkpoint_is_written_only_after_the_commit(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    path = _head_file(engine)
    before = audit_checkpoint.read_checkpoint(path)
    with db.write_session(engine) as session:
        catalog.add_client(session, admin, name="inside")
        assert audit_checkpoint.read_checkpoint(path) == before  # not yet committed
    after = audit_checkpoint.read_checkpoint(path)
    assert after is not None and before is not None and after.seq == before.seq + 1


def test_a_rolled_back_change_moves_no_checkpoint(
    engine: Engine, admin: Operator, fake_clock: FakeClock
) -> None:
    path = _head_file(engine)
    before = audit_checkpoint.read_checkpoint(path)
    with pytest.raises(RuntimeError, match="boom"), db.write_session(engine) as session:
        catalog.add_client(session, admin, name="never")
        raise RuntimeError("boom")
    assert audit_checkpoint.read_checkpoint(path) == before
    assert _verify(engine).ok


def test_no_session_listener_is_registered_at_import(engine: Engine) -> None:
    from sqlmodel import Session

    # The checkpoint rides on write_session's after-commit queue, not on a global hook that
    # would fire for every session in the process.
    with Session(engine) as session:
        assert len(session.dispatch.after_commit) == 0
        assert len(session.dispatch.after_rollback) == 0


def test_checkpoint_and_lock_are_private(tmp_path: Path) -> None:
    path = tmp_path / "heads" / "db.audit-head"
    audit_checkpoint.write_checkpoint(path, 3, "a" * 64)
    audit_checkpoint.write_checkpoint(path, 4, "c" * 64)
    assert audit_checkpoint.read_checkpoint(path) == audit_checkpoint.Checkpoint(4, "c" * 64)
    lock = path.with_name(path.name + ".lock")
    assert path.stat().st_mode & 0o777 == 0o600
    assert lock.stat().st_mode & 0o777 == 0o600
    # Nothing is left behind: the temporary file was renamed into place.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, lock.name]


def test_a_planted_checkpoint_symlink_is_neither_followed_nor_written_through(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.write_text('{"seq": 99, "hash": "x"}')
    path = tmp_path / "db.audit-head"
    path.symlink_to(victim)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        audit_checkpoint.read_checkpoint(path)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        audit_checkpoint.write_checkpoint(path, 1, "b" * 64)
    assert victim.read_text() == '{"seq": 99, "hash": "x"}'


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    path = tmp_path / "db.audit-head"
    path.with_name(path.name + ".lock").symlink_to(victim)
    with pytest.raises(ConfigurationError, match="symbolic link"):  # O_NOFOLLOW's ELOOP
        audit_checkpoint.write_checkpoint(path, 1, "b" * 64)
    assert victim.read_text() == "keep me"
    assert not path.exists()


@pytest.mark.parametrize("where", ["checkpoint", "lock"])
@pytest.mark.parametrize("planted", ["fifo", "directory"])
def test_a_planted_fifo_or_directory_is_refused_in_one_line_without_hanging(
    tmp_path: Path, where: str, planted: str
) -> None:
    """A FIFO in place of the checkpoint (or its lock) would block a plain open() for ever,
    and hold every other writer behind the lock; a directory would be a raw OSError."""
    path = tmp_path / "db.audit-head"
    spot = path if where == "checkpoint" else path.with_name(path.name + ".lock")
    if planted == "fifo":
        os.mkfifo(spot)
    else:
        spot.mkdir()
    with pytest.raises(ConfigurationError, match=r"not a regular file|cannot be opened"):
        audit_checkpoint.write_checkpoint(path, 1, "b" * 64)
    if where == "checkpoint":
        with pytest.raises(ConfigurationError, match=r"not a regular file|cannot be opened"):
            audit_checkpoint.read_checkpoint(path)

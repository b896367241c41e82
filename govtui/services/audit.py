"""The hash-chained audit log: append inside the caller's transaction, verify, export.

A checkpoint of the newest (seq, hash) is written outside the database after every commit, so
that deleting the newest events, and the head row with them, is still caught by `verify`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import default_url, redacted, sqlite_path
from govtui.migrations import GENESIS_HASH
from govtui.models import AuditEvent, AuditHead

_PENDING_HEAD = "govtui_audit_head"
BATCH = 5_000


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the one byte form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_time(at: datetime) -> str:
    """An aware time as ISO 8601 UTC with microseconds and a Z, as hashed and exported."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def id_summary(ids: Sequence[int]) -> dict[str, object]:
    """What one bulk event says of the rows it touched: how many, a digest of every id (sorted,
    comma-joined, SHA-256) that an auditor can recompute, and the first few."""
    ordered = sorted(ids)
    digest = hashlib.sha256(",".join(map(str, ordered)).encode()).hexdigest()
    return {"count": len(ordered), "ids_sha256": digest, "first_ids": ordered[:20]}


def event_hash(
    *, seq: int, at: datetime, actor: str, action: str, obj: str, details: str, prev_hash: str
) -> str:
    """SHA-256 over the canonical JSON of an event's fields (details as its stored JSON text)."""
    body = {
        "seq": seq,
        "at": format_time(at),
        "actor": actor,
        "action": action,
        "object": obj,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def append(
    session: Session, *, actor: str, action: str, obj: str, details: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the chain in the session's transaction (never commits)."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    at = clock.now()
    details_text = canonical_json(details or {})
    seq = head.seq + 1
    digest = event_hash(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        obj=obj,
        details=details_text,
        prev_hash=head.hash,
    )
    row = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        object=obj,
        details=details_text,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(row)
    head.seq, head.hash = seq, digest
    session.add(head)
    session.flush()
    session.info[_PENDING_HEAD] = (seq, digest)
    return row


# --- the checkpoint kept outside the database -------------------------------------------------


def checkpoint_path(url: str) -> Path | None:
    """Where the chain head for this database is recorded: GOVTUI_AUDIT_HEAD, else beside the
    SQLite file, else in the user's data directory keyed by the (password-less) URL."""
    override = os.environ.get("GOVTUI_AUDIT_HEAD")
    if override:
        return Path(override)
    db_file = sqlite_path(url)
    if db_file is not None:
        return db_file.with_name(db_file.name + ".audit-head")
    if url.startswith("sqlite"):
        return None  # in-memory: nothing outlives the process anyway
    data_dir = sqlite_path(default_url())
    assert data_dir is not None
    key = hashlib.sha256(redacted(url).encode()).hexdigest()[:16]
    return data_dir.parent / "audit-heads" / f"{key}.json"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The recorded head, or None if nothing was recorded yet."""
    try:
        data = json.loads(path.read_text())
        return Checkpoint(seq=int(data["seq"]), hash=str(data["hash"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the audit checkpoint {path} is unreadable: {exc}") from exc


def write_checkpoint(path: Path, seq: int, digest: str) -> None:
    """Record a head, never moving it backwards when several processes commit at once."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_checkpoint(path)
        if current is not None and current.seq >= seq:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(canonical_json({"seq": seq, "hash": digest}) + "\n")
        os.replace(tmp, path)


@event.listens_for(Session, "after_commit")
def _record_head(session: Session) -> None:
    pending = session.info.pop(_PENDING_HEAD, None)
    bind = session.get_bind()
    if pending is None or bind is None:
        return
    path = checkpoint_path(bind.engine.url.render_as_string(hide_password=False))
    if path is not None:
        write_checkpoint(path, *pending)


@event.listens_for(Session, "after_rollback")
def _forget_head(session: Session) -> None:
    session.info.pop(_PENDING_HEAD, None)


# --- verification and export -----------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def _events(session: Session) -> Iterator[AuditEvent]:
    last = 0
    while True:
        query = select(AuditEvent).where(AuditEvent.seq > last).order_by(col(AuditEvent.seq))
        rows = session.exec(query.limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session, engine: Engine) -> VerifyResult:
    """Recompute the chain from the first event and compare it with the recorded heads."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    hashes_at: dict[int, str] = {}
    checkpoint_file = checkpoint_path(engine.url.render_as_string(hide_password=False))
    checkpoint = read_checkpoint(checkpoint_file) if checkpoint_file else None
    for row in _events(session):
        if row.seq != expected_seq:
            return VerifyResult(
                checked, expected_seq, f"event {expected_seq} is missing (next is {row.seq})"
            )
        if row.prev_hash != prev_hash:
            return VerifyResult(
                checked, row.seq, f"event {row.seq} does not link to event {row.seq - 1}"
            )
        digest = event_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            obj=row.object,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        if digest != row.hash:
            return VerifyResult(
                checked, row.seq, f"event {row.seq} was altered (its hash does not match)"
            )
        if checkpoint is not None and row.seq == checkpoint.seq:
            hashes_at[row.seq] = row.hash
        prev_hash, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    last_seq = expected_seq - 1
    head = session.get(AuditHead, 1)
    if head is None or head.seq != last_seq or head.hash != prev_hash:
        recorded = head.seq if head is not None else 0
        return VerifyResult(
            checked,
            min(last_seq, recorded) + 1,
            f"the head row records event {recorded} but the chain ends at event {last_seq}",
        )
    if checkpoint is None:
        warning = (
            None
            if last_seq == 0
            else (
                f"no checkpoint at {checkpoint_file}: a deleted tail of the chain cannot be detected"
            )
        )
        return VerifyResult(checked, warning=warning)
    if checkpoint.seq > last_seq:
        return VerifyResult(
            checked,
            last_seq + 1,
            f"events {last_seq + 1}..{checkpoint.seq} were deleted (the checkpoint records "
            f"event {checkpoint.seq}, the database ends at {last_seq})",
        )
    if hashes_at.get(checkpoint.seq, checkpoint.hash) != checkpoint.hash:
        return VerifyResult(
            checked, checkpoint.seq, f"event {checkpoint.seq} differs from the checkpoint"
        )
    return VerifyResult(checked)


def event_record(row: AuditEvent) -> dict[str, Any]:
    """An event as exported (schemas/audit-event.schema.json)."""
    return {
        "seq": row.seq,
        "at": format_time(row.at),
        "actor": row.actor,
        "action": row.action,
        "object": row.object,
        "details": json.loads(row.details),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def export_lines(session: Session) -> Iterator[str]:
    """Every event as one line of JSON, oldest first."""
    for row in _events(session):
        yield canonical_json(event_record(row))

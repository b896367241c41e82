"""The hash-chained audit log: append inside the caller's transaction, verify, export.

`append` queues the newest (seq, hash) for the checkpoint kept outside the database
(govtui.services.audit_checkpoint), written after the transaction commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from govtui import clock, db
from govtui.migrations import GENESIS_HASH
from govtui.models import AuditEvent, AuditHead
from govtui.services import audit_checkpoint

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
    first = _PENDING_HEAD not in session.info
    session.info[_PENDING_HEAD] = (seq, digest)
    if first:
        url = session.get_bind().engine.url.render_as_string(hide_password=False)
        path = audit_checkpoint.checkpoint_path(url)
        if path is not None:
            db.after_commit(session, lambda: _record_head(session, path))
    return row


def _record_head(session: Session, path: Path) -> None:
    # The newest event appended in the committed transaction: one checkpoint write per commit.
    seq, digest = session.info.pop(_PENDING_HEAD)
    audit_checkpoint.write_checkpoint(path, seq, digest)


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
    checkpoint_file = audit_checkpoint.checkpoint_path(
        engine.url.render_as_string(hide_password=False)
    )
    checkpoint = audit_checkpoint.read_checkpoint(checkpoint_file) if checkpoint_file else None
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

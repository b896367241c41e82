"""The hash-chained audit log: append inside the caller's transaction, verify, export.

Before a transaction's first event, `append` compares the database's head with the checkpoint
kept outside the database (govtui.services.audit_checkpoint) and refuses to write on a chain
that lost its tail; the transaction's newest (seq, hash) is written to the checkpoint right
after the commit, before the write returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from govtui import clock, db
from govtui.errors import GovtuiError
from govtui.migrations import GENESIS_HASH
from govtui.models import (
    AuditEvent,
    AuditHead,
    Client,
    Contractor,
    DirectoryTarget,
    Grant,
    Operator,
)
from govtui.services import audit_checkpoint

_PENDING_HEAD = "govtui_audit_head"
_CHECKPOINT_EFFECT = "govtui_audit_checkpoint"
_SIGNER = "govtui_audit_signer"
BATCH = 5_000
VERIFY_HINT = "run `govtui audit verify`"


class AuditChainError(GovtuiError):
    """The chain in the database is shorter than the checkpoint, or differs from it: writing
    on would bury the loss under new events, so nothing is written (exit 2)."""


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


def details_of(text: str) -> dict[str, Any]:
    """An event's stored details as a dict ({} when they are not a JSON object)."""
    try:
        details = json.loads(text)
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


# The events that end grants, and where their details list them (None: the event itself).
END_EVENTS: dict[str, tuple[str, ...]] = {
    "grant.revoke": (),
    "grant.deny": (),
    "grant.expire": ("",),
    "contractor.offboard": ("",),
    "review.close": ("revoked", "expired"),
}


def ended_ids(action: str, obj: str, details: dict[str, Any]) -> list[int]:
    """The grants an end event names one by one: its own grant, or a bulk event's ids when
    its summary lists them all (at most 20: beyond that only the digest says which)."""
    keys = END_EVENTS.get(action)
    if keys is None:
        return []
    if not keys:
        text = obj.removeprefix("grant:")
        return [int(text)] if text.isdigit() else []
    found: list[int] = []
    for key in keys:
        summary = details.get(key) if key else details
        if not isinstance(summary, dict):
            continue
        ids, count = summary.get("first_ids"), summary.get("count")
        if isinstance(ids, list) and isinstance(count, int) and count <= len(ids):
            found += [i for i in ids if isinstance(i, int)]
    return found


def summary_of(
    session: Session, column: sa.ColumnElement[int], *where: sa.ColumnElement[bool]
) -> tuple[int, str]:
    """id_summary's count and ids_sha256 of the ids `column` holds in the rows `where`
    selects, recomputed from the database: read in id order in batches, so 100,000 ids are
    never one list (how a frozen population is checked against the digest recorded at start)."""
    digest, count = hashlib.sha256(), 0
    # Rows in partitions, not .scalars() nor yield_per: both cost more than the fetch itself.
    rows = session.execute(sa.select(column).where(*where).order_by(column))
    for batch in rows.partitions(BATCH):
        text = ",".join([str(row[0]) for row in batch])
        digest.update((("," if count else "") + text).encode())
        count += len(batch)
    return count, digest.hexdigest()


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
    _guard_chain(session, head)
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


def _guard_chain(session: Session, head: AuditHead) -> None:
    """Once per transaction, before its first event: refuse to write on a chain that lost its
    tail, and queue the checkpoint write for right after the commit.

    Why this order: the checkpoint must never get ahead of the database (a commit that then
    fails would make every later write refuse), so the new head is written after the commit.
    Everything that can be checked beforehand is: the checkpoint is read and its lock opened
    for writing here, so an unreadable checkpoint or an unwritable folder refuses the write
    with nothing committed. What can still fail after the commit (a full disk) is reported by
    write_session in one line as "the change was committed, but then ..." (exit 1), never
    silently; and the next write compares again, since the checkpoint can only lag behind."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    path = audit_checkpoint.checkpoint_path(url)
    if path is None:  # in-memory SQLite: nothing outlives the process
        return
    if not db.after_commit_once(session, _CHECKPOINT_EFFECT, lambda: _record_head(session, path)):
        return
    session.info[_SIGNER] = _note_maker(session)
    checkpoint = audit_checkpoint.prepare(path)
    if checkpoint is None and head.seq > 0:
        # Without a checkpoint a cut tail cannot be told from a short chain: deleting the
        # file must not make a cut chain writable again (and re-create a checkpoint for it).
        raise AuditChainError(missing_checkpoint_message(path))
    problem = chain_problem(session, head, checkpoint)
    if problem is not None:
        raise AuditChainError(f"{problem}; {VERIFY_HINT}")


def evidence_key_changed(session: Session) -> None:
    """The evidence key changed in this transaction after its first event (the demo makes it
    in the transaction that made the first admin): the head this transaction commits is
    signed by the key as it is now, not left unsigned by the lookup made before it existed."""
    if _SIGNER in session.info:
        session.info[_SIGNER] = _note_maker(session)


def missing_checkpoint_message(path: Path) -> str:
    """Why a database with events but no checkpoint is not written to, and the way out."""
    return (
        f"the audit checkpoint {path} is missing: {VERIFY_HINT}; if the database was moved "
        "without it, `govtui audit verify --accept-missing-checkpoint` records a new one"
    )


def adopt_head(session: Session, engine: Engine) -> tuple[Path, int] | None:
    """After a verify that accepted a missing checkpoint: record the current head as the new
    checkpoint (where, and which event), so a moved database is adopted deliberately; None
    when there is nothing to record (no events, or no checkpoint for in-memory SQLite)."""
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    head = session.get(AuditHead, 1)
    if path is None or head is None or head.seq == 0:
        return None
    audit_checkpoint.write_checkpoint(path, head.seq, head.hash, _note_maker(session))
    return path, head.seq


def chain_problem(
    session: Session, head: AuditHead, checkpoint: audit_checkpoint.Checkpoint | None
) -> str | None:
    """Why the head row and the checkpoint say the chain lost events, if they do (three
    lookups by key, cheap enough for every write)."""
    if checkpoint is not None and checkpoint.seq > head.seq:
        return f"events after #{head.seq} were deleted"
    if head.seq > 0:
        last = session.get(AuditEvent, head.seq)
        if last is None or last.hash != head.hash:
            return f"event #{head.seq}, the head of the chain, is missing or was replaced"
    if checkpoint is not None:
        marked = session.get(AuditEvent, checkpoint.seq)
        if marked is None or marked.hash != checkpoint.hash:
            return f"event #{checkpoint.seq} differs from the audit checkpoint"
    return None


def _record_head(session: Session, path: Path) -> None:
    # The newest event appended in the committed transaction: one checkpoint write per commit.
    seq, digest = session.info.pop(_PENDING_HEAD)
    audit_checkpoint.write_checkpoint(path, seq, digest, session.info.pop(_SIGNER, None))


def _note_maker(session: Session) -> Callable[[int, str], str | None] | None:
    """What signs a head once the transaction has ended: the current evidence key, looked
    up now (inside it), read from this keyring only then; None when there is no key."""
    # Imported when needed: evidence_keys appends events itself, and the keyring and
    # cryptography are not loaded by every command that reads the database.
    from govtui.security import secrets, signed_note
    from govtui.services import evidence_keys

    signer = evidence_keys.signer(session)
    if signer is None:
        return None
    database_id = secrets.database_id(session)

    def make(seq: int, digest: str) -> str | None:
        private = signer.private()
        if private is None:
            return None  # not in this keyring: the head stays unsigned
        text = audit_checkpoint.note_text(database_id, seq, digest)
        return signed_note.sign(text, signer.name, private)

    return make


# --- verification and export -----------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    warning: str | None = None
    # Whether the head is signed, by which key, or why not (one line; None when not checked).
    signature: str | None = None
    head_signed: bool = False
    # What a handed-out checkpoint (--checkpoint FILE) proved, when one was given.
    extends: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _events(session: Session) -> Iterator[AuditEvent]:
    last = 0
    while True:
        query = select(AuditEvent).where(AuditEvent.seq > last).order_by(col(AuditEvent.seq))
        rows = session.exec(query.limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(
    session: Session,
    engine: Engine,
    *,
    accept_missing_checkpoint: bool = False,
    handed_out: str | None = None,
) -> VerifyResult:
    """Recompute the chain from the first event and compare it with the recorded heads.

    A database with events (or with rows but no events) and no checkpoint is not verified:
    a deleted tail could not be told apart, unless `accept_missing_checkpoint` says to. A
    signed checkpoint must verify against a listed evidence key; `handed_out` is the text of
    a signed checkpoint given to someone else, which the chain must still extend."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    hashes_at: dict[int, str] = {}
    checkpoint_file = audit_checkpoint.checkpoint_path(
        engine.url.render_as_string(hide_password=False)
    )
    checkpoint = audit_checkpoint.read_checkpoint(checkpoint_file) if checkpoint_file else None
    marks = _SignedMarks.of(checkpoint, handed_out)
    if isinstance(marks, str):
        return VerifyResult(0, problem=marks)
    wanted = marks.seqs() | ({checkpoint.seq} if checkpoint is not None else set())
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
        if row.seq in wanted:
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
    extends: str | None = None
    if marks.handed_out is not None:
        found = _check_signed(
            session, marks.handed_out, hashes_at, last_seq, "the checkpoint given"
        )
        if found.problem is not None:
            return VerifyResult(checked, found.bad_seq, found.problem)
        extends = (
            f"the chain extends the checkpoint given: event {marks.handed_out.body.size} "
            f"signed by {found.fingerprint} (verified)"
        )
    if checkpoint is None:
        if last_seq == 0 and not _has_rows(session):
            return VerifyResult(checked, extends=extends)  # a new, empty database
        what = (
            f"no checkpoint at {checkpoint_file}"
            if last_seq
            else f"the database has rows but no events, and no checkpoint at {checkpoint_file}"
        )
        if not accept_missing_checkpoint:
            return VerifyResult(
                checked,
                problem=f"{what}: a deleted tail of the chain cannot be detected "
                "(--accept-missing-checkpoint accepts this)",
            )
        return VerifyResult(
            checked,
            warning=f"accepted (--accept-missing-checkpoint): {what}, so a deleted "
            "tail of the chain cannot be detected",
            signature="head unsigned (no checkpoint)",
            extends=extends,
        )
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
    if marks.local is None:
        problem, status = _unsigned_status(session)
        if problem is not None:
            return VerifyResult(checked, problem=problem)
        return VerifyResult(checked, signature=status, extends=extends)
    found = _check_signed(session, marks.local, hashes_at, last_seq, "the audit checkpoint")
    if found.problem is not None:
        return VerifyResult(checked, found.bad_seq, found.problem)
    key = f"{found.fingerprint}{' (a retired key)' if found.retired else ''}"
    if marks.local.body.size == last_seq:
        status = f"head signed by {key} (verified)"
    else:
        status = (
            f"head unsigned since event {marks.local.body.size}, signed up to there by "
            f"{key} (verified): later writes came from a login without the evidence key"
        )
    return VerifyResult(
        checked, signature=status, head_signed=marks.local.body.size == last_seq, extends=extends
    )


UNSIGNED = "head unsigned (older database or no evidence key in this keyring)"


@dataclass(frozen=True)
class _Signed:
    note: Any  # signed_note.Note
    body: Any  # signed_note.CheckpointBody


@dataclass(frozen=True)
class _SignedMarks:
    """The signed checkpoints verify checks: the local file's, and one handed out."""

    local: _Signed | None
    handed_out: _Signed | None

    @staticmethod
    def of(
        checkpoint: audit_checkpoint.Checkpoint | None, handed_out: str | None
    ) -> _SignedMarks | str:
        from govtui.security import signed_note

        found: list[_Signed | None] = []
        for what, text in (
            ("the audit checkpoint's signed head", checkpoint.note if checkpoint else None),
            ("the checkpoint given", handed_out),
        ):
            if text is None:
                found.append(None)
                continue
            try:
                note, body = audit_checkpoint.parse_note(text)
            except signed_note.NoteError as exc:
                return f"{what} is not a signed checkpoint: {exc}"
            found.append(_Signed(note, body))
        return _SignedMarks(found[0], found[1])

    def seqs(self) -> set[int]:
        return {m.body.size for m in (self.local, self.handed_out) if m is not None}


@dataclass(frozen=True)
class _Found:
    fingerprint: str | None = None
    retired: bool = False
    problem: str | None = None
    bad_seq: int | None = None


def _check_signed(
    session: Session, mark: _Signed, hashes_at: dict[int, str], last_seq: int, what: str
) -> _Found:
    """That a signed checkpoint is this database's, that the chain still holds its event with
    its hash, and that a listed evidence key signed it."""
    from govtui.security import secrets
    from govtui.services import evidence_keys

    expected = audit_checkpoint.origin(secrets.database_id(session))
    if mark.body.origin != expected:
        return _Found(problem=f"{what} is for another database ({mark.body.origin!r})")
    check = evidence_keys.verify_note(session, mark.note)
    if check.problem is not None:
        return _Found(problem=f"{what} is not to be trusted: {check.problem}")
    size, digest = mark.body.size, mark.body.root_hash.hex()
    if size > last_seq:
        return _Found(
            problem=f"events {last_seq + 1}..{size} were deleted ({what} records event "
            f"{size}, signed by {check.fingerprint}; the database ends at {last_seq})",
            bad_seq=last_seq + 1,
        )
    if size > 0 and hashes_at.get(size) != digest:
        return _Found(
            problem=f"event {size} differs from {what} (signed by {check.fingerprint}): "
            "the chain up to there was rewritten",
            bad_seq=size,
        )
    return _Found(check.fingerprint, check.retired)


def _unsigned_status(session: Session) -> tuple[str | None, str]:
    """Why the head is unsigned; a problem when it cannot be innocent: this keyring holds
    the current evidence key, so every head written here would carry its signature, and a
    signed head is never replaced by an unsigned one without keeping it."""
    from govtui.services import evidence_keys

    signer = evidence_keys.signer(session)
    if signer is None:
        return None, UNSIGNED
    if signer.private() is None:
        return None, f"head unsigned: evidence key {signer.fingerprint} not available here"
    return (
        f"the audit checkpoint carries no signature, yet the evidence key "
        f"{signer.fingerprint} is in this keyring and signs every head written here: the "
        "checkpoint was replaced",
        "",
    )


def signed_head(session: Session) -> str:
    """The chain head as a signed checkpoint to hand to someone else (ConfigurationError
    when this keyring lacks the evidence key)."""
    from govtui.security import secrets
    from govtui.services import evidence_keys

    head = session.get(AuditHead, 1)
    if head is None or head.seq == 0:
        raise GovtuiError("the audit chain is empty: there is nothing to vouch for yet")
    text = audit_checkpoint.note_text(secrets.database_id(session), head.seq, head.hash)
    return evidence_keys.sign_note(session, text)


def has_action(session: Session, action: str) -> bool:
    """Whether the chain holds any event of this action (an SQL-emptied table keeps its past)."""
    query = select(AuditEvent.seq).where(AuditEvent.action == action).limit(1)
    return session.exec(query).first() is not None


def _has_rows(session: Session) -> bool:
    # What only a change of a person writes (each of which appends an event).
    for table in (Operator, Client, Contractor, Grant, DirectoryTarget):
        if session.exec(select(table).limit(1)).first() is not None:
            return True
    return False


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

"""Bulk import of contractors from CSV or JSON (schemas/contractor-import.schema.json).

The whole file is checked before anything is written; one bad row and nothing is imported.
Known contractors (same external id) are updated in place. Writes are bulk statements: the ORM
one row at a time would take minutes for 100,000 rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.errors import GovtuiError, InputError
from govtui.models import Contractor, Grant, Operator
from govtui.services import audit, grant_lifecycle, outbox, validation
from govtui.services.grants import contract_end_instant
from govtui.services.operators import require_role
from govtui.text import one_line, quoted
from govtui.vocabulary import IN_DIRECTORY_STATES, GrantState, OutboxOperation

FIELDS = ("external_id", "name", "email", "directory_uid", "contract_end")
MAX_REPORTED = 50
# Limits on what a file may hold, each far above any HR export (100,000 rows are ~10 MB) and
# each refused in one line before it costs memory or time: a hostile or broken file is not
# read whole, walked field by field, or decoded into a RecursionError.
MAX_FILE_BYTES = 128 * 1024 * 1024
MAX_ROWS = 1_000_000
MAX_FIELD = 1000  # characters in one value (the longest valid one, an email, is 254)


@dataclass(frozen=True)
class ImportRow:
    where: str  # "line 7" (CSV) or "item 7" (JSON), for messages
    external_id: str
    name: str
    email: str
    directory_uid: str
    contract_end: date


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    sha256: str
    uid_changes: int = 0  # known contractors whose directory uid changed
    capped: int = 0  # live grants whose window now ends at a shortened contract's end
    ended: int = 0  # live grants ended at once: their contract end had passed
    directory_ops: int = 0  # removals and additions queued by the above


@dataclass(frozen=True)
class _Known:
    id: int
    directory_uid: str
    contract_end: date


def _raw_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        except RecursionError:
            # A contractor file is an array of flat objects: two levels deep, never thousands.
            raise InputError(f"{path}: the JSON is nested too deeply") from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise InputError(f"{path}: not valid JSON ({one_line(exc, 120)})") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: the JSON must be an array of contractor objects")
        if len(data) > MAX_ROWS:
            raise InputError(f"{path}: {len(data)} items: at most {MAX_ROWS} per import")
        for index, item in enumerate(data, start=1):
            yield f"item {index}", item
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = reader.fieldnames or []
    missing = [f for f in FIELDS if f not in header]
    extra = [f for f in header if f not in FIELDS]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else []
        )
        raise InputError(
            f"{path}: bad CSV header ({'; '.join(parts)}); expected {','.join(FIELDS)}"
        )
    try:
        for count, record in enumerate(reader, start=1):
            if count > MAX_ROWS:
                raise InputError(f"{path}: more than {MAX_ROWS} rows: at most that per import")
            yield f"line {reader.line_num}", record
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None


def _check(where: str, raw: Any) -> ImportRow:
    if not isinstance(raw, dict):
        raise InputError("not an object")
    if None in raw:  # csv.DictReader puts surplus cells under the key None
        raise InputError("more cells than the header has columns")
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise InputError(f"unknown field {', '.join(unknown)}")
    values = {}
    for field in FIELDS:
        value = raw.get(field)
        if not isinstance(value, str) or value == "":
            raise InputError(f"{field} is missing or empty")
        if len(value) > MAX_FIELD:
            raise InputError(f"{field} is {len(value)} characters long: at most {MAX_FIELD}")
        values[field] = value
    return ImportRow(
        where=where,
        external_id=validation.external_id(values["external_id"]),
        name=validation.person_name(values["name"]),
        email=validation.email(values["email"]),
        directory_uid=validation.directory_uid(values["directory_uid"]),
        contract_end=validation.iso_date(values["contract_end"], "contract_end"),
    )


def parse(path: Path) -> tuple[list[ImportRow], str]:
    """Read and check every row; return the rows and the file's SHA-256, or raise listing
    every bad row with where it is and why."""
    validation.plain_text(str(path), "file name")  # it is named in the audit log
    try:
        with path.open("rb") as file:
            # Read at most one byte past the limit: /dev/zero or a 10 GB file is not loaded.
            content = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {quoted(path)}: {exc.strerror}") from None
    if len(content) > MAX_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB: split the file")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    rows: list[ImportRow] = []
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_uids: dict[str, str] = {}
    for where, raw in _raw_rows(path, text):
        try:
            row = _check(where, raw)
        except GovtuiError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if row.external_id in seen_ids:
            problems.append(
                f"{where}: external_id {row.external_id!r} repeats {seen_ids[row.external_id]}"
            )
            continue
        if row.directory_uid in seen_uids:
            problems.append(
                f"{where}: directory_uid {row.directory_uid!r} repeats {seen_uids[row.directory_uid]}"
            )
            continue
        seen_ids[row.external_id] = where
        seen_uids[row.directory_uid] = where
        rows.append(row)
    if not rows and not problems:
        raise InputError(f"{path}: no contractor rows")
    _raise_if(path, problems)
    return rows, hashlib.sha256(content).hexdigest()


def _raise_if(source: Path | str, problems: list[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    tail = [f"... and {more} more"] if more else []
    raise InputError(
        f"{source}: {len(problems)} bad row(s), nothing imported:\n  " + "\n  ".join(shown + tail)
    )


def apply(
    session: Session, actor: Operator, rows: list[ImportRow], *, source: str, sha256: str
) -> ImportResult:
    """Insert new contractors and update known ones in bulk, with one audit event.

    An update may reduce access, and every reduction reaches the directory in the same
    transaction: a changed uid moves the contractor's live grants from the old account to
    the new one (removals of the old, additions of the new for active grants), and a contract
    end brought forward caps the live grants' windows (ending those already past it)."""
    require_role(session, actor, "admin")
    existing = {
        ext: _Known(cid, uid, end)
        for ext, cid, uid, end in session.execute(
            sa.select(
                col(Contractor.external_id),
                col(Contractor.id),
                col(Contractor.directory_uid),
                col(Contractor.contract_end),
            )
        )
    }
    uid_owner = {known.directory_uid: ext for ext, known in existing.items()}
    problems = [
        f"{row.where}: directory_uid {row.directory_uid!r} belongs to contractor {owner!r}"
        for row in rows
        if (owner := uid_owner.get(row.directory_uid)) is not None and owner != row.external_id
    ]
    _raise_if(source, problems)
    now = clock.now()
    new = [
        {
            "external_id": r.external_id,
            "name": r.name,
            "email": r.email,
            "directory_uid": r.directory_uid,
            "contract_end": r.contract_end,
            "status": "active",
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
        if r.external_id not in existing
    ]
    known = [
        {
            "b_external_id": r.external_id,
            "name": r.name,
            "email": r.email,
            "directory_uid": r.directory_uid,
            "contract_end": r.contract_end,
            "updated_at": now,
        }
        for r in rows
        if r.external_id in existing
    ]
    moved = [
        (r.external_id, existing[r.external_id], r.directory_uid)
        for r in rows
        if r.external_id in existing and existing[r.external_id].directory_uid != r.directory_uid
    ]
    shortened: dict[date, list[int]] = {}
    for r in rows:
        if r.external_id in existing and r.contract_end < existing[r.external_id].contract_end:
            shortened.setdefault(r.contract_end, []).append(existing[r.external_id].id)
    moved_ids = [before.id for _, before, _ in moved]
    # The old accounts leave first: the outbox takes the uid from the contractor row, so these
    # removals name the old uid only while the row still holds it.
    ops = _queue_for(session, moved_ids, IN_DIRECTORY_STATES, _REMOVE)
    contractors = Contractor.__table__  # type: ignore[attr-defined]
    if new:
        session.execute(sa.insert(contractors), new)
    if known:
        session.execute(
            sa.update(contractors)
            .where(contractors.c.external_id == sa.bindparam("b_external_id"))
            .values(
                name=sa.bindparam("name"),
                email=sa.bindparam("email"),
                directory_uid=sa.bindparam("directory_uid"),
                contract_end=sa.bindparam("contract_end"),
                updated_at=sa.bindparam("updated_at"),
            ),
            known,
        )
    capped: list[int] = []
    ended: list[int] = []
    for end_day, ids in sorted(shortened.items()):
        result = grant_lifecycle.cap_expiry(
            session, contractor_id=ids, until=contract_end_instant(end_day), now=now
        )
        capped += result.capped
        ended += result.ended.ids
        ops += result.ended.directory_ops
    # The new accounts join after the caps, so a grant the import has just ended is not added.
    # Suspended grants stay out: resuming their pause adds them, under the new uid.
    ops += _queue_for(session, moved_ids, (GrantState.ACTIVE,), _ADD)
    details: dict[str, object] = {
        "sha256": sha256,
        "rows": len(rows),
        "created": len(new),
        "updated": len(known),
    }
    if moved:
        details["uid_changes"] = _uid_changes(moved)
    if shortened:
        details["contracts_shortened"] = sum(len(ids) for ids in shortened.values())
        details["grants_capped"] = audit.id_summary(capped)
        details["grants_ended"] = audit.id_summary(ended)
    if ops:
        details["directory_ops"] = ops
    audit.append(
        session,
        actor=actor.name,
        action="contractor.import",
        obj=f"file:{source}",
        details=details,
    )
    return ImportResult(
        created=len(new),
        updated=len(known),
        sha256=sha256,
        uid_changes=len(moved),
        capped=len(capped),
        ended=len(ended),
        directory_ops=ops,
    )


_ADD, _REMOVE = OutboxOperation.ADD_MEMBER.value, OutboxOperation.REMOVE_MEMBER.value


def _queue_for(
    session: Session, contractor_ids: list[int], states: tuple[GrantState, ...], operation: str
) -> int:
    """Queue `operation` for the grants in `states` of these contractors on every target.
    Directory operations only: no grant changes state here."""
    chunks = [
        sa.and_(
            col(Grant.contractor_id).in_(contractor_ids[start : start + _ID_CHUNK]),
            col(Grant.state).in_(states),
        )
        for start in range(0, len(contractor_ids), _ID_CHUNK)
    ]
    return outbox.enqueue_membership_where(session, chunks, operation) if chunks else 0


_ID_CHUNK = 20_000


def _uid_changes(moved: list[tuple[str, _Known, str]]) -> dict[str, object]:
    """Whose uid changed, from what to what: every change when few, else how many, a digest an
    auditor can recompute (SHA-256 of the sorted `external_id old new` lines) and the first
    MAX_REPORTED."""
    lines = sorted((ext, before.directory_uid, after) for ext, before, after in moved)
    digest = hashlib.sha256("\n".join(" ".join(line) for line in lines).encode()).hexdigest()
    return {
        "count": len(lines),
        "sha256": digest,
        "first": [{"external_id": e, "before": b, "after": a} for e, b, a in lines[:MAX_REPORTED]],
    }

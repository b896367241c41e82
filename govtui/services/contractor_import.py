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
from govtui.models import Contractor, Operator
from govtui.services import audit, validation
from govtui.services.operators import require_role

FIELDS = ("external_id", "name", "email", "directory_uid", "contract_end")
MAX_REPORTED = 50


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


def _raw_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, list):
            raise InputError(f"{path}: the JSON must be an array of contractor objects")
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
        for record in reader:
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
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
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
    """Insert new contractors and update known ones in bulk, with one audit event."""
    require_role(session, actor, "admin")
    existing: dict[str, str] = dict(
        session.execute(sa.select(col(Contractor.external_id), col(Contractor.directory_uid))).all()
    )
    uid_owner = {uid: ext for ext, uid in existing.items()}
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
    audit.append(
        session,
        actor=actor.name,
        action="contractor.import",
        obj=f"file:{source}",
        details={"sha256": sha256, "rows": len(rows), "created": len(new), "updated": len(known)},
    )
    return ImportResult(created=len(new), updated=len(known), sha256=sha256)

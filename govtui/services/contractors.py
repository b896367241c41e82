"""Contractors: add one, find them in windows of rows, show one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from govtui import clock
from govtui.errors import ConflictError, NotFoundError
from govtui.models import Contractor, Operator
from govtui.services import audit, validation
from govtui.services.operators import require_role

PAGE = 200
_RowSelect = sa.Select[int | None, str, str, str, str, date, str]


@dataclass(frozen=True)
class ContractorRow:
    """What a list shows of a contractor; `key` is the keyset cursor for the next window."""

    id: int
    external_id: str
    name: str
    email: str
    directory_uid: str
    contract_end: date
    status: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.id)


def find(session: Session, external_id: str) -> Contractor:
    """The contractor with this external id."""
    contractor = session.exec(
        select(Contractor).where(Contractor.external_id == external_id)
    ).first()
    if contractor is None:
        raise NotFoundError(f"unknown contractor {external_id!r}")
    return contractor


def add(
    session: Session,
    actor: Operator,
    *,
    external_id: str,
    name: str,
    email: str,
    directory_uid: str,
    contract_end: date | str,
) -> Contractor:
    """Create one contractor (admin only)."""
    require_role(session, actor, "admin")
    external_id = validation.external_id(external_id)
    uid = validation.directory_uid(directory_uid)
    end = validation.iso_date(contract_end, "contract end")
    if session.exec(select(Contractor.id).where(Contractor.external_id == external_id)).first():
        raise ConflictError(f"contractor {external_id!r} exists already")
    uid_owner = session.exec(
        select(Contractor.external_id).where(Contractor.directory_uid == uid)
    ).first()
    if uid_owner is not None:
        raise ConflictError(f"directory uid {uid!r} belongs to contractor {uid_owner!r}")
    now = clock.now()
    contractor = Contractor(
        external_id=external_id,
        name=validation.person_name(name),
        email=validation.email(email),
        directory_uid=uid,
        contract_end=end,
        created_at=now,
        updated_at=now,
    )
    session.add(contractor)
    session.flush()
    audit.append(
        session,
        actor=actor.name,
        action="contractor.add",
        obj=f"contractor:{external_id}",
        details={"directory_uid": uid, "contract_end": end.isoformat()},
    )
    return contractor


def _filtered(search: str | None) -> _RowSelect:
    query = sa.select(
        col(Contractor.id),
        col(Contractor.external_id),
        col(Contractor.name),
        col(Contractor.email),
        col(Contractor.directory_uid),
        col(Contractor.contract_end),
        col(Contractor.status),
    )
    if search:
        # LIKE with the wildcards in the search text escaped: a '%' typed by a person is a '%'.
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped.lower()}%"
        query = query.where(
            or_(
                func.lower(Contractor.name).like(pattern, escape="\\"),
                func.lower(Contractor.email).like(pattern, escape="\\"),
                func.lower(Contractor.external_id).like(pattern, escape="\\"),
                func.lower(Contractor.directory_uid).like(pattern, escape="\\"),
            )
        )
    return query


def window(
    session: Session,
    *,
    search: str | None = None,
    after: tuple[str, int] | None = None,
    from_end: bool = False,
    limit: int = PAGE,
) -> list[ContractorRow]:
    """One window of contractors ordered by name, after the keyset cursor `after` (or, with
    `from_end`, the last `limit` of them, still in name order)."""
    query = _filtered(search)
    if from_end:
        last = query.order_by(col(Contractor.name).desc(), col(Contractor.id).desc())
        return [ContractorRow(*row) for row in session.execute(last.limit(limit))][::-1]
    if after is not None:
        name, last_id = after
        query = query.where(
            or_(
                col(Contractor.name) > name,
                (col(Contractor.name) == name) & (col(Contractor.id) > last_id),
            )
        )
    query = query.order_by(col(Contractor.name), col(Contractor.id)).limit(limit)
    return [ContractorRow(*row) for row in session.execute(query)]


def count(session: Session, *, search: str | None = None) -> int:
    """How many contractors match the search."""
    subquery = _filtered(search).subquery()
    return int(session.execute(sa.select(func.count()).select_from(subquery)).scalar_one())


def search_ids(search: str) -> sa.Select[tuple[int | None]]:
    """The ids of the contractors `window` finds for `search` (the contractors screen's
    search), as a subquery other lists filter by."""
    return _filtered(search).with_only_columns(col(Contractor.id))


def stream(
    session: Session, *, search: str | None = None, limit: int | None = None, size: int = 1_000
) -> Iterator[ContractorRow]:
    """Every contractor `window` finds (or the first `limit`), by name, a keyset window of
    `size` at a time: memory stays bounded whatever their number."""
    after: tuple[str, int] | None = None
    left = limit
    while left is None or left > 0:
        want = size if left is None else min(size, left)
        rows = window(session, search=search, after=after, limit=want)
        yield from rows
        if len(rows) < want:
            return
        after = rows[-1].key
        if left is not None:
            left -= len(rows)

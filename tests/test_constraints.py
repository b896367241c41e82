"""The rules the database itself holds: each insert below must be refused by the database,
not just by the services, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError

from govtui import db
from govtui.models import (
    AuditEvent,
    Client,
    Contractor,
    DatasetScope,
    Grant,
    OperatorRole,
    Project,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _insert(engine: Engine, table: Any, **values: Any) -> None:
    with db.write_session(engine) as session:
        session.execute(sa.insert(table.__table__).values(**values))


def _client(engine: Engine, name: str = "acme") -> int:
    with db.write_session(engine) as session:
        client = Client(name=name, created_at=NOW)
        session.add(client)
        session.flush()
        return db.ident(client)


def _project(engine: Engine, client_id: int, name: str = "p1") -> int:
    with db.write_session(engine) as session:
        project = Project(client_id=client_id, name=name, created_at=NOW)
        session.add(project)
        session.flush()
        return db.ident(project)


def test_client_names_are_unique(engine: Engine) -> None:
    _client(engine, "acme")
    with pytest.raises(IntegrityError):
        _client(engine, "acme")


def test_project_names_unique_per_client_only(engine: Engine) -> None:
    a, b = _client(engine, "a"), _client(engine, "b")
    _project(engine, a, "shared")
    _project(engine, b, "shared")  # same name under another client is fine
    with pytest.raises(IntegrityError):
        _project(engine, a, "shared")


def test_scope_names_unique_per_project(engine: Engine) -> None:
    project = _project(engine, _client(engine))
    values = dict(
        project_id=project, name="s", sensitivity="internal", max_grant_days=5, created_at=NOW
    )
    _insert(engine, DatasetScope, **values)
    with pytest.raises(IntegrityError):
        _insert(engine, DatasetScope, **values)


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (Client, {"name": "x", "status": "frozen", "created_at": NOW}),
        (Client, {"name": "", "status": "active", "created_at": NOW}),
        (DatasetScope, {"name": "s", "sensitivity": "secret", "max_grant_days": 5}),
        (DatasetScope, {"name": "s", "sensitivity": "internal", "max_grant_days": 0}),
        (OperatorRole, {"role": "superuser"}),
        (Contractor, {"status": "fired"}),
    ],
    ids=[
        "client-status",
        "client-empty-name",
        "sensitivity",
        "max-days",
        "role",
        "contractor-status",
    ],
)
def test_bad_enum_and_range_values_are_refused(
    engine: Engine, admin: Any, table: Any, values: dict[str, Any]
) -> None:
    if table is DatasetScope:
        values = {**values, "project_id": _project(engine, _client(engine)), "created_at": NOW}
    if table is OperatorRole:
        values = {**values, "operator_id": admin.id}
    if table is Contractor:
        values = {
            **values,
            "external_id": "E1",
            "name": "N",
            "email": "n@x.example",
            "directory_uid": "n",
            "contract_end": date(2027, 1, 1),
            "created_at": NOW,
            "updated_at": NOW,
        }
    with pytest.raises(IntegrityError):
        _insert(engine, table, **values)


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(IntegrityError):
        _project(engine, client_id=9999)


def test_grant_access_level_and_state_are_checked(engine: Engine, admin: Any) -> None:
    project = _project(engine, _client(engine))
    _insert(
        engine,
        DatasetScope,
        project_id=project,
        name="s",
        sensitivity="internal",
        max_grant_days=5,
        created_at=NOW,
    )
    _insert(
        engine,
        Contractor,
        external_id="E1",
        name="N",
        email="n@x.example",
        directory_uid="n",
        contract_end=date(2027, 1, 1),
        status="active",
        created_at=NOW,
        updated_at=NOW,
    )
    with db.read_session(engine) as session:
        scope_id = session.execute(sa.select(DatasetScope.id)).scalar_one()  # type: ignore[call-overload]
        contractor_id = session.execute(sa.select(Contractor.id)).scalar_one()  # type: ignore[call-overload]
    base = dict(
        contractor_id=contractor_id,
        scope_id=scope_id,
        reason="r",
        requested_by=admin.id,
        requested_days=3,
        requested_at=NOW,
        access="read",
        state="requested",
    )
    _insert(engine, Grant, **base)
    for bad in (
        {"access": "admin"},
        {"state": "approved"},
        {"requested_days": 0},
        {"reason": ""},
        {"state": "active"},  # active without a window
        {"state": "revoked"},
    ):  # ended without ended_at
        with pytest.raises(IntegrityError):
            _insert(engine, Grant, **{**base, **bad})


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        _insert(engine, Client, name="x", status="active", created_at=datetime(2026, 1, 1))


def test_times_come_back_aware_utc(engine: Engine) -> None:
    from datetime import timedelta, timezone

    tokyo = datetime(2026, 5, 1, 18, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))
    _insert(engine, Client, name="x", status="active", created_at=tokyo)
    with db.read_session(engine) as session:
        stored = session.execute(sa.select(Client.created_at)).scalar_one()  # type: ignore[call-overload]
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == tokyo


def test_audit_seq_is_unique(engine: Engine) -> None:
    row = dict(seq=1, at=NOW, actor="a", action="x.y", object="o", details="{}", prev_hash="0" * 64)
    _insert(engine, AuditEvent, **row, hash="a" * 64)
    with pytest.raises(IntegrityError):
        _insert(engine, AuditEvent, **row, hash="b" * 64)

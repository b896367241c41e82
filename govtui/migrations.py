"""Schema creation and upgrades as a small ordered list of migrations.

Why not Alembic: it would add two packages (alembic, mako) to a tool whose users were hurt by a
poisoned dependency, for a schema that changes a few times a year. Each migration here is a
plain function run inside one transaction with the version row it records, so an upgrade is
all or nothing, and `govtui init` is idempotent: it applies only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from govtui import clock, models
from govtui.db import write_session
from govtui.errors import ConfigurationError

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial_schema(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)
    connection.execute(models.AuditHead.__table__.insert().values(id=1, seq=0, hash=GENESIS_HASH))  # type: ignore[attr-defined]


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial schema", _initial_schema),)
LATEST = MIGRATIONS[-1].version


def current_version(engine: Engine) -> int:
    """The highest applied migration, 0 for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("schema_version"):
            return 0
        versions = connection.execute(select(models.SchemaVersion.version)).scalars().all()  # type: ignore[call-overload]
    return max(versions, default=0)


def upgrade(engine: Engine) -> list[Migration]:
    """Apply every missing migration, each in its own transaction; return those applied."""
    applied: list[Migration] = []
    for migration in MIGRATIONS:
        with write_session(engine) as session:
            if _is_applied(session, migration.version):
                continue
            migration.apply(session.connection())
            session.add(
                models.SchemaVersion(
                    version=migration.version,
                    applied_at=clock.now(),
                    description=migration.description,
                )
            )
        applied.append(migration)
    return applied


def _is_applied(session: Session, version: int) -> bool:
    if not inspect(session.connection()).has_table("schema_version"):
        return False
    return session.get(models.SchemaVersion, version) is not None


def require_current(engine: Engine) -> None:
    """Refuse to work on a database that `govtui init` has not created or upgraded."""
    version = current_version(engine)
    if version == 0:
        raise ConfigurationError("the database has no govtui schema yet: run `govtui init`")
    if version < LATEST:
        raise ConfigurationError(
            f"the database schema is at version {version}, this govtui needs {LATEST}: run `govtui init`"
        )
    if version > LATEST:
        raise ConfigurationError(
            f"the database schema is at version {version}, newer than this govtui knows ({LATEST})"
        )

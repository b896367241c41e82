"""Schema creation and upgrades as a small ordered list of migrations.

Why not Alembic: it would add two packages (alembic, mako) to a tool whose users were hurt by a
poisoned dependency, for a schema that changes a few times a year. Each migration here is a
plain function run inside one transaction with the version row it records, so an upgrade is
all or nothing, and `govtui init` is idempotent: it applies only what is missing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import CheckConstraint, Connection, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from govtui import clock, models
from govtui.db import write_session
from govtui.errors import ConfigurationError
from govtui.vocabulary import ChangeKind, values

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial_schema(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)
    connection.execute(models.AuditHead.__table__.insert().values(id=1, seq=0, hash=GENESIS_HASH))  # type: ignore[attr-defined]
    _create_database_id(connection)


def _create_database_id(connection: Connection) -> None:
    connection.execute(
        insert(models.DatabaseIdentity.__table__).values(  # type: ignore[attr-defined]
            id=1, database_id=secrets.token_hex(16), created_at=clock.now()
        )
    )


_V1_GRANT_WINDOW = (
    "state NOT IN ('active', 'suspended') OR (starts_at IS NOT NULL AND expires_at IS NOT NULL)"
)


def _pause_support(connection: Connection) -> None:
    """Suspended requests (a pause suspends requests too) and outbox ops tied to a pause."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "ALTER TABLE access_grant DROP CONSTRAINT ck_access_grant_window"
        )
        connection.exec_driver_sql(
            "ALTER TABLE access_grant ADD CONSTRAINT ck_access_grant_window"
            f" CHECK ({models.GRANT_WINDOW_CHECK})"
        )
    else:
        _relax_sqlite_check(connection, "access_grant", _V1_GRANT_WINDOW, models.GRANT_WINDOW_CHECK)
    connection.exec_driver_sql(
        "ALTER TABLE outbox_op ADD COLUMN pause_id INTEGER REFERENCES client_pause (id)"
    )
    connection.exec_driver_sql("CREATE INDEX ix_outbox_op_pause_id ON outbox_op (pause_id)")


def _relax_sqlite_check(connection: Connection, table: str, old: str, new: str) -> None:
    """Replace a CHECK constraint's text with a weaker one in place. SQLite cannot alter a
    constraint; its documentation (ALTER TABLE, "making other kinds of table schema changes")
    sanctions editing sqlite_schema for exactly this case, since no stored row changes and
    every row that passed the old check passes the new one. A table rebuild would need
    foreign keys switched off, which cannot happen inside the migration's transaction."""
    sql = _sqlite_table_sql(connection, table)
    if sql.count(old) != 1:
        raise ConfigurationError(f"table {table} does not have the expected schema: cannot migrate")
    version = connection.exec_driver_sql("PRAGMA schema_version").scalar_one()
    connection.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        connection.exec_driver_sql(
            "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?",
            (sql.replace(old, new), table),
        )
        connection.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        connection.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = connection.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise ConfigurationError(f"integrity check after migrating {table}: {problems[0]}")


_V2_OUTBOX_STATES = "state IN ('pending', 'done', 'failed')"


def _directory_trust(connection: Connection) -> None:
    """Directory targets that name their TLS host, record an accepted plaintext bind, carry
    Active Directory's group settings and can be disabled; outbox ops that were cancelled."""
    table = models.DirectoryTarget.__table__  # type: ignore[attr-defined]
    for name in ("tls_name", "ad_group_type", "sam_template", "disabled_at", "disabled_reason"):
        # The column's own type, as this backend spells it, so that an upgraded database
        # and a fresh one agree.
        kind = table.c[name].type.compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE directory_target ADD COLUMN {name} {kind}")
    false = "false" if connection.dialect.name == "postgresql" else "0"
    connection.exec_driver_sql(
        "ALTER TABLE directory_target ADD COLUMN insecure_plaintext BOOLEAN NOT NULL"
        f" DEFAULT {false}"
    )
    states = ", ".join(f"'{v}'" for v in models.OUTBOX_STATES)
    _widen_check(
        connection, models.OutboxOp, "'pending'", _V2_OUTBOX_STATES, f"state IN ({states})"
    )


def _widen_check(
    connection: Connection, model: type[SQLModel], marker: str, old: str, new: str
) -> None:
    """Replace the CHECK constraint of `model` whose text holds `marker` (SQLite: whose text
    is `old`) with `new`, which every stored row passes. A table an earlier migration made
    from today's model has `new` already."""
    table = model.__table__  # type: ignore[attr-defined]
    if connection.dialect.name == "postgresql":
        # Named as the model names it. (DDL constructs over the model's own constraint object
        # would stop create_all from emitting it in this process afterwards.)
        (check_name,) = (
            c.name
            for c in table.constraints
            if isinstance(c, CheckConstraint) and marker in str(c.sqltext)
        )
        # Quoted by hand: the dialect's quoting doubles its %, and text() doubles it again.
        quoted = '"' + str(check_name).replace('"', '""') + '"'
        connection.execute(text(f"ALTER TABLE {table.name} DROP CONSTRAINT {quoted}"))
        connection.execute(text(f"ALTER TABLE {table.name} ADD CONSTRAINT {quoted} CHECK ({new})"))
    elif new not in _sqlite_table_sql(connection, table.name):
        _relax_sqlite_check(connection, table.name, old, new)


def _sqlite_table_sql(connection: Connection, table: str) -> str:
    return str(
        connection.exec_driver_sql(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
        ).scalar_one()
    )


def _bound_identities(connection: Connection) -> None:
    """Operators bound to a login (theirs by name until an admin says otherwise), removable,
    with keyring entries by random reference; role provenance; the database's own id."""
    false = "false" if connection.dialect.name == "postgresql" else "0"
    operator = models.Operator.__table__  # type: ignore[attr-defined]
    for name in (
        "login",
        "db_role",
        "disabled_at",
        "disabled_by",
        "totp_secret_ref",
        "totp_pending_ref",
        "enrol_allowed_by",
        "enrol_allowed_at",
    ):
        kind = operator.c[name].type.compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE operator ADD COLUMN {name} {kind}")
    connection.exec_driver_sql(
        f"ALTER TABLE operator ADD COLUMN shared_login BOOLEAN NOT NULL DEFAULT {false}"
    )
    connection.exec_driver_sql("UPDATE operator SET login = name")
    for table in ("operator_role", "operator_client"):
        columns = models.OperatorRole.__table__.c  # type: ignore[attr-defined]
        for name in ("granted_by", "confirmed_by", "granted_at"):
            kind = columns[name].type.compile(dialect=connection.dialect)
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    models.DatabaseIdentity.__table__.create(connection)  # type: ignore[attr-defined]
    models.PrivilegeChange.__table__.create(connection)  # type: ignore[attr-defined]
    _create_database_id(connection)


_V4_CHANGE_KINDS = (
    "kind IN ('role_add', 'role_remove', 'approves_add', 'operator_remove', 'totp_reset')"
)


def _access_reviews(connection: Connection) -> None:
    """Access review campaigns over a frozen population, their ordered reviewers, reviewers
    bound to clients, outbox ops tied to the campaign whose close queued them."""
    for name in ("review_item", "review_campaign"):
        # Created by version 1 and never written by any govtui: replaced, unless someone did.
        if connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one():
            raise ConfigurationError(
                f"table {name} holds rows no govtui wrote: cannot migrate to access reviews"
            )
        connection.exec_driver_sql(f"DROP TABLE {name}")
    # Created from today's models, so with the columns later versions add; review_schedule
    # (version 6) comes first because a campaign's schedule_id refers to it. Later
    # migrations add only what is missing.
    tables: list[type[SQLModel]] = [
        models.OperatorReviewClient,
        models.ReviewSchedule,
        models.ReviewCampaign,
        models.ReviewReviewer,
        models.ReviewItem,
    ]
    for model in tables:
        model.__table__.create(connection)  # type: ignore[attr-defined]
    connection.exec_driver_sql(
        "ALTER TABLE outbox_op ADD COLUMN review_campaign_id INTEGER"
        " REFERENCES review_campaign (id)"
    )
    connection.exec_driver_sql(
        "CREATE INDEX ix_outbox_op_review_campaign_id ON outbox_op (review_campaign_id)"
    )
    kinds = ", ".join(f"'{v}'" for v in values(ChangeKind))
    _widen_check(
        connection, models.PrivilegeChange, "'role_add'", _V4_CHANGE_KINDS, f"kind IN ({kinds})"
    )


def _evidence(connection: Connection) -> None:
    """Evidence keys, operators' signing keys and their signatures over access-adding acts;
    recurring review schedules; a review item's original reviewer; a campaign's schedule."""
    tables: list[type[SQLModel]] = [
        models.ReviewSchedule,
        models.ReviewScheduleReviewer,
        models.EvidenceKey,
        models.OperatorKey,
        models.ActSignature,
    ]
    for model in tables:
        model.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]
    added = {
        ("review_item", "original_reviewer_id"): "INTEGER REFERENCES operator (id)",
        ("review_campaign", "schedule_id"): "INTEGER REFERENCES review_schedule (id)",
    }
    for (table, column), kind in added.items():
        if column not in {c["name"] for c in inspect(connection).get_columns(table)}:
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _aggregate_indexes(connection: Connection) -> None:
    """Indexes that let the dashboard and the blast radius count a million grants from an
    index alone (access joins (scope, state); (contractor, state, scope) counts distinct
    holders in one ordered scan), and the grants screen page in expiry or state order."""
    connection.exec_driver_sql("DROP INDEX ix_access_grant_scope_state")
    connection.exec_driver_sql(
        "CREATE INDEX ix_access_grant_scope_state ON access_grant (scope_id, state, access)"
    )
    connection.exec_driver_sql(
        "CREATE INDEX ix_access_grant_holder ON access_grant (contractor_id, state, scope_id)"
    )
    # The grants screen's windows in expiry and in state order, without a sort of them all.
    connection.exec_driver_sql(
        "CREATE INDEX ix_access_grant_expires_id ON access_grant (expires_at, id)"
    )
    connection.exec_driver_sql("CREATE INDEX ix_access_grant_state_id ON access_grant (state, id)")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "pause: suspended requests, outbox ops tied to a pause", _pause_support),
    Migration(
        3, "directory: TLS name, plaintext flag, AD groups, disabled targets", _directory_trust
    ),
    Migration(
        4,
        "bound identities, role provenance, two-admin changes, keyring entries by database id",
        _bound_identities,
    ),
    Migration(
        5, "access reviews: campaigns, reviewers per client, outbox ops of a close", _access_reviews
    ),
    Migration(6, "evidence: signing keys, signed acts, recurring review schedules", _evidence),
    Migration(
        7,
        "indexes for a million grants: dashboard, blast radius, grant windows",
        _aggregate_indexes,
    ),
)
LATEST = MIGRATIONS[-1].version


def current_version(engine: Engine) -> int:
    """The highest applied migration, 0 for an empty database. Read-only: on SQLite it takes
    no write lock, so a command starting up never waits behind a long write."""
    with engine.execution_options(govtui_readonly=True).connect() as connection:
        if not inspect(connection).has_table("schema_version"):
            return 0
        versions = connection.execute(select(models.SchemaVersion.version)).scalars().all()  # type: ignore[call-overload]
    return max(versions, default=0)


def upgrade(engine: Engine) -> list[Migration]:
    """Apply every missing migration, each in its own transaction; return those applied. An
    empty database gets today's schema at once, recorded as every migration applied."""
    applied: list[Migration] = []
    for migration in MIGRATIONS:
        with write_session(engine) as session:
            if _is_applied(session, migration.version):
                continue
            fresh = migration.version == 1
            migration.apply(session.connection())
            # The initial schema is created from today's models, so it includes what the
            # later migrations add to an older database.
            for done in MIGRATIONS if fresh else (migration,):
                session.add(
                    models.SchemaVersion(
                        version=done.version,
                        applied_at=clock.now(),
                        description=done.description,
                    )
                )
        applied.extend(MIGRATIONS if fresh else (migration,))
        if fresh:
            break
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

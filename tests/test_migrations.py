"""Upgrading a database made by an earlier release: the released schema is frozen in
tests/fixtures, so these tests start from exactly what a user has on disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from govtui import clock, db, migrations, models

FIXTURES = Path(__file__).parent / "fixtures"


def _make_v1(url: str) -> Engine:
    """A database at schema version 1 holding one active grant."""
    engine = db.make_engine(url)
    ddl = (FIXTURES / f"schema_v1.{engine.dialect.name}.sql").read_text()
    now = clock.now()
    with engine.begin() as connection:
        for statement in ddl.split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        connection.execute(
            sa.text("INSERT INTO schema_version VALUES (1, :now, 'initial schema')"),
            {"now": now},
        )
        connection.execute(
            sa.text(f"INSERT INTO audit_head VALUES (1, 0, '{migrations.GENESIS_HASH}')")
        )
        _seed(connection)
    return engine


def _seed(connection: sa.Connection) -> None:
    """One client, scope, contractor, operator and active grant, in plain SQL."""
    now = clock.now()
    connection.execute(
        sa.text(
            "INSERT INTO client (id, name, status, created_at) VALUES (1, 'lab', 'active', :now)"
        ),
        {"now": now},
    )
    connection.execute(
        sa.text("INSERT INTO project (id, client_id, name, created_at) VALUES (1, 1, 'p', :now)"),
        {"now": now},
    )
    connection.execute(
        sa.text(
            "INSERT INTO dataset_scope (id, project_id, name, sensitivity, max_grant_days, created_at)"
            " VALUES (1, 1, 's', 'internal', 30, :now)"
        ),
        {"now": now},
    )
    connection.execute(
        sa.text(
            "INSERT INTO contractor (id, external_id, name, email, directory_uid, contract_end, status, created_at, updated_at)"
            " VALUES (1, 'c1', 'C One', 'c1@x.test', 'c1', :end, 'active', :now, :now)"
        ),
        {"now": now, "end": (now + timedelta(days=90)).date()},
    )
    connection.execute(
        sa.text(
            "INSERT INTO operator (id, name, totp_failures, created_at) VALUES (1, 'root', 0, :now)"
        ),
        {"now": now},
    )
    connection.execute(
        sa.text(
            "INSERT INTO access_grant (id, contractor_id, scope_id, access, state, reason, requested_by,"
            " requested_days, requested_at, starts_at, expires_at)"
            " VALUES (1, 1, 1, 'read', 'active', 'work', 1, 5, :now, :now, :end)"
        ),
        {"now": now, "end": now + timedelta(days=5)},
    )


def _insert_grant(engine: Engine, grant_id: int, state: str, *, window: bool) -> None:
    now = clock.now()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO access_grant (id, contractor_id, scope_id, access, state, reason, requested_by,"
                " requested_days, requested_at, starts_at, expires_at)"
                " VALUES (:id, 1, 1, :access, :state, 'work', 1, 5, :now, :start, :end)"
            ),
            {
                "id": grant_id,
                "access": {2: "label", 3: "write"}[grant_id],
                "state": state,
                "now": now,
                "start": now if window else None,
                "end": now + timedelta(days=5) if window else None,
            },
        )


def test_version_1_database_upgrades_to_pause_support(db_url: str) -> None:
    engine = _make_v1(db_url)
    assert migrations.current_version(engine) == 1
    with pytest.raises(Exception, match="govtui init"):
        migrations.require_current(engine)

    assert [m.version for m in migrations.upgrade(engine)] == [2, 3, 4, 5, 6, 7]
    migrations.require_current(engine)
    assert migrations.upgrade(engine) == []

    columns = {c["name"] for c in sa.inspect(engine).get_columns("outbox_op")}
    assert "pause_id" in columns
    with engine.connect() as connection:
        kept = connection.execute(
            sa.text("SELECT state FROM access_grant WHERE id = 1")
        ).scalar_one()
    assert kept == "active"
    _insert_grant(engine, 2, "suspended", window=False)  # a request suspended by a pause
    with pytest.raises(IntegrityError, match="ck_access_grant_window"):
        _insert_grant(engine, 3, "active", window=False)  # the old rule still holds for active
    engine.dispose()


def test_fresh_database_has_the_same_rules_as_an_upgraded_one(db_url: str) -> None:
    engine = db.make_engine(db_url)
    migrations.upgrade(engine)
    with engine.begin() as connection:
        _seed(connection)
    assert "pause_id" in {c["name"] for c in sa.inspect(engine).get_columns("outbox_op")}
    _insert_grant(engine, 2, "suspended", window=False)
    with pytest.raises(IntegrityError, match="ck_access_grant_window"):
        _insert_grant(engine, 3, "active", window=False)
    engine.dispose()


def _target_and_op(engine: Engine, state: str) -> None:
    with engine.begin() as connection:
        now = datetime(2026, 3, 2, tzinfo=UTC)
        if not connection.execute(sa.text("SELECT count(*) FROM directory_target")).scalar_one():
            connection.execute(
                sa.text(
                    "INSERT INTO directory_target (id, name, url, bind_dn, users_base, groups_base,"
                    " flavour, starttls, group_template, create_groups, max_attempts, created_at)"
                    " VALUES (7, 'corp', 'ldaps://x', 'cn=a', 'ou=p', 'ou=g', 'ad', :f, 'cn={client}',"
                    " :t, 8, :now)"
                ),
                {"now": now, "f": False, "t": True},
            )
        connection.execute(
            sa.text(
                "INSERT INTO outbox_op (target_id, operation, directory_uid, state, attempts,"
                " next_attempt_at, created_at) VALUES (7, 'remove_member', 'u1', :state, 0,"
                " :now, :now)"
            ),
            {"now": now, "state": state},
        )


def test_version_2_database_gains_directory_trust_columns_and_cancelled_ops(db_url: str) -> None:
    """Schema version 3: a target made before it reads as not insecure, with no TLS name, and
    an op can be cancelled; an unknown op state is still refused."""
    engine = _make_v1(db_url)
    assert [m.version for m in migrations.upgrade(engine)] == [2, 3, 4, 5, 6, 7]
    _target_and_op(engine, "cancelled")
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT insecure_plaintext, tls_name, disabled_at FROM directory_target")
        ).one()
    assert (bool(row[0]), row[1], row[2]) == (False, None, None)
    with pytest.raises(IntegrityError, match=r"(?i)check constraint.*state"):
        _target_and_op(engine, "lost")
    engine.dispose()


def test_fresh_database_accepts_cancelled_ops_like_an_upgraded_one(db_url: str) -> None:
    engine = db.make_engine(db_url)
    migrations.upgrade(engine)
    _target_and_op(engine, "cancelled")
    with pytest.raises(IntegrityError, match=r"(?i)check constraint.*state"):
        _target_and_op(engine, "lost")
    engine.dispose()


def test_version_3_database_gains_bound_identities_and_a_database_id(db_url: str) -> None:
    """Schema version 4: an operator made before it is bound to the login of their own name,
    not shared, not removed; roles carry no provenance; the database gets one random id."""
    engine = _make_v1(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO operator_role VALUES (1, 'admin')"))
    migrations.upgrade(engine)
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT login, db_role, shared_login, disabled_at, totp_secret_ref FROM operator"
            )
        ).one()
        role = connection.execute(
            sa.text("SELECT granted_by, confirmed_by FROM operator_role")
        ).one()
        ids = connection.execute(sa.text("SELECT database_id FROM database_identity")).all()
    assert (row[0], row[1], bool(row[2]), row[3], row[4]) == ("root", None, False, None, None)
    assert tuple(role) == (None, None)
    assert len(ids) == 1 and len(ids[0][0]) == 32
    engine.dispose()


def test_fresh_databases_get_distinct_ids(tmp_path: Path) -> None:
    found = set()
    for name in ("a", "b"):
        engine = db.make_engine(f"sqlite:///{tmp_path / name}.db")
        migrations.upgrade(engine)
        with engine.connect() as connection:
            found.add(
                connection.execute(
                    sa.text("SELECT database_id FROM database_identity")
                ).scalar_one()
            )
        engine.dispose()
    assert len(found) == 2


def test_version_4_database_gains_access_reviews(db_url: str) -> None:
    """Schema version 5: the unused review tables of version 1 are replaced by campaigns with
    a frozen population, ordered reviewers and decided items; a reviewer can be bound to a
    client; an outbox op can name the campaign whose close queued it; and a privilege change
    can add a reviewer."""
    engine = _make_v1(db_url)
    migrations.upgrade(engine)
    inspector = sa.inspect(engine)
    columns = {c["name"] for c in inspector.get_columns("review_campaign")}
    assert {"population_sha256", "item_count", "if_no_answer", "close_started_at"} <= columns
    assert {"shorten_until", "outcome", "totp_step"} <= {
        c["name"] for c in inspector.get_columns("review_item")
    }
    assert inspector.has_table("review_reviewer") and inspector.has_table("operator_review_client")
    assert "review_campaign_id" in {c["name"] for c in inspector.get_columns("outbox_op")}
    now = clock.now()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO privilege_change (kind, operator_id, client_id, requested_by,"
                " requested_at, state) VALUES ('reviews_add', 1, 1, 1, :now, 'pending')"
            ),
            {"now": now},
        )
    with pytest.raises(IntegrityError, match=r"(?i)check constraint.*kind"), engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO privilege_change (kind, operator_id, requested_by, requested_at,"
                " state) VALUES ('everything', 1, 1, :now, 'pending')"
            ),
            {"now": now},
        )
    engine.dispose()


def test_version_1_review_rows_nobody_wrote_stop_the_upgrade(db_url: str) -> None:
    """The version 1 review tables were never written by govtui: rows in them are someone's
    data, so the upgrade that replaces the tables refuses rather than drop them."""
    engine = _make_v1(db_url)
    now = clock.now()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO review_campaign (id, name, reviewer_id, due_at, revoke_unanswered,"
                " state, created_by, created_at) VALUES (1, 'q1', 1, :now, false, 'open', 1, :now)"
            ),
            {"now": now},
        )
    with pytest.raises(Exception, match="holds rows no govtui wrote"):
        migrations.upgrade(engine)
    assert migrations.current_version(engine) == 4
    engine.dispose()


def test_version_5_database_gains_evidence_keys_signed_acts_and_schedules(db_url: str) -> None:
    """Schema version 6: evidence keys (one current at most), operator keys, act signatures,
    review schedules; a review item can name its original reviewer."""
    engine = _make_v1(db_url)
    migrations.upgrade(engine)
    inspector = sa.inspect(engine)
    for table in (
        "evidence_key",
        "operator_key",
        "act_signature",
        "review_schedule",
        "review_schedule_reviewer",
    ):
        assert inspector.has_table(table), table
    assert "original_reviewer_id" in {c["name"] for c in inspector.get_columns("review_item")}
    assert "schedule_id" in {c["name"] for c in inspector.get_columns("review_campaign")}
    now = clock.now()
    insert = sa.text(
        "INSERT INTO evidence_key (fingerprint, public_key, keyring_ref, created_by, created_at)"
        " VALUES (:f, 'pem', 'ref', 1, :now)"
    )
    with engine.begin() as connection:
        connection.execute(insert, {"f": "SHA256:a", "now": now})
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert, {"f": "SHA256:b", "now": now})  # a second current key
    engine.dispose()


def test_version_6_database_gains_the_indexes_of_counts_at_scale(db_url: str) -> None:
    """Schema version 7: an upgraded database has the grant indexes a fresh one has, with the
    same columns: (scope, state, access) and the holder index (contractor, state, scope)."""
    engine = _make_v1(db_url)
    migrations.upgrade(engine)
    found = {
        index["name"]: list(index["column_names"])
        for index in sa.inspect(engine).get_indexes("access_grant")
    }
    table = models.Grant.__table__  # type: ignore[attr-defined]
    wanted = {index.name: [c.name for c in index.columns] for index in table.indexes}
    assert found == wanted
    assert found["ix_access_grant_scope_state"] == ["scope_id", "state", "access"]
    assert found["ix_access_grant_holder"] == ["contractor_id", "state", "scope_id"]
    engine.dispose()

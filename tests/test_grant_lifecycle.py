"""The grant lifecycle has one owner: only govtui.services.grant_lifecycle writes a grant's
state, each of its transitions does all its parts, and the schema's words are the enums'."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path
from typing import get_args

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from govtui import clock, db, models, vocabulary
from govtui.models import ClientPause, Grant, GrantExtension, OutboxOp, PausedGrant
from govtui.services import catalog, directory_targets, grant_lifecycle, grants, operators
from govtui.vocabulary import GrantState, values, values_of

from .conftest import FakeClock
from .factories import World, small_vendor

OWNER = Path(grant_lifecycle.__file__).resolve()
PACKAGE = OWNER.parents[1]  # govtui/, found from the module rather than named
_RAW_UPDATE = re.compile(r"\bUPDATE\s+access_grant\b", re.IGNORECASE)


def _leaves(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [leaf for element in target.elts for leaf in _leaves(element)]
    return [target]


def _names_a_grant(node: ast.expr) -> bool:
    """`grant`, `subject.grant`, `live_grant`...: the heuristic is the name, not the type."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return "grant" in name.lower() and "extension" not in name.lower()


def _grant_tables(tree: ast.Module) -> set[str]:
    """Names bound to Grant.__table__ in the module (like `_GRANT`), besides `Grant` itself."""
    names = {"Grant"}
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(value, ast.Attribute)
            and value.attr == "__table__"
            and isinstance(value.value, ast.Name)
            and value.value.id == "Grant"
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _is_grant_table(node: ast.expr, tables: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in tables
    return isinstance(node, ast.Attribute) and (
        node.attr == "__table__" and _is_grant_table(node.value, tables)
    )


def state_writes(source: str) -> list[int]:
    """The lines of `source` that assign a grant's state or UPDATE the grant table."""
    tree = ast.parse(source)
    tables = _grant_tables(tree)
    hits: list[int] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        hits.extend(
            leaf.lineno
            for target in targets
            for leaf in _leaves(target)
            if isinstance(leaf, ast.Attribute)
            and leaf.attr == "state"
            and _names_a_grant(leaf.value)
        )
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "update" and (
                (node.args and _is_grant_table(node.args[0], tables))
                or (isinstance(func, ast.Attribute) and _is_grant_table(func.value, tables))
            ):
                hits.append(node.lineno)
            if (
                called == "setattr"
                and len(node.args) >= 2
                and _names_a_grant(node.args[0])
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "state"
            ):
                hits.append(node.lineno)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _RAW_UPDATE.search(node.value)
        ):
            hits.append(node.lineno)
    return hits


def test_only_the_lifecycle_writes_a_grants_state() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40 and OWNER in modules  # the walk found the package
    offenders = {
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in modules
        if path != OWNER
        for line in state_writes(path.read_text())
    }
    assert not offenders, "only govtui/services/grant_lifecycle.py may write Grant.state"
    assert state_writes(OWNER.read_text())  # the scan sees the writes where they belong


@pytest.mark.parametrize(
    "source",
    [
        "grant.state = 'revoked'",
        "subject.grant.state = GrantState.ACTIVE",
        "grant.state, grant.ended_at = 'denied', now",
        "setattr(grant, 'state', 'expired')",
        "session.execute(sa.update(Grant).values(state='expired'))",
        "_GRANT: sa.Table = Grant.__table__\nsession.execute(sa.update(_GRANT))",
        "T = Grant.__table__\nsession.execute(T.update().values(state='x'))",
        "session.execute(Grant.__table__.update())",
        "session.exec_driver_sql(\"update access_grant set state = 'revoked'\")",
    ],
)
def test_the_scan_sees_each_way_of_writing_the_state(source: str) -> None:
    assert state_writes(source)


def test_the_scan_leaves_other_writes_alone() -> None:
    source = (
        "extension.state = 'void'\nlocked.status = 'paused'\n"
        "session.execute(sa.update(GrantExtension).values(state='void'))\n"
        "grant.expires_at = later\nif grant.state == 'active': pass\n"
    )
    assert state_writes(source) == []


def _column_words(table: sa.Table, name: str) -> tuple[str, ...]:
    (check,) = [
        c
        for c in table.constraints
        if isinstance(c, sa.CheckConstraint)
        and str(c.name).replace("%(table_name)s", table.name) == name
    ]
    text = str(check.sqltext)
    return tuple(re.findall(r"'([^']*)'", text[text.index(" IN (") :]))


@pytest.mark.parametrize(
    ("table", "column", "words"),
    [
        ("client", "status", values(vocabulary.ClientStatus)),
        ("dataset_scope", "sensitivity", values(vocabulary.Sensitivity)),
        ("contractor", "status", values(vocabulary.ContractorStatus)),
        ("operator_role", "role", values(vocabulary.Role)),
        ("access_grant", "state", values(vocabulary.GrantState)),
        ("access_grant", "access", values(vocabulary.AccessLevel)),
        ("grant_extension", "state", values(vocabulary.ExtensionState)),
        ("approval", "decision", values(vocabulary.Decision)),
        ("paused_grant", "prior_state", values_of(vocabulary.SUSPENDABLE_STATES)),
        ("review_campaign", "state", values(vocabulary.CampaignState)),
        ("directory_target", "flavour", values(vocabulary.DirectoryFlavour)),
        ("group_mapping", "access", values(vocabulary.AccessLevel)),
        ("outbox_op", "operation", values(vocabulary.OutboxOperation)),
        ("outbox_op", "state", values(vocabulary.OutboxState)),
    ],
)
def test_check_constraints_hold_the_enums_words(
    table: str, column: str, words: tuple[str, ...]
) -> None:
    found = SQLModel.metadata.tables[table]
    assert _column_words(found, f"ck_{table}_{column}") == words


def test_the_other_grant_rules_use_the_enums_words() -> None:
    grant_table = SQLModel.metadata.tables["access_grant"]
    (live,) = [ix for ix in grant_table.indexes if ix.name == "ux_access_grant_live"]
    for dialect in ("sqlite", "postgresql"):
        where = str(live.dialect_options[dialect]["where"])
        assert tuple(re.findall(r"'([^']*)'", where)) == values_of(vocabulary.LIVE_STATES)
    ended = _column_words(grant_table, "ck_access_grant_ended")
    assert ended == values_of(vocabulary.ENDED_STATES)
    review = SQLModel.metadata.tables["review_item"]
    assert _column_words(review, "ck_review_item_decision") == values(vocabulary.ReviewDecision)
    assert get_args(vocabulary.RoleName) == values(vocabulary.Role)
    assert set(vocabulary.LIVE_STATES) | set(vocabulary.ENDED_STATES) == set(GrantState)
    assert set(vocabulary.IN_DIRECTORY_STATES) < set(vocabulary.LIVE_STATES)


# The transitions, called directly, against one directory target (never contacted: queueing
# an operation needs only the target's row and its group template).


@pytest.fixture
def world(engine: Engine, memory_keyring: object) -> World:
    found = small_vendor(engine)
    with db.write_session(engine) as session:
        directory_targets.add(
            session,
            operators.find(session, "root"),
            name="ldap",
            url="ldap://127.0.0.1:9",
            insecure_plaintext=True,
            bind_dn="cn=admin,dc=test",
            users_base="ou=people,dc=test",
            groups_base="ou=groups,dc=test",
            password="secret",
        )
    return found


def _root_id(session: Session) -> int:
    return db.ident(operators.find(session, "root"))


def _ops(session: Session, after: int = 0) -> list[tuple[int | None, str, int | None]]:
    """The pending outbox operations queued after operation `after`, in order."""
    return [
        (op.grant_id, op.operation, op.pause_id)
        for op in session.exec(
            select(OutboxOp)
            .where(OutboxOp.state == "pending", col(OutboxOp.id) > after)
            .order_by(col(OutboxOp.id))
        )
    ]


def _last_op(session: Session) -> int:
    return int(
        session.execute(sa.select(sa.func.coalesce(sa.func.max(col(OutboxOp.id)), 0))).scalar_one()
    )


def _extension_states(session: Session, grant_id: int) -> list[str]:
    return list(
        session.exec(select(GrantExtension.state).where(GrantExtension.grant_id == grant_id))
    )


def test_end_voids_extensions_and_removes_only_what_is_in_the_directory(
    world: World, fake_clock: FakeClock
) -> None:
    active = world.request("E1")
    world.approve(active)
    with db.write_session(world.engine) as session:
        grants.extend(session, world.op("req"), grant_id=active, days=3, reason="more")
    waiting = world.request("E1", access="label")
    with db.write_session(world.engine) as session:
        added = {gid for gid, operation, _ in _ops(session) if operation == "add_member"}
        assert added == {active}  # the approval's activation queued it

    fake_clock.advance(hours=1)
    with db.write_session(world.engine) as session:
        ended = grant_lifecycle.end(
            session,
            [waiting, active],
            to=GrantState.REVOKED,
            ended_by=_root_id(session),
            reason="project over",
            now=clock.now(),
        )
        assert ended.ids == [active, waiting] and ended.directory_ops == 1
        removals = [
            (gid, pid) for gid, operation, pid in _ops(session) if operation == "remove_member"
        ]
        assert removals == [(active, None)]
        assert _extension_states(session, active) == ["void"]
        for gid in (active, waiting):
            row = session.get(Grant, gid)
            assert row is not None
            assert (row.state, row.end_reason, row.ended_at, row.ended_by) == (
                "revoked",
                "project over",
                fake_clock.current,
                _root_id(session),
            )
        # An ended grant ends once: naming it again changes nothing.
        again = grant_lifecycle.end(
            session, [active], to=GrantState.EXPIRED, ended_by=None, reason="x", now=clock.now()
        )
        assert again.ids == [] and again.directory_ops == 0


def test_each_end_comes_only_from_its_own_states(world: World) -> None:
    active = world.request("E1")
    world.approve(active)
    waiting = world.request("E1", access="label")
    with db.write_session(world.engine) as session:
        now = clock.now()
        denied = grant_lifecycle.end(
            session, [active, waiting], to=GrantState.DENIED, ended_by=None, reason="no", now=now
        )
        assert denied.ids == [waiting] and denied.directory_ops == 0
        expired = grant_lifecycle.end(
            session,
            col(Grant.contractor_id).is_not(None),  # the condition form: every grant
            to=GrantState.EXPIRED,
            ended_by=None,
            reason="expired",
            now=now,
        )
        assert expired.ids == [active] and expired.directory_ops == 1
        with pytest.raises(ValueError, match="not an end state"):
            grant_lifecycle.end(
                session, [active], to=GrantState.ACTIVE, ended_by=None, reason="x", now=now
            )


def test_suspend_then_restore_gives_back_exactly_what_was_suspended(
    world: World, fake_clock: FakeClock
) -> None:
    active = world.request("E1", days=30)
    world.approve(active)
    short = world.request("E1", access="write", days=1)
    world.approve(short, by="bob")
    waiting = world.request("E1", access="label")
    elsewhere = world.request("E1", scope="other/p/s")
    before = world.grant(active)
    with db.write_session(world.engine) as session:
        acme = catalog.find_client(session, "acme")
        record = ClientPause(
            client_id=db.ident(acme),
            reason="test",
            paused_by=_root_id(session),
            paused_at=clock.now(),
        )
        session.add(record)
        session.flush()
        pause_id = db.ident(record)
        acme_scopes = sa.select(col(models.DatasetScope.id)).where(
            col(models.DatasetScope.project_id)
            == db.ident(catalog.find_project(session, "acme", "rlhf"))
        )
        start = _last_op(session)
        suspended = grant_lifecycle.suspend(
            session, pause_id=pause_id, which=col(Grant.scope_id).in_(acme_scopes), of="acme"
        )
        assert (suspended.active, suspended.requests) == ([active, short], [waiting])
        assert suspended.ids == [active, short, waiting] and suspended.directory_ops == 2
        assert _ops(session, start) == [
            (active, "remove_member", pause_id),
            (short, "remove_member", pause_id),
        ]
        recorded = dict(
            session.execute(
                sa.select(col(PausedGrant.grant_id), col(PausedGrant.prior_state))
            ).all()
        )
        assert recorded == {active: "active", short: "active", waiting: "requested"}

    states = {gid: world.grant(gid).state for gid in (active, short, waiting, elsewhere)}
    assert states == {
        active: "suspended",
        short: "suspended",
        waiting: "suspended",
        elsewhere: "requested",
    }
    fake_clock.advance(days=2)  # `short` runs out while suspended
    with db.write_session(world.engine) as session:
        start = _last_op(session)
        restored = grant_lifecycle.restore(session, pause_id=pause_id, now=clock.now())
        assert (restored.active, restored.requests) == ([active], [waiting])
        assert restored.directory_ops == 1
        assert _ops(session, start) == [(active, "add_member", pause_id)]
    after = world.grant(active)
    assert after.state == "active" and after.expires_at == before.expires_at
    assert world.grant(waiting).state == "requested" and world.grant(short).state == "suspended"


def test_request_and_activation_go_through_the_lifecycle(
    world: World, fake_clock: FakeClock
) -> None:
    grant_id = world.request("E1", days=5)
    assert world.grant(grant_id).state == "requested"
    world.approve(grant_id)
    active = world.grant(grant_id)
    assert active.state == "active" and active.starts_at == fake_clock.current
    assert active.expires_at == fake_clock.current + timedelta(days=5)

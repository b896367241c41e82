"""Clients, projects, scopes and operators through the services: roles, names, tier caps."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import Operator
from govtui.services import catalog, operators


def _catalog(engine: Engine, admin: Operator) -> None:
    with db.write_session(engine) as session:
        catalog.add_client(session, admin, name="acme")
        catalog.add_project(session, admin, path="acme/rlhf")
        catalog.add_scope(session, admin, path="acme/rlhf/pairs", sensitivity="confidential")
        catalog.add_scope(
            session, admin, path="acme/rlhf/redteam", sensitivity="restricted", max_days=7
        )


def test_scope_paths_and_tier_caps(engine: Engine, admin: Operator) -> None:
    _catalog(engine, admin)
    with db.read_session(engine) as session:
        scopes = {s.path: s for s in catalog.list_scopes(session)}
        assert catalog.find_scope(session, "acme/rlhf/pairs").max_grant_days == 30
    assert scopes["acme/rlhf/redteam"].max_grant_days == 7
    assert scopes["acme/rlhf/pairs"].sensitivity == "confidential"


@pytest.mark.parametrize(
    ("path", "sensitivity", "days", "error", "match"),
    [
        ("acme/rlhf/x", "restricted", 15, InputError, "cap of 14"),
        ("acme/rlhf/x", "internal", 0, InputError, "at least 1"),
        ("acme/rlhf/x", "secret", None, InputError, "sensitivity"),
        ("acme/rlhf", "internal", None, InputError, "CLIENT/PROJECT/SCOPE"),
        ("acme/nope/x", "internal", None, NotFoundError, "unknown project"),
        ("acme/rlhf/pairs", "internal", None, ConflictError, "exists already"),
        ("acme/rlhf/bad,ou=admins", "internal", None, InputError, "invalid scope name"),
    ],
)
def test_bad_scopes_are_refused(
    engine: Engine,
    admin: Operator,
    path: str,
    sensitivity: str,
    days: int | None,
    error: type[Exception],
    match: str,
) -> None:
    _catalog(engine, admin)
    with pytest.raises(error, match=match), db.write_session(engine) as session:
        catalog.add_scope(session, admin, path=path, sensitivity=sensitivity, max_days=days)


def test_only_admins_change_the_catalog(engine: Engine, admin: Operator) -> None:
    with db.write_session(engine) as session:
        clerk = operators.add(session, admin, name="clerk", roles=["requester"])
    with pytest.raises(PolicyError, match="admin"), db.write_session(engine) as session:
        catalog.add_client(session, clerk, name="acme")


def test_first_operator_must_be_admin_and_later_ones_need_an_admin(engine: Engine) -> None:
    with pytest.raises(PolicyError, match="first operator"), db.write_session(engine) as session:
        operators.add(session, None, name="x", roles=["approver"])
    with db.write_session(engine) as session:
        first = operators.add(session, None, name="boss", roles=["admin"])
    with pytest.raises(PolicyError, match="exist already"), db.write_session(engine) as session:
        operators.add(session, None, name="sneaky", roles=["admin"])
    with db.write_session(engine) as session:
        catalog.add_client(session, first, name="acme")
        operators.add(session, first, name="appr", roles=["approver"], approves=["acme"])
    with pytest.raises(ConflictError), db.write_session(engine) as session:
        operators.add(session, first, name="appr", roles=["approver"])
    with pytest.raises(PolicyError, match="approver role"), db.write_session(engine) as session:
        operators.add(session, first, name="r", roles=["reviewer"], approves=["acme"])
    with pytest.raises(NotFoundError, match="unknown client"), db.write_session(engine) as session:
        operators.add(session, first, name="r", roles=["approver"], approves=["nope"])
    with db.read_session(engine) as session:
        views = {v.name: v for v in operators.list_all(session)}
    assert views["appr"].roles == ("approver",) and views["appr"].approves == ("acme",)
    assert set(views) == {"boss", "appr"}

"""A small vendor for grant tests: one client, three scopes, contractors, enrolled approvers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.engine import Engine

from govtui import db
from govtui.models import Grant, Operator
from govtui.services import catalog, contractors, grants, operators

from .conftest import code, enroll


@dataclass
class World:
    engine: Engine
    secrets: dict[str, str]

    def op(self, name: str) -> Operator:
        with db.read_session(self.engine) as session:
            return operators.find(session, name)

    def code(self, name: str, offset: int = 0) -> str:
        return code(self.secrets[name], offset)

    def request(
        self,
        contractor: str = "E1",
        scope: str = "acme/rlhf/pairs",
        access: str = "read",
        days: int = 10,
        by: str = "req",
    ) -> int:
        with db.write_session(self.engine) as session:
            grant = grants.request(
                session,
                self.op(by),
                contractor=contractor,
                scope_path=scope,
                access=access,
                days=days,
                reason="labelling batch",
            )
            return db.ident(grant)

    def approve(
        self, *ids: int, by: str = "ann", totp: str | None = None
    ) -> list[grants.ApprovalOutcome]:
        with db.write_session(self.engine) as session:
            return grants.approve(
                session,
                self.op(by),
                grant_ids=list(ids),
                code=totp if totp is not None else self.code(by),
            )

    def grant(self, grant_id: int) -> Grant:
        with db.read_session(self.engine) as session:
            found = session.get(Grant, grant_id)
            assert found is not None
            return found


def build(engine: Engine) -> World:
    with db.write_session(engine) as session:
        root = operators.add(session, None, name="root", roles=["admin", "requester"])
        catalog.add_client(session, root, name="acme")
        catalog.add_client(session, root, name="other")
        catalog.add_project(session, root, path="acme/rlhf")
        catalog.add_project(session, root, path="other/p")
        catalog.add_scope(session, root, path="acme/rlhf/pairs", sensitivity="confidential")
        catalog.add_scope(session, root, path="acme/rlhf/redteam", sensitivity="restricted")
        catalog.add_scope(
            session, root, path="acme/rlhf/notes", sensitivity="internal", max_days=60
        )
        catalog.add_scope(session, root, path="other/p/s", sensitivity="internal")
        operators.add(session, root, name="req", roles=["requester"])
        operators.add(session, root, name="ann", roles=["approver", "requester"], approves=["acme"])
        operators.add(session, root, name="bob", roles=["approver"], approves=["acme"])
        operators.add(session, root, name="olga", roles=["approver"], approves=["other"])
        contractors.add(
            session,
            root,
            external_id="E1",
            name="Ada",
            email="ada@x.example",
            directory_uid="ada",
            contract_end=date(2027, 12, 31),
        )
        contractors.add(
            session,
            root,
            external_id="E2",
            name="Bo",
            email="bo@x.example",
            directory_uid="bo",
            contract_end=date(2026, 3, 6),
        )
    secrets = {name: enroll(engine, name) for name in ("ann", "bob", "olga")}
    return World(engine, secrets)

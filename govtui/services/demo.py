"""Demo data: a small vendor with three clients, for trying govtui without real data."""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError
from govtui.models import Client, Contractor, DatasetScope, Grant, Operator, Project
from govtui.services import audit, catalog, contractor_import, identity, operators, reviews

ADMIN = "alex"
CLIENTS = {
    "helios-labs": {
        "rlhf-chat": [("preference-pairs", "confidential"), ("safety-redteam", "restricted")],
        "code-tutor": [("solutions", "internal"), ("grading-rubrics", "confidential")],
    },
    "northwind-ai": {
        "med-qa": [("clinical-notes", "restricted"), ("qa-pairs", "confidential")],
    },
    "orbital-research": {
        "math-proofs": [("problems", "internal"), ("proof-checks", "internal")],
        "agent-evals": [("traces", "confidential")],
    },
}
FIRST = [
    "Ada",
    "Ben",
    "Chen",
    "Dara",
    "Elif",
    "Femi",
    "Gita",
    "Hugo",
    "Iris",
    "Jonas",
    "Kemi",
    "Lars",
    "Maya",
    "Nour",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Vik",
]
LAST = [
    "Abara",
    "Berg",
    "Costa",
    "Diaz",
    "Eze",
    "Fischer",
    "Gupta",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowal",
    "Lopez",
    "Mensah",
    "Novak",
    "Okafor",
    "Park",
    "Quist",
    "Rossi",
    "Sato",
    "Tan",
]


def load(session: Session, *, contractors: int = 400, seed: int = 7) -> str:
    """Fill an empty database with demo operators, clients, scopes, contractors and grants;
    return the name of the demo admin (act as them with --as or GOVTUI_OPERATOR)."""
    if session.execute(sa.select(sa.func.count()).select_from(Client)).scalar_one():
        raise ConflictError("the database has clients already: demo data goes into an empty one")
    rng = random.Random(seed)  # noqa: S311 - demo names, not secrets
    # Every demo operator is bound to the login running the demo, marked --shared-login: one
    # person plays them all, which is exactly what separation of duties forbids for real use
    # (`operator list` says so in red).
    me = identity.os_login()
    bound: dict[str, Any] = {"login": me, "shared_login": True}
    admin = (
        operators.add(
            session,
            None,
            name=ADMIN,
            roles=["admin", "requester"],
            bootstrap_actor="demo",
            **bound,
        )
        if operators.count(session) == 0
        else operators.find(session, ADMIN)
    )
    for client, projects in CLIENTS.items():
        catalog.add_client(session, admin, name=client)
        for project, scopes in projects.items():
            catalog.add_project(session, admin, path=f"{client}/{project}")
            for scope, sensitivity in scopes:
                catalog.add_scope(
                    session, admin, path=f"{client}/{project}/{scope}", sensitivity=sensitivity
                )
    # blair and dana review every demo client, so the demo can run an access review; the
    # demo's grants were requested by alex and approved by nobody, so neither is conflicted.
    everyone = list(CLIENTS)
    blair = ["approver", "reviewer"]
    operators.add(
        session, admin, name="blair", roles=blair, approves=everyone, reviews=everyone, **bound
    )
    # A second admin vouches for casey, so that blair and casey may together approve a
    # restricted scope (two approvers made by one admin alone may not: privilege.provenance).
    quinn = operators.add(session, admin, name="quinn", roles=["admin"], **bound)
    operators.add(session, quinn, name="casey", roles=["approver"], approves=list(CLIENTS), **bound)
    operators.add(
        session, admin, name="dana", roles=["requester", "reviewer"], reviews=everyone, **bound
    )
    today = clock.now().date()
    rows = []
    for n in range(1, contractors + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            contractor_import.ImportRow(
                where=f"demo {n}",
                external_id=f"C{n:05d}",
                name=f"{first} {last}",
                email=f"{first}.{last}.{n}@contractors.example".lower(),
                directory_uid=f"{first[0]}{last}{n}".lower(),
                contract_end=today + timedelta(days=rng.randint(20, 400)),
            )
        )
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()
    contractor_import.apply(session, admin, rows, source="demo", sha256=digest)
    _grants(session, rng, ident(admin), today)
    _campaign(session, admin)
    return ADMIN


# The demo's one open access review, over the client with the fewest live grants (northwind-ai
# with the default data), so that loading stays quick and the reviews screen has a few hundred
# items at most.
CAMPAIGN = "demo-review"


def _campaign(session: Session, admin: Operator) -> None:
    """An open campaign over one client's live grants, due in two weeks, reviewed by dana and
    then blair (neither requested nor approved a demo grant), kept if nobody answers. None
    when no client has a live grant (a demo of a handful of contractors)."""
    live = (
        sa.select(Client.name, sa.func.count())  # type: ignore[call-overload]
        .select_from(Grant)
        .join(DatasetScope, DatasetScope.id == Grant.scope_id)
        .join(Project, Project.id == DatasetScope.project_id)
        .join(Client, Client.id == Project.client_id)
        .where(Grant.state == "active")
        .group_by(Client.name)
        .order_by(sa.func.count(), Client.name)
    )
    smallest = session.execute(live.limit(1)).first()
    if smallest is None:
        return
    reviews.start(
        session,
        admin,
        spec=reviews.CampaignSpec(
            name=CAMPAIGN,
            client=smallest[0],
            reviewers=("dana", "blair"),
            due_at=clock.now() + timedelta(days=14),
            if_no_answer="keep",
        ),
    )


def _grants(session: Session, rng: random.Random, admin_id: int, today: date) -> None:
    """A spread of grants in every state the foundation knows, written in one bulk insert."""
    scopes = [(view.id, view.max_grant_days) for view in catalog.list_scopes(session)]
    contractor_ids = list(session.execute(sa.select(col(Contractor.id))).scalars())
    now = clock.now()
    rows, seen = [], set()
    for _ in range(len(contractor_ids) * 2):
        contractor_id, (scope_id, max_days) = rng.choice(contractor_ids), rng.choice(scopes)
        access = rng.choice(("read", "label", "label", "write"))
        if (contractor_id, scope_id, access) in seen:
            continue
        seen.add((contractor_id, scope_id, access))
        state = rng.choices(("active", "requested", "expired", "revoked"), (70, 10, 15, 5))[0]
        started = now - timedelta(days=rng.randint(1, max_days))
        ends = started + timedelta(days=max_days)
        row = {
            "contractor_id": contractor_id,
            "scope_id": scope_id,
            "access": access,
            "state": state,
            "reason": "demo data",
            "requested_by": admin_id,
            "requested_days": max_days,
            "requested_at": started,
            "starts_at": None,
            "expires_at": None,
            "ended_at": None,
            "ended_by": None,
            "end_reason": None,
        }
        if state != "requested":
            row.update(
                starts_at=started, expires_at=ends if ends > now else now + timedelta(days=3)
            )
        if state in ("expired", "revoked"):
            row.update(
                expires_at=started + timedelta(days=1),
                ended_at=started + timedelta(days=1),
                end_reason="expired" if state == "expired" else "demo: no longer needed",
                ended_by=None if state == "expired" else admin_id,
            )
        rows.append(row)
    session.execute(sa.insert(Grant.__table__), rows)  # type: ignore[attr-defined]
    # The id range lets `audit verify` (services/audit_state) accept these rows, which have
    # no grant.request events, and only these: a grant inserted later falls outside it.
    first, last = session.execute(sa.select(sa.func.min(Grant.id), sa.func.max(Grant.id))).one()
    audit.append(
        session,
        actor="demo",
        action="demo.grants",
        obj="grants",
        details={"rows": len(rows), "first_id": first, "last_id": last},
    )

"""Demo data: a small vendor with three clients, for trying govtui without real data.

Everything is made through the services, as people would have made it over the last weeks:
operators enrol their authenticators, requesters ask, approvers of the client approve with
their TOTP codes (two distinct ones for a restricted scope), grants expire and are revoked,
and with a directory target every change queues its directory operations. So the demo obeys
every invariant, `audit verify` passes on it, and a directory synced from it has no drift.

The history is played on a clock of its own that starts weeks ago and moves forward one TOTP
step at a time, so each code is used once and the last of them is still in the past when the
demo operator takes over at the keyboard."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError
from govtui.models import AuditEvent, Client, Contractor, Operator
from govtui.security import totp
from govtui.services import (
    act_signatures,
    audit,
    catalog,
    contractor_import,
    directory_targets,
    enrollment,
    evidence_keys,
    grants,
    identity,
    operators,
    reviews,
)
from govtui.vocabulary import Sensitivity

# The operator at the keyboard: an admin and a requester, and an approver of two of the three
# clients, so that they can request, approve someone else's request, pause, resume, revoke and
# enrol (quinn, the first admin, has allowed their first enrolment).
ADMIN = "alex"
FIRST_ADMIN = "quinn"  # made the demo: the bootstrap admin, holder of the evidence key
BOOTSTRAP_ACTOR = "demo"  # how the audit names who ran `govtui demo` (see is_demo)
ALEX_APPROVES = ("helios-labs", "orbital-research")
# Who the demo's people are, and what each may do, in the order they join. blair and casey
# approve every client; a second admin, morgan, vouched for casey, so blair and casey together
# may approve a restricted scope (privilege.provenance). sam and alex request; dana and rita
# review. Those in ENROLLED enrol as they join (and so sign what they do).
OPERATORS: dict[str, dict[str, Any]] = {
    ADMIN: {"roles": ["admin", "requester", "approver"], "approves": ALEX_APPROVES},
    "morgan": {"roles": ["admin"]},
    "blair": {"roles": ["approver"], "approves": "all"},
    "casey": {"roles": ["approver"], "approves": "all", "by": "morgan"},
    "sam": {"roles": ["requester"]},
    "dana": {"roles": ["requester", "reviewer"], "reviews": "all"},
    "rita": {"roles": ["reviewer"], "reviews": "all"},
}
ENROLLED = ("morgan", "blair", "casey")
APPROVERS = ("blair", "casey")
REQUESTERS = (ADMIN, "sam")
HISTORY_DAYS = 40
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


@dataclass(frozen=True)
class DemoDirectory:
    """A directory target for the demo (a private slapd on loopback, say): over ldaps:// with
    the CA that signed its certificate (`ca_file`, what scripts/run --demo makes), or a plain
    ldap:// one, registered as --insecure-plaintext (the tests' slapd)."""

    url: str
    bind_dn: str
    users_base: str
    groups_base: str
    password: str
    name: str = "demo-ldap"
    ca_file: str | None = None


@dataclass
class _History:
    """The demo's own clock, one TOTP step forward per coded act, and the secrets of the
    operators it enrolled."""

    at: datetime
    secrets: dict[str, str] = field(default_factory=dict)

    def tick(self, **delta: float) -> datetime:
        self.at += timedelta(**delta) if delta else timedelta(seconds=totp.STEP_SECONDS)
        return self.at

    def code(self, name: str) -> str:
        """`name`'s code for a fresh step (the clock moves on one step first)."""
        self.tick()
        return totp.code_for_step(self.secrets[name], totp.step_of(self.at))


@contextmanager
def _clock(history: _History) -> Iterator[None]:
    previous = clock.source()
    clock.set_source(lambda: history.at)
    try:
        yield
    finally:
        clock.set_source(previous)


def is_demo(session: Session) -> bool:
    """Whether this database was filled by `govtui demo` (its first operator was added by
    the demo, and marked so): the TUI lets its operator be switched only then. The actor's
    name alone is not enough: a real first admin added with `--as demo` is named so too
    (attack14)."""
    first = session.execute(
        sa.select(col(AuditEvent.actor), col(AuditEvent.details))
        .where(col(AuditEvent.action) == "operator.add")
        .order_by(col(AuditEvent.seq))
        .limit(1)
    ).one_or_none()
    if first is None:
        return False
    actor, details = first
    return actor == BOOTSTRAP_ACTOR and audit.details_of(details).get("demo") is True


def load(
    session: Session,
    *,
    contractors: int = 400,
    seed: int = 7,
    directory: DemoDirectory | None = None,
) -> str:
    """Fill an empty database with the demo's weeks of history; return the name of the demo
    operator (act as them with --as or GOVTUI_OPERATOR). Needs a real keyring: the demo's
    operators keep their TOTP secrets and signing keys there."""
    if session.execute(sa.select(sa.func.count()).select_from(Client)).scalar_one():
        raise ConflictError("the database has clients already: demo data goes into an empty one")
    if operators.count(session):
        raise ConflictError("the database has operators already: demo data goes into an empty one")
    rng = random.Random(seed)  # noqa: S311 - demo names, not secrets
    end = clock.now().replace(microsecond=0) - timedelta(minutes=5)
    history = _History(at=end - timedelta(days=HISTORY_DAYS))
    with _clock(history):
        quinn = _people(session, history)
        if directory is not None:
            _target(session, history, quinn, directory)
        _contractors(session, rng, quinn, contractors, history.at)
        _requests(session, rng, history, end)
        # The demo operator's first enrolment is theirs to make: quinn allows it now.
        enrollment.allow(session, quinn, name=ADMIN, code=history.code(FIRST_ADMIN))
    grants.expire_due(session, actor_name="system (demo)")
    _campaign(session, quinn, despite_drift=directory is not None)
    return ADMIN


def _enrol(session: Session, history: _History, name: str) -> None:
    """`name` enrols themself (allowed by quinn, unless quinn is the bootstrap admin)."""
    operator = operators.find(session, name)
    if name != FIRST_ADMIN:
        enrollment.allow(
            session,
            operators.find(session, FIRST_ADMIN),
            name=name,
            code=history.code(FIRST_ADMIN),
        )
    uri = enrollment.start(session, operator, name=name)
    history.secrets[name] = parse_qs(urlparse(uri).query)["secret"][0]
    enrollment.confirm(session, operator, name=name, code=history.code(name))


def _people(session: Session, history: _History) -> Operator:
    """quinn (the first admin, with the evidence key), the catalogue, then everyone else."""
    # Every demo operator is bound to the login running the demo, marked --shared-login: one
    # person plays them all, which is exactly what separation of duties forbids for real use
    # (`operator list` says so in red).
    bound: dict[str, Any] = {"login": identity.os_login(), "shared_login": True}
    quinn = operators.add(
        session,
        None,
        name=FIRST_ADMIN,
        roles=["admin"],
        bootstrap_actor=BOOTSTRAP_ACTOR,
        made_by_demo=True,
        **bound,
    )
    _enrol(session, history, FIRST_ADMIN)
    evidence_keys.init_key(session, quinn, code=history.code(FIRST_ADMIN))
    pending = [p.fingerprint for p in act_signatures.pending_registrations(session)]
    act_signatures.register_pending(
        session, quinn, code=history.code(FIRST_ADMIN), fingerprints=pending
    )
    for client, projects in CLIENTS.items():
        catalog.add_client(session, quinn, name=client)
        for project, scopes in projects.items():
            catalog.add_project(session, quinn, path=f"{client}/{project}")
            for scope, sensitivity in scopes:
                catalog.add_scope(
                    session, quinn, path=f"{client}/{project}/{scope}", sensitivity=sensitivity
                )
    everyone = list(CLIENTS)
    for name, spec in OPERATORS.items():
        approves, reviewed = spec.get("approves", ()), spec.get("reviews", ())
        operators.add(
            session,
            operators.find(session, spec.get("by", FIRST_ADMIN)),
            name=name,
            roles=spec["roles"],
            approves=everyone if approves == "all" else approves,
            reviews=everyone if reviewed == "all" else reviewed,
            **bound,
        )
        if name in ENROLLED:
            _enrol(session, history, name)
        history.tick(minutes=20)
    return quinn


def _target(session: Session, history: _History, quinn: Operator, where: DemoDirectory) -> None:
    """The demo's directory, registered by quinn before any grant, so every change queues
    its operations (no network here: scripts/run checked it is up)."""
    directory_targets.add(
        session,
        quinn,
        name=where.name,
        url=where.url,
        bind_dn=where.bind_dn,
        users_base=where.users_base,
        groups_base=where.groups_base,
        password=where.password,
        ca_file=where.ca_file,
        insecure_plaintext=where.url.startswith("ldap://"),
    )
    history.tick(minutes=5)


def demo_contractors(count: int, seed: int, today: date) -> list[contractor_import.ImportRow]:
    """The demo's contractors (also what scripts/run puts into the demo's directory)."""
    rng = random.Random(seed)  # noqa: S311 - demo names, not secrets
    rows = []
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            contractor_import.ImportRow(
                where=f"demo {n}",
                external_id=f"C{n:05d}",
                name=f"{first} {last}",
                email=f"{first}.{last}.{n}@contractors.example".lower(),
                directory_uid=f"{first[0]}{last}{n}".lower(),
                # Contracts run past the demo's history, into the months ahead.
                contract_end=today + timedelta(days=rng.randint(20, 400)),
            )
        )
    return rows


def _contractors(
    session: Session, rng: random.Random, quinn: Operator, count: int, at: datetime
) -> None:
    rows = demo_contractors(
        count, rng.randint(0, 2**31), (at + timedelta(days=HISTORY_DAYS)).date()
    )
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()
    contractor_import.apply(session, quinn, rows, source="demo", sha256=digest)


@dataclass
class _Asked:
    grant_id: int
    client: str
    restricted: bool
    by: str
    approvals: list[str] = field(default_factory=list)


def _requests(session: Session, rng: random.Random, history: _History, end: datetime) -> None:
    """Day by day: requests by alex and sam; the next working moment, approvals by blair and
    casey in one batch each (a restricted scope waits for both), a few denials; now and then
    a revocation; expiry as it falls due. The last two days' requests are still waiting."""
    scopes = catalog.list_scopes(session)
    external_ids = list(
        session.execute(
            sa.select(col(Contractor.external_id)).order_by(col(Contractor.id))
        ).scalars()
    )
    per_day = max(1, len(external_ids) // 80)
    seen: set[tuple[str, int, str]] = set()
    asked: list[_Asked] = []
    active: list[int] = []
    day_zero = history.at
    for day in range(HISTORY_DAYS):
        history.at = max(history.at, day_zero + timedelta(days=day, hours=9))
        newest = day >= HISTORY_DAYS - 2
        for _ in range(max(per_day, 6) if newest else per_day):
            person, scope = rng.choice(external_ids), rng.choice(scopes)
            access = rng.choice(("read", "label", "label", "write"))
            if (person, scope.id, access) in seen:
                continue
            seen.add((person, scope.id, access))
            by = rng.choice(REQUESTERS)
            # alex asks only where they do not approve (else blair and casey could approve
            # it, but the demo keeps alex's own queue for others' requests).
            if by == ADMIN and scope.client in ALEX_APPROVES and rng.random() < 0.5:
                by = "sam"
            if newest:  # alex's queue: sam's requests for alex's clients; alex's own elsewhere
                by = "sam" if scope.client in ALEX_APPROVES else ADMIN
            history.tick(minutes=rng.randint(1, 40))
            grant = grants.request(
                session,
                operators.find(session, by),
                contractor=person,
                scope_path=scope.path,
                access=access,
                days=rng.choice((7, 14, 30, 30, 60, 90)),
                reason=rng.choice(REASONS),
            )
            asked.append(
                _Asked(ident(grant), scope.client, scope.sensitivity == Sensitivity.RESTRICTED, by)
            )
        if newest or day % 2:
            continue  # decided every other day; the newest requests wait in the queue
        history.at = max(history.at, day_zero + timedelta(days=day, hours=15))
        _decide(session, rng, history, asked, active)
        if active and rng.random() < 0.4:
            grant_id = active.pop(rng.randrange(len(active)))
            history.tick(minutes=7)
            grants.revoke(
                session,
                operators.find(session, rng.choice((ADMIN, "blair"))),
                grant_id=grant_id,
                reason=rng.choice(REVOKE_REASONS),
            )
        history.tick(minutes=3)
        expired = set(grants.expire_due(session, actor_name="system (demo)"))
        active[:] = [grant_id for grant_id in active if grant_id not in expired]
    history.at = max(history.at, end - timedelta(minutes=10))


REASONS = (
    "labelling batch for the next release",
    "red-team sprint",
    "rubric calibration",
    "quality audit of delivered data",
    "new annotator onboarding",
)
REVOKE_REASONS = ("moved to another project", "batch delivered early", "quality concerns")


def _decide(
    session: Session,
    rng: random.Random,
    history: _History,
    asked: list[_Asked],
    active: list[int],
) -> None:
    """Today's decisions on what is waiting: a few denials by blair, then one batch of
    approvals each by blair and casey (one code each)."""
    waiting = [a for a in asked if len(a.approvals) < (2 if a.restricted else 1)]
    denied = [a for a in waiting if not a.approvals and rng.random() < 0.06]
    if denied:
        history.tick()
        grants.deny(
            session,
            operators.find(session, "blair"),
            grant_ids=[a.grant_id for a in denied],
            reason="not needed for this project",
        )
    for name in APPROVERS:
        batch = [
            a
            for a in waiting
            if a not in denied
            and name not in a.approvals
            and len(a.approvals) < (2 if a.restricted else 1)
        ]
        if name == APPROVERS[0]:
            batch = [a for a in batch if rng.random() < 0.7]  # the rest is casey's
        if not batch:
            continue
        outcomes = grants.approve(
            session,
            operators.find(session, name),
            grant_ids=[a.grant_id for a in batch],
            code=history.code(name),
        )
        for item in batch:
            item.approvals.append(name)
        active.extend(o.grant_id for o in outcomes if o.activated)
    for item in denied + [a for a in waiting if len(a.approvals) >= (2 if a.restricted else 1)]:
        asked.remove(item)


# The demo's one open access review, over the client with the fewest live grants (northwind-ai
# with the default data), so that loading stays quick and the reviews screen has a few hundred
# items at most.
CAMPAIGN = "demo-review"


def _campaign(session: Session, admin: Operator, *, despite_drift: bool) -> None:
    """An open campaign over northwind-ai's live grants, due in two weeks, reviewed by dana
    and then rita (neither requested nor approved a demo grant), kept if nobody answers.
    With a directory the demo's operations are not pushed yet (scripts/run syncs right after
    the load), which the start would otherwise refuse as drift."""
    reviews.start(
        session,
        admin,
        spec=reviews.CampaignSpec(
            name=CAMPAIGN,
            client="northwind-ai",
            reviewers=("dana", "rita"),
            due_at=clock.now() + timedelta(days=14),
            if_no_answer="keep",
        ),
        despite_drift="demo data: its directory operations are pushed by the first sync"
        if despite_drift
        else None,
    )

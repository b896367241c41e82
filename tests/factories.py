"""The one place tests and benchmarks build their data (DESIGN: "factories for tests").

Two builders: `build_world` makes a small vendor through the services, as an operator would
(clients, projects and scopes from their paths, operators with roles and TOTP enrolment,
contractors, optionally a directory target that is never contacted); the bulk part makes a
large vendor fast: contractors through the import service (one bulk insert) and active grants
by one `INSERT` of many rows, spread by a distribution the caller picks.

It lives under tests/ and imports neither pytest nor conftest, so that the benchmarks in
scripts/ (which put the checkout on sys.path) build exactly what the tests build: one copy of
the bulk builder, in the package the tests already import from."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import keyring
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from govtui import clock, db
from govtui.models import Contractor, Grant, Operator
from govtui.security import secrets, totp
from govtui.services import (
    act_signatures,
    catalog,
    contractor_import,
    contractors,
    demo,
    directory_targets,
    enrollment,
    evidence_keys,
    grants,
    identity,
    operators,
    second_factor,
)

from .memory_keyring import MemoryKeyring

ADMIN = "root"
SECOND_ADMIN = "vera"


def with_evidence_key(world: World, advance: Callable[[], object]) -> World:
    """Give the world an evidence key (ADMIN, with a code) and register every operator key
    made before it (ADMIN again, the next step): what signed acts need to verify. `advance`
    moves the clock one TOTP step."""
    with db.write_session(world.engine) as session:
        evidence_keys.init_key(session, operators.find(session, ADMIN), code=world.code(ADMIN))
    advance()
    with db.write_session(world.engine) as session:
        pending = [p.fingerprint for p in act_signatures.pending_registrations(session)]
        act_signatures.register_pending(
            session, operators.find(session, ADMIN), code=world.code(ADMIN), fingerprints=pending
        )
    advance()
    # Targets added before the admin had a registered key: their routing is confirmed, as an
    # admin does after an upgrade (`directory confirm`), or sync adds nothing through them.
    with db.read_session(world.engine) as session:
        names = [t.name for t in directory_targets.all_targets(session)]
    for name in names:
        with db.write_session(world.engine) as session:
            directory_targets.confirm_routing(
                session, operators.find(session, ADMIN), name=name, code=world.code(ADMIN)
            )
        advance()
    return world


def bound() -> dict[str, Any]:
    """How test operators are bound: all to the login running the tests, marked shared (the
    issue allows tests to; tests of the binding rules make their own operators)."""
    return {"login": identity.os_login(), "shared_login": True}


# --- TOTP ------------------------------------------------------------------------------------


def enroll(engine: Engine, name: str) -> str:
    """Enrol an operator's TOTP and return the secret: the bootstrap admin by themself, anyone
    else allowed by ADMIN with a code of ADMIN's (allow_enrolment), then started and confirmed
    by the operator themself, as under their own login.

    Every admin code is used once (replay), so these enrolments happen in the past: the
    bootstrap admin's at PAST_STEPS steps ago, each later one a step after the admin's last
    accepted code. The current codes stay free for the tests."""
    with db.read_session(engine) as session:
        target = operators.find(session, name)
        bootstrap = enrollment.is_bootstrap(session, target, target)
    step = _past_step(totp.step_of(clock.now()) - PAST_STEPS)
    if not bootstrap:
        step = allow_enrolment(engine, name)
    with _clock_at_step(step):
        with db.write_session(engine) as session:
            uri = enrollment.start(session, operators.find(session, name), name=name)
        secret = parse_qs(urlparse(uri).query)["secret"][0]
        with db.write_session(engine) as session:
            actor = operators.find(session, name)
            enrollment.confirm(session, actor, name=name, code=totp.code_for_step(secret, step))
    return secret


def allow_enrolment(engine: Engine, name: str) -> int:
    """ADMIN allows `name` to enrol themself, with ADMIN's code of the step after ADMIN's last
    accepted one (in the past); that step."""
    with db.read_session(engine) as session:
        admin = operators.find(session, ADMIN)
        if admin.totp_enrolled_at is None:
            raise RuntimeError(f"enrol {ADMIN} (alone, the bootstrap admin) before {name}")
        key = second_factor.secret_key(session, admin)
        admin_secret = secrets.load(key) if key is not None else None
        assert admin_secret is not None, f"{ADMIN}'s secret is not in the keyring"
    step = _past_step((admin.totp_last_step or 0) + 1)
    with _clock_at_step(step), db.write_session(engine) as session:
        enrollment.allow(
            session,
            operators.find(session, ADMIN),
            name=name,
            code=totp.code_for_step(admin_secret, step),
        )
    return step


def _past_step(step: int) -> int:
    if step >= totp.step_of(clock.now()) - 1:
        raise RuntimeError("the factories used up their past TOTP steps: raise PAST_STEPS")
    return step


# How many TOTP steps back the factories' enrolments start (see enroll).
PAST_STEPS = 200


@contextmanager
def _clock_at_step(step: int) -> Iterator[None]:
    """Run the block with the clock at the start of a TOTP step, then restore it."""
    previous = clock.source()
    at = datetime.fromtimestamp(step * totp.STEP_SECONDS, UTC)
    clock.set_source(lambda: at)
    try:
        yield
    finally:
        clock.set_source(previous)


def code(secret: str, offset: int = 0) -> str:
    """The code for the current step of the clock (or `offset` steps away)."""
    return totp.code_for_step(secret, totp.step_of(clock.now()) + offset)


# --- a small world, through the services -----------------------------------------------------


@dataclass(frozen=True)
class Scope:
    path: str  # client/project/scope
    sensitivity: str = "internal"
    max_days: int | None = None


@dataclass(frozen=True)
class Op:
    """An operator besides the bootstrap admin; `enrol`: give them a TOTP secret."""

    name: str
    roles: tuple[str, ...]
    approves: tuple[str, ...] = ()
    enrol: bool = False
    granted_by: str = ADMIN  # the admin who adds them (an earlier operator of the world)
    reviews: tuple[str, ...] = ()  # the clients a reviewer reviews


@dataclass(frozen=True)
class Person:
    """A contractor; the email is `uid@x.example`."""

    external_id: str
    name: str
    uid: str
    contract_end: date = date(2027, 12, 31)


UNREACHABLE_TARGET: dict[str, Any] = {
    # A target the grant services queue operations for; nothing ever syncs to it.
    "name": "ldap",
    "url": "ldap://127.0.0.1:9",
    "insecure_plaintext": True,  # plain ldap:// is refused without it
    "bind_dn": "cn=admin,dc=x",
    "users_base": "ou=people,dc=x",
    "groups_base": "ou=groups,dc=x",
    "password": "never used",
}


@dataclass
class World:
    """A built database and the TOTP secrets of its enrolled operators."""

    engine: Engine
    secrets: dict[str, str] = field(default_factory=dict)

    def op(self, name: str) -> Operator:
        with db.read_session(self.engine) as session:
            return operators.find(session, name)

    def code(self, name: str, offset: int = 0) -> str:
        return code(self.secrets[name], offset)

    def add_people(self, people: Iterable[Person]) -> list[str]:
        """Add contractors one by one through the service; their external ids."""
        with db.write_session(self.engine) as session:
            return add_people(session, operators.find(session, ADMIN), people)

    def request(
        self,
        contractor: str = "E1",
        scope: str = "acme/rlhf/pairs",
        access: str = "read",
        days: int = 10,
        by: str = "req",
        reason: str = "labelling batch",
    ) -> int:
        with db.write_session(self.engine) as session:
            grant = grants.request(
                session,
                operators.find(session, by),
                contractor=contractor,
                scope_path=scope,
                access=access,
                days=days,
                reason=reason,
            )
            return db.ident(grant)

    def approve(
        self, *ids: int, by: str = "ann", totp: str | None = None
    ) -> list[grants.ApprovalOutcome]:
        with db.write_session(self.engine) as session:
            return grants.approve(
                session,
                operators.find(session, by),
                grant_ids=list(ids),
                code=totp if totp is not None else self.code(by),
            )

    def grant(self, grant_id: int) -> Grant:
        with db.read_session(self.engine) as session:
            found = session.get(Grant, grant_id)
            assert found is not None
            return found


def add_ops(session: Session, root: Operator, ops: Iterable[Op]) -> None:
    """The operators, each added by their `granted_by` admin, bound as `bound()` says."""
    for op in ops:
        by = root if op.granted_by == root.name else operators.find(session, op.granted_by)
        operators.add(
            session,
            by,
            name=op.name,
            roles=op.roles,
            approves=op.approves,
            reviews=op.reviews,
            **bound(),
        )


def add_people(session: Session, actor: Operator, people: Iterable[Person]) -> list[str]:
    added = []
    for person in people:
        contractors.add(
            session,
            actor,
            external_id=person.external_id,
            name=person.name,
            email=f"{person.uid}@x.example",
            directory_uid=person.uid,
            contract_end=person.contract_end,
        )
        added.append(person.external_id)
    return added


def add_catalog(session: Session, actor: Operator, scopes: Sequence[Scope]) -> None:
    """The clients, then the projects, then the scopes named by the paths, in their order."""
    paths = [s.path.split("/") for s in scopes]
    for client in dict.fromkeys(p[0] for p in paths):
        catalog.add_client(session, actor, name=client)
    for project in dict.fromkeys(f"{p[0]}/{p[1]}" for p in paths):
        catalog.add_project(session, actor, path=project)
    for scope in scopes:
        catalog.add_scope(
            session, actor, path=scope.path, sensitivity=scope.sensitivity, max_days=scope.max_days
        )


def build_world(
    engine: Engine,
    *,
    scopes: Sequence[Scope],
    ops: Sequence[Op] = (),
    people: Sequence[Person] = (),
    target: Mapping[str, Any] | None = None,
) -> World:
    """The bootstrap admin `root` (admin, requester), the catalogue, the operators, the
    contractors and the target in one transaction; then each enrolled operator's secret."""
    with db.write_session(engine) as session:
        operators.add(session, None, name=ADMIN, roles=["admin", "requester"], **bound())
    enrolled: dict[str, str] = {}
    if any(op.enrol for op in ops):
        # The bootstrap admin enrols while still the only operator; then starts the others'.
        enrolled[ADMIN] = enroll(engine, ADMIN)
    with db.write_session(engine) as session:
        root = operators.find(session, ADMIN)
        add_catalog(session, root, scopes)
        add_ops(session, root, ops)
        add_people(session, root, people)
        if target is not None:
            directory_targets.add(session, root, **target)
    enrolled.update({op.name: enroll(engine, op.name) for op in ops if op.enrol})
    return World(engine, enrolled)


def small_vendor(engine: Engine) -> World:
    """The grant tests' vendor: client acme (scopes pairs, redteam, notes) and other; req
    requests, ann and bob approve acme, olga approves other (all three enrolled); a second
    admin, vera (not enrolled), made bob an approver, so that ann and bob were not both made
    approvers by root alone and may together approve a restricted scope; contractors E1 (Ada,
    uid ada, contract to 2027) and E2 (Bo, uid bo, contract ends 2026-03-06)."""
    return build_world(
        engine,
        scopes=[
            Scope("acme/rlhf/pairs", "confidential"),
            Scope("acme/rlhf/redteam", "restricted"),
            Scope("acme/rlhf/notes", "internal", max_days=60),
            Scope("other/p/s", "internal"),
        ],
        ops=[
            Op("req", ("requester",)),
            Op(SECOND_ADMIN, ("admin",)),
            Op("ann", ("approver", "requester"), ("acme",), enrol=True),
            Op("bob", ("approver",), ("acme",), enrol=True, granted_by=SECOND_ADMIN),
            Op("olga", ("approver",), ("other",), enrol=True),
        ],
        people=[
            Person("E1", "Ada", "ada"),
            Person("E2", "Bo", "bo", date(2026, 3, 6)),
        ],
    )


REVIEW_OPS = [
    Op("req", ("requester", "reviewer"), reviews=("acme",)),
    Op(SECOND_ADMIN, ("admin",)),
    Op("ann", ("approver", "requester", "reviewer"), ("acme",), enrol=True, reviews=("acme",)),
    Op("bob", ("approver",), ("acme",), enrol=True, granted_by=SECOND_ADMIN),
    Op("olga", ("approver",), ("other",), enrol=True),
    Op("rita", ("reviewer",), enrol=True, reviews=("acme",)),
    Op("ravi", ("reviewer",), enrol=True, reviews=("acme", "other")),
    Op("otto", ("reviewer",), reviews=("other",)),
]


def review_vendor(engine: Engine, target: Mapping[str, Any] | None = None) -> World:
    """small_vendor's catalogue and people, plus reviewers for the access review tests: rita
    (enrolled) and ravi (enrolled) review acme, ravi and otto (not enrolled) review other;
    ann (approver of acme) and req (requester) also review acme, so that an item can be
    assigned to someone who requested or approved its grant."""
    return build_world(
        engine,
        scopes=[
            Scope("acme/rlhf/pairs", "confidential"),
            Scope("acme/rlhf/redteam", "restricted"),
            Scope("acme/rlhf/notes", "internal", max_days=60),
            Scope("other/p/s", "internal"),
        ],
        ops=REVIEW_OPS,
        people=[
            Person("E1", "Ada", "ada"),
            Person("E2", "Bo", "bo", date(2026, 3, 6)),
            Person("E3", "Cy", "cy"),
        ],
        target=target,
    )


# --- a large vendor, in bulk -----------------------------------------------------------------

Template = str | Callable[[int], str]


def _render(template: Template, i: int) -> str:
    return template(i) if callable(template) else template.format(i=i)


def import_contractors(
    session: Session,
    actor: Operator,
    count: int,
    *,
    external_id: Template = "X{i:05d}",
    name: Template = "Person {i}",
    email: Template = "p{i}@x.example",
    uid: Template = "p{i:05d}",
    contract_end: date | Callable[[int], date] = date(2030, 1, 1),
    source: str = "bulk",
) -> dict[int, int]:
    """`count` contractors through the import service (one bulk insert and one audit event,
    as `govtui contractor import` writes them); their database ids by index."""
    rows = [
        contractor_import.ImportRow(
            f"row {i}",
            _render(external_id, i),
            _render(name, i),
            _render(email, i),
            _render(uid, i),
            contract_end(i) if callable(contract_end) else contract_end,
        )
        for i in range(count)
    ]
    contractor_import.apply(session, actor, rows, source=source, sha256="0" * 64)
    ids = dict(session.execute(sa.select(col(Contractor.external_id), col(Contractor.id))).all())
    return {i: ids[row.external_id] for i, row in enumerate(rows)}


@dataclass(frozen=True)
class BulkGrant:
    """One grant to insert: the contractor's index, the scope (its catalogue view), access."""

    person: int
    scope: catalog.ScopeView
    access: str


def insert_grants(
    session: Session,
    wanted: Iterable[BulkGrant],
    person_ids: Mapping[int, int],
    *,
    starts_at: datetime,
    expires_at: datetime,
    requested_days: int,
    reason: str = "bulk",
    state: str = "active",
) -> int:
    """One INSERT of many grant rows (SQLModel's add_all is 10x slower); how many. They are
    written as the grant services would leave them, requested by operator 1, without the
    audit events or directory ops of an approval: tests and benchmarks start from here."""
    base: dict[str, Any] = {
        "state": state,
        "reason": reason,
        "requested_by": 1,
        "requested_days": requested_days,
        "requested_at": starts_at,
        "starts_at": starts_at,
        "expires_at": expires_at,
    }
    values = [
        {**base, "contractor_id": person_ids[g.person], "scope_id": g.scope.id, "access": g.access}
        for g in wanted
    ]
    if values:
        session.execute(sa.insert(Grant.__table__), values)  # type: ignore[attr-defined]
    return len(values)


# Distributions: which contractor gets which scope at which access.


def every_pair(
    people: Iterable[int], scopes: Iterable[catalog.ScopeView], access: str = "read"
) -> list[BulkGrant]:
    """Each of `people` on each of `scopes`, scope by scope."""
    everyone = list(people)
    return [BulkGrant(p, scope, access) for scope in scopes for p in everyone]


def spread(
    rng: random.Random,
    people: int,
    scopes: Sequence[catalog.ScopeView],
    grants: int,
    access: Sequence[tuple[str, int]] = (("read", 1),),
) -> list[BulkGrant]:
    """`grants` spread evenly over `scopes` (the first ones take the remainder), distinct
    random contractors on each scope, the access drawn by weight."""
    levels, weights = [a for a, _ in access], [w for _, w in access]
    found = []
    for k, scope in enumerate(scopes):
        count = grants // len(scopes) + (1 if k < grants % len(scopes) else 0)
        for i in rng.sample(range(people), count):
            found.append(BulkGrant(i, scope, rng.choices(levels, weights)[0]))
    return found


def window(
    people: int, scopes: Sequence[catalog.ScopeView], per_scope: int, access: str = "read"
) -> list[BulkGrant]:
    """Scope s holds the `per_scope` contractors from s * per_scope on (wrapping round)."""
    return [
        BulkGrant((s * per_scope + k) % people, scope, access)
        for s, scope in enumerate(scopes)
        for k in range(per_scope)
    ]


def by_group(
    wanted: Iterable[BulkGrant], group_of: Callable[[BulkGrant], str]
) -> dict[str, list[int]]:
    """The contractors' indexes in each directory group, in insertion order."""
    members: dict[str, list[int]] = defaultdict(list)
    for g in wanted:
        members[group_of(g)].append(g.person)
    return dict(members)


@dataclass
class BulkVendor:
    """A vendor built in bulk: its world, scopes (catalogue views) and contractor ids."""

    world: World
    scopes: list[catalog.ScopeView]
    person_ids: dict[int, int]

    @property
    def engine(self) -> Engine:
        return self.world.engine

    def scopes_of(self, client: str) -> list[catalog.ScopeView]:
        return [s for s in self.scopes if s.client == client]

    def grant(
        self,
        wanted: Iterable[BulkGrant],
        *,
        expires_in: timedelta,
        started: timedelta = timedelta(days=1),
        requested_days: int = 90,
        reason: str = "bulk",
    ) -> int:
        """Insert active grants that started `started` ago and end `expires_in` from now."""
        now = clock.now()
        with db.write_session(self.engine) as session:
            return insert_grants(
                session,
                wanted,
                self.person_ids,
                starts_at=now - started,
                expires_at=now + expires_in,
                requested_days=requested_days,
                reason=reason,
            )


def bulk_vendor(
    engine: Engine,
    *,
    scopes: Sequence[Scope],
    contractors: int,
    ops: Sequence[Op] = (),
    target: Mapping[str, Any] | None = UNREACHABLE_TARGET,
    admin: str = ADMIN,
    **contractor_fields: Any,
) -> BulkVendor:
    """The catalogue, operators (enrolled as asked) and a target through the services, then
    `contractors` contractors imported in bulk (`contractor_fields`: see import_contractors).
    Grants are added with `BulkVendor.grant` and a distribution."""
    with db.write_session(engine) as session:
        root = operators.add(session, None, name=admin, roles=["admin", "requester"], **bound())
        add_catalog(session, root, scopes)
        add_ops(session, root, ops)
        person_ids = import_contractors(session, root, contractors, **contractor_fields)
        if target is not None:
            directory_targets.add(session, root, **target)
    with db.read_session(engine) as session:
        views = catalog.list_scopes(session)  # by client, project and scope name
    # Enrolment after the bulk insert: the confirming code's step is taken from the clock then.
    world = World(engine, {op.name: enroll(engine, op.name) for op in ops if op.enrol})
    return BulkVendor(world, views, person_ids)


def roster_names(rng: random.Random, needle: str, every: int) -> Callable[[int], str]:
    """Names drawn from the demo's first and last names; every `every`-th (from the first)
    carries the surname `needle` instead, so a search for it has a known answer."""

    def name(i: int) -> str:
        first = rng.choice(demo.FIRST)
        return f"{first} {needle if i % every == 0 else rng.choice(demo.LAST)}"

    return name


def big_roster(
    engine: Engine, *, total: int, demo_contractors: int, needle: str, every: int, seed: int = 11
) -> int:
    """The demo data with `demo_contractors` contractors, then contractors imported in bulk up
    to `total` in all (~2 s for 100,000: the demo loader's grants for as many would take
    ~17 s and add nothing a contractors table needs); how many carry `needle`. The demo's
    secrets go into a throw-away in-memory keyring: what uses this roster only reads."""
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        with db.write_session(engine) as session:
            name = demo.load(session, contractors=demo_contractors)
    finally:
        keyring.set_keyring(previous)
    with db.write_session(engine) as session:
        admin = operators.find(session, name)
        count = total - demo_contractors
        import_contractors(
            session,
            admin,
            count,
            external_id="B{i:06d}",
            name=roster_names(random.Random(seed), needle, every),
            email="b{i}@bulk.example",
            uid="bulk{i}",
            contract_end=lambda i: date(2026, 6, 1) + timedelta(days=i % 300),
        )
    return len(range(0, count, every))

"""Starting an access review: the population of one client's grants frozen in one
transaction, each item assigned to an independent reviewer, one audit event with a digest
an auditor can recompute. Decisions are in review_decisions, close in review_close."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import (
    Approval,
    Client,
    ClientPause,
    DatasetScope,
    Grant,
    GrantExtension,
    Operator,
    OutboxOp,
    Project,
    ReviewCampaign,
    ReviewItem,
    ReviewReviewer,
)
from govtui.services import audit, catalog, operators, validation
from govtui.text import quoted
from govtui.vocabulary import (
    IN_DIRECTORY_STATES,
    Decision,
    NoAnswer,
    OutboxState,
    Role,
    Sensitivity,
    values_of,
)

_GRANT: sa.Table = Grant.__table__  # type: ignore[attr-defined]
_SCOPE: sa.Table = DatasetScope.__table__  # type: ignore[attr-defined]
_PROJECT: sa.Table = Project.__table__  # type: ignore[attr-defined]
_APPROVAL: sa.Table = Approval.__table__  # type: ignore[attr-defined]
_EXTENSION: sa.Table = GrantExtension.__table__  # type: ignore[attr-defined]
_OUTBOX: sa.Table = OutboxOp.__table__  # type: ignore[attr-defined]
_ITEM: sa.Table = ReviewItem.__table__  # type: ignore[attr-defined]
_REVIEWER: sa.Table = ReviewReviewer.__table__  # type: ignore[attr-defined]
_PAUSE: sa.Table = ClientPause.__table__  # type: ignore[attr-defined]

NAMED = 20  # grant ids a refusal names one by one; the rest are counted
# The states a grant must be in to be reviewed (and, at decide time, to need a decision).
REVIEWED_STATES: tuple[str, ...] = values_of(IN_DIRECTORY_STATES)
_OPEN_OPS = (OutboxState.PENDING.value, OutboxState.FAILED.value)


@dataclass(frozen=True)
class CampaignSpec:
    """What `review start` was given."""

    name: str
    client: str
    reviewers: tuple[str, ...]
    due_at: datetime
    if_no_answer: NoAnswer
    project: str | None = None
    scope: str | None = None  # a scope path, as the rest of the CLI names scopes
    sensitivity: str | None = None
    fallback_reviewer: str | None = None


@dataclass(frozen=True)
class PlanRow:
    """How many items of one project, scope and access level go to one reviewer."""

    project: str
    scope: str
    access: str
    reviewer: str
    items: int


@dataclass(frozen=True)
class StartPlan:
    """What a campaign would contain (the dry run), and what would stop it starting."""

    spec: CampaignSpec
    item_count: int
    population_sha256: str  # sha256 of the sorted grant ids, comma-joined (audit.id_summary)
    rows: list[PlanRow]  # sorted by project, scope, access, reviewer
    by_reviewer: dict[str, int]
    unassignable: list[int]  # grant ids no listed reviewer nor the fallback may review
    drift: list[str]  # one line per reason the directory may not match the grants


@dataclass(frozen=True)
class Started:
    campaign_id: int
    name: str
    item_count: int
    population_sha256: str
    by_reviewer: dict[str, int]


@dataclass(frozen=True)
class _Resolved:
    """A validated spec: the rows it names."""

    name: str
    client: Client
    project: Project | None
    scope: DatasetScope | None
    sensitivity: str | None
    reviewers: list[Operator]  # in the order given
    fallback: Operator | None
    due_at: datetime
    if_no_answer: NoAnswer

    @property
    def candidates(self) -> list[Operator]:
        """Who an item may go to, in the order they are tried."""
        return self.reviewers + ([self.fallback] if self.fallback is not None else [])


# --- independence, as SQL -------------------------------------------------------------------


def independent(operator_id: int, grant: sa.Table | sa.FromClause) -> sa.ColumnElement[bool]:
    """Whether the operator may review the grant row of `grant` (the outer query's grant
    table): not its requester, not the approver of any of its rounds, not the requester of
    any of its extensions. One condition, used at start and again at decide time."""
    grant_id, requested_by = grant.c.id, grant.c.requested_by
    approved = sa.exists().where(
        _APPROVAL.c.grant_id == grant_id,
        _APPROVAL.c.approver_id == operator_id,
        _APPROVAL.c.decision == Decision.APPROVE.value,
    )
    extended = sa.exists().where(
        _EXTENSION.c.grant_id == grant_id, _EXTENSION.c.requested_by == operator_id
    )
    return sa.and_(requested_by != operator_id, ~approved, ~extended)


def _assigned(candidates: Sequence[Operator]) -> sa.ColumnElement[int | None]:
    """The reviewer each population row goes to: the first candidate independent of it,
    else NULL (a CASE evaluated by the database, row by row, with no ids in Python)."""
    if not candidates:
        return sa.cast(sa.null(), sa.Integer())
    return sa.case(
        *(
            (independent(ident(op), _GRANT), sa.literal(ident(op), sa.Integer()))
            for op in candidates
        ),
        else_=sa.null(),
    )


def _in_scope(spec: _Resolved) -> list[sa.ColumnElement[bool]]:
    """The population's conditions on the grant, scope and project tables joined."""
    where = [_PROJECT.c.client_id == ident(spec.client)]
    if spec.project is not None:
        where.append(_PROJECT.c.id == ident(spec.project))
    if spec.scope is not None:
        where.append(_SCOPE.c.id == ident(spec.scope))
    if spec.sensitivity is not None:
        where.append(_SCOPE.c.sensitivity == spec.sensitivity)
    return where


def _joined() -> sa.Join:
    return _GRANT.join(_SCOPE, _SCOPE.c.id == _GRANT.c.scope_id).join(
        _PROJECT, _PROJECT.c.id == _SCOPE.c.project_id
    )


def _population(spec: _Resolved) -> list[sa.ColumnElement[bool]]:
    return [*_in_scope(spec), _GRANT.c.state.in_(REVIEWED_STATES)]


# --- validation ---------------------------------------------------------------------------


def standing(session: Session, name: str, client: Client, what: str) -> tuple[Operator, str]:
    """The operator, and why they may not review the client ('' when they may): the one
    eligibility rule of start, of a reassignment's target and of who can still decide."""
    operator = operators.find(session, name)
    if operator.disabled_at is not None:
        return operator, f"{what} {operator.name!r} was removed"
    if Role.REVIEWER not in operators.roles_of(session, operator):
        return operator, f"{what} {operator.name!r} lacks the reviewer role"
    if not operators.is_reviewer_for(session, operator, client):
        return operator, f"{what} {operator.name!r} does not review client {client.name!r}"
    return operator, ""


def _resolve(session: Session, actor: Operator, spec: CampaignSpec) -> _Resolved:
    """Check everything the spec names, refusing with one line; the rows it names."""
    operators.require_role(session, actor, Role.ADMIN)
    name = validation.name(spec.name, "campaign")
    if_no_answer: NoAnswer = "revoke" if spec.if_no_answer == "revoke" else "keep"
    validation.choice(spec.if_no_answer, ("keep", "revoke"), "--if-no-answer")
    client = catalog.find_client(session, spec.client)
    project = catalog.find_project(session, client.name, spec.project) if spec.project else None
    scope = None
    if spec.scope is not None:
        scope = catalog.find_scope(session, spec.scope)
        owner = session.get(Project, scope.project_id)
        assert owner is not None
        if owner.client_id != ident(client):
            raise InputError(f"scope {quoted(spec.scope)} is not a scope of client {client.name!r}")
        if project is not None and ident(owner) != ident(project):
            raise InputError(
                f"scope {quoted(spec.scope)} is not a scope of project {client.name}/{project.name}"
            )
        project = owner
    sensitivity = None
    if spec.sensitivity is not None:
        sensitivity = validation.choice(spec.sensitivity, Sensitivity, "sensitivity").value
        if scope is not None and scope.sensitivity != sensitivity:
            raise InputError(
                f"scope {quoted(spec.scope)} is {scope.sensitivity}, not {sensitivity}"
            )
    due_at = spec.due_at
    if due_at.tzinfo is None:
        raise InputError("the due date must be an aware (UTC) time")
    if due_at <= clock.now():
        raise InputError(f"the due date {audit.format_time(due_at)[:10]} is not in the future")
    if due_at.date() > validation.LATEST:
        raise InputError(f"the due date must be before {validation.LATEST.isoformat()}")
    if not spec.reviewers:
        raise InputError("name at least one reviewer (--reviewer)")
    if len(set(spec.reviewers)) != len(spec.reviewers):
        raise InputError("each reviewer may be named once (--reviewer)")
    checked = [standing(session, r, client, "reviewer") for r in spec.reviewers]
    fallback = None
    if spec.fallback_reviewer is not None:
        found = standing(session, spec.fallback_reviewer, client, "fallback reviewer")
        checked.append(found)
        fallback = found[0]
    problems = [why for _op, why in checked if why]
    if problems:
        raise PolicyError(
            "; ".join(problems) + " (a reviewer needs the reviewer role and --reviews CLIENT)"
        )
    reviewers = [op for op, _why in checked[: len(spec.reviewers)]]
    return _Resolved(
        name, client, project, scope, sensitivity, reviewers, fallback, due_at, if_no_answer
    )


def _drift(session: Session, spec: _Resolved) -> tuple[int, int]:
    """How many directory operations for the grants in scope (of any state: a revoked
    grant's removal matters as much) are pending and how many failed, counting a pause's
    removals of members added by hand for the client."""
    grants_in_scope = sa.select(_GRANT.c.id).select_from(_joined()).where(*_in_scope(spec))
    pauses = sa.select(_PAUSE.c.id).where(_PAUSE.c.client_id == ident(spec.client))
    rows = session.execute(
        sa.select(_OUTBOX.c.state, sa.func.count())
        .where(
            _OUTBOX.c.state.in_(_OPEN_OPS),
            sa.or_(
                _OUTBOX.c.grant_id.in_(grants_in_scope),
                sa.and_(_OUTBOX.c.grant_id.is_(None), _OUTBOX.c.pause_id.in_(pauses)),
            ),
        )
        .group_by(_OUTBOX.c.state)
    ).all()
    counts = {str(state): int(n) for state, n in rows}
    return counts.get(OutboxState.PENDING.value, 0), counts.get(OutboxState.FAILED.value, 0)


def _drift_lines(pending: int, failed: int) -> list[str]:
    lines = []
    if pending:
        lines.append(f"{pending} directory operation(s) not yet applied and read back (pending)")
    if failed:
        lines.append(f"{failed} directory operation(s) failed")
    return lines


def _unassignable(session: Session, spec: _Resolved) -> list[int]:
    """The grant ids of the population that no candidate may review, in id order."""
    query = (
        sa.select(_GRANT.c.id)
        .select_from(_joined())
        .where(*_population(spec), _assigned(spec.candidates).is_(None))
        .order_by(_GRANT.c.id)
    )
    return list(session.execute(query).scalars())


def _insert_items(session: Session, resolved: _Resolved, campaign_id: int) -> None:
    """Freeze the population: one INSERT ... SELECT, the reviewer chosen by the database (NULL,
    refused by review_item's NOT NULL reviewer_id, where no candidate is independent)."""
    session.execute(
        sa.insert(_ITEM).from_select(
            ["campaign_id", "grant_id", "reviewer_id"],
            sa.select(
                sa.literal(campaign_id, sa.Integer()),
                _GRANT.c.id,
                _assigned(resolved.candidates),
            )
            .select_from(_joined())
            .where(*_population(resolved)),
        )
    )


def _by_reviewer(spec: _Resolved, counts: dict[int, int]) -> dict[str, int]:
    """Items per candidate, in the order they are tried (those with none included)."""
    return {op.name: counts.get(ident(op), 0) for op in spec.candidates}


def _refuse_unassignable(ids: Sequence[int]) -> None:
    if ids:
        named = ", ".join(map(str, ids[:NAMED]))
        more = f" and {len(ids) - NAMED} more" if len(ids) > NAMED else ""
        raise PolicyError(
            f"{len(ids)} grant(s) have no independent reviewer (each requested or approved "
            f"them, or requested an extension): grants {named}{more}; add a reviewer or a "
            "--fallback-reviewer"
        )


# --- the operations -----------------------------------------------------------------------


def plan_start(session: Session, actor: Operator, *, spec: CampaignSpec) -> StartPlan:
    """What `start` would freeze, without writing anything (an admin)."""
    resolved = _resolve(session, actor, spec)
    assigned = _assigned(resolved.candidates).label("reviewer_id")
    population = (
        sa.select(
            _GRANT.c.id.label("grant_id"),
            _PROJECT.c.name.label("project"),
            _SCOPE.c.name.label("scope"),
            _GRANT.c.access.label("access"),
            assigned,
        )
        .select_from(_joined())
        .where(*_population(resolved))
        .subquery()
    )
    grouped = session.execute(
        sa.select(
            population.c.project,
            population.c.scope,
            population.c.access,
            population.c.reviewer_id,
            sa.func.count(),
        ).group_by(
            population.c.project, population.c.scope, population.c.access, population.c.reviewer_id
        )
    ).all()
    names = {ident(op): op.name for op in resolved.candidates}
    rows = sorted(
        (
            PlanRow(str(p), str(s), str(a), names[int(r)], int(n))
            for p, s, a, r, n in grouped
            if r is not None
        ),
        key=lambda row: (row.project, row.scope, row.access, row.reviewer),
    )
    counts: dict[int, int] = {}
    for _p, _s, _a, r, n in grouped:
        if r is not None:
            counts[int(r)] = counts.get(int(r), 0) + int(n)
    ids = list(session.execute(sa.select(population.c.grant_id)).scalars())
    summary = audit.id_summary(ids)
    return StartPlan(
        spec=spec,
        item_count=len(ids),
        population_sha256=str(summary["ids_sha256"]),
        rows=rows,
        by_reviewer=_by_reviewer(resolved, counts),
        unassignable=_unassignable(session, resolved),
        drift=_drift_lines(*_drift(session, resolved)),
    )


def start(
    session: Session, actor: Operator, *, spec: CampaignSpec, despite_drift: str | None = None
) -> Started:
    """Freeze the population and assign every item, in this one transaction (an admin)."""
    resolved = _resolve(session, actor, spec)
    why_despite = (
        validation.reason(despite_drift, "start despite drift")
        if despite_drift is not None
        else None
    )
    exists = session.execute(
        sa.select(col(ReviewCampaign.id)).where(col(ReviewCampaign.name) == resolved.name)
    ).first()
    if exists is not None:
        raise ConflictError(f"a campaign named {resolved.name!r} exists already")
    # Locked before the population is read: an approval, a pause or a resume of this client
    # committing meanwhile is wholly in the population or wholly out of it.
    client = catalog.lock_client(session, ident(resolved.client))
    pending, failed = _drift(session, resolved)
    drift = _drift_lines(pending, failed)
    if drift and why_despite is None:
        raise ConflictError(
            f"client {client.name!r}: {pending} pending and {failed} failed directory "
            "operation(s) for the grants in scope, so the directory has not confirmed what "
            "they grant; run `govtui sync` first, or start with --despite-drift REASON"
        )
    now = clock.now()
    campaign = ReviewCampaign(
        name=resolved.name,
        client_id=ident(client),
        project_id=ident(resolved.project) if resolved.project is not None else None,
        scope_id=ident(resolved.scope) if resolved.scope is not None else None,
        sensitivity=resolved.sensitivity,
        fallback_reviewer_id=ident(resolved.fallback) if resolved.fallback is not None else None,
        due_at=resolved.due_at,
        if_no_answer=resolved.if_no_answer,
        state="open",
        item_count=0,
        population_sha256="",
        despite_drift=why_despite if drift else None,
        created_by=ident(actor),
        created_at=now,
    )
    session.add(campaign)
    session.flush()
    campaign_id = ident(campaign)
    session.execute(
        sa.insert(_REVIEWER),
        [
            {"campaign_id": campaign_id, "position": position, "operator_id": ident(op)}
            for position, op in enumerate(resolved.reviewers, start=1)
        ],
    )
    # The population, frozen: one INSERT ... SELECT, the reviewer chosen by the database.
    # No separate scan for the unassignable: the INSERT's NOT NULL reviewer refuses them, and
    # only then (in a savepoint, so PostgreSQL's transaction stays usable) are they named.
    try:
        with session.begin_nested():
            _insert_items(session, resolved, campaign_id)
    except sa.exc.IntegrityError:
        _refuse_unassignable(_unassignable(session, resolved))
        raise
    if session.get_bind().dialect.name == "postgresql":
        # Thousands of new rows at once: without fresh statistics the planner takes the items
        # windows (review_views) for tiny and sorts them slowly. ANALYZE is transactional there.
        session.execute(sa.text("ANALYZE review_item"))
    # What the items hold, read back: the digest and counts are of what was written.
    ids = list(
        session.execute(
            sa.select(_ITEM.c.grant_id)
            .where(_ITEM.c.campaign_id == campaign_id)
            .order_by(_ITEM.c.grant_id)
        )
        .scalars()
        .all()
    )
    if not ids:
        raise ConflictError(
            f"client {client.name!r} has no active or suspended grant in the scope given: "
            "nothing to review"
        )
    counts = {
        int(r): int(n)
        for r, n in session.execute(
            sa.select(_ITEM.c.reviewer_id, sa.func.count())
            .where(_ITEM.c.campaign_id == campaign_id)
            .group_by(_ITEM.c.reviewer_id)
        ).all()
    }
    summary = audit.id_summary(ids)
    digest = str(summary["ids_sha256"])
    campaign.item_count, campaign.population_sha256 = len(ids), digest
    session.add(campaign)
    by_reviewer = _by_reviewer(resolved, counts)
    audit.append(
        session,
        actor=actor.name,
        action="review.start",
        obj=f"review:{resolved.name}",
        details={
            "campaign_id": campaign_id,
            "client": client.name,
            "project": resolved.project.name if resolved.project is not None else None,
            "scope": spec.scope if resolved.scope is not None else None,
            "sensitivity": resolved.sensitivity,
            "reviewers": [op.name for op in resolved.reviewers],
            "fallback": resolved.fallback.name if resolved.fallback is not None else None,
            "due_at": audit.format_time(resolved.due_at),
            "if_no_answer": resolved.if_no_answer,
            "item_count": len(ids),
            "population_sha256": digest,
            "first_ids": summary["first_ids"],
            "by_reviewer": by_reviewer,
            "despite_drift": campaign.despite_drift,
            **({"drift": drift} if drift else {}),
        },
    )
    return Started(campaign_id, resolved.name, len(ids), digest, by_reviewer)


def find_campaign(session: Session, name: str, *, lock: bool = False) -> ReviewCampaign:
    """The campaign called `name` (re-read under a row lock when `lock`)."""
    query = sa.select(ReviewCampaign).where(col(ReviewCampaign.name) == name)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found: ReviewCampaign | None = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"unknown review campaign {quoted(name)}")
    return found


def validate(session: Session, actor: Operator, spec: CampaignSpec) -> _Resolved:
    """Check a spec exactly as `start` does, writing nothing: review_schedules checks a
    schedule's shape with it (client, project, sensitivity, reviewers, fallback)."""
    return _resolve(session, actor, spec)

"""Recurring access reviews: a schedule names a campaign's shape (client, project,
sensitivity, reviewers, no-answer action, days to answer) and how often it starts; cron runs
`govtui review due --start-scheduled`, which starts each campaign whose time has come.

Exactly once, even with two crons at the same instant: a start claims its period with a
conditional UPDATE (`next_start_at` moves on only WHERE it still holds the value read), in
the same transaction as reviews.start, so of two runs one claims (rowcount 1) and starts,
and the other claims nothing and starts nothing.

A start that is refused (directory drift, an ineligible or removed reviewer, a grant nobody
independent may review, a campaign of that name already) does NOT advance: the schedule stays
due, every run of `--start-scheduled` reports it again (exit status 1, so cron mails) and
retries, so a missed review can be neither skipped nor forgotten; the refusal is one audit
event `review.schedule_refused` per period and reason (not one per cron run). The one
exception is a period with nothing to review (no active or suspended grant in scope): it
advances, with the audit event `review.schedule_skipped`, as nothing is owed for it.

A start that comes late (cron was down) starts one campaign, named after the day it was due,
and moves `next_start_at` past now: missed periods are not started one after another."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, GovtuiError, InputError, NotFoundError
from govtui.models import (
    AuditEvent,
    Client,
    DatasetScope,
    Grant,
    Operator,
    Project,
    ReviewCampaign,
    ReviewSchedule,
    ReviewScheduleReviewer,
)
from govtui.services import audit, catalog, operators, reviews, validation
from govtui.services.workspace import Workspace
from govtui.text import quoted
from govtui.vocabulary import NoAnswer, Role, Sensitivity

# How often a review recurs when `--every` is left out, by the tier of the most sensitive
# scope it covers.
TIER_EVERY_DAYS: dict[str, int] = {
    Sensitivity.RESTRICTED.value: 30,
    Sensitivity.CONFIDENTIAL.value: 90,
    Sensitivity.INTERNAL.value: 180,
}
_MOST_SENSITIVE_FIRST = (Sensitivity.RESTRICTED, Sensitivity.CONFIDENTIAL, Sensitivity.INTERNAL)
_DATE_SUFFIX = "-2000-01-01"  # what a campaign's name adds to its schedule's

_SCHEDULE: sa.Table = ReviewSchedule.__table__  # type: ignore[attr-defined]
_SCHEDULE_REVIEWER: sa.Table = ReviewScheduleReviewer.__table__  # type: ignore[attr-defined]
_CAMPAIGN: sa.Table = ReviewCampaign.__table__  # type: ignore[attr-defined]

STARTED, SKIPPED, REFUSED, TAKEN = "started", "skipped", "refused", "taken"


@dataclass(frozen=True)
class ScheduleSpec:
    """What `review schedule add` was given."""

    name: str
    client: str
    reviewers: tuple[str, ...]
    if_no_answer: NoAnswer
    due_in_days: int
    project: str | None = None
    sensitivity: str | None = None
    fallback_reviewer: str | None = None
    every_days: int | None = None  # None: by the tier (TIER_EVERY_DAYS)
    first: date | None = None  # None: the next `--start-scheduled` starts the first campaign


@dataclass(frozen=True)
class Added:
    name: str
    every_days: int
    every_from: str  # "--every", or the tier it was defaulted from: "tier restricted"
    next_start_at: datetime


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    client: str
    project: str | None
    sensitivity: str | None
    every_days: int
    due_in_days: int
    if_no_answer: str
    reviewers: tuple[str, ...]
    fallback: str | None
    next_start_at: datetime
    created_by: str
    created_at: datetime
    last_campaign: str | None  # the newest campaign it started


@dataclass(frozen=True)
class ScheduledStart:
    """What one due schedule did on this run."""

    schedule: str
    outcome: str  # started | skipped (nothing to review) | refused (stays due) | taken
    scheduled_for: datetime
    campaign: str | None = None
    item_count: int = 0
    next_start_at: datetime | None = None  # after this run (None: unchanged)
    reason: str | None = None  # why it was refused or skipped


# --- add, list, remove ------------------------------------------------------------------------


def campaign_name(schedule: str, scheduled_for: datetime) -> str:
    """The name of the campaign a schedule starts for a period: NAME-YYYY-MM-DD (the day it
    was due, so a late start keeps the period's name and two periods never share one)."""
    return f"{schedule}-{scheduled_for:%Y-%m-%d}"


def _campaign_spec(
    spec: ScheduleSpec, name: str, due_at: datetime, reviewers: Sequence[str]
) -> reviews.CampaignSpec:
    return reviews.CampaignSpec(
        name=name,
        client=spec.client,
        reviewers=tuple(reviewers),
        due_at=due_at,
        if_no_answer=spec.if_no_answer,
        project=spec.project,
        sensitivity=spec.sensitivity,
        fallback_reviewer=spec.fallback_reviewer,
    )


def _tier(session: Session, client: Client, project: Project | None) -> str | None:
    """The most sensitive tier among the client's (or the project's) scopes, if any."""
    query = (
        sa.select(col(DatasetScope.sensitivity))
        .distinct()
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(col(Project.client_id) == ident(client))
    )
    if project is not None:
        query = query.where(col(Project.id) == ident(project))
    found = {str(s) for s in session.execute(query).scalars()}
    return next((t.value for t in _MOST_SENSITIVE_FIRST if t.value in found), None)


def add(session: Session, actor: Operator, *, spec: ScheduleSpec) -> Added:
    """Add a recurring review (an admin), checked as `review start` checks a campaign."""
    operators.require_role(session, actor, Role.ADMIN)
    name = validation.name(spec.name, "schedule")
    # Its campaigns are called NAME-YYYY-MM-DD, which must be a valid campaign name too.
    if len(name + _DATE_SUFFIX) > 64:
        raise InputError(
            f"invalid schedule name {quoted(name)}: at most {64 - len(_DATE_SUFFIX)} "
            "characters (its campaigns are named NAME-YYYY-MM-DD)"
        )
    now = clock.now()
    if spec.due_in_days < 1 or spec.due_in_days > validation.MAX_DAYS:
        raise InputError(f"--due-in must be 1 to {validation.MAX_DAYS} days")
    if spec.every_days is not None and not 1 <= spec.every_days <= validation.MAX_DAYS:
        raise InputError(f"--every must be 1 to {validation.MAX_DAYS} days")
    # Everything start checks, on the shape the campaigns will have (the reviewers' roles
    # and clients, the fallback, the client, project and sensitivity, the no-answer action).
    resolved = reviews.validate(
        session,
        actor,
        _campaign_spec(spec, name, now + timedelta(days=spec.due_in_days), spec.reviewers),
    )
    if spec.every_days is not None:
        every, every_from = spec.every_days, "--every"
    else:
        tier = resolved.sensitivity or _tier(session, resolved.client, resolved.project)
        if tier is None:
            where = (
                f"project {resolved.client.name}/{resolved.project.name}"
                if resolved.project is not None
                else f"client {resolved.client.name!r}"
            )
            raise InputError(
                f"{where} has no scopes yet, so no tier to default from: give --every DAYS"
            )
        every, every_from = TIER_EVERY_DAYS[tier], f"tier {tier}"
    if spec.due_in_days > every:
        raise InputError(
            f"--due-in {spec.due_in_days} is longer than the schedule's {every} days: a "
            "campaign would still be open when the next one starts"
        )
    if spec.first is not None:
        first = validation.iso_date(spec.first, "--first")
        if first < now.date():
            raise InputError(f"--first {first.isoformat()} is past: give a day from today on")
        next_start_at = max(datetime.combine(first, time(0, 0), UTC), now)
    else:
        next_start_at = now
    taken = session.execute(
        sa.select(col(ReviewSchedule.removed_at)).where(col(ReviewSchedule.name) == name)
    ).first()
    if taken is not None:
        removed = " (removed, but its name stays with its history)" if taken[0] else ""
        raise ConflictError(f"a review schedule named {name!r} exists already{removed}")
    schedule = ReviewSchedule(
        name=name,
        client_id=ident(resolved.client),
        project_id=ident(resolved.project) if resolved.project is not None else None,
        sensitivity=resolved.sensitivity,
        fallback_reviewer_id=ident(resolved.fallback) if resolved.fallback is not None else None,
        every_days=every,
        due_in_days=spec.due_in_days,
        if_no_answer=resolved.if_no_answer,
        next_start_at=next_start_at,
        created_by=ident(actor),
        created_at=now,
    )
    session.add(schedule)
    session.flush()
    session.execute(
        sa.insert(_SCHEDULE_REVIEWER),
        [
            {"schedule_id": ident(schedule), "position": position, "operator_id": ident(op)}
            for position, op in enumerate(resolved.reviewers, start=1)
        ],
    )
    audit.append(
        session,
        actor=actor.name,
        action="review.schedule_add",
        obj=f"review_schedule:{name}",
        details={
            "schedule_id": ident(schedule),
            "client": resolved.client.name,
            "project": resolved.project.name if resolved.project is not None else None,
            "sensitivity": resolved.sensitivity,
            "reviewers": [op.name for op in resolved.reviewers],
            "fallback": resolved.fallback.name if resolved.fallback is not None else None,
            "every_days": every,
            "every_from": every_from,
            "due_in_days": spec.due_in_days,
            "if_no_answer": resolved.if_no_answer,
            "next_start_at": audit.format_time(next_start_at),
        },
    )
    return Added(name, every, every_from, next_start_at)


def _find(session: Session, name: str) -> ReviewSchedule:
    found: ReviewSchedule | None = session.execute(
        sa.select(ReviewSchedule).where(
            col(ReviewSchedule.name) == name, col(ReviewSchedule.removed_at).is_(None)
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"unknown review schedule {quoted(name)}")
    return found


def remove(session: Session, actor: Operator, *, name: str) -> None:
    """Stop a schedule (an admin): no campaign starts from it again; the row and the
    campaigns it started stay, with who removed it and when."""
    operators.require_role(session, actor, Role.ADMIN)
    schedule = _find(session, name)
    now = clock.now()
    # Conditional, like a claim: a start claiming the same row meanwhile is wholly before.
    done = session.execute(
        sa.update(_SCHEDULE)
        .where(_SCHEDULE.c.id == ident(schedule), _SCHEDULE.c.removed_at.is_(None))
        .values(removed_at=now, removed_by=ident(actor))
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFoundError(f"unknown review schedule {quoted(name)}")
    audit.append(
        session,
        actor=actor.name,
        action="review.schedule_remove",
        obj=f"review_schedule:{schedule.name}",
        details={"schedule_id": ident(schedule)},
    )


def _reviewer_names(session: Session, schedule: ReviewSchedule) -> tuple[str, ...]:
    """A schedule's reviewers by name, in their order."""
    return tuple(
        str(n)
        for n in session.execute(
            sa.select(col(Operator.name))
            .join(_SCHEDULE_REVIEWER, _SCHEDULE_REVIEWER.c.operator_id == col(Operator.id))
            .where(_SCHEDULE_REVIEWER.c.schedule_id == ident(schedule))
            .order_by(_SCHEDULE_REVIEWER.c.position)
        ).scalars()
    )


def schedules(session: Session) -> list[ScheduleRow]:
    """The schedules not removed, soonest start first (there are few: one query each)."""
    rows = session.execute(
        sa.select(ReviewSchedule)
        .where(col(ReviewSchedule.removed_at).is_(None))
        .order_by(col(ReviewSchedule.next_start_at), col(ReviewSchedule.name))
    ).scalars()
    out = []
    for s in list(rows):
        reviewer_names = _reviewer_names(session, s)
        client = session.get(Client, s.client_id)
        project = session.get(Project, s.project_id) if s.project_id is not None else None
        last = session.execute(
            sa.select(col(ReviewCampaign.name))
            .where(col(ReviewCampaign.schedule_id) == ident(s))
            .order_by(col(ReviewCampaign.created_at).desc(), col(ReviewCampaign.id).desc())
            .limit(1)
        ).scalar_one_or_none()
        out.append(
            ScheduleRow(
                name=s.name,
                client=client.name if client is not None else "?",
                project=project.name if project is not None else None,
                sensitivity=s.sensitivity,
                every_days=s.every_days,
                due_in_days=s.due_in_days,
                if_no_answer=s.if_no_answer,
                reviewers=reviewer_names,
                fallback=operators.name_of(session, s.fallback_reviewer_id),
                next_start_at=s.next_start_at,
                created_by=operators.name_of(session, s.created_by) or "?",
                created_at=s.created_at,
                last_campaign=last,
            )
        )
    return out


# --- starting what is due ---------------------------------------------------------------------


def due_now(session: Session) -> list[int]:
    """The ids of the schedules whose next start has come, soonest first."""
    return list(
        session.execute(
            sa.select(_SCHEDULE.c.id)
            .where(_SCHEDULE.c.removed_at.is_(None), _SCHEDULE.c.next_start_at <= clock.now())
            .order_by(_SCHEDULE.c.next_start_at, _SCHEDULE.c.id)
        ).scalars()
    )


def next_after(scheduled_for: datetime, every_days: int, now: datetime) -> datetime:
    """The first start of the schedule's rhythm after `now` (at least one period on)."""
    every = timedelta(days=every_days)
    periods = max(1, math.floor((now - scheduled_for) / every) + 1)
    return scheduled_for + periods * every


def _claim(session: Session, schedule_id: int, seen: datetime, new: datetime) -> bool:
    """Move the schedule on from `seen` to `new`, only if it still holds `seen`: of two
    runs that read the same value, exactly one gets rowcount 1 (on PostgreSQL the second
    waits on the row lock, then finds the value changed; SQLite serialises writers)."""
    result = session.execute(
        sa.update(_SCHEDULE)
        .where(
            _SCHEDULE.c.id == schedule_id,
            _SCHEDULE.c.next_start_at == seen,
            _SCHEDULE.c.removed_at.is_(None),
        )
        .values(next_start_at=new)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def _population(session: Session, schedule: ReviewSchedule) -> int:
    """How many grants a campaign of the schedule would hold now (as reviews.start counts)."""
    query = (
        sa.select(sa.func.count())
        .select_from(Grant)
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(
            col(Project.client_id) == schedule.client_id,
            col(Grant.state).in_(reviews.REVIEWED_STATES),
        )
    )
    if schedule.project_id is not None:
        query = query.where(col(Project.id) == schedule.project_id)
    if schedule.sensitivity is not None:
        query = query.where(col(DatasetScope.sensitivity) == schedule.sensitivity)
    return int(session.execute(query).scalar_one())


def _spec_of(session: Session, schedule: ReviewSchedule, now: datetime) -> reviews.CampaignSpec:
    reviewer_names = _reviewer_names(session, schedule)
    client = session.get(Client, schedule.client_id)
    project = session.get(Project, schedule.project_id) if schedule.project_id else None
    assert client is not None
    return reviews.CampaignSpec(
        name=campaign_name(schedule.name, schedule.next_start_at),
        client=client.name,
        reviewers=reviewer_names,
        due_at=now + timedelta(days=schedule.due_in_days),
        if_no_answer="revoke" if schedule.if_no_answer == "revoke" else "keep",
        project=project.name if project is not None else None,
        sensitivity=schedule.sensitivity,
        fallback_reviewer=operators.name_of(session, schedule.fallback_reviewer_id),
    )


def _refused_already(session: Session, schedule: str, details: dict[str, object]) -> bool:
    """Whether the schedule's last event is this same refusal (same period, same reason):
    a refusal is recorded once, not on every cron run until someone fixes it."""
    last = session.execute(
        sa.select(col(AuditEvent.action), col(AuditEvent.details))
        .where(col(AuditEvent.object) == f"review_schedule:{schedule}")
        .order_by(col(AuditEvent.seq).desc())
        .limit(1)
    ).first()
    if last is None or last[0] != "review.schedule_refused":
        return False
    return bool(json.loads(last[1]) == details)


def start_one(session: Session, actor: Operator, *, schedule_id: int) -> ScheduledStart | None:
    """Start the schedule's campaign if its time has come and this run claims the period
    (an admin; None when it is not due). See the module's docstring for what a refusal does."""
    operators.require_role(session, actor, Role.ADMIN)
    schedule = session.get(ReviewSchedule, schedule_id, populate_existing=True)
    now = clock.now()
    if schedule is None or schedule.removed_at is not None or schedule.next_start_at > now:
        return None
    seen = schedule.next_start_at
    new = next_after(seen, schedule.every_days, now)
    obj = f"review_schedule:{schedule.name}"
    base = {"schedule_id": schedule_id, "scheduled_for": audit.format_time(seen)}
    spec = _spec_of(session, schedule, now)
    if not _claim(session, schedule_id, seen, new):
        return ScheduledStart(schedule.name, TAKEN, seen)
    # From here this run holds the schedule's row (and on SQLite the writer lock) until it
    # commits: nobody else can start, skip or refuse this period meanwhile.
    catalog.lock_client(session, schedule.client_id)
    if _population(session, schedule) == 0:
        why = "no active or suspended grant in scope: nothing to review this period"
        audit.append(
            session,
            actor=actor.name,
            action="review.schedule_skipped",
            obj=obj,
            details={**base, "reason": why, "next_start_at": audit.format_time(new)},
        )
        return ScheduledStart(schedule.name, SKIPPED, seen, next_start_at=new, reason=why)
    try:
        with session.begin_nested():
            started = reviews.start(session, actor, spec=spec)
    except (GovtuiError, sa.exc.IntegrityError) as exc:
        # The savepoint undid the campaign; the claim is undone too (the row lock stays
        # held), so the schedule stays due and the next run tries again.
        session.execute(
            sa.update(_SCHEDULE)
            .where(_SCHEDULE.c.id == schedule_id, _SCHEDULE.c.next_start_at == new)
            .values(next_start_at=seen)
        )
        why = str(exc) if isinstance(exc, GovtuiError) else "a campaign of that name exists"
        why = why.splitlines()[0] if why else type(exc).__name__
        details: dict[str, object] = {**base, "campaign": spec.name, "reason": why}
        if not _refused_already(session, schedule.name, details):
            audit.append(
                session,
                actor=actor.name,
                action="review.schedule_refused",
                obj=obj,
                details=details,
            )
        return ScheduledStart(schedule.name, REFUSED, seen, spec.name, reason=why)
    session.execute(
        sa.update(_CAMPAIGN)
        .where(_CAMPAIGN.c.id == started.campaign_id)
        .values(schedule_id=schedule_id)
    )
    audit.append(
        session,
        actor=actor.name,
        action="review.schedule_start",
        obj=obj,
        details={
            **base,
            "campaign": started.name,
            "campaign_id": started.campaign_id,
            "item_count": started.item_count,
            "next_start_at": audit.format_time(new),
        },
    )
    return ScheduledStart(schedule.name, STARTED, seen, started.name, started.item_count, new)


def _require_admin(session: Session, actor: Operator) -> None:
    operators.require_role(session, actor, Role.ADMIN)


def start_due(workspace: Workspace) -> list[ScheduledStart]:
    """Start every campaign whose time has come, each in a transaction of its own (so one
    refusal does not undo another schedule's start), as the workspace's operator (an admin)."""
    # Refused at once for anyone but an admin, due or not: a cron set up as the wrong
    # operator says so on its first run, not on the day a review falls due.
    workspace.read_as(_require_admin)
    results = []
    for schedule_id in workspace.read(due_now):
        result = workspace.act(start_one, schedule_id=schedule_id)
        if result is not None:
            results.append(result)
    return results

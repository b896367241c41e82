"""The grant operations: request, approve with a second person's TOTP code, deny, extend,
revoke, and expire. Adding access needs a code; removing it never waits for one. Each checks
its policy and writes its audit event; the state changes themselves are grant_lifecycle's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from govtui import clock
from govtui.db import ident
from govtui.errors import ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import (
    Approval,
    Client,
    Contractor,
    DatasetScope,
    Grant,
    GrantExtension,
    Operator,
    Project,
)
from govtui.services import (
    act_signatures,
    audit,
    catalog,
    contractors,
    grant_lifecycle,
    grant_views,
    operators,
    privilege,
    second_factor,
    validation,
)
from govtui.vocabulary import (
    IN_DIRECTORY_STATES,
    LIVE_STATES,
    AccessLevel,
    ClientStatus,
    ContractorStatus,
    Decision,
    ExtensionState,
    GrantState,
    Role,
    Sensitivity,
)


@dataclass(frozen=True)
class Subject:
    """What one approval decides: the request itself (round 0) or one extension."""

    grant: Grant
    scope: DatasetScope
    client: Client
    contractor: Contractor
    round: int
    extension: GrantExtension | None

    @property
    def requested_by(self) -> int:
        return self.extension.requested_by if self.extension else self.grant.requested_by

    @property
    def approvals_needed(self) -> int:
        return 2 if self.scope.sensitivity == Sensitivity.RESTRICTED else 1


@dataclass(frozen=True)
class ApprovalOutcome:
    grant_id: int
    round: int
    activated: bool  # False: a restricted scope still waits for a second approver
    expires_at: datetime | None


def contract_end_instant(contract_end: date) -> datetime:
    """Access ends at the latest when the contract's last day ends (UTC)."""
    return datetime.combine(contract_end + timedelta(days=1), time(0), tzinfo=UTC)


def expiry(now: datetime, *, days: int, scope: DatasetScope, contractor: Contractor) -> datetime:
    """The smallest of: the days asked for, the scope's max days, the sensitivity tier's cap,
    and the end of the contractor's contract (DESIGN invariant 1)."""
    limit = min(days, scope.max_grant_days, catalog.TIER_CAP_DAYS[scope.sensitivity])
    return min(now + timedelta(days=limit), contract_end_instant(contractor.contract_end))


@dataclass(frozen=True)
class EffectiveDays:
    """How long a grant approved now would last, after the caps of DESIGN invariant 1."""

    days: int  # whole days (a contract ending sooner may leave part of a day more)
    asked: int | None  # the days asked for; None: the most this scope allows is shown
    because: str | None  # the cap that bites, when one does ("the scope's limit of 30 days")
    ends_at: datetime


def effective_days(
    session: Session, *, scope_path: str, days: int | None = None, contractor: str | None = None
) -> EffectiveDays:
    """What `expiry` would give a grant of `days` (or of the most allowed) on the scope,
    for the contractor if one is named, approved now; the request form shows it."""
    scope = catalog.find_scope(session, scope_path)
    person = contractors.find(session, contractor) if contractor else None
    now = clock.now()
    tier = str(scope.sensitivity)
    # On a tie the tier's cap is named: the scope's limit only repeats it.
    caps: list[tuple[int, str]] = [
        (
            catalog.TIER_CAP_DAYS[scope.sensitivity],
            f"the {tier} tier's cap of {catalog.TIER_CAP_DAYS[scope.sensitivity]} days",
        ),
        (scope.max_grant_days, f"the scope's limit of {scope.max_grant_days} days"),
    ]
    limit, cap = min(caps, key=lambda cap: cap[0])
    because: str | None = cap
    asked = days if days is None else validation.positive_days(days)
    if asked is not None and asked <= limit:
        limit, because = asked, None
    ends_at = now + timedelta(days=limit)
    if person is not None:
        ends_at = expiry(now, days=limit, scope=scope, contractor=person)
        if ends_at < now + timedelta(days=limit):
            because = f"the contract's end on {person.contract_end.isoformat()}"
    whole = max(int((ends_at - now) / timedelta(days=1)), 0)
    return EffectiveDays(whole, asked, because, ends_at)


def _client_of(session: Session, scope: DatasetScope) -> Client:
    project = session.get(Project, scope.project_id)
    assert project is not None
    client = session.get(Client, project.client_id)
    assert client is not None
    return client


def _require_not_paused(client: Client, what: str) -> None:
    if client.status == ClientStatus.PAUSED:
        raise PolicyError(
            f"client {client.name!r} is paused: no grant can be {what} until it is resumed"
        )


def _require_can_work(contractor: Contractor, now: datetime) -> None:
    if contractor.status != ContractorStatus.ACTIVE:
        raise PolicyError(f"contractor {contractor.external_id!r} is {contractor.status}")
    if contract_end_instant(contractor.contract_end) <= now:
        raise PolicyError(
            f"contractor {contractor.external_id!r}'s contract ended on {contractor.contract_end.isoformat()}"
        )


def request(
    session: Session,
    actor: Operator,
    *,
    contractor: str,
    scope_path: str,
    access: AccessLevel | str,
    days: int,
    reason: str,
) -> Grant:
    """Ask for one contractor's access to one scope at one level, for some days."""
    operators.require_role(session, actor, Role.REQUESTER)
    level = validation.choice(access, AccessLevel, "access level")
    days = validation.positive_days(days)
    reason = validation.reason(reason, "request")
    person = contractors.find(session, contractor)
    scope = catalog.find_scope(session, scope_path)
    # A shared lock on the client: a pause (which locks it for update) either sees this
    # request and suspends it, or finishes first and this request sees the client paused.
    client = catalog.lock_client(session, _client_of(session, scope).id, share=True)
    now = clock.now()
    _require_can_work(person, now)
    _require_not_paused(client, "requested")
    live = session.exec(
        select(Grant).where(
            Grant.contractor_id == ident(person),
            Grant.scope_id == ident(scope),
            Grant.access == level,
            col(Grant.state).in_(LIVE_STATES),
        )
    ).first()
    if live is not None:
        raise ConflictError(
            f"contractor {contractor!r} has grant {live.id} ({live.state}) for {scope_path} at {level} already"
        )
    grant = grant_lifecycle.create_request(
        session,
        contractor_id=ident(person),
        scope_id=ident(scope),
        access=level,
        reason=reason,
        requested_by=ident(actor),
        days=days,
        now=now,
    )
    audit.append(
        session,
        actor=actor.name,
        action="grant.request",
        obj=f"grant:{grant.id}",
        details={
            "contractor": contractor,
            "scope": scope_path,
            "access": level.value,
            "days": days,
            "reason": reason,
        },
    )
    return grant


def _locked_grants(
    session: Session,
    actor: Operator,
    grant_ids: Sequence[int],
    mark: grant_views.QueueMark | None = None,
    *,
    lock: bool = True,
) -> list[Grant]:
    """The batch's grants, locked (unless `lock` is off: a check before asking): the ids
    named, or every grant a queue mark holds now (read in SQL, never an IN list of its ids;
    more than it held when marked is refused)."""
    if mark is not None:
        if grant_ids:
            raise InputError("name grant ids or a marked queue, not both")
        chosen = col(Grant.id).in_(grant_views.marked_ids(session, actor, mark))
    elif not grant_ids:
        raise InputError("name at least one grant id")
    else:
        chosen = col(Grant.id).in_(sorted(set(grant_ids)))
    # FOR UPDATE in id order: concurrent approvals of overlapping batches queue up instead of
    # deadlocking (PostgreSQL); SQLite's BEGIN IMMEDIATE already serialises writers.
    query = select(Grant).where(chosen).order_by(col(Grant.id))
    if lock:
        query = query.with_for_update()
    found = list(session.exec(query.execution_options(populate_existing=True)).all())
    if mark is not None:
        if not found:
            raise ConflictError("none of the marked requests waits for you any more")
        if len(found) > mark.marked:
            raise ConflictError(
                f"the marked requests are {len(found):,} now, not the {mark.marked:,} marked; "
                "mark them again"
            )
        # The filter read again may hold an older request that joined it after the mark
        # (its contractor renamed, its client resumed, the actor made its approver) in the
        # place of one decided meanwhile: the count alone would not tell.
        joined = [ident(g) for g in found if not mark.holds(ident(g))]
        if joined:
            raise ConflictError(
                f"grant {joined[0]} waits for you but was not marked (it joined the filter "
                "after the mark); mark them again"
            )
        return found
    missing = sorted(set(grant_ids) - {ident(g) for g in found})
    if missing:
        raise NotFoundError(f"unknown grant {missing[0]}")
    return found


def _batch_words(grants: Sequence[Grant]) -> str:
    """The batch as the audit of a refused code names it: its ids, or a count when many."""
    if len(grants) <= 10:
        return "grant " + ", ".join(str(g.id) for g in grants)
    return f"{len(grants):,} grants ({grants[0].id}…{grants[-1].id})"


def _pending_extension(session: Session, grant: Grant) -> GrantExtension | None:
    return session.exec(
        select(GrantExtension).where(
            GrantExtension.grant_id == ident(grant),
            GrantExtension.state == ExtensionState.REQUESTED,
        )
    ).first()


def _subject(session: Session, grant: Grant) -> Subject:
    scope = session.get(DatasetScope, grant.scope_id)
    person = session.get(Contractor, grant.contractor_id)
    assert scope is not None
    assert person is not None
    client = _client_of(session, scope)
    if grant.state == GrantState.SUSPENDED:
        _require_not_paused(client, "approved")
    extension = _pending_extension(session, grant) if grant.state == GrantState.ACTIVE else None
    if grant.state != GrantState.REQUESTED and extension is None:
        raise PolicyError(f"grant {grant.id} is {grant.state}, not awaiting approval")
    return Subject(
        grant=grant,
        scope=scope,
        client=client,
        contractor=person,
        round=extension.round if extension else 0,
        extension=extension,
    )


def _require_approver_for(session: Session, approver: Operator, subject: Subject) -> None:
    if not operators.is_approver_for(session, approver, subject.client):
        raise PolicyError(
            f"grant {subject.grant.id}: {approver.name!r} is not an approver for client {subject.client.name!r}"
        )


def approve(
    session: Session,
    actor: Operator,
    *,
    grant_ids: Sequence[int] = (),
    code: str,
    mark: grant_views.QueueMark | None = None,
) -> list[ApprovalOutcome]:
    """Approve a batch of requests (or extensions) with one TOTP code: all or none. The
    batch is `grant_ids`, or `mark`: every request of a filter that waited for the actor
    when it was marked and still does (rows requested after it are never in it)."""
    grants = _locked_grants(session, actor, grant_ids, mark)
    now = clock.now()
    subjects = _approvable(session, actor, grants, now)
    step = second_factor.verify(session, actor, code, purpose=f"approval of {_batch_words(grants)}")
    signed = act_signatures.approval_fingerprint(session, actor)
    outcomes = [
        _record_approval(session, actor, subject, step, now, signed) for subject in subjects
    ]
    # The whole batch signed in one pass (per grant it was two reads of its rows: ~20 ms each).
    act_signatures.sign_approvals(session, actor, step=step, at=now)
    return outcomes


def check_approve(
    session: Session,
    actor: Operator,
    *,
    grant_ids: Sequence[int] = (),
    mark: grant_views.QueueMark | None = None,
) -> None:
    """What `approve` would refuse before it asks for a code (each request still waiting, the
    actor its client's approver, the client not paused, an authenticator enrolled), so that a
    front end asks for no code that cannot help. `approve` checks again, under lock."""
    second_factor.require_enrolled(actor)
    grants = _locked_grants(session, actor, grant_ids, mark, lock=False)
    _approvable(session, actor, grants, clock.now())


def _approvable(
    session: Session, actor: Operator, grants: Sequence[Grant], now: datetime
) -> list[Subject]:
    """Each grant of the batch as a subject `actor` may approve now; the first refusal raises."""
    subjects = []
    for grant in grants:
        subject = _subject(session, grant)
        if subject.requested_by == actor.id:
            raise PolicyError(f"grant {grant.id}: you cannot approve your own request")
        _require_approver_for(session, actor, subject)
        _require_not_paused(subject.client, "approved")
        _require_can_work(subject.contractor, now)
        earlier = session.exec(
            select(Approval.id).where(
                Approval.grant_id == ident(grant),
                Approval.round == subject.round,
                Approval.approver_id == ident(actor),
            )
        ).first()
        if earlier is not None:
            raise PolicyError(
                f"grant {grant.id}: {actor.name!r} approved it already; a restricted scope needs a second, different approver"
            )
        if subject.approvals_needed > 1:
            _require_independent_approvers(session, actor, subject)
        subjects.append(subject)
    return subjects


def _require_independent_approvers(session: Session, actor: Operator, subject: Subject) -> None:
    """Refuse the second approval of a restricted grant when both approvers were made
    approvers for its client on the say-so of the same single admin (four eyes that one
    admin alone provides are two eyes)."""
    others = session.exec(
        select(Approval.approver_id).where(
            Approval.grant_id == ident(subject.grant),
            Approval.round == subject.round,
            Approval.decision == Decision.APPROVE.value,
        )
    ).all()
    mine = privilege.provenance(session, actor, subject.client)
    for other_id in others:
        other = session.get(Operator, other_id)
        assert other is not None
        theirs = privilege.provenance(session, other, subject.client)
        # Rows from before schema version 4 have no provenance (None): they are not refused,
        # since nothing says who vouched for them and refusing would stop every restricted
        # approval at the upgrade; an admin re-grants them (`operator approves remove/add`)
        # to bring them under this rule.
        if mine is not None and mine == theirs and len(mine) == 1:
            (admin_id,) = mine
            raise PolicyError(
                f"grant {subject.grant.id}: {other.name!r} and {actor.name!r} were both made "
                f"approvers for {subject.client.name!r} by {operators.name_of(session, admin_id)!r} "
                "alone; a restricted scope needs approvers vouched for by more than one admin"
            )


def _record_approval(
    session: Session, actor: Operator, subject: Subject, step: int, now: datetime, signed: str
) -> ApprovalOutcome:
    grant = subject.grant
    session.add(
        Approval(
            grant_id=ident(grant),
            round=subject.round,
            approver_id=ident(actor),
            decision=Decision.APPROVE.value,
            totp_step=step,
            decided_at=now,
        )
    )
    session.flush()
    given = session.execute(
        sa.select(sa.func.count()).where(
            col(Approval.grant_id) == ident(grant),
            col(Approval.round) == subject.round,
            col(Approval.decision) == Decision.APPROVE,
        )
    ).scalar_one()
    activated = given >= subject.approvals_needed
    details: dict[str, object] = {
        "round": subject.round,
        "approvals": given,
        "needed": subject.approvals_needed,
        "signature": signed,  # the batch is signed once all its approvals are recorded
    }
    if activated and subject.extension is None:
        grant_lifecycle.activate(
            session,
            grant,
            now=now,
            expires_at=expiry(
                now, days=grant.requested_days, scope=subject.scope, contractor=subject.contractor
            ),
        )
    elif activated and subject.extension is not None:
        extension = subject.extension
        assert grant.expires_at is not None
        longer = expiry(
            now, days=extension.days, scope=subject.scope, contractor=subject.contractor
        )
        extension.previous_expires_at = grant.expires_at
        grant.expires_at = max(grant.expires_at, longer)
        extension.new_expires_at = grant.expires_at
        extension.state = ExtensionState.APPROVED.value
        extension.decided_at = now
        session.add(extension)
    if activated:
        assert grant.expires_at is not None
        details["expires_at"] = audit.format_time(grant.expires_at)
    session.add(grant)
    action = "grant.extension_approve" if subject.extension else "grant.approve"
    audit.append(session, actor=actor.name, action=action, obj=f"grant:{grant.id}", details=details)
    return ApprovalOutcome(
        ident(grant), subject.round, activated, grant.expires_at if activated else None
    )


def deny(
    session: Session,
    actor: Operator,
    *,
    grant_ids: Sequence[int] = (),
    reason: str,
    mark: grant_views.QueueMark | None = None,
) -> int:
    """Turn down requests (or pending extensions), the ids named or a queue's `mark` (as in
    `approve`); no code needed, nothing is granted. How many were denied."""
    reason = validation.reason(reason, "denial")
    grants = _locked_grants(session, actor, grant_ids, mark)
    now = clock.now()
    for grant in grants:
        subject = _subject(session, grant)
        _require_approver_for(session, actor, subject)
        session.add(
            Approval(
                grant_id=ident(grant),
                round=subject.round,
                approver_id=ident(actor),
                decision=Decision.DENY.value,
                decided_at=now,
            )
        )
        if subject.extension is not None:
            subject.extension.state = ExtensionState.DENIED.value
            subject.extension.decided_at = now
            session.add(subject.extension)
        else:
            grant_lifecycle.end(
                session,
                [ident(grant)],
                to=GrantState.DENIED,
                ended_by=ident(actor),
                reason=reason,
                now=now,
            )
        audit.append(
            session,
            actor=actor.name,
            action="grant.deny",
            obj=f"grant:{grant.id}",
            details={"round": subject.round, "reason": reason},
        )
    return len(grants)


def revoke(session: Session, actor: Operator, *, grant_id: int, reason: str) -> Grant:
    """End a live grant at once. Removing access never waits for a code, but only the
    grant's requester, an approver of its client or an admin may (reviewers: reviews)."""
    reason = validation.reason(reason, "revocation")
    (grant,) = _locked_grants(session, actor, [grant_id])
    _require_may_revoke(session, actor, grant)
    if grant.state not in LIVE_STATES:
        raise PolicyError(f"grant {grant_id} is {grant.state} already")
    previous = grant.state
    grant_lifecycle.end(
        session,
        [grant_id],
        to=GrantState.REVOKED,
        ended_by=ident(actor),
        reason=reason,
        now=clock.now(),
    )
    audit.append(
        session,
        actor=actor.name,
        action="grant.revoke",
        obj=f"grant:{grant_id}",
        details={"from": previous, "reason": reason},
    )
    return grant


def _require_may_revoke(session: Session, actor: Operator, grant: Grant) -> None:
    if grant.requested_by == actor.id or Role.ADMIN in operators.roles_of(session, actor):
        return
    scope = session.get(DatasetScope, grant.scope_id)
    assert scope is not None
    client = _client_of(session, scope)
    if not operators.is_approver_for(session, actor, client):
        raise PolicyError(
            f"grant {grant.id}: only its requester, an approver for {client.name!r} or an admin "
            f"may revoke it, not {actor.name!r}"
        )


def extend(
    session: Session, actor: Operator, *, grant_id: int, days: int, reason: str
) -> GrantExtension:
    """Ask for more time on an active grant; it needs approval like a new request and the
    grant stays active meanwhile until its current end."""
    operators.require_role(session, actor, Role.REQUESTER)
    days = validation.positive_days(days)
    reason = validation.reason(reason, "extension")
    (grant,) = _locked_grants(session, actor, [grant_id])
    scope = session.get(DatasetScope, grant.scope_id)
    assert scope is not None
    _require_not_paused(_client_of(session, scope), "extended")
    if grant.state != GrantState.ACTIVE:
        raise PolicyError(
            f"grant {grant_id} is {grant.state}: only an active grant can be extended"
        )
    if _pending_extension(session, grant) is not None:
        raise ConflictError(f"grant {grant_id} has an extension awaiting approval already")
    last_round = session.execute(
        sa.select(sa.func.max(col(GrantExtension.round))).where(
            col(GrantExtension.grant_id) == grant_id
        )
    ).scalar_one()
    extension = GrantExtension(
        grant_id=grant_id,
        round=(last_round or 0) + 1,
        days=days,
        reason=reason,
        requested_by=ident(actor),
        requested_at=clock.now(),
    )
    session.add(extension)
    session.flush()
    audit.append(
        session,
        actor=actor.name,
        action="grant.extension_request",
        obj=f"grant:{grant_id}",
        details={"round": extension.round, "days": days, "reason": reason},
    )
    return extension


def expire_due(session: Session, *, actor_name: str) -> list[int]:
    """End every active or suspended grant past its expiry in bulk; return their ids."""
    now = clock.now()
    ended = grant_lifecycle.end(
        session,
        sa.and_(col(Grant.state).in_(IN_DIRECTORY_STATES), col(Grant.expires_at) <= now),
        to=GrantState.EXPIRED,
        ended_by=None,
        reason="expired",
        now=now,
    ).ids
    if ended:
        audit.append(
            session,
            actor=actor_name,
            action="grant.expire",
            obj="grants",
            details=audit.id_summary(ended),
        )
    return ended

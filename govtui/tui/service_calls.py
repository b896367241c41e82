"""The TUI's calls into the services: one transaction each, acting as the app's operator.

Worker threads call these; they never touch a widget. The acting operator is looked up inside
the transaction that acts, so a change to them (a lock-out, an enrolment) is always current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from govtui.db import ident, read_session, write_session
from govtui.services import (
    catalog,
    directory_targets,
    enrollment,
    grant_views,
    grants,
    operators,
    pause,
    pause_views,
    reconcile,
    second_factor,
    sync,
)
from govtui.services.grant_views import GrantRow
from govtui.services.reconcile import Drift
from govtui.tui.error_text import describe_error


@dataclass(frozen=True)
class RequestInput:
    """What the request form asks for."""

    contractor: str
    scope_path: str
    access: str
    days: int
    reason: str


@dataclass(frozen=True)
class OperatorState:
    """What the approvals and enrolment screens say about the acting operator."""

    name: str
    enrolled_at: datetime | None
    pending: bool
    locked_for: timedelta | None


def operator_state(engine: Engine, actor_name: str) -> OperatorState:
    with read_session(engine) as session:
        actor = operators.find(session, actor_name)
        return OperatorState(
            name=actor.name,
            enrolled_at=actor.totp_enrolled_at,
            pending=actor.totp_pending_at is not None,
            locked_for=second_factor.remaining_lockout(actor),
        )


def lockout(engine: Engine, actor_name: str) -> timedelta | None:
    """How much longer the operator's approvals are locked, or None."""
    return operator_state(engine, actor_name).locked_for


def pending(engine: Engine, actor_name: str) -> tuple[list[GrantRow], OperatorState]:
    with read_session(engine) as session:
        actor = operators.find(session, actor_name)
        rows = grant_views.pending_for(session, actor)
    return rows, operator_state(engine, actor_name)


def request(engine: Engine, actor_name: str, form: RequestInput) -> int:
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        grant = grants.request(
            session,
            actor,
            contractor=form.contractor,
            scope_path=form.scope_path,
            access=form.access,
            days=form.days,
            reason=form.reason,
        )
        return ident(grant)


def approve(
    engine: Engine, actor_name: str, grant_ids: Sequence[int], code: str
) -> list[grants.ApprovalOutcome]:
    # A rejected code raises CodeRejected, whose counted failure write_session commits.
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        return grants.approve(session, actor, grant_ids=list(grant_ids), code=code)


def deny(engine: Engine, actor_name: str, grant_ids: Sequence[int], reason: str) -> None:
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        grants.deny(session, actor, grant_ids=list(grant_ids), reason=reason)


def revoke(engine: Engine, actor_name: str, grant_id: int, reason: str) -> None:
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        grants.revoke(session, actor, grant_id=grant_id, reason=reason)


def expire(engine: Engine, actor_name: str) -> list[int]:
    """End every grant past its expiry; the audit log names this TUI as the actor."""
    with write_session(engine) as session:
        return grants.expire_due(session, actor_name=f"system (tui {actor_name})")


def start_enrolment(engine: Engine, actor_name: str, current_code: str | None) -> str:
    """Begin the operator's own (re-)enrolment; the otpauth URI to show as a QR code."""
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        return enrollment.start(session, actor, name=actor_name, current_code=current_code)


def confirm_enrolment(engine: Engine, actor_name: str, code: str) -> None:
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        enrollment.confirm(session, actor, name=actor_name, code=code)


# -- directories --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRun:
    """One sync run, and then whether each target could be reached."""

    report: sync.SyncReport
    health: dict[str, str | None]  # target name -> the error, None when it connected and bound


@dataclass(frozen=True)
class FixOutcome:
    """What a reconcile fix did, and the drift a comparison right after it finds."""

    report: sync.SyncReport
    fixed: int  # confirmed drift items that were still there and were queued
    gone: int  # confirmed items that had gone meanwhile, left alone
    drift: list[Drift]


def check_targets(engine: Engine) -> dict[str, str | None]:
    """Connect and bind to every target; the error of each that failed, as one line."""
    with read_session(engine) as session:
        targets = directory_targets.all_targets(session)
    health: dict[str, str | None] = {}
    for target in targets:
        # The session only names the keyring entry: no transaction spans the network call.
        try:
            with read_session(engine) as session, directory_targets.connection(session, target):
                health[target.name] = None
        except Exception as exc:  # whatever went wrong is this target's health, not a crash
            health[target.name] = describe_error(exc)
    return health


def sync_now(engine: Engine, progress: sync.Progress | None) -> SyncRun | None:
    """Push the due outbox operations once, then check every target; None without targets."""
    with read_session(engine) as session:
        if not directory_targets.all_targets(session):
            return None
    report = sync.run_once(engine, progress=progress)
    return SyncRun(report, check_targets(engine))


def fix_drift(
    engine: Engine, actor_name: str, target: str, confirmed: Sequence[Drift]
) -> FixOutcome:
    """Fix the confirmed drift that is still there: what changed since the person looked
    (a grant approved for a member added by hand, say) is left alone."""
    wanted = {d for d in confirmed if d.fixable}
    still = [d for d in reconcile.compare(engine, target) if d in wanted]
    report = sync.SyncReport()
    if still:
        with read_session(engine) as session:
            actor = operators.find(session, actor_name)
        report = reconcile.fix(engine, actor, target, still)
    return FixOutcome(
        report, len(still), len(wanted) - len(still), reconcile.compare(engine, target)
    )


# -- pause and resume ---------------------------------------------------------------------------


def blast_radius(engine: Engine, client: str) -> pause_views.BlastRadius:
    """What pausing the client would touch; nothing is written."""
    with read_session(engine) as session:
        return pause_views.blast_radius(session, client)


def pause_client(engine: Engine, actor_name: str, client: str, reason: str) -> pause.PauseResult:
    """Pause the client (no code: removing access never waits for one)."""
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        return pause.pause(session, actor, client=client, reason=reason)


def resume_client(engine: Engine, actor_name: str, client: str, code: str) -> pause.ResumeResult:
    """Resume the client with the acting approver's TOTP code."""
    with write_session(engine) as session:
        actor = operators.find(session, actor_name)
        return pause.resume(session, actor, client=client, code=code)


def client_statuses(engine: Engine) -> list[tuple[str, str]]:
    """Every client's name and status, by name."""
    with read_session(engine) as session:
        return [(c.name, c.status) for c in catalog.list_clients(session)]


def client_status(engine: Engine, client: str) -> pause_views.ClientStatus:
    """The client's state, its pause and the directory's convergence."""
    with read_session(engine) as session:
        return pause_views.status(session, client)

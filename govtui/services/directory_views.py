"""What the front ends read about the directories: per target its outbox counts, and a bounded
window of the outbox's open (pending and failed) operations. The outbox can hold hundreds of
thousands of rows; counts come from `status`, and only the newest few hundred open operations
are ever loaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui.db import ident
from govtui.models import DirectoryTarget, OutboxOp
from govtui.services import directory_targets, sync
from govtui.text import one_line
from govtui.vocabulary import OutboxState

OPEN_STATES = ("failed", "pending")  # the order they are listed in: failures need a person


@dataclass(frozen=True)
class OutboxRow:
    id: int
    target: str
    state: str
    operation: str
    group_dn: str | None
    directory_uid: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def open_ops(session: Session, *, limit: int) -> list[OutboxRow]:
    """At most `limit` pending and failed operations: failed first, each state newest first."""
    rows: list[OutboxRow] = []
    for state in OPEN_STATES:
        if len(rows) >= limit:
            break
        query = (
            sa.select(
                col(OutboxOp.id),
                col(DirectoryTarget.name),
                col(OutboxOp.state),
                col(OutboxOp.operation),
                col(OutboxOp.group_dn),
                col(OutboxOp.directory_uid),
                col(OutboxOp.attempts),
                col(OutboxOp.next_attempt_at),
                col(OutboxOp.last_error),
            )
            .join(DirectoryTarget, col(DirectoryTarget.id) == col(OutboxOp.target_id))
            .where(col(OutboxOp.state) == state)
            .order_by(col(OutboxOp.id).desc())
            .limit(limit - len(rows))
        )
        rows.extend(OutboxRow(*row) for row in session.execute(query))
    return rows


LAST_ERROR_SHOWN = 120  # characters of a target's last error in `sync status`


@dataclass(frozen=True)
class TargetStatus:
    """One target in `sync status`: its outbox counts, when the next retry is due and the
    newest error of its open operations."""

    target: str
    pending: int
    failed: int
    done: int
    cancelled: int
    next_retry: datetime | None  # the earliest retry of an open op; None when nothing is open
    last_error: str | None  # one line, cut to LAST_ERROR_SHOWN characters
    disabled: str | None  # why the target is disabled (or removed), None while it syncs


@dataclass(frozen=True)
class TargetOverview:
    """One target as the directory screen lists it: where it is and its outbox counts."""

    name: str
    url: str
    flavour: str
    pending: int
    done: int
    failed: int
    insecure_plaintext: bool = False  # binds in clear text (`directory add --insecure-plaintext`)


@dataclass(frozen=True)
class DirectoryOverview:
    targets: list[TargetOverview]
    ops: list[OutboxRow]  # the open operations, as `open_ops` lists them


def _counts(session: Session) -> dict[tuple[int, str], int]:
    return {
        (target_id, state): n
        for target_id, state, n in session.execute(
            sa.select(col(OutboxOp.target_id), col(OutboxOp.state), sa.func.count()).group_by(
                col(OutboxOp.target_id), col(OutboxOp.state)
            )
        )
    }


def _retryable() -> sa.ColumnElement[bool]:
    """The open ops sync will still try by itself: pending ones and failed removals."""
    return sa.or_(
        col(OutboxOp.state) == OutboxState.PENDING,
        sa.and_(
            col(OutboxOp.state) == OutboxState.FAILED,
            col(OutboxOp.operation).in_(sync.REMOVALS),
        ),
    )


def status(session: Session) -> list[TargetStatus]:
    """Per target (removed ones with cancelled work too): counts of pending, failed, done and
    cancelled operations, the next retry and the newest error of an open operation."""
    counts = _counts(session)
    next_retry = dict(
        session.execute(
            sa.select(col(OutboxOp.target_id), sa.func.min(col(OutboxOp.next_attempt_at)))
            .where(_retryable())
            .group_by(col(OutboxOp.target_id))
        ).all()
    )
    rows = []
    for t in directory_targets.all_targets(session, include_removed=True):
        target_id = ident(t)
        if directory_targets.is_removed(t) and not counts.get((target_id, "cancelled")):
            continue
        newest_error = session.execute(
            sa.select(col(OutboxOp.last_error))
            .where(
                col(OutboxOp.target_id) == target_id,
                col(OutboxOp.state).in_(OPEN_STATES),
                col(OutboxOp.last_error).is_not(None),
            )
            .order_by(col(OutboxOp.id).desc())
            .limit(1)
        ).scalar_one_or_none()
        rows.append(
            TargetStatus(
                target=directory_targets.display_name(t),
                pending=counts.get((target_id, OutboxState.PENDING), 0),
                failed=counts.get((target_id, OutboxState.FAILED), 0),
                done=counts.get((target_id, OutboxState.DONE), 0),
                cancelled=counts.get((target_id, OutboxState.CANCELLED), 0),
                next_retry=next_retry.get(target_id),
                last_error=(one_line(newest_error, LAST_ERROR_SHOWN) if newest_error else None),
                disabled=t.disabled_reason if t.disabled_at is not None else None,
            )
        )
    return rows


def targets_overview(session: Session) -> list[TargetOverview]:
    """Every target, by name, with its counts of pending, done and failed operations."""
    counts = _counts(session)
    return [
        TargetOverview(
            t.name,
            t.url,
            t.flavour,
            counts.get((ident(t), "pending"), 0),
            counts.get((ident(t), "done"), 0),
            counts.get((ident(t), "failed"), 0),
            insecure_plaintext=t.insecure_plaintext,
        )
        for t in directory_targets.all_targets(session)
    ]


def overview(session: Session, *, limit: int) -> DirectoryOverview:
    """The targets with their counts and at most `limit` open operations, in one read."""
    return DirectoryOverview(targets_overview(session), open_ops(session, limit=limit))

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
from govtui.services import directory_targets

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


@dataclass(frozen=True)
class TargetStatus:
    target: str
    pending: int
    done: int
    failed: int


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


def status(session: Session) -> list[TargetStatus]:
    """Counts of pending, done and failed operations per target."""
    return [TargetStatus(t.name, t.pending, t.done, t.failed) for t in targets_overview(session)]


def targets_overview(session: Session) -> list[TargetOverview]:
    """Every target, by name, with its counts of pending, done and failed operations."""
    counts: dict[tuple[int, str], int] = {
        (target_id, state): n
        for target_id, state, n in session.execute(
            sa.select(col(OutboxOp.target_id), col(OutboxOp.state), sa.func.count()).group_by(
                col(OutboxOp.target_id), col(OutboxOp.state)
            )
        )
    }
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

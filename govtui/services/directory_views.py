"""What the TUI's directory screen reads: a bounded window of the outbox's open (pending and
failed) operations. The outbox can hold hundreds of thousands of rows; counts come from
`sync.status`, and only the newest few hundred open operations are ever loaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui.models import DirectoryTarget, OutboxOp

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

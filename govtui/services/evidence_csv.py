"""The byte forms of an evidence pack: canonical CSV rows, canonical JSON lines, and the sink
that hashes what it writes. One form for every value, so the same data gives the same bytes
(two exports compare by hash) and an auditor's tools read it without guessing."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import IO, Any

from govtui.services import audit

# Each CSV's columns, in order: the writers and schemas/evidence-*.schema.json (checked by a
# test) name them from here.
POPULATION = (
    "grant_id",  # first, so `cut -d, -f1` recomputes the population digest with stock tools
    "item_id",
    "contractor",
    "contractor_name",
    "directory_uid",
    "client",
    "project",
    "scope",
    "sensitivity",
    "access",
    "state_at_start",
    "reviewer",
)
DECISIONS = (
    "campaign",
    "item_id",
    "grant_id",
    "contractor",
    "project",
    "scope",
    "access",
    "reviewer",
    "original_reviewer",
    "decision",
    "shorten_days",
    "reason",
    "decided_by",
    "decided_at",
    "outcome",
    "helper_requester",
    "helper_approvers",
    "helper_days_granted",
    "helper_contract_end",
    "helper_previous_decision",
    "applied_at",
    "directory_confirmed_at",
)
REMEDIATION = (
    "grant_id",
    "contractor",
    "directory_uid",
    "project",
    "scope",
    "access",
    "outcome",
    "grant_state",
    "ended_at",
    "end_reason",
    "target",
    "group_dn",
    "directory_state",
    "directory_confirmed_at",
    "last_error",
)
GRANTS = (
    "grant_id",
    "contractor",
    "contractor_name",
    "directory_uid",
    "project",
    "scope",
    "sensitivity",
    "access",
    "reason",
    "requested_by",
    "requested_at",
    "requested_days",
    "starts_at",
    "expires_at",
    "state",
    "ended_at",
    "ended_by",
    "end_reason",
)
GRANT_HISTORY = ("grant_id", "at", "event", "by", "detail")
PAUSES = (
    "pause_id",
    "reason",
    "paused_by",
    "paused_at",
    "resumed_by",
    "resumed_at",
    "suspended",
    "removals_queued",
    "removals_confirmed",
    "removals_pending",
    "removals_failed",
    "removals_cancelled",
    "removals_complete",
    "removals_confirmed_at",
    "additions_queued",
    "additions_confirmed",
    "additions_pending",
    "additions_failed",
    "additions_cancelled",
    "additions_complete",
    "additions_confirmed_at",
)
CAMPAIGNS = (
    "campaign_id",
    "name",
    "client",
    "project",
    "scope",
    "sensitivity",
    "created_by",
    "created_at",
    "due_at",
    "if_no_answer",
    "state",
    "item_count",
    "population_sha256",
    "close_started_by",
    "close_started_at",
    "closed_at",
)
# Which columns every file of a pack kind has (the schema test walks this).
COLUMNS: dict[str, tuple[str, ...]] = {
    "population.csv": POPULATION,
    "decisions.csv": DECISIONS,
    "remediation.csv": REMEDIATION,
    "grants.csv": GRANTS,
    "grant-history.csv": GRANT_HISTORY,
    "pauses.csv": PAUSES,
    "campaigns.csv": CAMPAIGNS,
}


def cell(value: Any) -> str:
    """One value as CSV text: times as audit.format_time (UTC, microseconds, Z), dates ISO,
    booleans true/false, nothing as the empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return audit.format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_line(values: Sequence[Any]) -> str:
    """One row of canonical CSV: comma, double quotes only where needed (a comma, a quote,
    a line break), quotes doubled, \\n at the end."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(
        [cell(v) for v in values]
    )
    return buffer.getvalue()


def json_line(value: Any) -> str:
    """One line of canonical JSON (sorted keys, no spaces, UTF-8), as the chain hashes."""
    return audit.canonical_json(value) + "\n"


class Sink:
    """A write-only byte stream (a zip entry) that counts and hashes what goes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def write(self, data: bytes) -> None:
        self._raw.write(data)
        self._sha.update(data)
        self.size += len(data)

    def text(self, text: str) -> None:
        self.write(text.encode("utf-8"))

    def row(self, values: Sequence[Any]) -> None:
        self.text(csv_line(values))
        self.rows += 1

    def rows_of(self, rows: Iterable[Sequence[Any]]) -> None:
        for values in rows:
            self.row(values)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

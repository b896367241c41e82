"""The byte forms of an evidence pack: canonical CSV rows, canonical JSON lines, and the sink
that hashes what it writes. One form for every value, so the same data gives the same bytes
(two exports compare by hash) and an auditor's tools read it without guessing."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
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
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def aware(raw: Any) -> datetime:
    """A stored time as an aware UTC datetime, as models' UTCDateTime reads it: SQLite's
    text, or the driver's datetime (PostgreSQL's timestamptz)."""
    at = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
    assert isinstance(at, datetime)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class Times:
    """Stored times (raw: SQLite's text or the driver's datetime) read and written as
    `cell` would write their aware value, each distinct raw value parsed and formatted once:
    a campaign's 100,000 decisions share a handful of times, and a pack's rows repeat their
    neighbours' (bounded: the caches start over at LIMIT values)."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._text: dict[Any, str] = {}
        self._at: dict[Any, datetime] = {}

    def text(self, raw: Any) -> str | None:
        if raw is None:
            return None
        found = self._text.get(raw)
        if found is None:
            if len(self._text) >= self.LIMIT:
                self._text.clear()
            found = self._text[raw] = utc_text(aware(raw))
        return found

    def at(self, raw: Any) -> datetime | None:
        if raw is None:
            return None
        found = self._at.get(raw)
        if found is None:
            if len(self._at) >= self.LIMIT:
                self._at.clear()
            found = self._at[raw] = aware(raw)
        return found


def utc_text(at: datetime) -> str:
    """audit.format_time's text (YYYY-MM-DDTHH:MM:SS.ffffffZ), by isoformat: several times
    faster than strftime over the 100,000s of times of a large pack."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def csv_line(values: Sequence[Any]) -> str:
    """One row of canonical CSV: comma, double quotes only where needed (a comma, a quote,
    a line break), quotes doubled, \\n at the end."""
    buffer = io.StringIO()
    _writer(buffer).writerow([cell(v) for v in values])
    return buffer.getvalue()


def _writer(buffer: io.StringIO) -> Any:
    return csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def json_line(value: Any) -> str:
    """One line of canonical JSON (sorted keys, no spaces, UTF-8), as the chain hashes."""
    return audit.canonical_json(value) + "\n"


class Sink:
    """A write-only byte stream (a zip entry) that counts and hashes what goes through it.
    Text and rows gather in a buffer written out by the 64 KiB (one write per row would make
    the deflater and the hash the cost of an export); `close` writes the rest."""

    FLUSH_AT = 1 << 16

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self._buffer = io.StringIO()
        self._csv = _writer(self._buffer)
        self.size = 0
        self.rows = 0
        self.times = Times()

    def _flush(self) -> None:
        text = self._buffer.getvalue()
        if text:
            data = text.encode("utf-8")
            self._raw.write(data)
            self._sha.update(data)
            self.size += len(data)
            self._buffer.seek(0)
            self._buffer.truncate()

    def write(self, data: bytes) -> None:
        self._flush()
        self._raw.write(data)
        self._sha.update(data)
        self.size += len(data)

    def text(self, text: str) -> None:
        self._buffer.write(text)
        if self._buffer.tell() >= self.FLUSH_AT:
            self._flush()

    def row(self, values: Sequence[Any]) -> None:
        self._csv.writerow([cell(v) for v in values])
        self.rows += 1
        if self._buffer.tell() >= self.FLUSH_AT:
            self._flush()

    def rows_of(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows of any values, each through `cell`."""
        for values in rows:
            self.row(values)

    def plain_rows(self, rows: Sequence[Sequence[Any]], times: Sequence[int] = ()) -> None:
        """Rows whose values are str, int or None (which csv.writer writes as `cell` does:
        as is, str(), empty) except the columns at `times`, raw stored times: the fast path
        for a query's rows (no per-value call but for the times, each distinct one
        formatted once)."""
        if times:
            cached, text = self.times._text, self.times.text
            out = []
            for values in rows:
                row = list(values)
                for i in times:
                    raw = row[i]
                    if raw is not None:
                        row[i] = cached.get(raw) or text(raw)
                out.append(row)
            self._csv.writerows(out)
        else:
            self._csv.writerows(rows)
        self.rows += len(rows)
        if self._buffer.tell() >= self.FLUSH_AT:
            self._flush()

    def close(self) -> None:
        self._flush()

    @property
    def sha256(self) -> str:
        self._flush()
        return self._sha.hexdigest()

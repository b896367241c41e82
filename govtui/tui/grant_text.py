"""How grants read on screen: states in colour, expiry as "in 2d" (soon ones highlighted),
paused clients marked, and the facts block of one grant for the modals."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text

from govtui.services.grant_views import GrantRow
from govtui.text import one_line
from govtui.vocabulary import LIVE_STATES as LIVE_STATES  # the screens read it from here
from govtui.vocabulary import GrantState

SOON = timedelta(days=7)  # active grants ending within this are highlighted
SOON_STYLE = "bold yellow"
PAUSED_STYLE = "bold red"
STATE_STYLES: dict[str, str] = {
    GrantState.REQUESTED: "yellow",
    GrantState.ACTIVE: "green",
    GrantState.SUSPENDED: "magenta",
    GrantState.EXPIRED: "dim",
    GrantState.REVOKED: "dim",
    GrantState.DENIED: "dim",
}


def when(at: datetime | None) -> str:
    """A time as a person reads it, in UTC."""
    return at.strftime("%Y-%m-%d %H:%M") if at is not None else "—"


def span(delta: timedelta) -> str:
    """A positive duration in its largest whole unit: 3d, 5h, 12m."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 86_400:
        return f"{seconds // 86_400}d"
    if seconds >= 3_600:
        return f"{seconds // 3_600}h"
    return f"{max(1, seconds // 60)}m"


def state_text(state: str) -> Text:
    return Text(one_line(state), style=STATE_STYLES.get(state, ""))


def expires_soon(row: GrantRow, now: datetime) -> bool:
    return (
        row.state in ("active", "suspended")
        and row.expires_at is not None
        and row.expires_at - now <= SOON
    )


def expires_text(row: GrantRow, now: datetime) -> Text:
    """When the grant ends (or ended, or what it asks for)."""
    if row.state in ("active", "suspended") and row.expires_at is not None:
        left = row.expires_at - now
        if left <= timedelta(0):
            return Text(f"{when(row.expires_at)} (due to expire)", style=PAUSED_STYLE)
        style = SOON_STYLE if left <= SOON else ""
        return Text(f"{when(row.expires_at)} (expires in {span(left)})", style=style)
    if row.state == "requested":
        return Text(f"asks {row.requested_days}d", style="dim")
    return Text(f"ended {when(row.ended_at)}", style="dim")


def scope_text(row: GrantRow) -> Text:
    text = Text(one_line(row.scope))
    if row.client_status == "paused":
        text.append(" (client paused)", style=PAUSED_STYLE)
    return text


def facts(row: GrantRow, now: datetime) -> Text:
    """Everything that identifies a grant and what it allows, one fact a line."""
    pairs: list[tuple[str, str | Text]] = [
        ("Grant", f"#{row.id}"),
        ("Contractor", f"{one_line(row.contractor)} ({one_line(row.contractor_name)})"),
        ("Scope", scope_text(row).append(f"  {one_line(row.sensitivity)}", style="dim")),
        ("Access", one_line(row.access)),
        ("State", state_text(row.state)),
    ]
    if row.state in ("active", "suspended"):
        pairs.append(("Expires", expires_text(row, now)))
        pairs.append(("Started", when(row.starts_at)))
    elif row.state == "requested":
        pairs.append(("Asks for", f"{row.requested_days} days"))
    else:
        why = one_line(row.end_reason) if row.end_reason else "no reason given"
        pairs.append(("Ended", f"{when(row.ended_at)} ({why})"))
    pairs.append(("Requested by", f"{one_line(row.requested_by)}: {one_line(row.reason)}"))
    if row.approvals:
        pairs.append(("Approved by", ", ".join(one_line(name) for name in row.approvals)))
    if row.pending_extension_days is not None:
        pairs.append(("Extension", f"+{row.pending_extension_days} days awaiting approval"))
    text = Text()
    for index, (label, value) in enumerate(pairs):
        if index:
            text.append("\n")
        text.append(f"{label:<13}", style="dim")
        text.append(value)
    return text

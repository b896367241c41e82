"""Confirm a revocation: exactly what will end, and the reason for it (required).

Removing access never waits for a TOTP code (DESIGN: direction of friction)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from govtui.services.grant_views import GrantRow
from govtui.tui.grant_text import facts
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.plain import line


def what_ends(row: GrantRow, now: datetime) -> Text:
    text = Text("This ends at once:\n\n", style="bold")
    text.append(facts(row, now))
    if row.pending_extension_days is not None:
        text.append("\n\nThe extension awaiting approval is voided too.", style="yellow")
    text.append(f"\n\n{consequence(row)} The grant keeps its history.", style="dim")
    return text


def consequence(row: GrantRow) -> str:
    """What revoking changes for the contractor, in the grant's present state."""
    who, what = line(row.contractor), f"{line(row.access)} access to {line(row.scope)}"
    if row.state == "requested":
        return f"The request ends before it grants anything: {who} will not get {what}."
    if row.state == "suspended":
        return f"{who} will not get {what} back when the client resumes."
    return f"{who} loses {what} now."


class ConfirmRevoke(ReasonPrompt):
    """Returns the reason when the revocation is confirmed, None when cancelled."""

    def __init__(self, row: GrantRow, now: datetime) -> None:
        super().__init__(
            title=f"Revoke grant #{row.id}?",
            details=what_ends(row, now),
            action_label="Revoke",
            placeholder="Why is it revoked? (required; it goes into the audit log)",
        )
        self.row = row

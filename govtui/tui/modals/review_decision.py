"""Ask a reviewer for the reason of a decision on a batch of items (and, to shorten, by how
many days). The TOTP code for keep and shorten is asked next, by the TOTP prompt."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line
from govtui.vocabulary import ReviewDecision

MAX_DAYS = 9999  # the days box takes four digits; the service checks the real bounds


@dataclass(frozen=True)
class DecisionInput:
    reason: str
    days: int | None  # only for shorten


class DecisionPrompt(GovtuiModal[DecisionInput | None]):
    """Returns the reason (stripped) and the days, or None when cancelled."""

    def __init__(self, *, decision: ReviewDecision, title: str, details: Text) -> None:
        super().__init__()
        self.decision = decision
        self.title_text = title
        self.details = details

    def cancel_result(self) -> DecisionInput | None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="decision-dialog", classes="dialog"):
            yield Static(Text(line(self.title_text), style="bold"), classes="dialog-title")
            yield Static(self.details, id="decision-details")
            if self.decision == ReviewDecision.SHORTEN:
                yield Label("Days from now (the new expiry never lies past the current one)")
                yield Input(
                    placeholder="days", restrict=r"[0-9]*", max_length=4, id="decision-days"
                )
            yield Label("Reason (required; on a restricted scope at least 3 words)")
            yield Input(placeholder="Why? It goes into the audit log", id="decision-reason")
            hint = (
                "Your TOTP code is asked next: keeping access needs it."
                if self.decision != ReviewDecision.REVOKE
                else "No code is needed: revoking only removes access (applied at close)."
            )
            yield Static(Text(hint, style="dim"), id="decision-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    self.decision.value.capitalize(),
                    variant="error" if self.decision == ReviewDecision.REVOKE else "primary",
                    id="decision-submit",
                    disabled=True,
                )
                yield Button("Cancel", id="decision-cancel")

    def on_mount(self) -> None:
        first = "#decision-days" if self.decision == ReviewDecision.SHORTEN else "#decision-reason"
        self.set_focus(self.query_one(first, Input))

    def _answer(self) -> DecisionInput | None:
        reason = self.query_one("#decision-reason", Input).value.strip()
        days: int | None = None
        if self.decision == ReviewDecision.SHORTEN:
            typed = self.query_one("#decision-days", Input).value.strip()
            days = int(typed) if typed else 0
            if not 0 < days <= MAX_DAYS:
                return None
        return DecisionInput(reason, days) if reason else None

    @on(Input.Changed)
    def changed(self) -> None:
        self.query_one("#decision-submit", Button).disabled = self._answer() is None

    @on(Input.Submitted, "#decision-days")
    def days_submitted(self) -> None:
        self.set_focus(self.query_one("#decision-reason", Input))

    @on(Input.Submitted, "#decision-reason")
    @on(Button.Pressed, "#decision-submit")
    def submit(self) -> None:
        answer = self._answer()
        if answer is not None:
            self.dismiss(answer)

    @on(Button.Pressed, "#decision-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

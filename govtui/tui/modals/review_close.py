"""Confirm closing an access review: the dry run's counts and directory groups, and, when
close would end more than a quarter of the population or more than 1,000 grants, the exact
number of grants it ends typed back (the CLI's --confirm-count)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from govtui.services.review_close import ClosePlan
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line
from govtui.tui.review_text import plan_text


@dataclass(frozen=True)
class CloseAnswer:
    confirm_count: int | None  # the number typed, when the plan needs one


class CloseConfirm(GovtuiModal[CloseAnswer | None]):
    """Returns the answer (with the count typed, if asked), or None when cancelled."""

    def __init__(self, plan: ClosePlan) -> None:
        super().__init__()
        self.plan = plan

    def cancel_result(self) -> CloseAnswer | None:
        return None

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(id="close-dialog", classes="dialog"):
            yield Static(
                Text(f"Close the review {line(plan.campaign)}?", style="bold"),
                classes="dialog-title",
            )
            yield Static(plan_text(plan), id="close-plan")
            if plan.needs_confirm_count:
                # A Static wraps (a Label would cut the number off on a narrow terminal).
                yield Static(
                    Text.assemble(
                        ("Type ", "bold"),
                        (f"{plan.ends}", "bold red"),
                        (" to close", "bold"),
                        ": it ends more than a quarter of the population or over 1,000 grants.",
                    ),
                    id="close-count-hint",
                )
                yield Input(
                    placeholder="the number of grants close ends",
                    restrict=r"[0-9]*",
                    max_length=9,
                    id="close-count",
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    "Close the review",
                    variant="error",
                    id="close-submit",
                    disabled=plan.needs_confirm_count,
                )
                yield Button("Cancel", id="close-cancel")

    def on_mount(self) -> None:
        if self.plan.needs_confirm_count:
            self.set_focus(self.query_one("#close-count", Input))

    def _typed(self) -> int | None:
        value = self.query_one("#close-count", Input).value.strip()
        return int(value) if value else None

    def _answer(self) -> CloseAnswer | None:
        if not self.plan.needs_confirm_count:
            return CloseAnswer(None)
        typed = self._typed()
        # Only the exact count unlocks the button; the service checks it again.
        return CloseAnswer(typed) if typed == self.plan.ends else None

    @on(Input.Changed, "#close-count")
    def count_changed(self) -> None:
        self.query_one("#close-submit", Button).disabled = self._answer() is None

    @on(Input.Submitted, "#close-count")
    @on(Button.Pressed, "#close-submit")
    def submit(self) -> None:
        answer = self._answer()
        if answer is not None:
            self.dismiss(answer)

    @on(Button.Pressed, "#close-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

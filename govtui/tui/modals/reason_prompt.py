"""Ask for the reason of an action that removes or refuses access (deny, revoke).

The reason is required: the action button stays disabled until one is typed, and Enter on an
empty reason says so beside the box."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line


class ReasonPrompt(GovtuiModal[str | None]):
    """Returns the reason typed (stripped), or None when cancelled."""

    def __init__(
        self,
        *,
        title: str,
        details: Text | str,
        action_label: str,
        placeholder: str = "Reason (required; it goes into the audit log)",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.details = details
        self.action_label = action_label
        self.placeholder = placeholder

    def cancel_result(self) -> str | None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="reason-dialog", classes="dialog"):
            yield Static(Text(line(self.title_text), style="bold"), classes="dialog-title")
            # A str is shown as it is (a Static would parse it as markup).
            details = Text(self.details) if isinstance(self.details, str) else self.details
            yield Static(details, id="reason-details")
            yield Input(placeholder=self.placeholder, id="reason-input")
            yield Static("", id="reason-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, variant="error", id="reason-submit", disabled=True)
                yield Button("Cancel", id="reason-cancel")

    def on_mount(self) -> None:
        self.query_one("#reason-error", Static).display = False
        self.set_focus(self.query_one("#reason-input", Input))

    @on(Input.Changed, "#reason-input")
    def reason_changed(self, event: Input.Changed) -> None:
        self.query_one("#reason-submit", Button).disabled = not event.value.strip()
        if event.value.strip():
            self.query_one("#reason-error", Static).display = False

    @on(Input.Submitted, "#reason-input")
    @on(Button.Pressed, "#reason-submit")
    def submit(self) -> None:
        reason = self.query_one("#reason-input", Input).value.strip()
        if reason:
            self.dismiss(reason)
            return
        error = self.query_one("#reason-error", Static)
        error.update(
            Text(
                "Give a reason first: it is required and goes into the audit log.", style="bold red"
            )
        )
        error.display = True

    @on(Button.Pressed, "#reason-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

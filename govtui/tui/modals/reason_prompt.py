"""Ask for the reason of an action that removes or refuses access (deny, revoke, pause).

The reason is required: the action button stays disabled until one is typed, and Enter on an
empty reason says so beside the box. The title and the details (the counts) stay in view; a
long `body` (a pause's scopes) scrolls on its own. A prompt opened `pending` says so and keeps
the action disabled until `show_details` gives what the action would do (a pause's blast
radius, seconds at a million grants)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
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
        body: Text | None = None,
        pending: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.details = details
        self.body = body
        self.action_label = action_label
        self.placeholder = placeholder
        self.pending = pending  # what the action would do is still being worked out

    def cancel_result(self) -> str | None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="reason-dialog", classes="dialog"):
            yield Static(Text(line(self.title_text), style="bold"), classes="dialog-title")
            # A str is shown as it is (a Static would parse it as markup).
            details = Text(self.details) if isinstance(self.details, str) else self.details
            yield Static(details, id="reason-details")
            with VerticalScroll(id="reason-body-scroll"):
                yield Static(self.body or Text(), id="reason-body")
            yield Input(placeholder=self.placeholder, id="reason-input")
            yield Static("", id="reason-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, variant="error", id="reason-submit", disabled=True)
                yield Button("Cancel", id="reason-cancel")

    def on_mount(self) -> None:
        self.query_one("#reason-error", Static).display = False
        # Only the body scrolls: focusing the reason box must not scroll the title and the
        # counts out of a small terminal (the dialog's own overflow would).
        self.query_one("#reason-dialog").styles.overflow_y = "hidden"
        scroll = self.query_one("#reason-body-scroll", VerticalScroll)
        scroll.styles.height = "auto"
        scroll.styles.max_height = "30vh"
        scroll.display = self.body is not None
        self.set_focus(self.query_one("#reason-input", Input))

    def show_details(self, details: Text, body: Text | None = None) -> None:
        """What the action would do, known now: shown, and the action may be taken."""
        self.pending = False
        self.details, self.body = details, body
        self.query_one("#reason-details", Static).update(details)
        self.query_one("#reason-body", Static).update(body or Text())
        self.query_one("#reason-body-scroll", VerticalScroll).display = body is not None
        self._enable()

    def _enable(self) -> None:
        reason = self.query_one("#reason-input", Input).value.strip()
        self.query_one("#reason-submit", Button).disabled = self.pending or not reason

    @on(Input.Changed, "#reason-input")
    def reason_changed(self, event: Input.Changed) -> None:
        self._enable()
        if event.value.strip():
            self.query_one("#reason-error", Static).display = False

    @on(Input.Submitted, "#reason-input")
    @on(Button.Pressed, "#reason-submit")
    def submit(self) -> None:
        reason = self.query_one("#reason-input", Input).value.strip()
        if reason and not self.pending:
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

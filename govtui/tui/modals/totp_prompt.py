"""Ask the acting operator for a TOTP code (masked) and run an action with it.

The dialog stays open on a wrong code and says why (the failure was counted); while the
operator is locked out it shows for how much longer, and refuses to submit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Static
from textual.worker import Worker, WorkerState

from govtui.errors import GovtuiError
from govtui.services.second_factor import CodeRejected
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line

T = TypeVar("T")


def minutes(delta: timedelta) -> str:
    """A lock-out's remaining time, rounded up to whole minutes."""
    count = max(1, math.ceil(delta.total_seconds() / 60))
    return f"{count} minute{'s' if count != 1 else ''}"


class TotpPrompt(GovtuiModal[T | None], Generic[T]):
    """Returns what `attempt(code)` returned, or None when cancelled."""

    RECHECK = 30.0  # seconds between lock-out checks while locked
    AUTO_FOCUS = None  # the code box, once the lock-out is known (never the Cancel button)

    @dataclass
    class Accepted(Message):
        result: Any

    @dataclass
    class Refused(Message):
        message: str
        locked_for: timedelta | None
        checked: bool  # False: the refusal had nothing to do with the code

    @dataclass
    class LockoutChecked(Message):
        locked_for: timedelta | None

    def __init__(
        self,
        *,
        title: str,
        summary: Text | str,
        attempt: Callable[[str], T],
        lockout: Callable[[], timedelta | None],
        action_label: str = "Approve",
        running: str | None = None,
    ) -> None:
        """`running`: what the attempt does, shown with the seconds it has taken while it
        runs ("Resuming acme-ai… 424,442 grants, 12 s")."""
        super().__init__()
        self.running = running
        self.started = 0.0
        self.title_text = title
        self.summary = summary
        self.attempt = attempt
        self.lockout = lockout
        self.action_label = action_label
        self.locked_for: timedelta | None = None
        self.checked = False  # the lock-out has been looked up once
        self.busy = False

    def cancel_result(self) -> T | None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="totp-dialog", classes="dialog"):
            yield Static(Text(line(self.title_text), style="bold"), classes="dialog-title")
            # A str is shown as it is (a Static would parse it as markup).
            summary = Text(self.summary) if isinstance(self.summary, str) else self.summary
            yield Static(summary, id="totp-summary")
            yield Static("", id="totp-lockout")
            yield Input(
                placeholder="6-digit code from your authenticator",
                password=True,
                max_length=6,
                restrict=r"[0-9]*",
                id="totp-code",
                disabled=True,  # until the lock-out is known
            )
            yield Static("", id="totp-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, variant="primary", id="totp-submit")
                yield Button("Cancel", id="totp-cancel")

    def on_mount(self) -> None:
        self._show()
        self.check_lockout()
        self.set_interval(self.RECHECK, self._recheck)
        if self.running is not None:
            self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.busy and self.running is not None:
            seconds = time.monotonic() - self.started
            self.query_one("#totp-error", Static).update(
                Text(f"{self.running}, {seconds:.0f} s", style="bold")
            )

    def _recheck(self) -> None:
        if self.locked_for is not None:
            self.check_lockout()

    @work(thread=True, exclusive=True, exit_on_error=False, group="totp-lockout")
    def check_lockout(self) -> None:
        self.post_message(self.LockoutChecked(self.lockout()))

    @on(LockoutChecked)
    def lockout_checked(self, message: LockoutChecked) -> None:
        self.checked = True
        self.locked_for = message.locked_for
        self._show()

    @on(Input.Submitted, "#totp-code")
    @on(Button.Pressed, "#totp-submit")
    def submit(self) -> None:
        code_input = self.query_one("#totp-code", Input)
        code = code_input.value.strip()
        if self.busy or not self.checked or self.locked_for is not None:
            return
        if len(code) != 6:
            self._error("Type the 6 digits your authenticator shows.")
            return
        code_input.value = ""  # a code is a secret until used: keep it nowhere
        self.busy = True
        self.started = time.monotonic()
        self._error("")
        self._tick()
        self._show()
        self.run_attempt(code)

    @on(Button.Pressed, "#totp-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

    @work(thread=True, exclusive=True, exit_on_error=False, group="totp")
    def run_attempt(self, code: str) -> None:
        try:
            result = self.attempt(code)
        except CodeRejected as exc:
            # The failure is counted and committed; it may have locked the operator out.
            self.post_message(self.Refused(str(exc), self.lockout(), checked=True))
            return
        except GovtuiError as exc:
            self.post_message(self.Refused(str(exc), None, checked=False))
            return
        self.post_message(self.Accepted(result))

    @on(Accepted)
    def accepted(self, message: Accepted) -> None:
        self.dismiss(message.result)

    @on(Refused)
    def refused(self, message: Refused) -> None:
        self.busy = False
        if message.checked:
            self.locked_for = message.locked_for
        self._error(message.message)
        self._show()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # (Textual also calls the base class's handler, which reports the failure.)
        if event.state is WorkerState.ERROR and event.worker.group == "totp":
            self.busy = False
            self._error("The action failed: see the error message.")
            self._show()

    def _error(self, text: str) -> None:
        # A refusal may quote a name: escaped, never markup.
        self.query_one("#totp-error", Static).update(Text(line(text), style="bold red"))

    def _show(self) -> None:
        """Enable what may be used now; say why not otherwise."""
        locked = self.locked_for is not None
        lock_line = self.query_one("#totp-lockout", Static)
        if self.locked_for is not None:
            lock_line.update(
                Text(
                    f"Locked: your approvals stay locked for {minutes(self.locked_for)} "
                    "after too many wrong codes. Nothing can be approved until then.",
                    style="bold red",
                )
            )
        else:
            lock_line.update(Text())
        lock_line.display = locked
        usable = self.checked and not locked and not self.busy
        code_input = self.query_one("#totp-code", Input)
        was_disabled = code_input.disabled
        code_input.disabled = not (self.checked and not locked)
        self.query_one("#totp-submit", Button).disabled = not usable
        if was_disabled and not code_input.disabled:
            self.set_focus(code_input)

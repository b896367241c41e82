"""Enrol the acting operator's authenticator: a QR code of a fresh secret (kept in the OS
keyring), confirmed with one code from it. The QR code (the secret) leaves the screen, its
widget removed, the moment the enrolment is confirmed, fails (three wrong codes, or a
lock-out) or the screen is closed. Re-enrolling needs the current code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from govtui.errors import GovtuiError
from govtui.security.qr import qr_text
from govtui.services import enrollment, operator_views
from govtui.services.operator_views import OperatorState
from govtui.tui.context import TuiContext
from govtui.tui.grant_text import when
from govtui.tui.plain import line
from govtui.tui.screens.base import GovtuiScreen


def _code_input(placeholder: str, widget_id: str) -> Input:
    return Input(
        placeholder=placeholder, password=True, max_length=6, restrict=r"[0-9]*", id=widget_id
    )


class EnrolScreen(GovtuiScreen):
    """Pushed over the current screen; Escape closes it (and takes the QR code with it)."""

    HELP = "Enrol (or re-enrol) your TOTP authenticator from a QR code; approvals need it."
    SUB_TITLE = "Enrol my authenticator"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]
    AUTO_FOCUS = None  # set once the operator's state is known

    # Wrong codes for one QR code before it is taken away (as `govtui operator enroll`).
    MAX_CONFIRM_TRIES = 3

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self._state_shown = False
        self._wrong_codes = 0

    @dataclass
    class StateLoaded(Message):
        operator: OperatorState

    @dataclass
    class Started(Message):
        uri: str

    @dataclass
    class Confirmed(Message):
        pass

    @dataclass
    class Refused(Message):
        message: str
        stage: str  # "start" or "confirm"

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="enrol"):
            yield Static("Loading…", id="enrol-status")
            with Horizontal(id="enrol-start-row"):
                yield _code_input("your current code (only to re-enrol)", "enrol-current")
                yield Button("Show a new QR code", variant="primary", id="enrol-start")
            yield Static("", id="enrol-error")
            # The QR code's Static is mounted here only while a code is shown (_show_qr).
            yield Static(
                "Scan this with your authenticator app, then type the code it shows:",
                id="enrol-hint",
            )
            yield _code_input("6-digit code from the new entry in your app", "enrol-code")
            yield Static("", id="enrol-done")
        yield Footer()

    def on_mount(self) -> None:
        self._show_qr(None)

    def reload(self) -> None:
        self.load_state()

    @work(thread=True, exclusive=True, exit_on_error=False, group="enrol-state")
    def load_state(self) -> None:
        state = self.workspace.read_as(operator_views.state)
        self.post_message(self.StateLoaded(state))

    @on(StateLoaded)
    def state_loaded(self, message: StateLoaded) -> None:
        operator = message.operator
        enrolled = operator.enrolled_at is not None
        if enrolled:
            text = Text.assemble(
                (line(operator.name), "bold"),
                f": an authenticator is enrolled since {when(operator.enrolled_at)} UTC. "
                "To move to a new device, type a code from the current one and ask for a new "
                "QR code.",
            )
        else:
            text = Text.assemble(
                (line(operator.name), "bold"),
                ": no authenticator is enrolled yet; approving grants needs one. Have your "
                "authenticator app ready, then ask for the QR code.",
            )
        self.query_one("#enrol-status", Static).update(text)
        self.query_one("#enrol-current", Input).display = enrolled
        if not self._state_shown:  # the first time: where the person starts
            self._state_shown = True
            self.set_focus(self.query_one("#enrol-current" if enrolled else "#enrol-start"))

    @on(Button.Pressed, "#enrol-start")
    @on(Input.Submitted, "#enrol-current")
    def start_pressed(self) -> None:
        current_input = self.query_one("#enrol-current", Input)
        current = current_input.value.strip() if current_input.display else ""
        current_input.value = ""
        self._error("")
        self._show_qr(None)
        self.query_one("#enrol-start", Button).disabled = True
        self.start(current or None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="enrol-write")
    def start(self, current_code: str | None) -> None:
        try:
            # The operator's own (re-)enrolment: the otpauth URI to show as a QR code.
            uri = self.workspace.act(
                enrollment.start, name=self.actor_name, current_code=current_code
            )
        except GovtuiError as exc:  # already enrolled, a wrong current code, no safe keyring
            self.post_message(self.Refused(str(exc), "start"))
            return
        self.post_message(self.Started(uri))

    @on(Started)
    def started(self, message: Started) -> None:
        self.query_one("#enrol-start", Button).disabled = False
        self.query_one("#enrol-done", Static).update("")
        self._wrong_codes = 0
        self._show_qr(qr_text(message.uri))
        self.set_focus(self.query_one("#enrol-code", Input))

    @on(Input.Submitted, "#enrol-code")
    def confirm_submitted(self) -> None:
        code_input = self.query_one("#enrol-code", Input)
        code = code_input.value.strip()
        code_input.value = ""
        if len(code) != 6:
            self._error("Type the 6 digits your authenticator shows for the new entry.")
            return
        self._error("")
        self.confirm(code)

    @work(thread=True, exclusive=True, exit_on_error=False, group="enrol-write")
    def confirm(self, code: str) -> None:
        try:
            self.workspace.act(enrollment.confirm, name=self.actor_name, code=code)
        except GovtuiError as exc:
            self.post_message(self.Refused(str(exc), "confirm"))
            return
        self.post_message(self.Confirmed())

    @on(Confirmed)
    def confirmed(self) -> None:
        self._show_qr(None)  # the secret leaves the screen at once
        self.query_one("#enrol-done", Static).update(
            Text(
                "Enrolled. Your authenticator's codes now confirm your approvals. "
                "Press Escape to go back.",
                style="bold green",
            )
        )
        self.notify("Authenticator enrolled", title="Enrolment")
        self.load_state()

    @on(Refused)
    def refused(self, message: Refused) -> None:
        self.query_one("#enrol-start", Button).disabled = False
        self._error(message.message)
        if message.stage == "confirm":
            self._wrong_codes += 1
            if self._wrong_codes >= self.MAX_CONFIRM_TRIES or "locked" in message.message:
                # A failed enrolment: the secret leaves the screen; a new QR code starts over.
                self._show_qr(None)
                self._error(
                    f"{message.message} — the QR code is gone; ask for a new one to start again."
                )
                self.load_state()
                return
            self.set_focus(self.query_one("#enrol-code", Input))
        else:
            self.load_state()  # a failed current code counts; the state may have changed

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # (Textual also calls the base class's handler, which reports the failure.)
        if event.state is WorkerState.ERROR:
            self.query_one("#enrol-start", Button).disabled = False

    def action_close(self) -> None:
        self._show_qr(None)
        self.app.pop_screen()

    def on_unmount(self) -> None:
        # However the screen goes (Escape, the app quitting), the secret goes with it.
        self._remove_qr()

    def _error(self, text: str) -> None:
        error = self.query_one("#enrol-error", Static)
        error.update(Text(line(text), style="bold red"))
        error.display = bool(text)

    def _show_qr(self, qr: str | None) -> None:
        """Show a QR code with its code box, or take both off the screen: the QR code's
        widget is removed, so no copy of the secret stays behind in the screen's tree."""
        self._remove_qr()
        if qr is not None:
            self.query_one("#enrol", VerticalScroll).mount(
                Static(Text(qr, no_wrap=True), id="enrol-qr"),
                before=self.query_one("#enrol-hint"),
            )
        for selector in ("#enrol-hint", "#enrol-code"):
            self.query_one(selector).display = qr is not None

    def _remove_qr(self) -> None:
        for old in self.query("#enrol-qr"):
            old.remove()

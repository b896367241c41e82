"""Enrol the acting operator's authenticator: a QR code of a fresh secret (kept in the OS
keyring), with the secret as text beside it for an app that cannot scan, confirmed with one
code from it. The QR code and the secret leave the screen, their widgets removed, the moment
the enrolment is confirmed, fails (three wrong codes, or a lock-out) or the screen is closed.
Re-enrolling needs the current code. The QR code fits 80x24; a smaller terminal is told to
grow (the secret as text still works)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.message import Message
from textual.widgets import Button, Header, Input, Static
from textual.worker import Worker, WorkerState

from govtui.errors import GovtuiError
from govtui.security.qr import qr_text
from govtui.services import enrollment, operator_views
from govtui.services.operator_views import OperatorState
from govtui.tui.context import TuiContext
from govtui.tui.footer import GovtuiFooter
from govtui.tui.grant_text import when
from govtui.tui.plain import line
from govtui.tui.screens.base import GovtuiScreen


def secret_of(uri: str) -> str:
    """The base32 secret of an otpauth URI, in groups of four (as apps ask to type it), four
    groups a line (so it fits beside the QR code at 80 columns)."""
    secret = parse_qs(urlparse(uri).query).get("secret", [""])[0]
    groups = [secret[i : i + 4] for i in range(0, len(secret), 4)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


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
        self._qr_size: tuple[int, int] | None = None  # (columns, rows) of the QR code shown

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
            # The QR code's and the secret's Statics are mounted only while a code is shown
            # (_show_qr): the QR code first in this row, the secret atop the side.
            with Horizontal(id="enrol-qr-row"), Vertical(id="enrol-side"):
                yield Static(
                    "Scan the QR code with your authenticator app (or type the secret "
                    "into it), then type the code it shows:",
                    id="enrol-hint",
                )
                yield _code_input("6-digit code from the new entry", "enrol-code")
                yield Static("", id="enrol-too-small")
            yield Static("", id="enrol-done")
        yield GovtuiFooter()

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
        self._show_qr(qr_text(message.uri), secret_of(message.uri))
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
        # The screen below (approvals: "press e to enrol") shows the enrolment as it now is.
        for below in self.app.screen_stack:
            if isinstance(below, GovtuiScreen) and below is not self:
                below.refresh_data()

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

    def _show_qr(self, qr: str | None, secret: str | None = None) -> None:
        """Show a QR code and the secret as text with the code box, or take them off the
        screen: their widgets are removed, so no copy of the secret stays behind in the
        screen's tree. While they show, the rows above them step aside so 80x24 holds them."""
        self._remove_qr()
        shown = qr is not None
        if qr is not None:
            self.query_one("#enrol-qr-row", Horizontal).mount(
                Static(Text(qr, no_wrap=True), id="enrol-qr"), before=0
            )
            lines = qr.split("\n")
            self._qr_size = (len(lines[0]), len(lines))
            self.query_one("#enrol-side", Vertical).mount(
                Static(
                    Text.assemble(("Secret", "bold"), f" (for typing in):\n{secret or ''}"),
                    id="enrol-secret",
                ),
                before=0,
            )
        for selector in ("#enrol-status", "#enrol-start-row"):
            self.query_one(selector).display = not shown
        self.query_one("#enrol-qr-row").display = shown
        self._fit_qr()

    def on_resize(self, event: Resize) -> None:
        self._fit_qr()

    def _fit_qr(self) -> None:
        """Hide the QR code and say how big the terminal must be when it cannot show it
        whole (a cut QR code does not scan); the secret as text stays."""
        note = self.query_one("#enrol-too-small", Static)
        if self._qr_size is None or not self.query("#enrol-qr"):
            note.display = False
            return
        columns, rows = self._qr_size
        # The header and footer take a row each; the side needs room for the secret.
        need_width, need_height = columns + 2 + 30, rows + 2
        size = self.app.size
        fits = size.width >= need_width and size.height >= need_height
        self.query_one("#enrol-qr").display = fits
        note.display = not fits
        note.update(
            Text(
                f"The QR code needs a terminal of at least {need_width}x{need_height} "
                f"(this one is {size.width}x{size.height}): enlarge it to scan, or type the "
                "secret above into your app.",
                style="bold yellow",
            )
        )

    def _remove_qr(self) -> None:
        for old in self.query("#enrol-qr, #enrol-secret"):
            old.remove()
        self._qr_size = None

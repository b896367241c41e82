"""The govtui Textual app: key bindings, screens as modes, command palette, error reporting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from sqlalchemy.engine import Engine
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from govtui.errors import GovtuiError
from govtui.tui import service_calls
from govtui.tui.context import TuiContext
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.base import GovtuiScreen, GrantsChanged
from govtui.tui.screens.browser import BrowserScreen
from govtui.tui.screens.contractors import ContractorsScreen
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.enrol import EnrolScreen
from govtui.tui.screens.grants import GrantsScreen
from govtui.tui.screens.help import HelpScreen

# mode name -> (the screen class, the command palette's title for it)
SCREEN_MODES: dict[str, tuple[type[GovtuiScreen], str]] = {
    "dashboard": (DashboardScreen, "Dashboard"),
    "browser": (BrowserScreen, "Clients / projects / scopes"),
    "contractors": (ContractorsScreen, "Contractors"),
    "grants": (GrantsScreen, "Grants"),
    "approvals": (ApprovalsScreen, "Approvals"),
}
ENROL_TITLE = "Enrol my authenticator"


def describe_error(error: BaseException) -> str:
    """One line for a person: a GovtuiError as it is, anything else with its type."""
    if isinstance(error, GovtuiError):
        return str(error)
    lines = str(error).strip().splitlines()
    name = type(error).__name__
    return f"unexpected {name}: {lines[0]}" if lines else f"unexpected {name}"


class GovtuiApp(App[None]):
    """The TUI over one database, acting as one operator. While it runs, grants past their
    expiry are ended every EXPIRY_INTERVAL seconds, and the screens showing grants refresh."""

    CSS_PATH = "app.tcss"
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "show('dashboard')", "Dashboard"),
        Binding("b", "show('browser')", "Browse"),
        Binding("c", "show('contractors')", "Contractors"),
        Binding("g", "show('grants')", "Grants"),
        Binding("a", "show('approvals')", "Approvals"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f1", "help", "Help", show=False),
        Binding("q", "quit", "Quit"),
    ]
    EXPIRY_INTERVAL: ClassVar[float] = 60.0  # seconds between background expiry runs

    @dataclass
    class GrantsExpired(Message):
        """The background expiry ended these grants."""

        ids: list[int]

    def __init__(self, *, engine: Engine, actor_name: str) -> None:
        super().__init__()
        self.engine = engine
        self.actor_name = actor_name
        self.context = TuiContext(engine, actor_name)
        self.title = f"govtui — acting as {actor_name}"
        self._expiry_error: str | None = None  # the last one shown; repeats are only logged
        for mode, (screen_class, _title) in SCREEN_MODES.items():
            self.add_mode(mode, partial(screen_class, self.context))

    def on_mount(self) -> None:
        self.expire_now()
        self.set_interval(self.EXPIRY_INTERVAL, self.expire_now)

    def expire_now(self) -> None:
        """Start a background expiry run, unless one is still going."""
        if not any(w.group == "expiry" and not w.is_finished for w in self.workers):
            self.run_expiry()

    def action_show(self, mode: str) -> None:
        """Switch to a screen; its state (search, cursor) is kept while away. The help and
        the enrolment screen (and its QR code) close on the way."""
        while len(self.screen_stack) > 1 and isinstance(self.screen, HelpScreen | EnrolScreen):
            self.pop_screen()
        self.switch_mode(mode)

    def action_help(self) -> None:
        """Show the keys of the app and of the current screen."""
        if not isinstance(self.screen, HelpScreen):
            screens = [(title, cls.HELP or "") for cls, title in SCREEN_MODES.values()]
            screens.append((ENROL_TITLE, EnrolScreen.HELP))
            self.push_screen(HelpScreen(self.screen, screens))

    def action_enrol(self) -> None:
        """Open the enrolment screen over the current one."""
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        if not isinstance(self.screen, EnrolScreen):
            self.push_screen(EnrolScreen(self.context))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for mode, (screen_class, title) in SCREEN_MODES.items():
            yield SystemCommand(title, screen_class.HELP or "", partial(self.action_show, mode))
        yield SystemCommand(ENROL_TITLE, EnrolScreen.HELP, self.action_enrol)
        yield SystemCommand("Help", "Every key of the app and of this screen", self.action_help)
        yield from super().get_system_commands(screen)

    # -- grants changing under the screens ---------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="expiry")
    def run_expiry(self) -> None:
        ended = service_calls.expire(self.engine, self.actor_name)
        if ended:
            self.post_message(self.GrantsExpired(ended))

    @on(GrantsExpired)
    def grants_expired(self, message: GrantsExpired) -> None:
        count = len(message.ids)
        self.notify(f"{count} grant{'s' if count != 1 else ''} expired", title="Expiry")
        self.grants_changed()

    @on(GrantsChanged)
    def screen_changed_grants(self) -> None:
        self.grants_changed()

    def grants_changed(self) -> None:
        """Grants changed: the visible screen reloads if it shows any, the others when shown."""
        self.context.grants_version += 1
        for screen in reversed(self.screen_stack):
            if isinstance(screen, GovtuiScreen):
                if screen.SHOWS_GRANTS:
                    screen.refresh_data()
                return

    # -- errors ------------------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The app's own workers (the background expiry); the screens forward theirs.
        error = event.worker.error
        if event.worker.group == "expiry" and event.state is WorkerState.SUCCESS:
            self._expiry_error = None
        if event.state is not WorkerState.ERROR or error is None:
            return
        if event.worker.group == "expiry":
            text = describe_error(error)
            if text == self._expiry_error:
                self.log.error("background expiry failed again", error)
                return  # once a minute would bury everything else
            self._expiry_error = text
        self.post_message(GovtuiScreen.WorkerFailed(event.worker.name, error))

    @on(GovtuiScreen.WorkerFailed)
    def show_worker_error(self, message: GovtuiScreen.WorkerFailed) -> None:
        """The one place where a failed worker becomes a message for the person."""
        self.log.error(f"worker {message.worker_name!r} failed", message.error)
        self.notify(
            describe_error(message.error),
            title="Error",
            severity="error",
            timeout=12,
            markup=False,  # the text is the error's own, brackets and all
        )

"""The govtui Textual app: key bindings, screens as modes, command palette, error reporting."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import ClassVar

from sqlalchemy.engine import Engine
from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from govtui.errors import GovtuiError
from govtui.tui.screens.base import GovtuiScreen
from govtui.tui.screens.browser import BrowserScreen
from govtui.tui.screens.contractors import ContractorsScreen
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.help import HelpScreen

# mode name -> (the screen class, the command palette's title for it)
SCREEN_MODES: dict[str, tuple[type[GovtuiScreen], str]] = {
    "dashboard": (DashboardScreen, "Dashboard"),
    "browser": (BrowserScreen, "Clients / projects / scopes"),
    "contractors": (ContractorsScreen, "Contractors"),
}


def describe_error(error: BaseException) -> str:
    """One line for a person: a GovtuiError as it is, anything else with its type."""
    if isinstance(error, GovtuiError):
        return str(error)
    lines = str(error).strip().splitlines()
    name = type(error).__name__
    return f"unexpected {name}: {lines[0]}" if lines else f"unexpected {name}"


class GovtuiApp(App[None]):
    """The TUI over one database, acting as one operator."""

    CSS_PATH = "app.tcss"
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "show('dashboard')", "Dashboard"),
        Binding("b", "show('browser')", "Browse"),
        Binding("c", "show('contractors')", "Contractors"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f1", "help", "Help", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, *, engine: Engine, actor_name: str) -> None:
        super().__init__()
        self.engine = engine
        self.actor_name = actor_name
        self.title = f"govtui — acting as {actor_name}"
        for mode, (screen_class, _title) in SCREEN_MODES.items():
            self.add_mode(mode, partial(screen_class, engine))

    def action_show(self, mode: str) -> None:
        """Switch to a screen; its state (search, cursor) is kept while away."""
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        self.switch_mode(mode)

    def action_help(self) -> None:
        """Show the keys of the app and of the current screen."""
        if not isinstance(self.screen, HelpScreen):
            screens = [(title, cls.HELP or "") for cls, title in SCREEN_MODES.values()]
            self.push_screen(HelpScreen(self.screen, screens))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for mode, (screen_class, title) in SCREEN_MODES.items():
            yield SystemCommand(title, screen_class.HELP or "", partial(self.action_show, mode))
        yield SystemCommand("Help", "Every key of the app and of this screen", self.action_help)
        yield from super().get_system_commands(screen)

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

"""What every data screen shares: the context it works in (the workspace: database and acting
operator), a refresh key, a reload when grants or the directories changed while it was away,
and failed workers reported to the app as a message (a worker's StateChanged reaches only the
screen)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, OptionList, Tree
from textual.worker import Worker, WorkerState

from govtui.tui import paging
from govtui.tui.context import TuiContext

# The one global key map. These keys mean the same on every screen: a screen's own
# bindings never use them for something else (tests/tui/test_tui_keys.py holds it).
# The app binds SCREEN_KEYS and APP_KEYS; every data screen binds TABLE_KEYS (and the
# windowed tables bind them again to reach the real first and last row).
SCREEN_KEYS: dict[str, str] = {
    "dashboard": "d",
    "browser": "b",
    "contractors": "c",
    "grants": "t",
    "approvals": "a",
    "reviews": "v",
    "directory": "y",
}
APP_KEYS: frozenset[str] = frozenset({"question_mark", "f1", "q", "w", "ctrl+p"})
TABLE_KEYS: frozenset[str] = frozenset({"j", "k", "g", "G", "home", "end", "up", "down"})
SCREEN_WIDE_KEYS: frozenset[str] = frozenset({"r"})  # Refresh, on every data screen
GLOBAL_KEYS: frozenset[str] = (
    frozenset(SCREEN_KEYS.values()) | APP_KEYS | TABLE_KEYS | SCREEN_WIDE_KEYS
)


class GrantsChanged(Message):
    """The app changed grants (or found some expired): the app bumps the context's version
    and reloads the visible screen if it shows grants; the others reload when shown."""


class DirectoryChanged(Message):
    """A sync, reconcile or fix ran: the app bumps the context's directory version and
    reloads the visible screen if it shows directory state; the others reload when shown."""


@dataclass
class DrillIn(Message):
    """Enter on a client or a contractor: the app shows their grants."""

    client: str | None = None
    contractor: str | None = None  # an exact external id


class GovtuiScreen(Screen[None]):
    """A screen over the database; subclasses load their data in `reload`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Refresh"),
        # Tables, trees and lists move alike everywhere (the focused one, else the screen's
        # first); a windowed table binds g/G itself to fetch the real first and last row.
        Binding("j", "move('down')", "Down", show=False),
        Binding("k", "move('up')", "Up", show=False),
        Binding("g", "move('first')", "First row", show=False),
        Binding("G", "move('last')", "Last row", show=False),
    ]
    # What Enter on the screen's table or tree does (the help lists it).
    ENTER_HELP: ClassVar[str] = ""
    # Screens that show grants reload when grants change (an expiry, an approval elsewhere
    # in the app): at once if visible, else when they are shown next.
    SHOWS_GRANTS: ClassVar[bool] = False
    # Likewise for the outbox, the targets' health and the drift found.
    SHOWS_DIRECTORY: ClassVar[bool] = False

    @dataclass
    class WorkerFailed(Message):
        """A worker of this screen (or of a dialog over it) raised; the app shows `error`."""

        worker_name: str
        error: BaseException

    def __init__(self, context: TuiContext) -> None:
        super().__init__()
        self.context = context
        self.workspace = context.workspace
        self.actor_name = context.actor_name
        self._seen_grants = context.grants_version
        self._seen_directory = context.directory_version

    def on_mount(self) -> None:
        # Textual calls every class's on_mount along the MRO, a subclass's first: by now its
        # widgets are set up. (So subclasses must not call super().on_mount() themselves.)
        self.refresh_data()

    def on_screen_resume(self) -> None:
        if self.out_of_date:
            self.refresh_data()

    @property
    def out_of_date(self) -> bool:
        """Whether what the screen shows changed since it last loaded."""
        context = self.context
        return (self.SHOWS_GRANTS and self._seen_grants != context.grants_version) or (
            self.SHOWS_DIRECTORY and self._seen_directory != context.directory_version
        )

    def refresh_data(self) -> None:
        """Reload, noting which version of the grants and directories the screen now shows."""
        self._seen_grants = self.context.grants_version
        self._seen_directory = self.context.directory_version
        self.reload()

    def reload(self) -> None:
        """Start the workers that (re)load what the screen shows."""
        raise NotImplementedError

    def action_reload(self) -> None:
        self.refresh_data()

    def action_move(self, where: str) -> None:
        """j/k/g/G: down, up, first, last in the focused table, tree or list (or the
        screen's first one when the focus is elsewhere, not in a text box)."""
        target = self._movable()
        if target is None:
            return
        if isinstance(target, paging.PagedTable) and where in ("first", "last"):
            target.action_jump("first" if where == "first" else "last")
        elif isinstance(target, DataTable):
            if where == "down":
                target.action_cursor_down()
            elif where == "up":
                target.action_cursor_up()
            elif target.row_count:
                row = 0 if where == "first" else target.row_count - 1
                target.move_cursor(row=row, animate=False)
        elif isinstance(target, Tree):
            if where == "down":
                target.action_cursor_down()
            elif where == "up":
                target.action_cursor_up()
            elif where == "first":
                target.action_scroll_home()
            else:
                target.action_scroll_end()
        elif isinstance(target, OptionList):
            actions = {"down": "cursor_down", "up": "cursor_up", "first": "first", "last": "last"}
            getattr(target, f"action_{actions[where]}")()

    def _movable(self) -> Widget | None:
        focused = self.focused
        if isinstance(focused, DataTable | Tree | OptionList):
            return focused
        for widget in self.query("DataTable, Tree").results():
            if widget.display and widget.region.area:
                return widget
        return None

    def sync_state_changed(self) -> None:
        """A sync run started, progressed or ended (the screens that show it override this)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble; this forwards failures to the app's one handler.
        forward_failure(self, event)

    async def _dispatch_message(self, message: Message) -> None:
        await dispatch_tolerant(self, super()._dispatch_message, message)


async def dispatch_tolerant(
    screen: Screen[Any], dispatch: Callable[[Message], Awaitable[None]], message: Message
) -> None:
    """Dispatch a message to a screen's handlers; one that looks for a widget the screen no
    longer (the app quitting, the screen closing) or not yet (still composing) has is dropped
    with a log line, where Textual would end the app with a traceback."""
    try:
        await dispatch(message)
    except NoMatches as error:
        screen.log.warning(f"{type(message).__name__} dropped: {error}")


def forward_failure(screen: Screen[Any], event: Worker.StateChanged) -> None:
    """Post a failed worker's error to the app's one handler (the message bubbles to it)."""
    error = event.worker.error
    if event.state is WorkerState.ERROR and error is not None:
        screen.post_message(GovtuiScreen.WorkerFailed(event.worker.name, error))


class WindowedScreen(GovtuiScreen):
    """A screen whose one DataTable holds windows of rows fetched as the cursor or the view
    nears the end, at most MAX_ROWS; subclasses fetch in `load_next_window`."""

    TABLE_ID: ClassVar[str]
    LOOKAHEAD: ClassVar[int] = 50  # fetch the next window this close to the last row
    MAX_ROWS: ClassVar[int] = 5_000  # past this, filters narrow the list instead

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self._exhausted = True  # no next window until the first one is in

    def on_mount(self) -> None:
        self.watch(self.table, "scroll_y", self._table_scrolled, init=False)

    @property
    def table(self) -> DataTable[object]:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    def load_next_window(self) -> None:
        raise NotImplementedError

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == self.TABLE_ID and self._near_end():
            self.load_next_window()

    def _table_scrolled(self) -> None:
        if self._near_end():
            self.load_next_window()

    def _near_end(self) -> bool:
        return paging.near_end(self.table, self.LOOKAHEAD)

    @property
    def _capped(self) -> bool:
        return paging.capped(self.table, exhausted=self._exhausted, max_rows=self.MAX_ROWS)

"""What every data screen shares: the context it works in (the workspace: database and acting
operator), a refresh key, a reload when grants or the directories changed while it was away,
and failed workers reported to the app as a message (a worker's StateChanged reaches only the
screen)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from rich.text import Text
from textual import events, on, work
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, OptionList, Select, Tree
from textual.widgets.data_table import ColumnKey
from textual.worker import Worker, WorkerState, get_current_worker

from govtui.errors import GovtuiError
from govtui.services import catalog_views, grant_views
from govtui.tui import heap, paging
from govtui.tui.context import TuiContext
from govtui.tui.plain import notify, plain

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


# Tables, trees and lists move alike everywhere (the help screen's too): `action_move`.
MOVE_BINDINGS: tuple[Binding, ...] = (
    Binding("j", "move('down')", "Down", show=False),
    Binding("k", "move('up')", "Up", show=False),
    Binding("g", "move('first')", "First row", show=False),
    Binding("G", "move('last')", "Last row", show=False),
)


class GovtuiScreen(Screen[None]):
    """A screen over the database; subclasses load their data in `reload`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Refresh"),
        # The focused table, tree or list moves, else the screen's first; a windowed table
        # binds g/G itself to fetch the real first and last row.
        *MOVE_BINDINGS,
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
        self._styled_at_mount = True  # until the first resume: see on_screen_resume

    def on_mount(self) -> None:
        # Textual calls every class's on_mount along the MRO, a subclass's first: by now its
        # widgets are set up. (So subclasses must not call super().on_mount() themselves.)
        self.refresh_data()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # A mode's screen is styled as it mounts, and Textual's own handler (called after this
        # one) would restyle it whole again on the resume that follows at once: a tenth of a
        # second on the grants screen. Later resumes restyle (the theme may have changed).
        if self._styled_at_mount:
            self._styled_at_mount = False
            event.refresh_styles = False
            self.call_after_refresh(heap.freeze)  # the screen built: see tui/heap.py
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


@dataclass(frozen=True)
class Fetch:
    """Which window to read: the first, the last, or the one after or before a row."""

    after: grant_views.SortKey | None = None
    before: grant_views.SortKey | None = None
    from_end: bool = False

    def spec(self, sort: grant_views.GrantSort, limit: int) -> grant_views.WindowSpec:
        """This window of `limit` rows in `sort` order, as `grant_views.window` takes it."""
        return grant_views.WindowSpec(
            sort=sort, after=self.after, before=self.before, from_end=self.from_end, limit=limit
        )


class Counts(Protocol):
    """What a list's counts hold at least: how many rows the whole filter has."""

    @property
    def total(self) -> int: ...


QueryT = TypeVar("QueryT")
CountsT = TypeVar("CountsT", bound=Counts)


class GrantWindowScreen(WindowedScreen, Generic[QueryT, CountsT]):
    """A windowed list of grant rows filtered and sorted in SQL (grants, approvals): a query
    reads the first (or last) window and the filter's counts in workers, answers to older
    queries are dropped, the next or previous window comes in keyset order as the cursor
    nears either end, g/G reach the list's real first and last row, `o` or a header click
    sorts. Subclasses read the filter boxes, the windows and the counts, and write the
    status line."""

    COLUMNS: ClassVar[tuple[str, ...]]
    COLUMN_SORTS: ClassVar[dict[str, grant_views.GrantSort]]  # what `o` cycles, in order
    NOUN: ClassVar[str]  # "grants": what the list is of, in messages
    CLIENT_SELECT: ClassVar[str]  # the id of the client filter's Select
    FIRST_FILTER: ClassVar[str]  # the id of the filter `/` focuses
    PAGE = grant_views.PAGE
    DEBOUNCE = 0.3  # seconds of quiet typing in a filter box before the list is queried

    @dataclass
    class WindowLoaded(Message):
        generation: int
        rows: list[grant_views.GrantRow]
        fetch: Fetch
        first: bool  # replaces the table (a new query, the first or the last window)
        limit: int

    @dataclass
    class CountsLoaded(Message):
        generation: int
        counts: Any

    @dataclass
    class FilterRefused(Message):
        generation: int
        message: str

    @dataclass
    class ClientsLoaded(Message):
        clients: list[tuple[str, str]]  # name, status

    def __init__(self, context: TuiContext, empty: QueryT) -> None:
        super().__init__(context)
        self.generation = 0
        self.filter = empty
        self.sort: grant_views.GrantSort = grant_views.DEFAULT_SORT
        self.rows: dict[int, grant_views.GrantRow] = {}
        self.order: list[int] = []  # the ids in the table, top to bottom
        self.counts: CountsT | None = None
        self.refused: str | None = None
        self.loaded = False
        self.from_end = False  # the rows shown end at the list's last row (End was pressed)
        self._at_top = True  # no row of the list is before the first one shown
        self._page_worker: Worker[None] | None = None
        # The generation whose counts start once its first window is in: the window is what
        # the person waits for, and the two would share two cores and the GIL.
        self._counts_due: int | None = None
        self._restore: int | None = None  # grant id to put the cursor back on
        self._cursor_to_end = False
        # A client to choose once the list of clients is in (a drill-in), and the choices.
        self._pending_client: str | None = None
        self._client_names: set[str] = set()

    def on_mount(self) -> None:
        table = self.table
        for name in self.COLUMNS:
            table.add_column(self._label(name), key=name)
        self.load_clients()

    def _label(self, name: str) -> Text:
        if self.COLUMN_SORTS.get(name) == self.sort:
            return Text(f"{name} ▼" if self.sort == "newest" else f"{name} ▲", style="bold")
        return Text(name)

    # What subclasses supply.

    def cells(self, row: grant_views.GrantRow) -> tuple[Text, ...]:
        """A row's cells, in COLUMNS order (after any columns of the subclass's own)."""
        raise NotImplementedError

    def _read_filter(self) -> QueryT:
        """The query the filter boxes show."""
        raise NotImplementedError

    def read_window(
        self, query: QueryT, sort: grant_views.GrantSort, fetch: Fetch, limit: int
    ) -> list[grant_views.GrantRow]:
        """One window of `query` (in a worker)."""
        raise NotImplementedError

    def read_counts(self, query: QueryT) -> CountsT:
        """The counts of `query` (in a worker)."""
        raise NotImplementedError

    def counts_message(self, generation: int, counts: CountsT) -> CountsLoaded:
        """What the counts worker posts (in the worker: a subclass may read more)."""
        return self.CountsLoaded(generation, counts)

    def _show_status(self, *, busy: str = "") -> None:
        raise NotImplementedError

    # -- querying ---------------------------------------------------------------------------

    def _refresh_limit(self) -> int:
        """As many rows as are shown now (a page at least, MAX_ROWS at most)."""
        return max(self.PAGE, min(self.table.row_count, self.MAX_ROWS))

    def start_query(
        self,
        query: QueryT,
        *,
        debounce: float,
        limit: int,
        fetch: Fetch | None = None,
        count: bool = True,
    ) -> None:
        """Query the first (or last) window for `query`, and its counts; answers to older
        queries are dropped."""
        if query != self.filter:
            self.filter_changing(query)
        self.generation += 1
        self.filter = query
        self._exhausted = True
        self.workers.cancel_group(self, "window-page")
        if count:
            self.counts = None
        self._show_status(busy="loading…")
        self.run_query(self.generation, query, self.sort, fetch or Fetch(), debounce, limit)
        if count:
            self._counts_due = self.generation

    @work(thread=True, exclusive=True, exit_on_error=False, group="window-query")
    def run_query(
        self,
        generation: int,
        query: QueryT,
        sort: grant_views.GrantSort,
        fetch: Fetch,
        debounce: float,
        limit: int,
    ) -> None:
        worker = get_current_worker()
        if debounce and worker.cancelled_event.wait(debounce):
            return
        try:
            rows = self.read_window(query, sort, fetch, limit)
        except GovtuiError as exc:  # a client removed since the list of clients was read
            self.post_message(self.FilterRefused(generation, str(exc)))
            return
        if not worker.is_cancelled:
            self.post_message(self.WindowLoaded(generation, rows, fetch, first=True, limit=limit))

    def _start_counts(self, generation: int) -> None:
        """The counts of the query whose first window (or refusal) is in, if they are due."""
        if self._counts_due == generation == self.generation:
            self._counts_due = None
            self.run_counts(generation, self.filter)

    @work(thread=True, exclusive=True, exit_on_error=False, group="window-count")
    def run_counts(self, generation: int, query: QueryT) -> None:
        worker = get_current_worker()
        try:
            counts = self.read_counts(query)
        except GovtuiError:
            return  # the window's query says why
        message = self.counts_message(generation, counts)
        if not worker.is_cancelled:
            self.post_message(message)

    def load_next_window(self) -> None:
        if self._exhausted or self._capped or not self.order:
            return
        self._fetch(Fetch(after=grant_views.sort_key(self.sort, self.rows[self.order[-1]])))

    def load_previous_window(self) -> None:
        if self._at_top or not self.order or len(self.order) >= self.MAX_ROWS:
            return
        self._fetch(Fetch(before=grant_views.sort_key(self.sort, self.rows[self.order[0]])))

    def _fetch(self, fetch: Fetch) -> None:
        if self._page_worker is not None and not self._page_worker.is_finished:
            return
        self._page_worker = self.fetch_window(self.generation, self.filter, self.sort, fetch)
        self._show_status(busy="loading…")

    @work(thread=True, exclusive=True, exit_on_error=False, group="window-page")
    def fetch_window(
        self, generation: int, query: QueryT, sort: grant_views.GrantSort, fetch: Fetch
    ) -> None:
        rows = self.read_window(query, sort, fetch, self.PAGE)
        self.post_message(self.WindowLoaded(generation, rows, fetch, first=False, limit=self.PAGE))

    @on(WindowLoaded)
    def show_window(self, message: WindowLoaded) -> None:
        if message.generation != self.generation:
            return
        table = self.table
        fetch = message.fetch
        full = len(message.rows) >= message.limit
        new = [row for row in message.rows if row.id not in self.rows or message.first]
        if message.first:
            table.clear()
            self.rows.clear()
            self.order.clear()
            self.refused = None
            self.from_end = fetch.from_end
            self._at_top = not fetch.from_end or not full
            self._exhausted = fetch.from_end or not full
        elif fetch.before is not None:
            self._at_top = not full
        else:
            self._exhausted = not full
        for row in new:
            self.rows[row.id] = row
        if message.first:
            self.rows_replaced()
        if fetch.before is not None and not message.first:
            # Rows before the first shown: the table is rebuilt in order, the cursor kept on
            # its row.
            cursor = table.cursor_row
            self.order[:0] = [row.id for row in new]
            table.clear()
            for grant_id in self.order:
                table.add_row(*self.cells(self.rows[grant_id]), key=str(grant_id))
            table.move_cursor(row=cursor + len(new), animate=False)
        else:
            for row in new:
                # (a grant requested meanwhile may shift a window: each grant is shown once)
                self.order.append(row.id)
                table.add_row(*self.cells(row), key=str(row.id))
        self.loaded = True
        if message.first:
            self.place_cursor()
            self._start_counts(message.generation)
        self._show_status()
        if not message.first and self._near_end():
            self.load_next_window()
        elif self._near_top():
            self.load_previous_window()

    def filter_changing(self, query: QueryT) -> None:
        """A query of another filter than the one shown starts."""

    def rows_replaced(self) -> None:
        """A first window is in `rows` (its rows not yet in the table)."""

    @property
    def _restorable(self) -> bool:
        return self._restore is not None and self._restore in self.rows

    def place_cursor(self) -> None:
        """After a first window: the cursor back on its row, or on the last after End."""
        table = self.table
        if self._restorable:
            table.move_cursor(row=table.get_row_index(str(self._restore)), animate=False)
        elif self._cursor_to_end and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._restore = None
        self._cursor_to_end = False

    @on(CountsLoaded)
    def _counts_loaded(self, message: CountsLoaded) -> None:
        if message.generation == self.generation:
            self.show_counts(message)

    def show_counts(self, message: CountsLoaded) -> None:
        self.counts = message.counts
        self._show_status()

    @on(FilterRefused)
    def filter_refused(self, message: FilterRefused) -> None:
        if message.generation != self.generation:
            return
        self.table.clear()
        self.rows.clear()
        self.order.clear()
        self.refused = message.message
        self.loaded = True
        self._counts_due = None  # the same query would be refused again
        self._show_status()

    # -- first, last, sorting ---------------------------------------------------------------

    @on(paging.PagedTable.Jump)
    def jump(self, event: paging.PagedTable.Jump) -> None:
        if event.table.id != self.TABLE_ID:
            return
        table = self.table
        if event.where == "first":
            if self._at_top:
                table.move_cursor(row=0, animate=False)
            else:
                self.start_query(self.filter, debounce=0, limit=self.PAGE, count=False)
        elif self._exhausted:
            table.move_cursor(row=max(table.row_count - 1, 0), animate=False)
        else:
            self._cursor_to_end = True
            self.start_query(
                self.filter, debounce=0, limit=self.PAGE, fetch=Fetch(from_end=True), count=False
            )

    def _near_top(self) -> bool:
        table = self.table
        return not self._at_top and table.row_count > 0 and table.cursor_row < self.LOOKAHEAD

    @on(DataTable.RowHighlighted)
    def _maybe_earlier(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == self.TABLE_ID and self._near_top():
            self.load_previous_window()

    def action_next_sort(self) -> None:
        cycle = tuple(self.COLUMN_SORTS.values())
        at = cycle.index(self.sort) if self.sort in cycle else -1
        self.sort_by(cycle[(at + 1) % len(cycle)])

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table.id != self.TABLE_ID:
            return
        sort = self.COLUMN_SORTS.get(str(event.column_key.value))
        if sort is None:
            notify(self, f"The {self.NOUN} cannot be sorted by {event.label.plain}.")
            return
        self.sort_by(sort)

    def sort_by(self, sort: grant_views.GrantSort) -> None:
        """Show the list in another order, from its first row (the counts stay)."""
        self.sort = sort
        table = self.table
        for name in self.COLUMNS:
            table.columns[ColumnKey(name)].label = self._label(name)
        table.refresh()
        self._restore = self._cursor_id()
        self.start_query(self.filter, debounce=0, limit=self.PAGE, count=False)

    # -- the client filter's choices --------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="window-clients")
    def load_clients(self) -> None:
        self.post_message(self.ClientsLoaded(self.workspace.read(catalog_views.client_statuses)))

    @on(ClientsLoaded)
    def show_clients(self, message: ClientsLoaded) -> None:
        select: Select[str] = self.query_one(f"#{self.CLIENT_SELECT}", Select)
        chosen = select.value
        with self.prevent(Select.Changed):
            select.set_options(
                # Prompts as Text: a str option is parsed as markup.
                (plain(f"{name} (paused)" if status == "paused" else name), name)
                for name, status in message.clients
            )
            names = self._client_names = {name for name, _ in message.clients}
            if self._pending_client in names:
                select.value = self._pending_client
                self._pending_client = None
            elif isinstance(chosen, str) and chosen in names:
                select.value = chosen

    # -- the filter boxes (every Select and Input of the screen) -----------------------------

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == self.CLIENT_SELECT:
            self._pending_client = None
        self.start_query(self._read_filter(), debounce=0, limit=self.PAGE)

    @on(Input.Changed)
    def _input_changed(self) -> None:
        self.start_query(self._read_filter(), debounce=self.DEBOUNCE, limit=self.PAGE)

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.action_focus_table()

    def action_focus_filters(self) -> None:
        self.set_focus(self.query_one(f"#{self.FIRST_FILTER}"))

    def action_focus_table(self) -> None:
        self.set_focus(self.table)

    # -- the status line and the cursor -----------------------------------------------------

    def _shown_range(self) -> str:
        shown = len(self.order)
        if not shown:
            return "showing none"
        total = self.counts.total if self.counts is not None else None
        if self.from_end:
            if total is None:
                return f"showing the last {shown:,}"
            first = max(total - shown + 1, 1)
        else:
            first = 1
        return f"showing {first:,}\N{EN DASH}{first + shown - 1:,}"

    def _cursor_id(self) -> int | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return int(key) if key is not None else None

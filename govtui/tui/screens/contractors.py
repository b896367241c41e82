"""Contractors: a window of rows from the database, the next window fetched on demand, and a
search that re-queries as you type. The table holds what was scrolled to, at most MAX_ROWS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Static
from textual.worker import Worker, get_current_worker

from govtui.services import contractors
from govtui.services.contractors import ContractorRow
from govtui.tui.context import TuiContext
from govtui.tui.footer import GovtuiFooter
from govtui.tui.paging import PagedTable
from govtui.tui.plain import line, plain
from govtui.tui.screens.base import DrillIn, WindowedScreen

Key = tuple[str, int]


def _cells(row: ContractorRow) -> tuple[Text, ...]:
    style = "dim" if row.status != "active" else ""
    values = (
        row.external_id,
        row.name,
        row.email,
        row.directory_uid,
        row.contract_end.isoformat(),
        row.status,
    )
    return tuple(plain(value, style) for value in values)


class ContractorsScreen(WindowedScreen):
    """Contractors by name, searched and paged in SQL."""

    HELP = (
        "Contractors by name; / searches name, email, external id and directory uid; "
        "g/Home and G/End go to the first and the real last contractor, j/k move; "
        "Enter shows the contractor's grants."
    )
    ENTER_HELP = "Show the contractor's grants"
    SUB_TITLE = "Contractors"
    TABLE_ID = "contractor-table"
    AUTO_FOCUS = f"#{TABLE_ID}"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("escape", "focus_table", "Back to the table", show=False),
    ]

    PAGE = contractors.PAGE  # rows per window
    DEBOUNCE = 0.15  # seconds of quiet typing before a search runs

    @dataclass
    class WindowLoaded(Message):
        """One window of rows: the first of a search (replaces the table) or the next one."""

        generation: int
        search: str
        rows: list[ContractorRow]
        first: bool
        from_end: bool = False  # the last window of the list (G / End)

    @dataclass
    class CountLoaded(Message):
        generation: int
        search: str
        total: int

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self.generation = 0  # bumped by every search; answers of older ones are dropped
        self.search_text = ""
        self.total: int | None = None  # how many match search_text, once counted
        self._last_key: Key | None = None
        self._page_worker: Worker[None] | None = None
        self.external_ids: dict[str, str] = {}  # row key -> the contractor's external id
        self.from_end = False  # the rows shown are the list's last (G / End was pressed)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="Search name, email, external id or directory uid (press / to focus)",
            id="contractor-search",
        )
        yield PagedTable(id="contractor-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="contractor-status")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        table = self.query_one("#contractor-table", DataTable)
        table.add_columns("External id", "Name", "Email", "Directory uid", "Contract end", "Status")

    def reload(self) -> None:
        self.start_search(self.query_one("#contractor-search", Input).value.strip(), debounce=0)

    def action_focus_search(self) -> None:
        # set_focus at once (Widget.focus is deferred), so keys typed right after / land
        # in the search box.
        self.set_focus(self.query_one("#contractor-search", Input))

    def action_focus_table(self) -> None:
        self.set_focus(self.query_one("#contractor-table", DataTable))

    @on(Input.Changed, "#contractor-search")
    def search_changed(self, event: Input.Changed) -> None:
        self.start_search(event.value.strip(), debounce=self.DEBOUNCE)

    @on(Input.Submitted, "#contractor-search")
    def search_submitted(self) -> None:
        self.action_focus_table()

    def start_search(self, search: str, *, debounce: float) -> None:
        """Query the first window of `search`; whatever older queries answer is dropped."""
        self.generation += 1
        self.search_text = search
        self.from_end = False
        self.total = None
        self._last_key = None
        self._exhausted = True  # no next window until the first one is in
        self.workers.cancel_group(self, "contractor-page")
        self._show_status(busy=True)
        self.run_search(self.generation, search, debounce)

    @work(thread=True, exclusive=True, exit_on_error=False, group="contractor-search")
    def run_search(self, generation: int, search: str, debounce: float) -> None:
        worker = get_current_worker()
        # The debounce: a newer keystroke cancels this worker and ends the wait at once.
        if debounce and worker.cancelled_event.wait(debounce):
            return
        rows = self.workspace.read(contractors.window, search=search or None, limit=self.PAGE)
        if worker.is_cancelled:
            return
        self.post_message(self.WindowLoaded(generation, search, rows, first=True))
        total = self.workspace.read(contractors.count, search=search or None)
        if not worker.is_cancelled:
            self.post_message(self.CountLoaded(generation, search, total))

    def load_next_window(self) -> None:
        """Fetch the window after the last row shown, unless one is on its way or none is left."""
        if self._exhausted or self._last_key is None or self._capped:
            return
        if self._page_worker is not None and not self._page_worker.is_finished:
            return
        self._page_worker = self.fetch_window(self.generation, self.search_text, self._last_key)
        self._show_status(busy=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="contractor-page")
    def fetch_window(self, generation: int, search: str, after: Key) -> None:
        rows = self.workspace.read(
            contractors.window, search=search or None, after=after, limit=self.PAGE
        )
        self.post_message(self.WindowLoaded(generation, search, rows, first=False))

    @on(PagedTable.Jump, "#contractor-table")
    def jump(self, event: PagedTable.Jump) -> None:
        """g/Home: the first contractor; G/End: the real last one (its window is read)."""
        table = self.query_one("#contractor-table", DataTable)
        if event.where == "first":
            if self.from_end:
                self.start_search(self.search_text, debounce=0)
            elif table.row_count:
                table.move_cursor(row=0, animate=False)
        elif self._exhausted or self.from_end:
            if table.row_count:
                table.move_cursor(row=table.row_count - 1, animate=False)
        else:
            self.workers.cancel_group(self, "contractor-page")
            self.fetch_end(self.generation, self.search_text)
            self._show_status(busy=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="contractor-end")
    def fetch_end(self, generation: int, search: str) -> None:
        rows = self.workspace.read(
            contractors.window, search=search or None, from_end=True, limit=self.PAGE
        )
        self.post_message(self.WindowLoaded(generation, search, rows, first=True, from_end=True))

    @on(WindowLoaded)
    def show_window(self, message: WindowLoaded) -> None:
        if message.generation != self.generation:
            return  # the answer to a search that has since changed
        table = self.query_one("#contractor-table", DataTable)
        if message.first:
            table.clear()
        if message.first:
            self.external_ids.clear()
        for row in message.rows:
            table.add_row(*_cells(row), key=str(row.id))
            self.external_ids[str(row.id)] = row.external_id
        if message.rows:
            self._last_key = message.rows[-1].key
        self._exhausted = message.from_end or len(message.rows) < self.PAGE
        if message.from_end:
            self.from_end = True
            table.move_cursor(row=max(table.row_count - 1, 0), animate=False)
        self._show_status()
        if not message.first and self._near_end():
            self.load_next_window()  # the cursor raced ahead while this window was loading

    @on(CountLoaded)
    def show_count(self, message: CountLoaded) -> None:
        if message.generation == self.generation:
            self.total = message.total
            self._show_status()

    @on(DataTable.RowSelected, "#contractor-table")
    def contractor_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a contractor: their grants."""
        external_id = self.external_ids.get(str(event.row_key.value))
        if external_id is not None:
            self.post_message(DrillIn(contractor=external_id))

    def _show_status(self, *, busy: bool = False) -> None:
        table = self.query_one("#contractor-table", DataTable)
        if self.total is None:
            text = f"searching “{line(self.search_text)}”…" if self.search_text else "counting…"
        elif self.search_text:
            text = f"{self.total:,} contractors match “{line(self.search_text)}”"
        else:
            text = f"{self.total:,} contractors"
        if self.from_end:
            text += f" · showing the last {table.row_count:,} (g for the first)"
        else:
            text += f" · showing {table.row_count:,}"
        if self._capped:
            text += " (type to narrow the list for more)"
        if busy:
            text += " · loading…"
        # A Text: the search typed is shown as typed, not parsed as markup.
        self.query_one("#contractor-status", Static).update(Text(text))

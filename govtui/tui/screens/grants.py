"""Grants: a window of the grant list filtered in SQL (state, client, contractor, expiring
within), the next window fetched near the end, grants ending soon highlighted; Enter shows a
grant's history, x revokes it after a confirmation, n requests a new one."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Select, Static
from textual.widgets.data_table import ColumnKey
from textual.worker import Worker, get_current_worker

from govtui import clock
from govtui.errors import GovtuiError
from govtui.models import GRANT_STATES
from govtui.services import catalog, catalog_views, contractors, grant_views, grants
from govtui.services.catalog import ScopeView
from govtui.services.contractors import ContractorRow
from govtui.services.grant_views import (
    GrantCounts,
    GrantDetail,
    GrantQuery,
    GrantRow,
    GrantSort,
    SortKey,
)
from govtui.tui.context import TuiContext
from govtui.tui.footer import GovtuiFooter
from govtui.tui.grant_text import (
    LIVE_STATES,
    expires_soon,
    expires_text,
    scope_text,
    state_text,
)
from govtui.tui.modals.confirm_revoke import ConfirmRevoke
from govtui.tui.modals.grant_detail import GrantDetailModal
from govtui.tui.modals.request_form import RequestForm, RequestInput
from govtui.tui.paging import PagedTable
from govtui.tui.plain import line, notify, plain
from govtui.tui.screens.base import GrantsChanged, WindowedScreen

# State and expiry come first: at 80 columns they are what must show (the rest scroll in).
COLUMNS = (
    "Id",
    "State",
    "Expires (UTC)",
    "Contractor",
    "Name",
    "Scope",
    "Access",
    "Requested by",
    "Approved by",
)
# The columns a header click (or `o`, in this order) sorts by.
COLUMN_SORTS: dict[str, GrantSort] = {
    "Expires (UTC)": "expires",
    "Id": "newest",
    "Contractor": "contractor",
    "State": "state",
    "Scope": "scope",
}
SORT_CYCLE: tuple[GrantSort, ...] = tuple(COLUMN_SORTS.values())


def _cells(row: GrantRow) -> tuple[Text, ...]:
    now = clock.now()
    soon = expires_soon(row, now)
    return (
        Text(str(row.id), justify="right", style="bold yellow" if soon else ""),
        state_text(row.state),
        expires_text(row, now),
        plain(row.contractor),
        plain(row.contractor_name),
        scope_text(row),
        plain(row.access),
        plain(row.requested_by),
        plain(", ".join(row.approvals), "dim"),
    )


@dataclass(frozen=True)
class Fetch:
    """Which window to read: the first, the last, or the one after or before a row."""

    after: SortKey | None = None
    before: SortKey | None = None
    from_end: bool = False


class GrantsScreen(WindowedScreen):
    """Every grant, soonest expiry first, in keyset windows; filters narrow it in SQL, and
    the counts are over the whole filter."""

    HELP = (
        "Grants, soonest expiry first (o or a header click sorts), filtered by state, client, "
        "contractor (name, email, id or uid) and expiry; counts are over the whole filter. "
        "g/Home and G/End go to the first and last grant, j/k move; Enter shows the history, "
        "n requests (the new request is selected), x revokes."
    )
    ENTER_HELP = "Show the grant's history"
    SUB_TITLE = "Grants"
    TABLE_ID = "grant-table"
    AUTO_FOCUS = f"#{TABLE_ID}"
    SHOWS_GRANTS = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "request", "New request"),
        Binding("x,delete", "revoke", "Revoke"),
        Binding("o", "next_sort", "Sort"),
        Binding("slash", "focus_filters", "Filter", key_display="/"),
        Binding("escape", "focus_table", "Back to the table", show=False),
    ]

    PAGE = grant_views.PAGE
    DEBOUNCE = 0.3  # seconds of quiet typing in a filter box before the list is queried

    @dataclass
    class WindowLoaded(Message):
        generation: int
        rows: list[GrantRow]
        fetch: Fetch
        first: bool  # replaces the table (a new query, the first or the last window)
        limit: int

    @dataclass
    class CountsLoaded(Message):
        generation: int
        counts: GrantCounts

    @dataclass
    class FilterRefused(Message):
        generation: int
        message: str

    @dataclass
    class ClientsLoaded(Message):
        clients: list[tuple[str, str]]  # name, status

    @dataclass
    class DetailLoaded(Message):
        detail: GrantDetail
        purpose: str  # "show" or "revoke"

    @dataclass
    class ScopesLoaded(Message):
        scopes: list[ScopeView]

    @dataclass
    class Revoked(Message):
        row: GrantRow

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self.generation = 0
        self.filter = GrantQuery()
        self.sort: GrantSort = grant_views.DEFAULT_SORT
        self.rows: dict[int, GrantRow] = {}
        self.order: list[int] = []  # the ids in the table, top to bottom
        self.counts: GrantCounts | None = None
        self.refused: str | None = None
        self.loaded = False
        self.from_end = False  # the rows shown end at the list's last row (End was pressed)
        self._at_top = True  # no row of the list is before the first one shown
        self._page_worker: Worker[None] | None = None
        self._restore: int | None = None  # grant id to put the cursor back on
        self._cursor_to_end = False
        # A drill-in (Enter on a client or contractor elsewhere): the client to choose once
        # the list of clients is in, and the contractor's exact external id while the
        # contractor box still shows it.
        self._pending_client: str | None = None
        self._exact_contractor: str | None = None
        self._client_names: set[str] = set()  # the client filter's choices
        self._new_grant: int | None = None  # a grant requested here, to select once shown

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="grant-filters"):
            yield Select(
                [(state, state) for state in GRANT_STATES],
                prompt="Any state",
                id="filter-state",
            )
            yield Select([], prompt="Any client", id="filter-client")
            yield Input(placeholder="Contractor: name, email, id or uid", id="filter-contractor")
            yield Input(
                placeholder="Expiring within days",
                restrict=r"[0-9]*",
                max_length=4,
                id="filter-expiring",
            )
        yield PagedTable(id="grant-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="grant-status")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        table = self.query_one("#grant-table", DataTable)
        for name in COLUMNS:
            table.add_column(self._label(name), key=name)
        self.load_clients()

    def _label(self, name: str) -> Text:
        if COLUMN_SORTS.get(name) == self.sort:
            return Text(f"{name} ▼" if self.sort == "newest" else f"{name} ▲", style="bold")
        return Text(name)

    # -- querying ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Query again with the filters shown, as many rows as are shown now (from the end
        if that is where the rows shown are)."""
        table = self.query_one("#grant-table", DataTable)
        if table.row_count:
            self._restore = self._cursor_id()
        fetch = Fetch(from_end=self.from_end)
        limit = self._refresh_limit()
        if self._new_grant is not None:
            # A request just made: where it stands is known for two orders. Soonest expiry
            # first puts it last (no expiry yet, newest id last); newest first, first.
            self._restore = self._new_grant
            fetch = Fetch(from_end=self.sort == "expires")
            limit = self.PAGE
        self.start_query(self._read_filter(), debounce=0, limit=limit, fetch=fetch)

    def _refresh_limit(self) -> int:
        rows = self.query_one("#grant-table", DataTable).row_count
        return max(self.PAGE, min(rows, self.MAX_ROWS))

    def _read_filter(self) -> GrantQuery:
        state = self.query_one("#filter-state", Select).value
        client = self.query_one("#filter-client", Select).value
        contractor = self.query_one("#filter-contractor", Input).value.strip()
        expiring = self.query_one("#filter-expiring", Input).value.strip()
        exact = contractor if contractor and contractor == self._exact_contractor else None
        return GrantQuery(
            state=state if isinstance(state, str) else None,
            client=client if isinstance(client, str) else self._pending_client,
            contractor=exact,
            contractor_search=None if exact else contractor or None,
            expiring_within=int(expiring) if expiring else None,
        )

    def filter_to(self, *, client: str | None = None, contractor: str | None = None) -> None:
        """Show one client's or one contractor's grants (a drill-in from another screen):
        the other filters are cleared, the boxes show the new ones."""
        state = self.query_one("#filter-state", Select)
        clients = self.query_one("#filter-client", Select)
        with self.prevent(Select.Changed, Input.Changed):
            state.clear()
            self.query_one("#filter-expiring", Input).value = ""
            self.query_one("#filter-contractor", Input).value = contractor or ""
            self._pending_client = None
            if client is None:
                clients.clear()
            elif client in self._client_names:
                clients.value = client
            else:
                clients.clear()
                self._pending_client = client  # chosen when the list of clients is in
        self._exact_contractor = contractor
        self.from_end = False
        self.action_focus_table()
        self.start_query(self._read_filter(), debounce=0, limit=self.PAGE)

    def start_query(
        self,
        grant_filter: GrantQuery,
        *,
        debounce: float,
        limit: int,
        fetch: Fetch | None = None,
        count: bool = True,
    ) -> None:
        """Query the first (or last) window for `grant_filter`, and its counts; answers to
        older queries are dropped."""
        self.generation += 1
        self.filter = grant_filter
        self._exhausted = True
        self.workers.cancel_group(self, "grants-page")
        if count:
            self.counts = None
        self._show_status(busy=True)
        self.run_query(self.generation, grant_filter, self.sort, fetch or Fetch(), debounce, limit)
        if count:
            self.run_counts(self.generation, grant_filter, debounce)

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-query")
    def run_query(
        self,
        generation: int,
        grant_filter: GrantQuery,
        sort: GrantSort,
        fetch: Fetch,
        debounce: float,
        limit: int,
    ) -> None:
        worker = get_current_worker()
        if debounce and worker.cancelled_event.wait(debounce):
            return
        try:
            rows = self._window(grant_filter, sort, fetch, limit)
        except GovtuiError as exc:  # a client removed since the list of clients was read
            self.post_message(self.FilterRefused(generation, str(exc)))
            return
        if not worker.is_cancelled:
            self.post_message(self.WindowLoaded(generation, rows, fetch, first=True, limit=limit))

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-count")
    def run_counts(self, generation: int, grant_filter: GrantQuery, debounce: float) -> None:
        worker = get_current_worker()
        if debounce and worker.cancelled_event.wait(debounce):
            return
        try:
            counts = self.workspace.read(grant_views.counts, grant_filter)
        except GovtuiError:
            return  # the window's query says why
        if not worker.is_cancelled:
            self.post_message(self.CountsLoaded(generation, counts))

    def _window(
        self, grant_filter: GrantQuery, sort: GrantSort, fetch: Fetch, limit: int
    ) -> list[GrantRow]:
        return self.workspace.read(
            grant_views.window,
            grant_filter,
            sort=sort,
            after=fetch.after,
            before=fetch.before,
            from_end=fetch.from_end,
            limit=limit,
        )

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
        self._show_status(busy=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-page")
    def fetch_window(
        self, generation: int, grant_filter: GrantQuery, sort: GrantSort, fetch: Fetch
    ) -> None:
        rows = self._window(grant_filter, sort, fetch, self.PAGE)
        self.post_message(self.WindowLoaded(generation, rows, fetch, first=False, limit=self.PAGE))

    @on(WindowLoaded)
    def show_window(self, message: WindowLoaded) -> None:
        if message.generation != self.generation:
            return
        table = self.query_one("#grant-table", DataTable)
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
        if fetch.before is not None and not message.first:
            # Rows before the first shown: the table is rebuilt in order, the cursor kept on
            # its grant.
            cursor = table.cursor_row
            self.order[:0] = [row.id for row in new]
            table.clear()
            for grant_id in self.order:
                table.add_row(*_cells(self.rows[grant_id]), key=str(grant_id))
            table.move_cursor(row=cursor + len(new), animate=False)
        else:
            for row in new:
                # (a grant requested meanwhile may shift a window: each grant is shown once)
                self.order.append(row.id)
                table.add_row(*_cells(row), key=str(row.id))
        self.loaded = True
        if message.first:
            requested, self._new_grant = self._new_grant, None
            if self._restore is not None and str(self._restore) in {k.value for k in table.rows}:
                table.move_cursor(row=table.get_row_index(str(self._restore)), animate=False)
            elif requested is not None:
                notify(
                    self,
                    f"Grant #{requested} is requested; the filter or the order shown keeps it out of "
                    "these rows (press o for newest first).",
                )
            elif self._cursor_to_end and table.row_count:
                table.move_cursor(row=table.row_count - 1, animate=False)
            self._restore = None
            self._cursor_to_end = False
        self._show_status()
        if not message.first and self._near_end():
            self.load_next_window()
        elif self._near_top():
            self.load_previous_window()

    @on(CountsLoaded)
    def show_counts(self, message: CountsLoaded) -> None:
        if message.generation == self.generation:
            self.counts = message.counts
            self._show_status()

    @on(FilterRefused)
    def filter_refused(self, message: FilterRefused) -> None:
        if message.generation != self.generation:
            return
        self.query_one("#grant-table", DataTable).clear()
        self.rows.clear()
        self.order.clear()
        self.refused = message.message
        self.loaded = True
        self._show_status()

    # -- first, last, sorting ---------------------------------------------------------------

    @on(PagedTable.Jump, "#grant-table")
    def jump(self, event: PagedTable.Jump) -> None:
        table = self.query_one("#grant-table", DataTable)
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
        table = self.query_one("#grant-table", DataTable)
        return not self._at_top and table.row_count > 0 and table.cursor_row < self.LOOKAHEAD

    @on(DataTable.RowHighlighted, "#grant-table")
    def _maybe_earlier(self) -> None:
        if self._near_top():
            self.load_previous_window()

    def action_next_sort(self) -> None:
        at = SORT_CYCLE.index(self.sort) if self.sort in SORT_CYCLE else -1
        self.sort_by(SORT_CYCLE[(at + 1) % len(SORT_CYCLE)])

    @on(DataTable.HeaderSelected, "#grant-table")
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        sort = COLUMN_SORTS.get(str(event.column_key.value))
        if sort is None:
            notify(self, f"The grants cannot be sorted by {event.label.plain}.")
            return
        self.sort_by(sort)

    def sort_by(self, sort: GrantSort) -> None:
        """Show the list in another order, from its first row (the counts stay)."""
        self.sort = sort
        table = self.query_one("#grant-table", DataTable)
        for name in COLUMNS:
            table.columns[ColumnKey(name)].label = self._label(name)
        table.refresh()
        self._restore = self._cursor_id()
        self.start_query(self.filter, debounce=0, limit=self.PAGE, count=False)

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-clients")
    def load_clients(self) -> None:
        self.post_message(self.ClientsLoaded(self.workspace.read(catalog_views.client_statuses)))

    @on(ClientsLoaded)
    def show_clients(self, message: ClientsLoaded) -> None:
        select = self.query_one("#filter-client", Select)
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

    # -- filters ----------------------------------------------------------------------------

    @on(Select.Changed, "#filter-state, #filter-client")
    def select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "filter-client":
            self._pending_client = None
        self.start_query(self._read_filter(), debounce=0, limit=self.PAGE)

    @on(Input.Changed, "#filter-contractor, #filter-expiring")
    def input_changed(self) -> None:
        self.start_query(self._read_filter(), debounce=self.DEBOUNCE, limit=self.PAGE)

    @on(Input.Submitted, "#filter-contractor, #filter-expiring")
    def input_submitted(self) -> None:
        self.action_focus_table()

    def action_focus_filters(self) -> None:
        self.set_focus(self.query_one("#filter-state", Select))

    def action_focus_table(self) -> None:
        self.set_focus(self.query_one("#grant-table", DataTable))

    # -- the status line --------------------------------------------------------------------

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

    def _show_status(self, *, busy: bool = False) -> None:
        status = Text()
        if self.refused is not None:
            status.append(line(self.refused), style="bold red")
        else:
            counts = self.counts
            if counts is None:
                status.append("counting…")
            else:
                status.append(f"{counts.total:,} grant{'' if counts.total == 1 else 's'}")
            described = self.filter.describe()
            if described:
                status.append(f" ({line(described)})")
            status.append(f" · {self._shown_range()}")
            if self._capped:
                status.append(" (filter to see the rest)")
            status.append(f" · by {grant_views.SORT_WORDS[self.sort]}")
            if counts is not None and counts.expiring_soon:
                status.append(
                    f" · {counts.expiring_soon:,} expire within 7 days", style="bold yellow"
                )
        if busy:
            status.append(" · loading…")
        self.query_one("#grant-status", Static).update(status)

    # -- actions on a grant -----------------------------------------------------------------

    def _cursor_id(self) -> int | None:
        table = self.query_one("#grant-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return int(key) if key is not None else None

    @on(DataTable.RowSelected, "#grant-table")
    def row_selected(self) -> None:
        grant_id = self._cursor_id()
        if grant_id is not None:
            self.load_detail(grant_id, "show")

    def action_revoke(self) -> None:
        grant_id = self._cursor_id()
        if grant_id is None:
            return
        row = self.rows[grant_id]
        if row.state not in LIVE_STATES:
            notify(self, f"Grant #{grant_id} is {row.state} already: nothing to revoke.")
            return
        # Ask about the grant as it is now, not as it was when the list was loaded.
        self.load_detail(grant_id, "revoke")

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-detail")
    def load_detail(self, grant_id: int, purpose: str) -> None:
        detail = self.workspace.read(grant_views.show, grant_id)
        self.post_message(self.DetailLoaded(detail, purpose))

    @on(DetailLoaded)
    def detail_loaded(self, message: DetailLoaded) -> None:
        row = message.detail.grant
        if message.purpose == "show":
            self.app.push_screen(GrantDetailModal(message.detail, clock.now()))
        elif row.state not in LIVE_STATES:
            notify(self, f"Grant #{row.id} is {row.state} already: nothing to revoke.")
            self.refresh_data()
        else:
            self.app.push_screen(ConfirmRevoke(row, clock.now()), partial(self._confirmed, row))

    def _confirmed(self, row: GrantRow, reason: str | None) -> None:
        if reason is not None:
            self.revoke(row, reason)

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-write")
    def revoke(self, row: GrantRow, reason: str) -> None:
        self.workspace.act(grants.revoke, grant_id=row.id, reason=reason)
        self.post_message(self.Revoked(row))

    @on(Revoked)
    def revoked(self, message: Revoked) -> None:
        row = message.row
        notify(
            self,
            f"Grant #{row.id} revoked: {row.contractor} no longer has {row.access} on {row.scope}",
        )
        self.post_message(GrantsChanged())

    def action_request(self) -> None:
        self.load_scopes()

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-scopes")
    def load_scopes(self) -> None:
        scopes = self.workspace.read(catalog.list_scopes)
        self.post_message(self.ScopesLoaded(scopes))

    @on(ScopesLoaded)
    def scopes_loaded(self, message: ScopesLoaded) -> None:
        form = RequestForm(
            scopes=message.scopes,
            submit=self._submit_request,
            actor_name=self.actor_name,
            find_contractors=self._find_contractors,
            effective=self._effective_days,
        )
        self.app.push_screen(form, self._form_closed)

    def _find_contractors(self, search: str) -> list[ContractorRow]:
        """The contractors screen's search, for the form's contractor field (in its worker)."""
        return self.workspace.read(contractors.window, search=search, limit=RequestForm.MATCHES)

    def _effective_days(
        self, scope_path: str, days: int | None, contractor: str | None
    ) -> grants.EffectiveDays:
        """The days a grant would last after the caps (in the form's worker)."""
        return self.workspace.read(
            grants.effective_days, scope_path=scope_path, days=days, contractor=contractor
        )

    def _submit_request(self, form: RequestInput) -> int:
        """Request the grant the form describes (in the form's worker); its id."""
        grant = self.workspace.act(
            grants.request,
            contractor=form.contractor,
            scope_path=form.scope_path,
            access=form.access,
            days=form.days,
            reason=form.reason,
        )
        assert grant.id is not None  # flushed by the request
        return grant.id

    def _form_closed(self, created: list[int] | None) -> None:
        if created:
            self._new_grant = created[-1]  # the reload that follows selects it
            self.post_message(GrantsChanged())

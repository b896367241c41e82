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
from textual.widgets import DataTable, Footer, Header, Input, Select, Static
from textual.worker import Worker, get_current_worker

from govtui import clock
from govtui.errors import GovtuiError
from govtui.models import GRANT_STATES
from govtui.services import catalog, catalog_views, grant_views, grants
from govtui.services.catalog import ScopeView
from govtui.services.grant_views import GrantDetail, GrantRow
from govtui.tui.context import TuiContext
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
from govtui.tui.plain import line, notify, plain
from govtui.tui.screens.base import GrantsChanged, WindowedScreen


@dataclass(frozen=True)
class GrantFilter:
    state: str | None = None
    client: str | None = None
    contractor: str | None = None
    expiring_within: int | None = None

    def describe(self) -> str:
        parts = []
        if self.state:
            parts.append(self.state)
        if self.client:
            parts.append(f"client {self.client}")
        if self.contractor:
            parts.append(f"contractor {self.contractor}")
        if self.expiring_within is not None:
            parts.append(f"expiring within {self.expiring_within}d")
        return ", ".join(parts)


COLUMNS = (
    "Id",
    "Contractor",
    "Name",
    "Scope",
    "Access",
    "State",
    "Expires (UTC)",
    "Requested by",
    "Approved by",
)


def _cells(row: GrantRow) -> tuple[Text, ...]:
    now = clock.now()
    soon = expires_soon(row, now)
    return (
        Text(str(row.id), justify="right", style="bold yellow" if soon else ""),
        plain(row.contractor),
        plain(row.contractor_name),
        scope_text(row),
        plain(row.access),
        state_text(row.state),
        expires_text(row, now),
        plain(row.requested_by),
        plain(", ".join(row.approvals), "dim"),
    )


class GrantsScreen(WindowedScreen):
    """Every grant, newest first, in windows; filters narrow it in SQL."""

    HELP = (
        "Grants, newest first, filtered by state, client, contractor and expiry (soon-ending "
        "ones highlighted); Enter shows the history, n requests, x revokes."
    )
    SUB_TITLE = "Grants"
    TABLE_ID = "grant-table"
    AUTO_FOCUS = f"#{TABLE_ID}"
    SHOWS_GRANTS = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "request", "New request"),
        Binding("x,delete", "revoke", "Revoke"),
        Binding("slash", "focus_filters", "Filter", key_display="/"),
        Binding("escape", "focus_table", "Back to the table", show=False),
    ]

    PAGE = grant_views.PAGE
    DEBOUNCE = 0.3  # seconds of quiet typing in a filter box before the list is queried

    @dataclass
    class WindowLoaded(Message):
        generation: int
        rows: list[GrantRow]
        first: bool
        limit: int

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
        self.filter = GrantFilter()
        self.rows: dict[int, GrantRow] = {}
        self.refused: str | None = None
        self.loaded = False
        self._page_worker: Worker[None] | None = None
        self._restore: int | None = None  # grant id to put the cursor back on

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="grant-filters"):
            yield Select(
                [(state, state) for state in GRANT_STATES],
                prompt="Any state",
                id="filter-state",
            )
            yield Select([], prompt="Any client", id="filter-client")
            yield Input(placeholder="Contractor external id", id="filter-contractor")
            yield Input(
                placeholder="Expiring within days",
                restrict=r"[0-9]*",
                max_length=4,
                id="filter-expiring",
            )
        yield DataTable(id="grant-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="grant-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#grant-table", DataTable)
        table.add_columns(*COLUMNS)
        self.load_clients()

    # -- querying ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Query again with the filters shown, as many rows as are shown now."""
        table = self.query_one("#grant-table", DataTable)
        if table.row_count:
            self._restore = self._cursor_id()
        self.start_query(self._read_filter(), debounce=0, limit=self._refresh_limit())

    def _refresh_limit(self) -> int:
        rows = self.query_one("#grant-table", DataTable).row_count
        return max(self.PAGE, min(rows, self.MAX_ROWS))

    def _read_filter(self) -> GrantFilter:
        state = self.query_one("#filter-state", Select).value
        client = self.query_one("#filter-client", Select).value
        contractor = self.query_one("#filter-contractor", Input).value.strip()
        expiring = self.query_one("#filter-expiring", Input).value.strip()
        return GrantFilter(
            state=state if isinstance(state, str) else None,
            client=client if isinstance(client, str) else None,
            contractor=contractor or None,
            expiring_within=int(expiring) if expiring else None,
        )

    def start_query(self, grant_filter: GrantFilter, *, debounce: float, limit: int) -> None:
        """Query the first window for `grant_filter`; answers to older queries are dropped."""
        self.generation += 1
        self.filter = grant_filter
        self._exhausted = True
        self.workers.cancel_group(self, "grants-page")
        self._show_status(busy=True)
        self.run_query(self.generation, grant_filter, debounce, limit)

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-query")
    def run_query(
        self, generation: int, grant_filter: GrantFilter, debounce: float, limit: int
    ) -> None:
        worker = get_current_worker()
        if debounce and worker.cancelled_event.wait(debounce):
            return
        try:
            rows = self._window(grant_filter, None, limit)
        except GovtuiError as exc:  # an unknown client or contractor typed into a filter
            self.post_message(self.FilterRefused(generation, str(exc)))
            return
        if not worker.is_cancelled:
            self.post_message(self.WindowLoaded(generation, rows, first=True, limit=limit))

    def _window(
        self, grant_filter: GrantFilter, after_id: int | None, limit: int
    ) -> list[GrantRow]:
        return self.workspace.read(
            grant_views.list_grants,
            state=grant_filter.state,
            client=grant_filter.client,
            contractor=grant_filter.contractor,
            expiring_within=grant_filter.expiring_within,
            after_id=after_id,
            limit=limit,
        )

    def load_next_window(self) -> None:
        if self._exhausted or self._capped or not self.rows:
            return
        if self._page_worker is not None and not self._page_worker.is_finished:
            return
        last_id = self._last_id()
        self._page_worker = self.fetch_window(self.generation, self.filter, last_id)
        self._show_status(busy=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="grants-page")
    def fetch_window(self, generation: int, grant_filter: GrantFilter, after_id: int) -> None:
        rows = self._window(grant_filter, after_id, self.PAGE)
        self.post_message(self.WindowLoaded(generation, rows, first=False, limit=self.PAGE))

    @on(WindowLoaded)
    def show_window(self, message: WindowLoaded) -> None:
        if message.generation != self.generation:
            return
        table = self.query_one("#grant-table", DataTable)
        if message.first:
            table.clear()
            self.rows.clear()
            self.refused = None
        for row in message.rows:
            if row.id in self.rows:
                continue  # a grant requested meanwhile shifted the window: keep one copy
            self.rows[row.id] = row
            table.add_row(*_cells(row), key=str(row.id))
        self.loaded = True
        self._exhausted = len(message.rows) < message.limit
        if message.first and self._restore is not None:
            if str(self._restore) in {key.value for key in table.rows}:
                table.move_cursor(row=table.get_row_index(str(self._restore)))
            self._restore = None
        self._show_status()
        if not message.first and self._near_end():
            self.load_next_window()

    @on(FilterRefused)
    def filter_refused(self, message: FilterRefused) -> None:
        if message.generation != self.generation:
            return
        self.query_one("#grant-table", DataTable).clear()
        self.rows.clear()
        self.refused = message.message
        self.loaded = True
        self._show_status()

    def _last_id(self) -> int:
        table = self.query_one("#grant-table", DataTable)
        key = table.coordinate_to_cell_key(Coordinate(table.row_count - 1, 0)).row_key.value
        return int(key or 0)

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
            if isinstance(chosen, str) and chosen in {name for name, _ in message.clients}:
                select.value = chosen

    # -- filters ----------------------------------------------------------------------------

    @on(Select.Changed, "#filter-state, #filter-client")
    def select_changed(self) -> None:
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

    # -- paging -----------------------------------------------------------------------------

    def _show_status(self, *, busy: bool = False) -> None:
        table = self.query_one("#grant-table", DataTable)
        status = Text()
        if self.refused is not None:
            status.append(line(self.refused), style="bold red")
        else:
            described = self.filter.describe()
            count = table.row_count
            status.append(f"{count:,} grant{'' if count == 1 else 's'} shown")
            if described:
                status.append(f" ({line(described)})")
            if not self._exhausted:
                status.append(" · more below")
            if self._capped:
                status.append(" (filter to see the rest)")
            now = clock.now()
            soon = sum(expires_soon(row, now) for row in self.rows.values())
            if soon:
                status.append(f" · {soon} expire within 7 days", style="bold yellow")
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
        )
        self.app.push_screen(form, self._form_closed)

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
            self.post_message(GrantsChanged())

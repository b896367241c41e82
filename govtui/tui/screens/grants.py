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
from textual.message import Message
from textual.widgets import DataTable, Header, Input, Select, Static

from govtui import clock
from govtui.models import GRANT_STATES
from govtui.services import catalog, contractors, grant_views, grants
from govtui.services.catalog import ScopeView
from govtui.services.contractors import ContractorRow
from govtui.services.grant_views import GrantCounts, GrantDetail, GrantQuery, GrantRow, GrantSort
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
from govtui.tui.screens.base import Fetch, GrantsChanged, GrantWindowScreen

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


class GrantsScreen(GrantWindowScreen[GrantQuery, GrantCounts]):
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
    COLUMNS = COLUMNS
    COLUMN_SORTS = COLUMN_SORTS
    NOUN = "grants"
    CLIENT_SELECT = "filter-client"
    FIRST_FILTER = "filter-state"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "request", "New request"),
        Binding("x,delete", "revoke", "Revoke"),
        Binding("o", "next_sort", "Sort"),
        Binding("slash", "focus_filters", "Filter", key_display="/"),
        Binding("escape", "focus_table", "Back to the table", show=False),
    ]

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
        super().__init__(context, GrantQuery())
        # A drill-in (Enter on a client or contractor elsewhere): the contractor's exact
        # external id while the contractor box still shows it (the client waits in
        # _pending_client until the list of clients is in).
        self._exact_contractor: str | None = None
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

    def cells(self, row: GrantRow) -> tuple[Text, ...]:
        return _cells(row)

    # -- querying ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Query again with the filters shown, as many rows as are shown now (from the end
        if that is where the rows shown are)."""
        if self.table.row_count:
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

    def read_window(
        self, query: GrantQuery, sort: GrantSort, fetch: Fetch, limit: int
    ) -> list[GrantRow]:
        return self.workspace.read(grant_views.window, query, **fetch.spec(sort, limit))

    def read_counts(self, query: GrantQuery) -> GrantCounts:
        return self.workspace.read(grant_views.counts, query)

    def place_cursor(self) -> None:
        requested, self._new_grant = self._new_grant, None
        if requested is not None and not self._restorable:
            notify(
                self,
                f"Grant #{requested} is requested; the filter or the order shown keeps it out of "
                "these rows (press o for newest first).",
            )
            self._cursor_to_end = False
        super().place_cursor()

    # -- the status line --------------------------------------------------------------------

    def _show_status(self, *, busy: str = "") -> None:
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
            status.append(f" · {busy}")
        self.query_one("#grant-status", Static).update(status)

    # -- actions on a grant -----------------------------------------------------------------

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

"""Approvals: what the acting operator may decide now, a window at a time (keyset windows of
the queue, filtered in SQL, soonest expiry first; the counts are the whole filter's). Space
marks requests; ctrl+a marks every request of the filter as of now (in SQL terms: no row is
loaded for it); Enter (or A) approves the marked ones with one TOTP code, x denies them with a
reason. A non-approver is told so, and for which clients requests wait."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
from govtui.errors import GovtuiError
from govtui.services import grant_views, grants, operator_views
from govtui.services.grant_views import GrantRow, GrantSort, QueueCounts, QueueMark, QueueQuery
from govtui.services.grants import ApprovalOutcome
from govtui.services.operator_views import OperatorState
from govtui.tui.context import TuiContext
from govtui.tui.footer import GovtuiFooter
from govtui.tui.grant_text import expires_text, scope_text
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt, minutes
from govtui.tui.paging import PagedTable
from govtui.tui.plain import line, notify, plain
from govtui.tui.screens.base import Fetch, GrantsChanged, GrantWindowScreen

MARK = "✓"
COLUMNS = (
    "Id",
    "Contractor",
    "Scope",
    "Asks",
    "Expires (UTC)",
    "Approvals",
    "Sensitivity",
    "Access",
    "Name",
    "Requested by",
    "Reason",
)
# The columns a header click (or `o`, in this order) sorts by.
COLUMN_SORTS: dict[str, GrantSort] = {
    "Expires (UTC)": "expires",
    "Id": "newest",
    "Contractor": "contractor",
    "Scope": "scope",
}
SUMMARY_ROWS = 8  # rows a batch's dialog lists; the rest are counted


def approvals_needed(row: GrantRow) -> int:
    return 2 if row.sensitivity == "restricted" else 1


def _asks(row: GrantRow) -> Text:
    if row.pending_extension_days is not None and row.state == "active":
        return Text(f"extension +{row.pending_extension_days}d", style="magenta")
    return Text(f"{row.requested_days}d")


def _so_far(row: GrantRow) -> Text:
    if row.state != "requested":
        return Text("—", style="dim")
    return Text(f"{len(row.approvals)} of {approvals_needed(row)}")


def _expires(row: GrantRow) -> Text:
    if row.state == "requested":
        return Text("—", style="dim")  # it starts at approval
    return expires_text(row, clock.now())


def outcome_summary(outcomes: list[ApprovalOutcome]) -> str:
    """'2 approved; 1 waits for a second approver': the approved are those now active (a
    restricted request with one approval recorded is not approved yet)."""
    waiting = sum(not outcome.activated for outcome in outcomes)
    parts = []
    if len(outcomes) > waiting or not waiting:
        parts.append(f"{len(outcomes) - waiting:,} approved")
    if waiting:
        verb = "waits" if waiting == 1 else "wait"
        parts.append(f"{waiting:,} {verb} for a second approver")
    return "; ".join(parts)


def _batch_summary(rows: list[GrantRow], count: int) -> Text:
    """The batch's first rows, one a line, and how many more it holds."""
    text = Text()
    for index, row in enumerate(rows[:SUMMARY_ROWS]):
        if index:
            text.append("\n")
        text.append(f"#{row.id} ", style="bold")
        text.append(f"{line(row.contractor)} {line(row.contractor_name)} → ")
        text.append(scope_text(row))
        text.append(f" at {line(row.access)}, ")
        text.append(_asks(row))
        if approvals_needed(row) > 1:
            text.append(f"  ({line(row.sensitivity)}: needs 2 approvers)", style="yellow")
    more = count - min(len(rows), SUMMARY_ROWS)
    if more > 0:
        text.append(f"\n… and {more:,} more", style="bold")
    return text


def _noun(count: int) -> str:
    return "request" if count == 1 else "requests"


def waiting_words(counts: QueueCounts) -> str:
    """Who the operator would need to be an approver for, in one line (empty if nothing)."""
    if not counts.elsewhere:
        return ""
    shown = counts.elsewhere[:5]
    names = ", ".join(f"{line(w.client)} ({w.requests:,})" for w in shown)
    if len(counts.elsewhere) > len(shown):
        names += f" and {len(counts.elsewhere) - len(shown)} more clients"
    return names


@dataclass(frozen=True)
class Batch:
    """What a decision is for: grant ids, or a mark of the whole filter."""

    ids: tuple[int, ...]
    mark: QueueMark | None
    count: int
    rows: list[GrantRow]  # the batch's rows on screen, for the dialog


class ApprovalsScreen(GrantWindowScreen[QueueQuery, QueueCounts]):
    """The acting operator's approval queue in keyset windows, with marks for batch
    decisions (one row, some rows, or the whole filter as of the moment it was marked)."""

    HELP = (
        "Requests and extensions you may decide, soonest expiry first (o or a header click "
        "sorts); / filters by client and contractor; counts are over the whole filter. Space "
        "marks, ctrl+a marks every request of the filter as of now, Enter or A approves the "
        "marked ones with one TOTP code, x denies them with a reason, e enrols your "
        "authenticator. Home and G/End go to the first and last request, j/k move."
    )
    SUB_TITLE = "Approvals"
    TABLE_ID = "approval-table"
    AUTO_FOCUS = f"#{TABLE_ID}"
    SHOWS_GRANTS = True
    COLUMNS = COLUMNS
    COLUMN_SORTS = COLUMN_SORTS
    NOUN = "requests"
    CLIENT_SELECT = "approval-client"
    FIRST_FILTER = "approval-client"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("ctrl+a", "mark_all", "Mark all", key_display="^a"),
        Binding("A", "approve", "Approve", key_display="⏎"),
        Binding("x", "deny", "Deny"),
        # Off the footer, in the help (?): with the app's keys the footer fits 160 columns.
        Binding("o", "next_sort", "Sort", show=False),
        Binding("slash", "focus_filters", "Filter", key_display="/", show=False),
        Binding("e", "app.enrol", "Enrol authenticator", show=False),
        Binding("escape", "focus_table", "Back to the table", show=False),
    ]

    @dataclass
    class CountsLoaded(GrantWindowScreen.CountsLoaded):
        operator: OperatorState

    @dataclass
    class Marked(Message):
        mark: QueueMark

    @dataclass
    class Denied(Message):
        count: int

    @dataclass
    class Refused(Message):
        message: str

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context, QueueQuery())
        self.marked: set[int] = set()
        self.mark: QueueMark | None = None  # the whole filter, as of when it was marked
        self.operator: OperatorState | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="approval-filters"):
            yield Select([], prompt="Any client", id="approval-client")
            yield Input(placeholder="Contractor: name, email, id or uid", id="approval-contractor")
        yield PagedTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="approval-status")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        self.table.add_column(MARK, key="mark")  # before the columns the base class adds

    def cells(self, row: GrantRow) -> tuple[Text, ...]:
        return (
            self._mark_cell(row.id),
            Text(str(row.id), justify="right"),
            # Every cell a Text: a str cell is parsed as markup (`Bob [/b] Smith` from an HR
            # file crashed this screen for every approver).
            plain(row.contractor),
            scope_text(row),
            _asks(row),
            _expires(row),
            _so_far(row),
            plain(row.sensitivity),
            plain(row.access),
            plain(row.contractor_name),
            plain(row.requested_by),
            plain(row.reason, "dim"),
        )

    # -- querying ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Query again with the filters shown, as many rows as are shown now (from the end
        if that is where they are); the marks stay (a mark-all stays as of when it was made)."""
        if self.table.row_count:
            self._restore = self._cursor_id()
        self.start_query(
            self._read_filter(),
            debounce=0,
            limit=self._refresh_limit(),
            fetch=Fetch(from_end=self.from_end),
        )

    def _read_filter(self) -> QueueQuery:
        client = self.query_one("#approval-client", Select).value
        contractor = self.query_one("#approval-contractor", Input).value.strip()
        return QueueQuery(
            client=client if isinstance(client, str) else None,
            contractor_search=contractor or None,
        )

    def filter_changing(self, query: QueueQuery) -> None:
        self.mark = None  # a new filter ends a mark of the whole old one
        self.marked.clear()

    def read_window(
        self, query: QueueQuery, sort: GrantSort, fetch: Fetch, limit: int
    ) -> list[GrantRow]:
        return self.workspace.read_as(grant_views.queue_window, query, **fetch.spec(sort, limit))

    def read_counts(self, query: QueueQuery) -> QueueCounts:
        return self.workspace.read_as(grant_views.queue_counts, query)

    def counts_message(self, generation: int, counts: QueueCounts) -> CountsLoaded:
        return self.CountsLoaded(generation, counts, self.workspace.read_as(operator_views.state))

    def show_counts(self, message: GrantWindowScreen.CountsLoaded) -> None:
        assert isinstance(message, ApprovalsScreen.CountsLoaded)
        self.operator = message.operator
        super().show_counts(message)

    def rows_replaced(self) -> None:
        self.marked &= set(self.rows)  # decided elsewhere meanwhile: no longer marked

    # -- the status line --------------------------------------------------------------------

    @property
    def marked_count(self) -> int:
        return self.mark.marked if self.mark is not None else len(self.marked)

    def _show_status(self, *, busy: str = "") -> None:
        status = Text()
        counts = self.counts
        if self.refused is not None:
            status.append(line(self.refused), style="bold red")
        elif counts is not None and not counts.approver:
            status.append("You are not an approver", style="bold yellow")
            elsewhere = waiting_words(counts)
            if elsewhere:
                status.append(
                    f": requests wait on {elsewhere}; an admin can make you an approver for "
                    "them (operator approves add)."
                )
            else:
                status.append(": no request waits on any client.")
        else:
            if counts is None:
                status.append("counting…")
            elif counts.total:
                status.append(f"{counts.total:,} wait{'s' if counts.total == 1 else ''}")
                status.append(" for your decision")
            else:
                status.append("Nothing waits for your approval")
            described = self.filter.describe()
            if described:
                status.append(f" ({line(described)})")
            if self.order:
                status.append(f" · {self._shown_range()}")
                if self._capped:
                    status.append(" (filter to see the rest)")
                status.append(f" · by {grant_views.SORT_WORDS[self.sort]}")
            if self.mark is not None:
                status.append(
                    f" · {self.mark.marked:,} marked (all of the filter as of "
                    f"{self.mark.marked_at:%H:%M:%S} UTC)",
                    style="bold green",
                )
            elif self.marked:
                status.append(f" · {len(self.marked):,} marked")
            if counts is not None and counts.elsewhere:
                status.append(f" · not yours to approve: {waiting_words(counts)}", style="dim")
            operator = self.operator
            if operator is not None and operator.enrolled_at is None:
                status.append(
                    " · you have no authenticator enrolled: press e to enrol", style="bold yellow"
                )
            if operator is not None and operator.locked_for is not None:
                status.append(
                    f" · your approvals are locked for {minutes(operator.locked_for)}",
                    style="bold red",
                )
        if busy:
            status.append(f" · {busy}")
        self.query_one("#approval-status", Static).update(status)

    # -- marks ------------------------------------------------------------------------------

    def is_marked(self, grant_id: int) -> bool:
        mark = self.mark
        if mark is not None:
            # A request made after the mark, or one that joined the filter after it, or an
            # extension asked after it, is not in it (shown unmarked).
            return mark.holds(grant_id)
        return grant_id in self.marked

    def _mark_cell(self, grant_id: int) -> Text:
        return Text(MARK if self.is_marked(grant_id) else "", style="bold green")

    def _redraw_marks(self) -> None:
        table = self.table
        for grant_id in self.order:
            table.update_cell(str(grant_id), "mark", self._mark_cell(grant_id))
        self._show_status()

    def action_toggle_mark(self) -> None:
        grant_id = self._cursor_id()
        if grant_id is None:
            return
        mark = self.mark
        if mark is not None:
            # With the whole filter marked, space leaves one out (or takes it back); a row
            # the mark does not hold stays out of it (and out of its count).
            if grant_id in mark.ids:
                self.mark = replace(mark, excluded=mark.excluded ^ {grant_id})
        elif grant_id in self.marked:
            self.marked.discard(grant_id)
        else:
            self.marked.add(grant_id)
        table = self.table
        table.update_cell(str(grant_id), "mark", self._mark_cell(grant_id))
        table.move_cursor(row=table.cursor_row + 1)  # space walks down the list, as in a mailer
        self._show_status()

    def action_mark_all(self) -> None:
        """Mark every request of the filter as of now (or, if all are marked, none)."""
        if self.mark is not None and not self.mark.excluded:
            self.mark = None
            self.marked.clear()
            self._redraw_marks()
            return
        self.read_mark(self.filter)

    @work(thread=True, exclusive=True, exit_on_error=False, group="approvals-mark")
    def read_mark(self, queue_filter: QueueQuery) -> None:
        self.post_message(self.Marked(self.workspace.read_as(grant_views.mark_all, queue_filter)))

    @on(Marked)
    def marked_all(self, message: Marked) -> None:
        if message.mark.query != self.filter:
            return  # the filter changed meanwhile: that mark is not of what is shown
        self.marked.clear()
        self.mark = message.mark if message.mark.count else None
        if not message.mark.count:
            notify(self, "Nothing to mark: no request of this filter waits for you.")
        self._redraw_marks()

    def _clear_marks(self) -> None:
        self.mark = None
        self.marked.clear()

    def _batch(self) -> Batch | None:
        """The marked requests (the whole filter's mark, or those marked one by one), or else
        the request under the cursor."""
        if self.mark is not None:
            rows = [self.rows[i] for i in self.order if self.is_marked(i)]
            return Batch((), self.mark, self.mark.marked, rows)
        if self.marked:
            ids = tuple(sorted(self.marked))
            return Batch(ids, None, len(ids), [self.rows[i] for i in ids if i in self.rows])
        grant_id = self._cursor_id()
        if grant_id is None:
            return None
        return Batch((grant_id,), None, 1, [self.rows[grant_id]])

    # -- decisions --------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#approval-table")
    def row_selected(self) -> None:
        self.action_approve()

    def action_approve(self) -> None:
        batch = self._batch()
        if batch is None or batch.count == 0:
            notify(self, "Nothing to approve.")
            return
        self._show_status(
            busy=f"checking {batch.count:,} {_noun(batch.count)} before asking for a code…"
        )
        self.check_approve(batch)

    @work(thread=True, exclusive=True, exit_on_error=False, group="approvals-write")
    def check_approve(self, batch: Batch) -> None:
        """Ask for no code that cannot help: approve's own checks first (still waiting, an
        approver of the client, not paused, enrolled); a refusal is shown instead."""
        try:
            self.workspace.read_as(grants.check_approve, grant_ids=batch.ids, mark=batch.mark)
        except GovtuiError as exc:
            self.post_message(self.Refused(str(exc)))
            return
        self.app.call_from_thread(self._ask_approve_code, batch)

    def _ask_approve_code(self, batch: Batch) -> None:
        self._show_status()
        noun = _noun(batch.count)
        prompt: TotpPrompt[list[ApprovalOutcome]] = TotpPrompt(
            title=f"Approve {batch.count:,} {noun} as {line(self.actor_name)}",
            summary=_batch_summary(batch.rows, batch.count),
            attempt=partial(self._approve, batch),
            lockout=partial(self.workspace.read_as, operator_views.lockout),
            action_label="Approve",
        )
        self.app.push_screen(prompt, self._approved)

    def _approve(self, batch: Batch, code: str) -> list[ApprovalOutcome]:
        # In the prompt's worker; a rejected code raises CodeRejected, its failure counted.
        return self.workspace.act(grants.approve, grant_ids=batch.ids, mark=batch.mark, code=code)

    def _approved(self, outcomes: list[ApprovalOutcome] | None) -> None:
        if outcomes is None:
            self.refresh_data()  # a refused code may have locked the operator out
            return
        self._clear_marks()
        notify(self, outcome_summary(outcomes), title="Approved")
        self.post_message(GrantsChanged())

    def action_deny(self) -> None:
        batch = self._batch()
        if batch is None or batch.count == 0:
            notify(self, "Nothing to deny.")
            return
        noun = _noun(batch.count)
        prompt = ReasonPrompt(
            title=f"Deny {batch.count:,} {noun}?",
            details=_batch_summary(batch.rows, batch.count),
            action_label="Deny",
            placeholder="Why is it denied? (required; it goes into the audit log)",
        )
        self.app.push_screen(prompt, partial(self._deny_reason, batch))

    def _deny_reason(self, batch: Batch, reason: str | None) -> None:
        if reason is not None:
            self.deny(batch, reason)

    @work(thread=True, exclusive=True, exit_on_error=False, group="approvals-write")
    def deny(self, batch: Batch, reason: str) -> None:
        try:
            count = self.workspace.act(
                grants.deny, grant_ids=batch.ids, mark=batch.mark, reason=reason
            )
        except GovtuiError as exc:  # decided elsewhere meanwhile, or more than were marked
            self.post_message(self.Refused(str(exc)))
            return
        self.post_message(self.Denied(count))

    @on(Denied)
    def denied(self, message: Denied) -> None:
        self._clear_marks()
        notify(self, f"{message.count:,} denied", title="Denied")
        self.post_message(GrantsChanged())

    @on(Refused)
    def deny_refused(self, message: Refused) -> None:
        notify(self, message.message, title="Refused", severity="error", timeout=12)
        self.refresh_data()

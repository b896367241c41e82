"""Approvals: what the acting operator may decide now. Space marks requests, ctrl+a marks all;
Enter (or A) approves the marked ones with one TOTP code, d denies them with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from govtui.services import grant_views, grants, operator_views
from govtui.services.grant_views import GrantRow
from govtui.services.grants import ApprovalOutcome
from govtui.services.operator_views import OperatorState
from govtui.tui.context import TuiContext
from govtui.tui.footer import GovtuiFooter
from govtui.tui.grant_text import scope_text
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt, minutes
from govtui.tui.plain import line, plain
from govtui.tui.screens.base import GovtuiScreen, GrantsChanged

MARK = "✓"
COLUMNS = (
    "Id",
    "Contractor",
    "Name",
    "Scope",
    "Sensitivity",
    "Access",
    "Asks",
    "Approvals",
    "Requested by",
    "Reason",
)


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


def outcome_summary(outcomes: list[ApprovalOutcome]) -> str:
    """'3 approved; 1 waits for a second approver'."""
    waiting = sum(not outcome.activated for outcome in outcomes)
    text = f"{len(outcomes)} approved"
    if waiting:
        verb = "waits" if waiting == 1 else "wait"
        text += f"; {waiting} {verb} for a second approver"
    return text


def _batch_summary(rows: list[GrantRow]) -> Text:
    text = Text()
    for index, row in enumerate(rows):
        if index:
            text.append("\n")
        text.append(f"#{row.id} ", style="bold")
        text.append(f"{line(row.contractor)} {line(row.contractor_name)} → ")
        text.append(scope_text(row))
        text.append(f" at {line(row.access)}, ")
        text.append(_asks(row))
        if approvals_needed(row) > 1:
            text.append(f"  ({line(row.sensitivity)}: needs 2 approvers)", style="yellow")
    return text


class ApprovalsScreen(GovtuiScreen):
    """The acting operator's approval queue, with marks for batch decisions."""

    HELP = (
        "Requests and extensions you may decide: space marks, ctrl+a marks all, Enter or A "
        "approves the marked ones with one TOTP code, d denies them, e enrols your authenticator."
    )
    SUB_TITLE = "Approvals"
    AUTO_FOCUS = "#approval-table"
    SHOWS_GRANTS = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("ctrl+a", "mark_all", "Mark all"),
        Binding("A", "approve", "Approve marked", key_display="A / enter"),
        Binding("d", "deny", "Deny marked"),
        Binding("e", "app.enrol", "Enrol authenticator"),
    ]

    @dataclass
    class Loaded(Message):
        rows: list[GrantRow]
        operator: OperatorState

    @dataclass
    class Denied(Message):
        ids: list[int]

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self.rows: dict[int, GrantRow] = {}
        self.marked: set[int] = set()
        self.operator: OperatorState | None = None
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="approval-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="approval-status")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        table = self.query_one("#approval-table", DataTable)
        table.add_column(MARK, key="mark")
        for label in COLUMNS:
            table.add_column(label, key=label.lower())

    def reload(self) -> None:
        self.load_queue()

    @work(thread=True, exclusive=True, exit_on_error=False, group="approvals")
    def load_queue(self) -> None:
        queue = self.workspace.read_as(grant_views.approval_queue)
        self.post_message(self.Loaded(queue.rows, queue.operator))

    @on(Loaded)
    def show_queue(self, message: Loaded) -> None:
        table = self.query_one("#approval-table", DataTable)
        was_at = self._cursor_id()
        table.clear()
        self.rows = {row.id: row for row in message.rows}
        self.marked &= set(self.rows)  # decided elsewhere meanwhile: no longer marked
        self.operator = message.operator
        for row in message.rows:
            table.add_row(
                Text(MARK if row.id in self.marked else "", style="bold green"),
                Text(str(row.id), justify="right"),
                # Every cell a Text: a str cell is parsed as markup (`Bob [/b] Smith` from
                # an HR file crashed this screen for every approver).
                plain(row.contractor),
                plain(row.contractor_name),
                scope_text(row),
                plain(row.sensitivity),
                plain(row.access),
                _asks(row),
                _so_far(row),
                plain(row.requested_by),
                plain(row.reason, "dim"),
                key=str(row.id),
            )
        if was_at is not None and was_at in self.rows:
            table.move_cursor(row=table.get_row_index(str(was_at)))
        self.loaded = True
        self._show_status()

    def _cursor_id(self) -> int | None:
        table = self.query_one("#approval-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return int(key) if key is not None else None

    def _show_status(self) -> None:
        status = Text()
        count = len(self.rows)
        if count:
            status.append(f"{count} wait{'s' if count == 1 else ''} for your decision")
            status.append(f" · {len(self.marked)} marked")
        else:
            status.append("Nothing waits for your approval.")
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
        self.query_one("#approval-status", Static).update(status)

    # -- marks ------------------------------------------------------------------------------

    def _set_mark(self, grant_id: int, marked: bool) -> None:
        if marked:
            self.marked.add(grant_id)
        else:
            self.marked.discard(grant_id)
        cell = Text(MARK if marked else "", style="bold green")
        self.query_one("#approval-table", DataTable).update_cell(str(grant_id), "mark", cell)

    def action_toggle_mark(self) -> None:
        grant_id = self._cursor_id()
        if grant_id is None:
            return
        self._set_mark(grant_id, grant_id not in self.marked)
        table = self.query_one("#approval-table", DataTable)
        table.move_cursor(row=table.cursor_row + 1)  # space walks down the list, as in a mailer
        self._show_status()

    def action_mark_all(self) -> None:
        everything = set(self.rows) != self.marked
        for grant_id in self.rows:
            self._set_mark(grant_id, everything)
        self._show_status()

    def _chosen(self) -> list[GrantRow]:
        """The marked rows, or else the row under the cursor."""
        if self.marked:
            return [self.rows[grant_id] for grant_id in sorted(self.marked)]
        grant_id = self._cursor_id()
        return [self.rows[grant_id]] if grant_id is not None else []

    # -- decisions --------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#approval-table")
    def row_selected(self) -> None:
        self.action_approve()

    def action_approve(self) -> None:
        rows = self._chosen()
        if not rows:
            self.notify("Nothing to approve.")
            return
        ids = [row.id for row in rows]
        noun = "request" if len(rows) == 1 else "requests"
        prompt: TotpPrompt[list[ApprovalOutcome]] = TotpPrompt(
            title=f"Approve {len(rows)} {noun} as {line(self.actor_name)}",
            summary=_batch_summary(rows),
            attempt=partial(self._approve, ids),
            lockout=partial(self.workspace.read_as, operator_views.lockout),
            action_label="Approve",
        )
        self.app.push_screen(prompt, self._approved)

    def _approve(self, ids: list[int], code: str) -> list[ApprovalOutcome]:
        # In the prompt's worker; a rejected code raises CodeRejected, its failure counted.
        return self.workspace.act(grants.approve, grant_ids=ids, code=code)

    def _approved(self, outcomes: list[ApprovalOutcome] | None) -> None:
        if outcomes is None:
            self.refresh_data()  # a refused code may have locked the operator out
            return
        for outcome in outcomes:
            self.marked.discard(outcome.grant_id)
        self.notify(outcome_summary(outcomes), title="Approved")
        self.post_message(GrantsChanged())

    def action_deny(self) -> None:
        rows = self._chosen()
        if not rows:
            self.notify("Nothing to deny.")
            return
        noun = "request" if len(rows) == 1 else "requests"
        prompt = ReasonPrompt(
            title=f"Deny {len(rows)} {noun}?",
            details=_batch_summary(rows),
            action_label="Deny",
            placeholder="Why is it denied? (required; it goes into the audit log)",
        )
        self.app.push_screen(prompt, partial(self._deny_reason, [row.id for row in rows]))

    def _deny_reason(self, ids: list[int], reason: str | None) -> None:
        if reason is not None:
            self.deny(ids, reason)

    @work(thread=True, exclusive=True, exit_on_error=False, group="approvals-write")
    def deny(self, ids: list[int], reason: str) -> None:
        self.workspace.act(grants.deny, grant_ids=ids, reason=reason)
        self.post_message(self.Denied(ids))

    @on(Denied)
    def denied(self, message: Denied) -> None:
        self.marked.difference_update(message.ids)
        self.notify(f"{len(message.ids)} denied", title="Denied")
        self.post_message(GrantsChanged())

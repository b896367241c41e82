"""Directories: each target with its health and outbox counts, the open outbox operations (a
bounded window, failed first), a sync run with a progress bar, and the drift of the selected
target with a fix behind a confirmation."""

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
from textual.widgets import DataTable, Header, ProgressBar, Static
from textual.worker import Worker, WorkerState

from govtui import clock
from govtui.services import convergence, directory_views, reconcile
from govtui.services.directory_views import OutboxRow, TargetOverview
from govtui.services.reconcile import FixOutcome
from govtui.services.sync import REMOVALS
from govtui.tui.context import DriftCheck, TargetHealth, TuiContext
from govtui.tui.directory_text import (
    ALERT_STYLE,
    clock_time,
    drift_count_text,
    drift_fix,
    drift_kind,
    first_error,
    health_text,
    report_text,
)
from govtui.tui.error_text import describe_error
from govtui.tui.footer import GovtuiFooter
from govtui.tui.grant_text import when
from govtui.tui.modals.confirm_fix import ConfirmFix
from govtui.tui.plain import line as one
from govtui.tui.plain import notify, plain
from govtui.tui.screens.base import DirectoryChanged, GovtuiScreen


def _count(value: int, style: str = "") -> Text:
    return Text(f"{value:,}", style=style, justify="right")


def _outbox_cells(row: OutboxRow) -> tuple[Text, ...]:
    failed = row.state == "failed"
    # A failed removal is still retried (never given up); a failed addition waits for
    # `govtui sync --retry-failed`.
    retried = not failed or row.operation in REMOVALS
    return (
        Text(str(row.id), justify="right"),
        plain(row.target),
        plain(row.state, ALERT_STYLE if failed else "yellow"),
        plain(row.operation),
        plain(row.directory_uid),
        _count(row.attempts),
        Text(when(row.next_attempt_at) if retried else "—"),
        plain(row.last_error or "—", "red" if failed else "dim"),  # a server's words
        plain(row.group_dn or "—"),  # last: DNs are long
    )


class DirectoryScreen(GovtuiScreen):
    """The directories govtui keeps in step, and how far they are from the grants."""

    HELP = (
        "Directory targets with their health and outbox counts, the pending and failed "
        "operations; s syncs now (with a progress bar), R compares the selected target with "
        "the grants (drift), f fixes the drift after a confirmation."
    )
    SUB_TITLE = "Directory"
    AUTO_FOCUS = "#target-table"
    SHOWS_GRANTS = True  # every grant change queues outbox operations
    SHOWS_DIRECTORY = True
    BINDINGS: ClassVar[list[BindingType]] = [
        # Short descriptions keep the footer within 120 columns; the help shows the tooltips.
        Binding("s", "sync", "Sync", tooltip="Sync now: push the pending operations"),
        Binding("R", "reconcile", "Drift", tooltip="Reconcile: compare the target with the grants"),
        Binding("f", "fix", "Fix", tooltip="Fix the drift found (after a confirmation)"),
    ]
    OUTBOX_LIMIT = 500  # open operations listed; the counts cover them all
    DRIFT_LIMIT = 1_000  # drift items listed; the count and a fix cover them all

    @dataclass
    class Loaded(Message):
        targets: list[TargetOverview]
        ops: list[OutboxRow]

    @dataclass
    class HealthChecked(Message):
        health: dict[str, str | None]

    @dataclass
    class DriftFound(Message):
        check: DriftCheck

    @dataclass
    class Fixed(Message):
        target: str
        outcome: FixOutcome

    class SyncRequested(Message):
        """The person asked for a sync run now; the app runs it (one at a time)."""

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self.targets: dict[str, TargetOverview] = {}
        self.loaded = False
        self.checking = False  # a connection check is going
        self.busy: str | None = None  # the target being compared or fixed
        self.busy_doing = ""  # what is being done to it, for the drift line

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="target-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="insecure-status")
        with Horizontal(id="sync-row"):
            yield ProgressBar(id="sync-progress", show_eta=False)
            yield Static("", id="sync-status")
        yield Static("Loading…", id="outbox-status", classes="section")
        yield DataTable(id="outbox-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="drift-status", classes="section")
        yield DataTable(id="drift-table", cursor_type="row", zebra_stripes=True)
        yield GovtuiFooter()

    def on_mount(self) -> None:
        targets = self.query_one("#target-table", DataTable)
        for label in ("Target", "URL", "Flavour", "Pending", "Done", "Failed"):
            targets.add_column(label, key=label.lower())
        targets.add_column("Drift", key="drift")
        targets.add_column("Connection", key="connection")  # last: an error is long
        self.query_one("#outbox-table", DataTable).add_columns(
            "Op",
            "Target",
            "State",
            "Operation",
            "Uid",
            "Attempts",
            "Next attempt (UTC)",
            "Last error",
            "Group",
        )
        self.query_one("#drift-table", DataTable).add_columns(
            "Drift", "Uid", "Fix", "Group", "Account"
        )
        self.query_one("#sync-progress", ProgressBar).display = False
        self.sync_state_changed()
        self._show_drift()

    # -- loading ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.load_directory()

    def action_reload(self) -> None:
        super().action_reload()
        self.check_health()

    @work(thread=True, exclusive=True, exit_on_error=False, group="directory-load")
    def load_directory(self) -> None:
        overview = self.workspace.read(directory_views.overview, limit=self.OUTBOX_LIMIT)
        self.post_message(self.Loaded(overview.targets, overview.ops))

    @on(Loaded)
    def show_directory(self, message: Loaded) -> None:
        self.targets = {t.name: t for t in message.targets}
        table = self.query_one("#target-table", DataTable)
        selected = self.selected_target()
        table.clear()
        for target in message.targets:
            table.add_row(*self._target_cells(target), key=target.name)
        if selected in self.targets:
            table.move_cursor(row=table.get_row_index(selected))
        self._show_insecure(message.targets)
        self._show_outbox(message.ops)
        self._show_drift()
        self.loaded = True
        if any(name not in self.context.health for name in self.targets):
            self.check_health()

    def _show_insecure(self, targets: list[TargetOverview]) -> None:
        """A red line naming each target that binds in clear text; hidden when none does."""
        line = Text()
        for target in targets:
            if target.insecure_plaintext:
                line.append("\n" if line else "")
                line.append("INSECURE: plaintext bind", style=ALERT_STYLE)
                line.append(f" to {one(target.name)} ({one(target.url)}): ", style="red")
                line.append("the bind password crosses the network in clear text", style="red")
        status = self.query_one("#insecure-status", Static)
        status.update(line)
        status.display = bool(line)

    def _target_cells(self, target: TargetOverview) -> tuple[Text, ...]:
        return (
            plain(target.name, "bold"),
            plain(target.url),
            plain(target.flavour),
            _count(target.pending, "yellow" if target.pending else ""),
            _count(target.done),
            _count(target.failed, ALERT_STYLE if target.failed else ""),
            drift_count_text(self.context.drift.get(target.name)),
            health_text(self.context.health.get(target.name), self.checking),
        )

    def _refresh_target_rows(self) -> None:
        """Redraw the health and drift cells from the context, without a query."""
        table = self.query_one("#target-table", DataTable)
        for target in self.targets.values():
            cells = self._target_cells(target)
            # Widen the columns as needed: an error cut to its first word says nothing.
            table.update_cell(target.name, "drift", cells[6], update_width=True)
            table.update_cell(target.name, "connection", cells[7], update_width=True)

    def _show_outbox(self, ops: list[OutboxRow]) -> None:
        table = self.query_one("#outbox-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in ops:
            table.add_row(*_outbox_cells(row), key=str(row.id))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        pending = sum(t.pending for t in self.targets.values())
        failed = sum(t.failed for t in self.targets.values())
        line = Text("Outbox: ", style="bold")
        line.append(f"{pending:,} pending · ")
        line.append(f"{failed:,} failed", style=ALERT_STYLE if failed else "")
        if pending + failed > len(ops):
            line.append(
                f" · the newest {len(ops):,} shown, failed first "
                "(`govtui sync status` counts them all)",
                style="dim",
            )
        elif ops:
            line.append(" · all shown, failed first", style="dim")
        if not self.targets:
            line = Text(
                "No directory target: add one with `govtui directory add`, then map scopes "
                "with `govtui scope map`.",
                style="dim",
            )
        self.query_one("#outbox-status", Static).update(line)

    # -- health -----------------------------------------------------------------------------

    def check_health(self) -> None:
        """Connect and bind to every target, in the background."""
        if not self.targets and self.loaded:
            return
        self.checking = True
        self._refresh_target_rows()
        self.run_health_check()

    @work(thread=True, exclusive=True, exit_on_error=False, group="directory-health")
    def run_health_check(self) -> None:
        health = convergence.check_targets(self.workspace.engine)
        errors = {name: describe_error(e) if e else None for name, e in health.items()}
        self.post_message(self.HealthChecked(errors))

    @on(HealthChecked)
    def health_checked(self, message: HealthChecked) -> None:
        now = clock.now()
        for name, error in message.health.items():
            self.context.health[name] = TargetHealth(error, now)
        self.checking = False
        self._refresh_target_rows()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # GovtuiScreen's handler runs too (Textual calls each class's along the MRO) and
        # forwards a failure to the app: this one only puts the screen back to rest.
        worker = event.worker
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            if worker.group == "directory-reconcile":
                self.busy = None
                self._show_drift()
            elif worker.group == "directory-health":
                self.checking = False
                self._refresh_target_rows()

    # -- sync -------------------------------------------------------------------------------

    def action_sync(self) -> None:
        self.post_message(self.SyncRequested())

    def sync_state_changed(self) -> None:
        """Show the running sync's progress, or how the last one went."""
        if not self.is_mounted or not self.is_attached:
            return  # a timer's run can end while the app closes, or before the screen is up
        bar = next(iter(self.query("#sync-progress").results(ProgressBar)), None)
        if bar is None:
            return  # the app is closing: the screen is attached but its widgets are gone
        status = Text()
        context = self.context
        if context.syncing:
            bar.display = True
            if context.sync_progress is None:
                bar.update(total=None, progress=0)
                status.append("Syncing…")
            else:
                handled, total = context.sync_progress
                bar.update(total=total, progress=handled)
                status.append(f"Syncing: {handled:,} of {total:,} operations")
        elif context.last_sync is not None:
            last = context.last_sync
            handled = last.report.done + last.report.retrying + last.report.failed
            bar.display = True
            bar.update(total=handled, progress=handled)
            how = "asked for" if last.manual else "background"
            status.append(f"Last sync {clock_time(last.at)} ({how}): {report_text(last.report)}")
            if last.report.errors:
                status.append(f" · {first_error(last.report.errors)}", style=ALERT_STYLE)
        else:
            bar.display = False
            status.append(
                "No sync yet in this session: s syncs now; the app also syncs in the background.",
                style="dim",
            )
        label = next(iter(self.query("#sync-status").results(Static)), None)
        if label is not None:  # removed meanwhile, as the bar may be, while the app closes
            label.update(status)

    # -- drift ------------------------------------------------------------------------------

    def selected_target(self) -> str | None:
        """The target under the cursor of the targets table."""
        table = self.query_one("#target-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return key

    @on(DataTable.RowHighlighted, "#target-table")
    def target_highlighted(self) -> None:
        self._show_drift()

    def _show_drift(self) -> None:
        target = self.selected_target()
        table = self.query_one("#drift-table", DataTable)
        table.clear()
        status = self.query_one("#drift-status", Static)
        if target is None:
            status.update(Text("Drift: no target selected.", style="dim"))
            return
        check = self.context.drift.get(target)
        line = Text("Drift ", style="bold")
        line.append(f"on {one(target)}: ")
        if self.busy == target:
            line.append(self.busy_doing)
        elif check is None:
            line.append("not checked in this session; R compares it with the grants.", style="dim")
        elif not check.items:
            line.append(f"none (checked {clock_time(check.at)}).", style="green")
        else:
            fixable = len(check.fixable)
            line.append(f"{len(check.items)} items", style=ALERT_STYLE)
            line.append(f", {fixable} fixable (checked {clock_time(check.at)})")
            if fixable:
                line.append(" · f fixes them after a confirmation", style="dim")
            if len(check.items) > self.DRIFT_LIMIT:
                line.append(f" · the first {self.DRIFT_LIMIT:,} listed", style="dim")
        status.update(line)
        if check is not None and self.busy != target:
            for drift in check.items[: self.DRIFT_LIMIT]:
                table.add_row(
                    drift_kind(drift),
                    plain(drift.directory_uid or "—"),
                    drift_fix(drift),
                    plain(drift.group_dn or "—"),
                    plain(drift.user_dn or "—"),
                )

    def _busy_elsewhere(self) -> bool:
        if self.busy is not None:
            notify(self, f"Still working on {self.busy}: wait for it to finish.")
            return True
        return False

    def action_reconcile(self) -> None:
        target = self.selected_target()
        if target is None:
            self.notify("No directory target to compare.")
            return
        if self._busy_elsewhere():
            return
        self.busy, self.busy_doing = target, "comparing with the grants…"
        self._show_drift()
        self.run_compare(target)

    @work(thread=True, exit_on_error=False, group="directory-reconcile")
    def run_compare(self, target: str) -> None:
        drift = reconcile.compare(self.workspace.engine, target)
        self.post_message(self.DriftFound(DriftCheck(target, drift, clock.now())))

    @on(DriftFound)
    def drift_found(self, message: DriftFound) -> None:
        self.busy = None
        self.context.drift[message.check.target] = message.check
        self._show_drift()
        self._refresh_target_rows()
        count = len(message.check.items)
        notify(
            self,
            f"{message.check.target}: {count} drift item{'s' if count != 1 else ''}",
            title="Reconcile",
            severity="warning" if count else "information",
        )
        self.post_message(DirectoryChanged())

    def action_fix(self) -> None:
        target = self.selected_target()
        if target is None or self._busy_elsewhere():
            return
        check = self.context.drift.get(target)
        if check is None:
            notify(self, f"Compare {target} first: R finds the drift to fix.")
        elif not check.fixable:
            notify(self, f"Nothing on {target} that govtui may fix.")
        else:
            self.app.push_screen(ConfirmFix(check), partial(self._fix_confirmed, check))

    def _fix_confirmed(self, check: DriftCheck, confirmed: bool | None) -> None:
        if confirmed and not self._busy_elsewhere():
            self.busy, self.busy_doing = check.target, "fixing…"
            self._show_drift()
            self.run_fix(check)

    @work(thread=True, exit_on_error=False, group="directory-reconcile")
    def run_fix(self, check: DriftCheck) -> None:
        outcome = reconcile.fix_confirmed(
            self.workspace.engine, self.actor_name, check.target, check.items
        )
        self.post_message(self.Fixed(check.target, outcome))

    @on(Fixed)
    def fixed(self, message: Fixed) -> None:
        self.busy = None
        outcome = message.outcome
        self.context.drift[message.target] = DriftCheck(message.target, outcome.drift, clock.now())
        self._show_drift()
        self._refresh_target_rows()
        text = f"{message.target}: {outcome.fixed} fixed ({report_text(outcome.report)})"
        if outcome.gone:
            text += f"; {outcome.gone} no longer drift, left alone"
        if outcome.drift:
            text += f"; {len(outcome.drift)} drift items left"
        trouble = outcome.report.failed or outcome.report.retrying or outcome.report.errors
        notify(self, text, title="Fix", severity="warning" if trouble else "information")
        self.post_message(DirectoryChanged())

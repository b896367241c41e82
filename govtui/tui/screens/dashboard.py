"""The dashboard: every client with its status, size and grants by state, the totals, the
access reviews not closed yet (overdue items in red), and the directories' open operations and
drift (failures and drift in red)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import ColumnKey

from govtui import clock
from govtui.models import GRANT_STATES
from govtui.services import dashboard, operator_views
from govtui.services.operator_views import OperatorFlags
from govtui.tui.directory_text import ALERT_STYLE, clock_time
from govtui.tui.doctor_line import doctor_text
from govtui.tui.footer import GovtuiFooter
from govtui.tui.operator_text import operators_text
from govtui.tui.pause_flow import ClientStatusChanged
from govtui.tui.plain import plain
from govtui.tui.review_text import reminders_text
from govtui.tui.screens.base import DrillIn, GovtuiScreen

PAUSED_STYLE = "bold red"
TOTAL_KEY = "__total__"
# Short headers, so that the client, its status and every grant state fit in 80 columns.
COLUMN_LABELS = {"suspended": "Susp."}
CAMPAIGNS_SHOWN = 3
CHAIN_RECHECK = 600  # seconds after which showing the dashboard verifies the chain again  # campaigns named on the reviews line; the counts cover them all


def reviews_text(campaigns: list[dashboard.CampaignLine]) -> Text:
    """'Reviews: 2 open · 37 overdue items · q1 12/40 (due 2026-03-10), …'."""
    if not campaigns:
        return Text("Reviews: none open (v shows every campaign)", style="dim")
    open_count = sum(c.state == "open" for c in campaigns)
    closing = len(campaigns) - open_count
    overdue = sum(c.overdue for c in campaigns)
    text = Text.assemble(("Reviews: ", "bold"), f"{open_count} open")
    if closing:
        text.append(f", {closing} closing", style="bold yellow")
    if overdue:
        text.append(f" · {overdue:,} overdue item{'s' if overdue != 1 else ''}", PAUSED_STYLE)
    for index, campaign in enumerate(campaigns[:CAMPAIGNS_SHOWN]):
        text.append(" · " if index == 0 else ", ")
        style = PAUSED_STYLE if campaign.overdue else ""
        text.append(plain(campaign.name, style))
        text.append(
            f" {campaign.decided:,}/{campaign.total:,} (due {campaign.due_at:%Y-%m-%d})",
            style=style or "dim",
        )
    if len(campaigns) > CAMPAIGNS_SHOWN:
        text.append(f", … {len(campaigns) - CAMPAIGNS_SHOWN} more (v)", style="dim")
    return text


def _cell(value: object, style: str = "") -> Text:
    return plain(value, style)


def _count(value: int, style: str = "") -> Text:
    return Text(f"{value:,}", style=style, justify="right")


def _holders_cell(value: int | None) -> Text:
    """A client's contractors, or '…' while they are still being counted."""
    return _count(value) if value is not None else Text("…", style="dim", justify="right")


class DashboardScreen(GovtuiScreen):
    """Clients at a glance; paused clients, failed directory operations and drift in bold red."""

    HELP = (
        "Every client with its status, projects, scopes, contractors and grants by state; "
        "the access reviews open and their overdue items; the directory operations pending "
        "and failed, and the drift found; operators who share a login or are locked out, in red. "
        "Enter on a client shows its grants."
    )
    ENTER_HELP = "Show the client's grants"
    SUB_TITLE = "Dashboard"
    SHOWS_GRANTS = True
    SHOWS_DIRECTORY = True

    @dataclass
    class Loaded(Message):
        overview: dashboard.Overview
        operators: list[OperatorFlags]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="clients", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="dashboard-totals")
        yield Static("", id="dashboard-operators")
        yield Static("", id="dashboard-reviews")
        yield Static("", id="dashboard-chain")
        yield Static("", id="dashboard-doctor")
        with Horizontal(id="dashboard-directory"):
            yield Static("", id="dashboard-outbox")
            yield Static("", id="dashboard-failed")
            yield Static("", id="dashboard-drift")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        table = self.query_one("#clients", DataTable)
        # Every grant state fits in 80 columns; the catalog's sizes come after them.
        table.add_column("Client", key="client")
        table.add_column("Status", key="status")
        for key in (*GRANT_STATES, "projects", "scopes", "contractors"):
            table.add_column(COLUMN_LABELS.get(key, key.capitalize()), key=key)

    _verify_asked = False

    def reload(self) -> None:
        chain = self.context.chain
        stale = chain is None or (clock.now() - chain.at).total_seconds() > CHAIN_RECHECK
        self.load_overview(self._verify_asked or stale)
        self._verify_asked = False
        self._show_chain()
        self.show_doctor()

    def action_reload(self) -> None:
        self._verify_asked = True  # asked for: verify the chain again, however recent
        super().action_reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dashboard")
    def load_overview(self, verify_chain: bool = False) -> None:
        workspace = self.workspace
        # Everything but the holders first (well under a second at a million grants); the
        # holders, which read every live grant with its client, follow in the same worker.
        overview = workspace.read(dashboard.overview, holders=False)
        operators = workspace.read(operator_views.roster)
        self.post_message(self.Loaded(overview, operators))
        self.post_message(self.HoldersCounted(workspace.read(dashboard.holders_by_client)))
        if verify_chain:
            # After the overview is shown: it reads every event (seconds on a long chain).
            status = workspace.read(dashboard.chain_status, workspace.engine)
            self.post_message(self.ChainVerified(status))

    @on(ClientStatusChanged)
    def client_status_changed(self, message: ClientStatusChanged) -> None:
        """A pause or resume committed: the client's row turns red (or back) now."""
        table = self.query_one("#clients", DataTable)
        if message.client not in {key.value for key in table.rows}:
            return
        paused = message.status == "paused"
        style = PAUSED_STYLE if paused else ""
        table.update_cell(message.client, "client", _cell(message.client, style))
        table.update_cell(
            message.client, "status", _cell("PAUSED" if paused else message.status, style)
        )

    @dataclass
    class HoldersCounted(Message):
        holders: dict[str, int]  # client name -> contractors holding a live grant

    @on(HoldersCounted)
    def show_holders(self, message: HoldersCounted) -> None:
        table = self.query_one("#clients", DataTable)
        rows = {key.value for key in table.rows}
        for name, count in message.holders.items():
            if name in rows:
                table.update_cell(name, "contractors", _count(count))

    @on(DataTable.RowSelected, "#clients")
    def client_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a client: its grants."""
        client = event.row_key.value
        if client is not None and client != TOTAL_KEY:
            self.post_message(DrillIn(client=client))

    @dataclass
    class ChainVerified(Message):
        status: dashboard.ChainStatus

    @on(ChainVerified)
    def remember_chain(self, message: ChainVerified) -> None:
        self.context.chain = message.status
        self._show_chain()

    def _show_chain(self) -> None:
        chain = self.context.chain
        style = ALERT_STYLE if chain is not None and not chain.ok else "dim"
        widget = self.query_one("#dashboard-chain", Static)
        widget.update(Text(dashboard.chain_line(chain), style=style))
        widget.set_class(chain is not None and not chain.ok, "alert")

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # (Besides GovtuiScreen's own: Textual calls each class's handler.) The checks may
        # have ended while another screen was shown.
        self.show_doctor()

    def show_doctor(self) -> None:
        """The line of `govtui doctor`'s checks run at start: red when one failed."""
        widget = self.query_one("#dashboard-doctor", Static)
        widget.display = self.context.doctor_on
        report = self.context.doctor
        widget.update(doctor_text(report))
        widget.set_class(report is not None and report.failed, "alert")

    @on(Loaded)
    def show_overview(self, message: Loaded) -> None:
        overview = message.overview
        table = self.query_one("#clients", DataTable)
        cursor = table.cursor_row
        table.clear()
        totals = dict.fromkeys(("projects", "scopes", *GRANT_STATES), 0)
        for client in overview.clients:
            paused = client.status == "paused"
            style = PAUSED_STYLE if paused else ""
            status = "PAUSED" if paused else client.status
            table.add_row(
                _cell(client.name, style),
                _cell(status, style),
                *(_count(client.grants.get(state, 0)) for state in GRANT_STATES),
                _count(client.projects),
                _count(client.scopes),
                _holders_cell(client.contractors),
                key=client.name,
            )
            totals["projects"] += client.projects
            totals["scopes"] += client.scopes
            for state in GRANT_STATES:
                totals[state] += client.grants.get(state, 0)
        table.add_row(
            _cell("Total", "bold"),
            _cell(""),
            *(_count(totals[state], "bold") for state in GRANT_STATES),
            _count(totals["projects"], "bold"),
            _count(totals["scopes"], "bold"),
            _cell(""),
            key=TOTAL_KEY,
        )
        # Sized with the rows, not at the table's next idle: a CI run once showed the names cut
        # to the header's width ("helios") for 20 s.
        names = table.columns[ColumnKey("client")]
        names.content_width = max(
            names.content_width, *(_cell(client.name).cell_len for client in overview.clients), 5
        )
        table.refresh()
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        paused_count = sum(client.status == "paused" for client in overview.clients)
        line = Text.assemble(
            f"{len(overview.clients):,} clients",
            (f" ({paused_count} paused)", PAUSED_STYLE) if paused_count else "",
            f" · {overview.contractors_total:,} contractors",
            f" ({overview.contractors_active:,} active)",
            f" · {sum(totals[s] for s in GRANT_STATES):,} grants",
        )
        self.query_one("#dashboard-totals", Static).update(line)
        self.query_one("#dashboard-operators", Static).update(
            operators_text(message.operators, clock.now())
        )
        self.query_one("#dashboard-reviews", Static).update(
            Text("\n").join([reviews_text(overview.campaigns), reminders_text(overview.reminders)])
        )
        self._show_directory(overview)

    def _show_directory(self, overview: dashboard.Overview) -> None:
        outbox = self.query_one("#dashboard-outbox", Static)
        failed = self.query_one("#dashboard-failed", Static)
        drift = self.query_one("#dashboard-drift", Static)
        has_targets = overview.directory_targets > 0
        failed.display = drift.display = has_targets
        if not has_targets:
            outbox.update(Text("Directory: none set up (`govtui directory add`)", style="dim"))
            return
        pending = overview.outbox_pending
        outbox.update(
            Text.assemble(
                ("Directory: ", "bold"),
                f"{pending:,} operation{'s' if pending != 1 else ''} pending",
            )
        )
        count = overview.outbox_failed
        failed.update(Text(f"{count:,} failed", style=ALERT_STYLE if count else ""))
        failed.set_class(count > 0, "alert")
        checks = list(self.context.drift.values())
        if not checks:
            drift.update(Text("drift: not checked (R on the directory screen)", style="dim"))
            drift.set_class(False, "alert")
            return
        items = sum(len(check.items) for check in checks)
        latest = max(check.at for check in checks)
        unchecked = overview.directory_targets - len(checks)
        text = Text.assemble(
            "drift: ",
            (f"{items:,}", ALERT_STYLE if items else "green"),
            (f" (checked {clock_time(latest)}", "dim"),
            (
                f"; {unchecked} target{'s' if unchecked != 1 else ''} not checked"
                if unchecked > 0
                else "",
                "dim",
            ),
            (")", "dim"),
        )
        drift.update(text)
        drift.set_class(items > 0, "alert")

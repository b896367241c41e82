"""Access reviews: every campaign with a progress bar (decided of total), overdue ones in red,
its state; Enter opens its items for the acting reviewer, C closes it (the dry run first, then
the directory followed until it confirms every removal)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from govtui.errors import GovtuiError
from govtui.services import evidence_pack, review_close, review_views
from govtui.services.evidence_pack import Written
from govtui.services.review_close import Closed, ClosePlan, DueLine
from govtui.services.review_views import CampaignDetail, CampaignSummary
from govtui.services.sync import Progress
from govtui.tui.context import TuiContext
from govtui.tui.directory_text import ALERT_STYLE
from govtui.tui.footer import GovtuiFooter
from govtui.tui.modals.evidence_export import EvidenceExport, default_pack_path
from govtui.tui.modals.review_close import CloseAnswer, CloseConfirm
from govtui.tui.modals.review_progress import CloseProgress
from govtui.tui.plain import line, notify, plain
from govtui.tui.review_text import due_text, progress_text, reminders_text, state_text
from govtui.tui.screens.base import DirectoryChanged, GovtuiScreen, GrantsChanged
from govtui.tui.screens.review_items import ReviewItemsScreen

COLUMNS = (
    ("Campaign", "name"),
    ("Client", "client"),
    ("State", "state"),
    ("Progress (decided/total)", "progress"),
    ("Due (UTC)", "due"),
    ("No answer", "no_answer"),
    ("Reviewers", "reviewers"),
)


def _reviewers(summary: CampaignSummary) -> Text:
    text = Text()
    for index, reviewer in enumerate(summary.reviewers):
        if index:
            text.append(", ")
        text.append(line(reviewer.reviewer))
        text.append(f" {reviewer.decided}/{reviewer.total}", style="dim")
    return text


class ReviewsScreen(GovtuiScreen):
    """Every campaign, newest first, with progress; overdue ones in bold red."""

    HELP = (
        "Access review campaigns with their progress (overdue in red) and state; Enter opens "
        "a campaign's items to keep (k), revoke (x) or shorten (s) them; C closes a campaign; "
        "E exports its signed evidence pack (a zip) and shows the pack's SHA-256."
    )
    SUB_TITLE = "Reviews"
    AUTO_FOCUS = "#campaign-table"
    SHOWS_GRANTS = True
    SHOWS_DIRECTORY = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_items", "Items", show=False),
        Binding("C", "close_campaign", "Close campaign"),
        Binding("E", "export_evidence", "Evidence pack"),
    ]

    @dataclass
    class Loaded(Message):
        campaigns: list[CampaignSummary]
        reminders: list[DueLine]

    @dataclass
    class PlanLoaded(Message):
        summary: CampaignSummary
        plan: ClosePlan | None  # None: the campaign is closing already (only follow)

    @dataclass
    class CloseDone(Message):
        closed: Closed

    @dataclass
    class CloseRefused(Message):
        message: str

    def __init__(self, context: TuiContext) -> None:
        super().__init__(context)
        self.campaigns: dict[str, CampaignSummary] = {}
        self.reminders: list[DueLine] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="campaign-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading…", id="campaign-status")
        yield GovtuiFooter()

    def on_mount(self) -> None:
        table = self.query_one("#campaign-table", DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)

    def reload(self) -> None:
        self.load_campaigns()

    @work(thread=True, exclusive=True, exit_on_error=False, group="reviews")
    def load_campaigns(self) -> None:
        self.post_message(
            self.Loaded(
                self.workspace.read(review_views.campaigns), self.workspace.read(review_close.due)
            )
        )

    @on(Loaded)
    def show_campaigns(self, message: Loaded) -> None:
        table = self.query_one("#campaign-table", DataTable)
        was_at = self._cursor_name()
        table.clear()
        self.campaigns = {}
        self.reminders = message.reminders
        for summary in message.campaigns:
            self.campaigns[summary.name] = summary
            name_style = ALERT_STYLE if summary.overdue else "bold"
            table.add_row(
                plain(summary.name, name_style),
                plain(summary.client),
                state_text(summary.state),
                progress_text(summary),
                due_text(summary),
                plain(summary.if_no_answer),
                _reviewers(summary),
                key=summary.name,
            )
        if was_at is not None and was_at in self.campaigns:
            table.move_cursor(row=table.get_row_index(was_at))
        self.loaded = True
        self._show_status()

    def _show_status(self) -> None:
        campaigns = list(self.campaigns.values())
        if not campaigns:
            text = Text("No access review yet: `govtui review start` begins one (an admin).")
        else:
            open_count = sum(c.state == "open" for c in campaigns)
            closing = sum(c.state == "closing" for c in campaigns)
            overdue = sum(c.overdue for c in campaigns)
            text = Text(f"{len(campaigns):,} campaigns · {open_count} open")
            if closing:
                text.append(f" · {closing} closing", style="bold yellow")
            if overdue:
                text.append(f" · {overdue} overdue", style=ALERT_STYLE)
            text.append(" · Enter: items · C: close · E: evidence pack", style="dim")
            text.append("\n")
            text.append_text(reminders_text(self.reminders))
        self.query_one("#campaign-status", Static).update(text)

    def _cursor_name(self) -> str | None:
        table = self.query_one("#campaign-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return key

    @on(DataTable.RowSelected, "#campaign-table")
    def row_selected(self) -> None:
        self.action_open_items()

    def action_open_items(self) -> None:
        name = self._cursor_name()
        if name is None:
            return
        self.app.push_screen(
            ReviewItemsScreen(self.context, self.campaigns[name], close=self.start_close)
        )

    # -- evidence -----------------------------------------------------------------------------

    def action_export_evidence(self) -> None:
        """Export the selected campaign's evidence pack to a file chosen in the dialog."""
        name = self._cursor_name()
        if name is None:
            return
        self.app.push_screen(
            EvidenceExport(
                title=f"Evidence pack of access review {name}",
                default_path=default_pack_path(name),
                export=partial(self._export, name),
            )
        )

    def _export(
        self, name: str, path: Path, _first: str | None, _last: str | None, progress: Progress
    ) -> Written:
        return evidence_pack.write(self.workspace, path, campaign=name, progress=progress)

    # -- closing ----------------------------------------------------------------------------

    def action_close_campaign(self) -> None:
        name = self._cursor_name()
        if name is not None:
            self.start_close(name)

    def start_close(self, name: str) -> None:
        """Show the dry run of closing `name` for confirmation (or follow a closing one)."""
        self.load_plan(name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="reviews-close")
    def load_plan(self, name: str) -> None:
        detail = self.workspace.read(review_views.campaign, name)
        summary = detail.summary
        if summary.state != "open":
            self.post_message(self.PlanLoaded(summary, None))
            return
        try:
            plan = self.workspace.read_as(review_close.close_plan, campaign=name)
        except GovtuiError as exc:  # not the creator nor an admin
            self.post_message(self.CloseRefused(str(exc)))
            return
        self.post_message(self.PlanLoaded(summary, plan))

    @on(PlanLoaded)
    def plan_loaded(self, message: PlanLoaded) -> None:
        summary = message.summary
        if summary.state == "closed":
            notify(self, f"{summary.name} is closed already.")
            return
        if message.plan is None:
            # A close on a closing campaign only follows the directory again.
            self._follow(summary.name, f"{summary.name} is closing: following the directory")
            return
        self.app.push_screen(CloseConfirm(message.plan), partial(self._confirmed, summary.name))

    def _confirmed(self, name: str, answer: CloseAnswer | None) -> None:
        if answer is not None:
            self.run_close(name, answer.confirm_count)

    @work(thread=True, exclusive=True, exit_on_error=False, group="reviews-close")
    def run_close(self, name: str, confirm_count: int | None) -> None:
        try:
            closed = self.workspace.act(
                review_close.close, campaign=name, confirm_count=confirm_count
            )
        except GovtuiError as exc:
            self.post_message(self.CloseRefused(str(exc)))
            return
        self.post_message(self.CloseDone(closed))

    @on(CloseRefused)
    def close_refused(self, message: CloseRefused) -> None:
        notify(self, message.message, title="Refused", severity="error", timeout=12)

    @on(CloseDone)
    def close_done(self, message: CloseDone) -> None:
        closed = message.closed
        headline = (
            f"{closed.campaign}: {len(closed.revoked):,} revoked, "
            f"{len(closed.shortened):,} shortened, {len(closed.expired):,} ended as expired; "
            f"{closed.directory_ops:,} directory removals queued"
        )
        self.post_message(GrantsChanged())
        if closed.state == "closed":
            # Nothing for the directory to remove: closed in the same transaction.
            notify(self, f"{headline}; closed", title="Review closed")
            return
        self._follow(closed.campaign, headline)

    def _follow(self, name: str, headline: str) -> None:
        self.app.push_screen(
            CloseProgress(headline=headline, follow=partial(self._follow_directory, name)),
            lambda _: self._followed(),
        )

    def _follow_directory(self, name: str, progress: Progress) -> CampaignDetail:
        """Sync until the close's removals are confirmed and settle (in the dialog's worker)."""
        review_close.follow(self.workspace, name, progress)
        return self.workspace.read(review_views.campaign, name)

    def _followed(self) -> None:
        self.post_message(DirectoryChanged())
        self.refresh_data()

"""Follow the directory after an access review's close until it confirms every removal.

The database change is done when this opens (the campaign is `closing`); the dialog syncs with
a progress bar, then says whether the campaign is closed, or why it is still closing, and
offers to follow again. Closing the dialog never undoes anything: pressing C on a closing
campaign opens it again, and `govtui review close` follows from the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, ProgressBar, Static

from govtui.services.review_views import CampaignDetail
from govtui.services.sync import Progress
from govtui.tui.directory_text import ALERT_STYLE
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line
from govtui.tui.review_text import DONE_STYLE

UNCONFIRMED_ROWS = 8


def closing_text(detail: CampaignDetail) -> Text:
    """Closed (green), or still closing and why (red)."""
    summary = detail.summary
    directory = detail.directory
    words = directory.in_words() if directory is not None else "no directory removals"
    if summary.state == "closed":
        return Text(f"{line(summary.name)} is closed: {line(words)}.", style=DONE_STYLE)
    text = Text(
        f"{line(summary.name)} is still {line(summary.state)}: {line(words)}.", style=ALERT_STYLE
    )
    for why in detail.unconfirmed[:UNCONFIRMED_ROWS]:
        text.append(f"\n  {line(why)}", style="red")
    if len(detail.unconfirmed) > UNCONFIRMED_ROWS:
        text.append(f"\n  … and {len(detail.unconfirmed) - UNCONFIRMED_ROWS:,} more", style="dim")
    return text


class CloseProgress(GovtuiModal[None]):
    """Runs `follow(progress)` in a worker (it syncs and settles the campaign) and shows what
    it returned."""

    @dataclass
    class Progressed(Message):
        handled: int
        total: int

        def can_replace(self, message: Message) -> bool:
            # A burst of progress collapses into one redraw of the newest.
            return isinstance(message, CloseProgress.Progressed)

    @dataclass
    class Finished(Message):
        detail: CampaignDetail

    def __init__(self, *, headline: str, follow: Callable[[Progress], CampaignDetail]) -> None:
        super().__init__()
        self.headline = headline
        self.follow_fn = follow
        self.detail: CampaignDetail | None = None

    def cancel_result(self) -> None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="close-progress-dialog", classes="dialog"):
            yield Static(Text(line(self.headline), style="bold"), classes="dialog-title")
            yield Static("Following the directory…", id="close-progress-step")
            yield ProgressBar(id="close-progress-bar", show_eta=False)
            yield Static("", id="close-progress-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Follow again", id="close-progress-retry", disabled=True)
                yield Button("Close", variant="primary", id="close-progress-close")

    def on_mount(self) -> None:
        self.follow()

    @work(thread=True, exclusive=True, exit_on_error=False, group="close-progress")
    def follow(self) -> None:
        # Off the UI thread: syncing talks to the directory.
        self.post_message(self.Finished(self.follow_fn(self._progress_from_thread)))

    def _progress_from_thread(self, handled: int, total: int) -> None:
        self.post_message(self.Progressed(handled, total))

    @on(Progressed)
    def progressed(self, message: Progressed) -> None:
        self.query_one("#close-progress-bar", ProgressBar).update(
            total=message.total, progress=message.handled
        )
        self.query_one("#close-progress-step", Static).update(
            Text(f"Syncing the directory: {message.handled:,}/{message.total:,} operations")
        )

    @on(Finished)
    def finished(self, message: Finished) -> None:
        self.detail = message.detail
        bar = self.query_one("#close-progress-bar", ProgressBar)
        if bar.total is None:
            bar.update(total=1, progress=1)
        self.query_one("#close-progress-step", Static).update("Directory sync finished.")
        self.query_one("#close-progress-status", Static).update(closing_text(message.detail))
        self.query_one("#close-progress-retry", Button).disabled = (
            message.detail.summary.state == "closed"
        )

    @on(Button.Pressed, "#close-progress-retry")
    def retry(self) -> None:
        self.query_one("#close-progress-retry", Button).disabled = True
        self.query_one("#close-progress-status", Static).update("")
        self.follow()

    @on(Button.Pressed, "#close-progress-close")
    def close_pressed(self) -> None:
        self.action_cancel()

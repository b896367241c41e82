"""Follow the directory after a pause or a resume until it confirms every change.

The database change is done when this opens; what is left is the directory. The dialog syncs
with a progress bar, then says in words whether the directory has converged, and offers to
try again while it has not. Closing it never undoes anything: `client status` (and this
dialog, opened again from the browser) follows up."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, ProgressBar, Static

from govtui.services import convergence
from govtui.services.pause_views import ClientStatus
from govtui.tui.context import TuiContext
from govtui.tui.directory_text import ALERT_STYLE
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line

DONE_STYLE = "bold green"


def status_text(state: ClientStatus) -> Text:
    """The client's state and the directory's convergence, green when complete, red if not."""
    complete = convergence.converged(state)
    text = Text(line(state.summary), style=DONE_STYLE if complete else ALERT_STYLE)
    for error in state.errors:
        text.append(f"\n  {line(error)}", style="red")
    return text


class PauseProgress(GovtuiModal[None]):
    """Syncs the directory after a pause or resume of `client` and shows how far it got."""

    @dataclass
    class Progress(Message):
        handled: int
        total: int

        def can_replace(self, message: Message) -> bool:
            # A burst of progress collapses into one redraw of the newest.
            return isinstance(message, PauseProgress.Progress)

    @dataclass
    class Finished(Message):
        state: ClientStatus

    def __init__(self, context: TuiContext, *, client: str, headline: str) -> None:
        super().__init__()
        self.context = context
        self.client = client
        self.headline = headline

    def cancel_result(self) -> None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="pause-progress-dialog", classes="dialog"):
            yield Static(Text(self.headline, style="bold"), classes="dialog-title")
            yield Static("Syncing the directory…", id="pause-progress-step")
            yield ProgressBar(id="pause-progress-bar", show_eta=False)
            yield Static("", id="pause-progress-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Sync again", id="pause-progress-retry", disabled=True)
                yield Button("Close", variant="primary", id="pause-progress-close")

    def on_mount(self) -> None:
        self.follow()

    @work(thread=True, exclusive=True, exit_on_error=False, group="pause-progress")
    def follow(self) -> None:
        engine = self.context.workspace.engine
        state = convergence.follow_directory(engine, self.client, self._progress_from_thread)
        self.post_message(self.Finished(state))

    def _progress_from_thread(self, handled: int, total: int) -> None:
        self.post_message(self.Progress(handled, total))

    @on(Progress)
    def progressed(self, message: Progress) -> None:
        bar = self.query_one("#pause-progress-bar", ProgressBar)
        bar.update(total=message.total, progress=message.handled)
        self.query_one("#pause-progress-step", Static).update(
            Text(f"Syncing the directory: {message.handled:,}/{message.total:,} operations")
        )

    @on(Finished)
    def finished(self, message: Finished) -> None:
        bar = self.query_one("#pause-progress-bar", ProgressBar)
        if bar.total is None:
            bar.update(total=1, progress=1)
        self.query_one("#pause-progress-step", Static).update("Directory sync finished.")
        self.query_one("#pause-progress-status", Static).update(status_text(message.state))
        self.query_one("#pause-progress-retry", Button).disabled = False

    @on(Button.Pressed, "#pause-progress-retry")
    def retry(self) -> None:
        self.query_one("#pause-progress-retry", Button).disabled = True
        self.query_one("#pause-progress-status", Static).update("")
        self.follow()

    @on(Button.Pressed, "#pause-progress-close")
    def close_pressed(self) -> None:
        self.action_cancel()

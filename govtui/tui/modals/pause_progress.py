"""Follow a pause (or a resume) until the directory confirms every change.

Given the pause itself (`change`), the dialog opens at once and says what is running
("Pausing acme-ai… 424,442 grants, 12 s") until the transaction commits; then, or when the
database change is done already as it opens, it syncs with a progress bar, says in words
whether the directory has converged, and offers to try again while it has not. Closing it
never undoes anything: `client status` (and this dialog, opened again from the browser)
follows up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, ProgressBar, Static
from textual.worker import Worker, WorkerState

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

    @dataclass
    class Committed(Message):
        """The change's transaction committed; `result` is what it returned."""

        result: Any

    def __init__(
        self,
        context: TuiContext,
        *,
        client: str,
        headline: str,
        change: Callable[[], Any] | None = None,
        committed: Callable[[Any], str] | None = None,
    ) -> None:
        """`change`: the database change to run first (in this dialog's worker), while the
        headline says it is running and for how long; `committed(result)` is called on the
        UI thread when it commits and returns the headline to show from then on. Without
        `change` the database change is done and the directory is followed at once."""
        super().__init__()
        self.context = context
        self.client = client
        self.headline = headline
        self.change = change
        self.committed = committed
        self.started = time.monotonic()
        self.running = change is not None  # the change's transaction has not committed yet

    def cancel_result(self) -> None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="pause-progress-dialog", classes="dialog"):
            yield Static(self._headline(), classes="dialog-title", id="pause-progress-title")
            step = "Writing the change…" if self.running else "Syncing the directory…"
            yield Static(step, id="pause-progress-step")
            yield ProgressBar(id="pause-progress-bar", show_eta=False)
            with VerticalScroll(id="pause-progress-status-scroll"):
                yield Static("", id="pause-progress-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Sync again", id="pause-progress-retry", disabled=True)
                yield Button("Close", variant="primary", id="pause-progress-close")

    def _headline(self) -> Text:
        if not self.running:
            return Text(self.headline, style="bold")
        return Text(f"{self.headline}, {time.monotonic() - self.started:.0f} s", style="bold")

    def on_mount(self) -> None:
        # Only the status (its list of errors) scrolls: the headline stays in view.
        self.query_one("#pause-progress-dialog").styles.overflow_y = "hidden"
        scroll = self.query_one("#pause-progress-status-scroll", VerticalScroll)
        scroll.styles.height = "auto"
        scroll.styles.max_height = "30vh"
        if self.change is None:
            self.follow()
            return
        self.query_one("#pause-progress-close", Button).disabled = True
        self.set_interval(1.0, self._tick)
        self.run_change()

    def _tick(self) -> None:
        if self.running:
            self.query_one("#pause-progress-title", Static).update(self._headline())

    @work(thread=True, exclusive=True, exit_on_error=False, group="pause-change")
    def run_change(self) -> None:
        assert self.change is not None
        self.post_message(self.Committed(self.change()))

    @on(Committed)
    def change_committed(self, message: Committed) -> None:
        self.running = False
        if self.committed is not None:
            self.headline = self.committed(message.result)
        self.query_one("#pause-progress-title", Static).update(self._headline())
        self.query_one("#pause-progress-step", Static).update("Syncing the directory…")
        self.query_one("#pause-progress-close", Button).disabled = False
        self.follow()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)  # the app shows the error itself
        if event.worker.group == "pause-change" and event.state is WorkerState.ERROR:
            self.running = False
            self.query_one("#pause-progress-title", Static).update(
                Text(f"{self.headline}: failed", style=ALERT_STYLE)
            )
            self.query_one("#pause-progress-step", Static).update(
                "Nothing was changed: the transaction rolled back."
            )
            self.query_one("#pause-progress-bar", ProgressBar).display = False
            self.query_one("#pause-progress-close", Button).disabled = False

    def action_cancel(self) -> None:
        if self.running:  # the change runs to its end: a pause is never half-done
            self.notify("It is one transaction: this closes once it has committed.")
            return
        super().action_cancel()

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

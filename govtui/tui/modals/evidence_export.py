"""Export an evidence pack: choose the file, watch the progress bar, read the pack's SHA-256.

The screen that opens it (reviews for a campaign, the browser for a client over a period)
hands it the export to run; the dialog runs it in its worker, posts progress as it streams,
and ends with the file written, its SHA-256 and the key that signed, or the one-line refusal
(no key in this keyring, a bad date, a path that cannot be written)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Static

from govtui.errors import GovtuiError
from govtui.services.evidence_pack import Progress, Written
from govtui.tui.directory_text import ALERT_STYLE
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line
from govtui.tui.review_text import DONE_STYLE

# What the screen hands over: the export of its campaign or client, to a path, with progress.
Export = Callable[[Path, str | None, str | None, Progress], Written]


def default_pack_path(name: str) -> Path:
    """NAME-evidence.zip in the current folder, the name reduced to safe file characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "pack"
    return Path.cwd() / f"{safe}-evidence.zip"


class EvidenceExport(GovtuiModal[Written | None]):
    """The file to write (and, for a client, the period), then the export with progress."""

    @dataclass
    class Progressed(Message):
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, EvidenceExport.Progressed)

    @dataclass
    class Finished(Message):
        written: Written

    @dataclass
    class Refused(Message):
        message: str

    def __init__(
        self, *, title: str, default_path: Path, export: Export, period: bool = False
    ) -> None:
        super().__init__()
        self.title_text = title
        self.default_path = default_path
        self.export_fn = export
        self.period = period
        self.written: Written | None = None

    def cancel_result(self) -> Written | None:
        return self.written

    def compose(self) -> ComposeResult:
        with Vertical(id="evidence-dialog", classes="dialog"):
            yield Static(Text(line(self.title_text), style="bold"), classes="dialog-title")
            yield Label("File to write (a .zip, private to you):")
            yield Input(str(self.default_path), id="evidence-path")
            if self.period:
                yield Label("Period, UTC days, both included (YYYY-MM-DD):")
                with Horizontal(id="evidence-period"):
                    yield Input(placeholder="from", id="evidence-from")
                    yield Input(placeholder="to", id="evidence-to")
            yield ProgressBar(id="evidence-bar", show_eta=False)
            yield Static("", id="evidence-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", variant="primary", id="evidence-export")
                yield Button("Close", id="evidence-close")

    def _value(self, widget_id: str) -> str | None:
        found = self.query(f"#{widget_id}")
        if not found:
            return None
        value = self.query_one(f"#{widget_id}", Input).value.strip()
        return value or None

    @on(Input.Submitted)
    @on(Button.Pressed, "#evidence-export")
    def start(self) -> None:
        path = self._value("evidence-path")
        if path is None:
            self._status(Text("Name the file to write.", style=ALERT_STYLE))
            return
        self.query_one("#evidence-export", Button).disabled = True
        self._status(Text("Exporting…"))
        self.run_export(
            Path(path).expanduser(), self._value("evidence-from"), self._value("evidence-to")
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="evidence-export")
    def run_export(self, path: Path, first: str | None, last: str | None) -> None:
        # Off the UI thread: it reads every row of the campaign or the period.
        try:
            written = self.export_fn(path, first, last, self._progress_from_thread)
        except GovtuiError as exc:
            self.post_message(self.Refused(str(exc)))
            return
        self.post_message(self.Finished(written))

    def _progress_from_thread(self, done: int, total: int) -> None:
        self.post_message(self.Progressed(done, total))

    @on(Progressed)
    def progressed(self, message: Progressed) -> None:
        self.query_one("#evidence-bar", ProgressBar).update(
            total=max(message.total, 1), progress=message.done
        )

    @on(Finished)
    def finished(self, message: Finished) -> None:
        self.written = written = message.written
        self.query_one("#evidence-bar", ProgressBar).update(total=1, progress=1)
        text = Text(f"Wrote {line(str(written.path))}\n", style=DONE_STYLE)
        text.append(f"SHA-256 {written.sha256}\n", style="bold")
        text.append(f"signed by {written.pack.fingerprint}", style="dim")
        self._status(text)
        self.query_one("#evidence-export", Button).disabled = False

    @on(Refused)
    def refused(self, message: Refused) -> None:
        self._status(Text(line(message.message), style=ALERT_STYLE))
        self.query_one("#evidence-export", Button).disabled = False

    def _status(self, text: Text) -> None:
        self.query_one("#evidence-status", Static).update(text)

    @on(Button.Pressed, "#evidence-close")
    def close_pressed(self) -> None:
        self.action_cancel()

"""Confirm a reconcile fix: exactly which corrections go to the directory.

Fixing needs no TOTP code: it only makes the directory match the grants approved already."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from govtui.tui.context import DriftCheck
from govtui.tui.directory_text import fix_plan
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line


class ConfirmFix(GovtuiModal[bool]):
    """Returns True when the fix is confirmed, False when cancelled."""

    def __init__(self, check: DriftCheck) -> None:
        super().__init__()
        self.check = check

    def cancel_result(self) -> bool:
        return False

    def compose(self) -> ComposeResult:
        count = len(self.check.fixable)
        title = f"Fix {count} drift item{'s' if count != 1 else ''} on {line(self.check.target)}?"
        with Vertical(id="fix-dialog", classes="dialog"):
            yield Static(Text(title, style="bold"), classes="dialog-title")
            yield Static(fix_plan(self.check), id="fix-details")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Fix", variant="error", id="fix-confirm")
                yield Button("Cancel", id="fix-cancel")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#fix-confirm", Button))

    @on(Button.Pressed, "#fix-confirm")
    def confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#fix-cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

"""One grant and its whole history (request, approvals, extensions, end)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from govtui.services.grant_views import GrantDetail
from govtui.tui.grant_text import facts, when
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import plain


def _detail_value(value: Any) -> str:
    return when(value) if isinstance(value, datetime) else str(value)


class GrantDetailModal(GovtuiModal[None]):
    def __init__(self, detail: GrantDetail, now: datetime) -> None:
        super().__init__()
        self.detail = detail
        self.now = now

    def cancel_result(self) -> None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-dialog", classes="dialog"):
            grant = self.detail.grant
            yield Static(Text(f"Grant #{grant.id}", style="bold"), classes="dialog-title")
            yield Static(facts(grant, self.now), id="detail-facts")
            yield DataTable(id="detail-history", cursor_type="row", zebra_stripes=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="detail-close")

    def on_mount(self) -> None:
        table = self.query_one("#detail-history", DataTable)
        table.add_columns("When (UTC)", "Event", "By", "Details")
        for entry in self.detail.history:
            details = ", ".join(f"{k}: {_detail_value(v)}" for k, v in entry.details.items())
            # Cells as Text: a str cell is parsed as markup, and reasons are anyone's words.
            table.add_row(
                Text(when(entry.at)), plain(entry.event), plain(entry.by or "—"), plain(details)
            )
        self.set_focus(table)

    @on(Button.Pressed, "#detail-close")
    @on(DataTable.RowSelected, "#detail-history")
    def close(self) -> None:
        self.dismiss(None)

"""Windowed tables: when to fetch the next window of rows from the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable


def near_end(table: DataTable[object], lookahead: int) -> bool:
    """Whether the cursor is within `lookahead` rows of the end, or the view is scrolled to the
    bottom (a mouse wheel scrolls without moving the cursor)."""
    if table.row_count == 0:
        return False
    if table.cursor_row >= table.row_count - lookahead:
        return True
    height = table.scrollable_content_region.height
    return table.max_scroll_y > 0 and table.scroll_y >= table.max_scroll_y - height


def capped(table: DataTable[object], *, exhausted: bool, max_rows: int) -> bool:
    """Whether the table holds as many rows as it may while the database has more."""
    return not exhausted and table.row_count >= max_rows


class PagedTable(DataTable[object]):
    """A table of windows from the database: Home/ctrl+Home/g and End/ctrl+End/G mean the
    first and the real last row of the whole list (the screen fetches them: it posts Jump),
    j/k move like the arrows. (DataTable's own End scrolls sideways, its ctrl+End only to the
    end of the rows loaded.)"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home,ctrl+home,g", "jump('first')", "First row", show=False),
        Binding("end,ctrl+end,G", "jump('last')", "Last row", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    @dataclass
    class Jump(Message):
        """Go to the first or the last row of the whole list."""

        table: PagedTable
        where: Literal["first", "last"]

        @property
        def control(self) -> PagedTable:
            return self.table

    def action_jump(self, where: Literal["first", "last"]) -> None:
        self.post_message(self.Jump(self, where))

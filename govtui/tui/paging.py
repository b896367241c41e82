"""Windowed tables: when to fetch the next window of rows from the database."""

from __future__ import annotations

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

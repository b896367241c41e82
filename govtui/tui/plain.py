"""Data on screen as plain text: never parsed as markup, never a raw control character.

Names, reasons, emails and errors come from CSV files, directory servers and older databases.
Textual parses a `str` given to a Static, a DataTable cell, a Tree label, an option or a
notification as markup, so `Bob [/b] Smith` crashes the screen and `[link=…]` makes a link;
and an ESC in a value would reach the terminal. Every data value goes through this module."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App
from textual.markup import escape
from textual.notifications import SeverityLevel
from textual.widget import Widget

from govtui.text import one_line


def line(value: object) -> str:
    """A data value as one printable line (control and bidi characters shown escaped), for
    a `str` that goes into a Text or into a message shown with markup off."""
    return one_line(value)


def plain(value: object, style: str = "", *, justify: str | None = None) -> Text:
    """A data value as a Text: escaped by `line`, its brackets shown as typed."""
    if justify is None:
        return Text(one_line(value), style=style)
    return Text(one_line(value), style=style, justify=justify)  # type: ignore[arg-type]


def for_markup(value: object) -> str:
    """A data value inside text that Textual will parse as markup anyway (the command
    palette's titles): escaped by `line`, then its brackets escaped for Textual's markup."""
    return escape(one_line(value))


def notify(
    node: Widget | App[Any],
    message: str,
    *,
    title: str = "",
    severity: SeverityLevel = "information",
    timeout: float | None = None,
) -> None:
    """A notification whose message holds data: one escaped line, markup off."""
    node.notify(one_line(message), title=title, severity=severity, timeout=timeout, markup=False)

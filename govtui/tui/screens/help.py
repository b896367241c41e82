"""Help: govtui's keys (the app's, the screen's below and its focused widget's), read from the
bindings themselves; the keys Textual's own widgets bind (copy, page left, focus next…) are
not govtui's and are left out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from govtui.tui.screens.base import MOVE_BINDINGS, GovtuiScreen


def _textual_keys(node: DOMNode) -> set[tuple[str, str]]:
    """The (key, action) pairs the node's Textual base classes bind."""
    pairs: set[tuple[str, str]] = set()
    for cls in type(node).__mro__:
        if cls.__module__.startswith("textual") and "BINDINGS" in cls.__dict__:
            bindings = cls.__dict__["BINDINGS"]
            pairs |= {(b.key, b.action) for b in Binding.make_bindings(bindings)}
    return pairs


# The one key of Textual's App that is govtui's too.
KEPT = {("ctrl+p", "command_palette")}


def binding_rows(app: App[object], screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(where, key, what it does) for govtui's bindings of the screen, the widget that has
    focus on it, and the app, in that order; Enter, where the screen says what it does."""
    title = screen.sub_title or type(screen).__name__
    # The screen's own keys first: at 80x24 they are the rows in view.
    sections: list[tuple[str, DOMNode]] = [(title, screen)]
    focused = screen.focused
    if focused is not None:
        chain = [node for node in focused.ancestors_with_self if node not in (screen, app)]
        sections += [(_widget_name(node), node) for node in reversed(chain)]
    sections.append(("Everywhere", app))
    rows: list[tuple[str, str, str]] = []
    # `_bindings` is each node's full map; the public `active_bindings` leaves out the keys a
    # focused Input swallows, which would make the list depend on where the focus is.
    for where, node in sections:
        textual = _textual_keys(node) - KEPT
        for bindings in node._bindings.key_to_bindings.values():
            rows += [
                (where, app.get_key_display(b), _describe(b))
                for b in bindings
                if (b.key, b.action) not in textual
            ]
        if node is screen and isinstance(screen, GovtuiScreen) and screen.ENTER_HELP:
            rows.append((where, "enter", screen.ENTER_HELP))
    return rows


def _widget_name(node: DOMNode) -> str:
    return f"{type(node).__name__} #{node.id}" if node.id else type(node).__name__


def _describe(binding: Binding) -> str:
    return binding.tooltip or binding.description or binding.action.replace("_", " ")


class HelpScreen(ModalScreen[None]):
    """The keys of the app and of the screen it was opened on, and what each screen is for."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close"),
        *MOVE_BINDINGS,
    ]

    def __init__(self, for_screen: Screen[object], screens: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        self.for_screen = for_screen
        self.screens = list(screens)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(Text("govtui — keys and screens", style="bold"), id="help-title")
            about = Text()
            for title, description in self.screens:
                about.append(f"{title}: ", style="bold")
                about.append(f"{description}\n")
            about.append("ctrl+p opens the command palette; Escape closes this help.", style="dim")
            # The keys first: at 80x24 the screens' descriptions scroll below them.
            yield DataTable(id="help-keys", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="help-about"):
                yield Static(about, id="help-screens")

    def action_move(self, where: str) -> None:
        """j/k/g/G in the list of keys, as on every screen."""
        table = self.query_one("#help-keys", DataTable)
        if where == "down":
            table.action_cursor_down()
        elif where == "up":
            table.action_cursor_up()
        elif table.row_count:
            table.move_cursor(row=0 if where == "first" else table.row_count - 1)

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.add_columns("Where", "Key", "What it does")
        for where, key, description in binding_rows(self.app, self.for_screen):
            # Text cells: a str cell is parsed as markup (a key may be "[").
            table.add_row(Text(where), Text(key), Text(description))

"""The footer of every govtui screen: the screen's keys on one line, drawn by one widget. When
the keys do not all fit (80 columns), it shows those that do and ends with "? more keys" (the
help lists every key).

Textual's Footer is a widget per key, each styled by the stylesheet whenever the bindings
change (several times as a screen opens): at 1M grants that was half of a screen's first-rows
time. One widget rendering a Text costs a line of paint."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget

MORE_KEYS = "more keys"
MORE_KEY = "question_mark"


@dataclass(frozen=True)
class FooterKey:
    """One key as the footer shows it."""

    key: str  # the key name simulate_key takes
    display: str  # as drawn ("^p", "space")
    description: str
    enabled: bool


def key_width(key: FooterKey) -> int:
    """The cells a footer key takes: " key " and "description "."""
    return len(key.display) + 2 + (len(key.description) + 1 if key.description else 0)


def fit(keys: list[FooterKey], palette: FooterKey | None, width: int) -> list[FooterKey]:
    """The keys to draw, left to right: all, the palette's last, when they fit; else those that
    fit before "? more keys"."""
    wanted = [*keys, *([palette] if palette else [])]
    if sum(key_width(k) for k in wanted) <= width:
        return wanted
    more = FooterKey(MORE_KEY, "?", MORE_KEYS, True)
    room = width - key_width(more)
    shown = []
    for key in keys:
        if key.key == MORE_KEY:
            continue  # "? more keys" is the help's key
        if key_width(key) > room:
            break
        room -= key_width(key)
        shown.append(key)
    return [*shown, more]


class GovtuiFooter(Widget, can_focus=False):
    """A one-line footer of the screen's active keys; a click on a key presses it."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"footer--key", "footer--description"}
    DEFAULT_CSS = """
    GovtuiFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        & > .footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._spans: list[tuple[int, int, FooterKey]] = []  # (start, end, key) as last drawn

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self.refresh()

    def keys(self) -> tuple[list[FooterKey], FooterKey | None]:
        """The screen's shown bindings, one per action, and the command palette's apart."""
        app = self.app
        keys: list[FooterKey] = []
        palette: FooterKey | None = None
        actions: set[str] = set()
        for key, (_node, binding, enabled, _tooltip) in self.screen.active_bindings.items():
            if key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
                palette = FooterKey(key, app.get_key_display(binding), binding.description, enabled)
                continue
            if not binding.show or binding.action in actions:
                continue
            actions.add(binding.action)
            keys.append(
                FooterKey(binding.key, app.get_key_display(binding), binding.description, enabled)
            )
        return keys, palette

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer--key")
        text_style = self.get_component_rich_style("footer--description")
        dim = Style(dim=True)
        line = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        keys, palette = self.keys()
        width = self.size.width or self.app.size.width
        for key in fit(keys, palette, width):
            if key is palette:  # on the right, as Textual's footer docks it
                line.append(" " * max(0, width - len(line) - key_width(key)))
            start = len(line)
            extra = dim if not key.enabled else Style()
            line.append(f" {key.display} ", key_style + extra)
            if key.description:
                line.append(f"{key.description} ", text_style + extra)
            self._spans.append((start, len(line), key))
        return line

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                if key.enabled:
                    self.app.simulate_key(key.key)
                else:
                    self.app.bell()
                return

    def on_resize(self, event: events.Resize) -> None:
        self.refresh()

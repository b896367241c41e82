"""The footer of every govtui screen: Textual's, cut to the terminal's width. When the keys do
not all fit (80 columns), it shows those that do and ends with "? more keys" (the help lists
every key)."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

MORE_KEYS = "more keys"


def key_width(key: FooterKey, *, compact: bool) -> int:
    """The cells a footer key takes (its key, its description and their padding)."""
    if compact:  # no padding around the key, one space before the description, a margin
        return len(key.key_display) + (len(key.description) + 1 if key.description else 0) + 1
    return len(key.key_display) + 2 + (len(key.description) + 1 if key.description else 0)


class GovtuiFooter(Footer):
    """A footer whose last key is "? more keys" when not every key fits."""

    def __init__(self) -> None:
        super().__init__()
        self._composed_width = 0

    def _width(self) -> int:
        return self.size.width or self.app.size.width

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())  # govtui's bindings have no groups: a flat list
        width = self._width()
        self._composed_width = width
        keys = [w for w in widgets if isinstance(w, FooterKey)]
        palette = [k for k in keys if k.has_class("-command-palette")]
        plain = [k for k in keys if k not in palette]
        needed = sum(key_width(k, compact=self.compact) for k in plain)
        needed += sum(key_width(k, compact=self.compact) + 2 for k in palette)
        if len(keys) != len(widgets) or needed <= width:
            yield from widgets
            return
        more = FooterKey("question_mark", "?", MORE_KEYS, "app.help")
        room = width - key_width(more, compact=self.compact)
        for key in plain:
            if key.key == "question_mark":
                continue  # "? more keys" is the help's key
            cells = key_width(key, compact=self.compact)
            if cells > room:
                break
            room -= cells
            yield key
        yield more.data_bind(compact=Footer.compact)

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._composed_width:
            self.call_after_refresh(self.recompose)

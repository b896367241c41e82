"""Every widget class's default CSS into the app's stylesheet at start, parsed once.

Textual re-parses the whole stylesheet each time a widget class it has not seen mounts: the
first visit to the grants or approvals screen (Select, Input, OptionList...) spent over a
second re-parsing CSS at a million grants (scripts/bench_tui), for every screen in turn."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from textual.css.stylesheet import Stylesheet
from textual.dom import DOMNode
from textual.widget import Widget


def _widget_classes() -> list[type[Widget]]:
    """Every Widget subclass imported by now (Textual imports its widgets lazily, so these
    are the ones govtui's screens and dialogs use), in a stable order."""
    found: dict[str, type[Widget]] = {}
    pending: list[type[Widget]] = [Widget]
    while pending:
        cls = pending.pop()
        found.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
        pending.extend(cls.__subclasses__())
    return [found[name] for name in sorted(found)]


def preload(stylesheet: Stylesheet) -> None:
    """Add the default CSS of every widget class to `stylesheet` before its first parse (the
    same sources, locations and priorities a mount adds: a repeat is a no-op)."""
    for cls in _widget_classes():
        # _get_default_css reads only the node's class bases: a stand-in for an instance.
        node: Any = SimpleNamespace(_node_bases=DOMNode._css_bases(cls))
        for read_from, css, tie_breaker, scope in DOMNode._get_default_css(node):
            stylesheet.add_source(
                css, read_from=read_from, is_default_css=True, tie_breaker=tie_breaker, scope=scope
            )

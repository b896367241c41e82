"""The demo only: choose which of the demo's operators acts next (they all share one login,
which is what the demo is: one person trying every role). Outside the demo the operator is
fixed when govtui starts, and this dialog is never offered."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from govtui.services.operators import OperatorView
from govtui.tui.modals.base import GovtuiModal
from govtui.tui.plain import line


def describe(view: OperatorView) -> Text:
    """One operator as a row: name, roles, and the clients they approve and review."""
    text = Text(line(view.name), style="bold")
    text.append(f"  {', '.join(view.roles) or 'no role'}")
    if view.approves:
        text.append(f" · approves {', '.join(line(c) for c in view.approves)}", style="dim")
    if view.reviews:
        text.append(f" · reviews {', '.join(line(c) for c in view.reviews)}", style="dim")
    if not view.totp_enrolled:
        text.append(" · not enrolled", style="dim")
    return text


class ActAsPrompt(GovtuiModal[str | None]):
    """Returns the chosen operator's name, or None when cancelled."""

    def __init__(self, roster: list[OperatorView], current: str) -> None:
        super().__init__()
        self.roster = [view for view in roster if not view.disabled]
        self.current = current

    def cancel_result(self) -> str | None:
        return None

    def compose(self) -> ComposeResult:
        with Vertical(id="act-as-dialog", classes="dialog"):
            yield Static(
                Text(f"Act as… (demo only; now {line(self.current)})", style="bold"),
                classes="dialog-title",
            )
            yield OptionList(
                *(Option(describe(view), id=view.name) for view in self.roster),
                id="act-as-list",
            )
            yield Static(Text("Enter acts as the one chosen; Escape keeps the current one."))

    def on_mount(self) -> None:
        options = self.query_one("#act-as-list", OptionList)
        names = [view.name for view in self.roster]
        if self.current in names:
            options.highlighted = names.index(self.current)
        self.set_focus(options)

    @on(OptionList.OptionSelected, "#act-as-list")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

"""How operators read on the dashboard: a shared login and a lock-out in red, since either
weakens four eyes (one person acting as two) or stalls it (nobody left to approve)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from govtui.services.operator_views import OperatorFlags
from govtui.tui.directory_text import ALERT_STYLE, clock_time
from govtui.tui.plain import line


def operators_text(roster: list[OperatorFlags], now: datetime) -> Text:
    """One line: how many operators, then who shares a login and who is locked out, in red.
    Cut at the screen's edge rather than wrapped (a Static of one line)."""
    text = Text("Operators: ", style="bold", no_wrap=True, overflow="ellipsis")
    text.append(f"{len(roster):,}")
    shared = [op for op in roster if op.shared_login]
    if shared:
        text.append(" · shared login, no separation: ", style=ALERT_STYLE)
        names = ", ".join(f"{line(op.name)} (login {line(op.login or '?')})" for op in shared)
        text.append(names, style=ALERT_STYLE)
    locked = [op for op in roster if op.locked_until is not None and op.locked_until > now]
    if locked:
        text.append(" · locked out: ", style=ALERT_STYLE)
        text.append(
            ", ".join(
                f"{line(op.name)} until {clock_time(op.locked_until)}"
                for op in locked
                if op.locked_until is not None
            ),
            style=ALERT_STYLE,
        )
    if not shared and not locked:
        text.append(" · none shares a login or is locked out", style="dim")
    return text

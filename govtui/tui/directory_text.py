"""How the directories read on screen: a target's health, sync outcomes, drift in words, and
what a fix would change."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from govtui.services.reconcile import Drift
from govtui.services.sync import SyncReport
from govtui.text import one_line
from govtui.tui.context import DriftCheck, TargetHealth

ALERT_STYLE = "bold red"
OK_STYLE = "green"

# kind -> (what it is, what the fix does)
DRIFT_KINDS: dict[str, tuple[str, str]] = {
    "unexpected_member": ("member without a grant", "remove from the group"),
    "missing_member": ("grant the group lacks", "add to the group"),
    "enabled_offboarded": ("offboarded, account enabled", "disable the account"),
    "unknown_account": ("account govtui does not know", "reported only, never touched"),
    "nested_group": ("nested group", "reported only: remove it from the group by hand"),
    "nested_member": ("member through a nested group", "reported only: see the nested group"),
    "primary_group_member": (
        "primary-group member (AD)",
        "reported only: change the user's primary group",
    ),
}


def clock_time(at: datetime) -> str:
    """A time of this session, in UTC."""
    return at.strftime("%H:%M:%S UTC")


def health_text(health: TargetHealth | None, checking: bool) -> Text:
    """A target's connection cell: ok, the error in red, or not known yet."""
    if health is None:
        return Text("checking…" if checking else "not checked", style="dim")
    if health.error is None:
        return Text(f"ok ({clock_time(health.at)})", style=OK_STYLE)
    return Text(one_line(health.error), style=ALERT_STYLE)


def drift_count_text(check: DriftCheck | None) -> Text:
    """A target's drift cell: how many items the last compare found, red when any."""
    if check is None:
        return Text("not checked", style="dim")
    if not check.items:
        return Text("none", style=OK_STYLE)
    fixable = len(check.fixable)
    return Text(f"{len(check.items)} ({fixable} fixable)", style=ALERT_STYLE)


def report_text(report: SyncReport) -> str:
    return f"{report.done} done, {report.retrying} to retry, {report.failed} failed"


def first_error(errors: list[str]) -> str:
    """Several errors as one line: the first (escaped: a server's words), and how many more."""
    if not errors:
        return ""
    more = len(errors) - 1
    return one_line(errors[0]) + (f" (and {more} more)" if more else "")


def drift_kind(drift: Drift) -> Text:
    what, _fix = DRIFT_KINDS.get(drift.kind, (one_line(drift.kind), ""))
    return Text(what, style="yellow" if drift.fixable else "dim")


def drift_fix(drift: Drift) -> Text:
    _what, fix = DRIFT_KINDS.get(drift.kind, ("", "reported only"))
    return Text(fix, style="" if drift.fixable else "dim")


def fix_plan(check: DriftCheck, shown: int = 8) -> Text:
    """What confirming a fix changes in the directory, item by item (the first `shown`)."""
    fixable = check.fixable
    text = Text(
        f"Queued through the outbox and synced now, on {one_line(check.target)}:\n\n", style="bold"
    )
    for drift in fixable[:shown]:
        _what, fix = DRIFT_KINDS[drift.kind]
        where = f" {one_line(drift.group_dn)}" if drift.group_dn else ""
        text.append(f"  {one_line(drift.directory_uid)}: {fix}{where}\n")
    if len(fixable) > shown:
        text.append(f"  … and {len(fixable) - shown} more\n")
    untouched = len(check.items) - len(fixable)
    if untouched:
        text.append(
            f"\n{untouched} account{'s' if untouched != 1 else ''} govtui does not know "
            "stay as they are (reported only).",
            style="yellow",
        )
    text.append(
        f"\n\nFound at {clock_time(check.at)}. Anything that is no longer drift when the fix "
        "runs is left alone; each change is an audit event.",
        style="dim",
    )
    return text

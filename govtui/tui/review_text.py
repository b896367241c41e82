"""Access reviews as text for the screens: a campaign's progress bar, its state, and an item's
decision helpers as table cells. Every value from the database goes through plain.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from rich.text import Text

from govtui.services.review_close import ClosePlan, DueLine
from govtui.services.review_views import CampaignSummary, ItemRow
from govtui.tui.directory_text import ALERT_STYLE
from govtui.tui.plain import line, plain

BAR_WIDTH = 12
DONE_STYLE = "bold green"
STATE_STYLES = {"open": "", "closing": "bold yellow", "closed": "dim"}
DECISION_STYLES = {"keep": "green", "revoke": "bold red", "shorten": "yellow"}
SUMMARY_ROWS = 8  # items named in a decision's confirmation; the count always covers them all
GROUP_ROWS = 10  # directory groups named in a close's confirmation


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """A progress bar of block characters: `done` of `total`, full when total is 0."""
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "█" * filled + "░" * (width - filled)


def progress_text(summary: CampaignSummary) -> Text:
    """'████░░░░ 12/40' with ended items counted as needing no decision."""
    settled = summary.decided + summary.ended
    style = ALERT_STYLE if summary.overdue else (DONE_STYLE if settled >= summary.total else "")
    text = Text(bar(settled, summary.total), style=style or "cyan")
    text.append(f" {summary.decided:,}/{summary.total:,}")
    if summary.ended:
        text.append(f" (+{summary.ended:,} ended)", style="dim")
    return text


def state_text(state: str) -> Text:
    return plain(state, STATE_STYLES.get(state, ""))


def due_text(summary: CampaignSummary) -> Text:
    due = summary.due_at.strftime("%Y-%m-%d %H:%M")
    if summary.overdue:
        return Text(f"{due} OVERDUE", style=ALERT_STYLE)
    return Text(due)


def day_count(days: int | None, *, warn_below: int | None = None) -> Text:
    if days is None:
        return Text("—", style="dim", justify="right")
    style = "bold yellow" if warn_below is not None and days < warn_below else ""
    return Text(f"{days:,}", style=style, justify="right")


def flag(value: bool, word: str) -> Text:
    return Text(word, style=ALERT_STYLE) if value else Text("", style="dim")


def day_text(value: date | datetime | None) -> Text:
    if value is None:
        return Text("—", style="dim")
    return Text(value.strftime("%Y-%m-%d"))


def decision_text(row: ItemRow) -> Text:
    if row.decision is None:
        if row.ended_before_decision:
            return Text("no decision needed", style="dim")
        return Text("undecided", style="dim")
    word = row.decision
    if row.decision == "shorten" and row.shorten_days is not None:
        word = f"shorten {row.shorten_days}d"
    text = plain(word, DECISION_STYLES.get(row.decision, ""))
    if row.decided_by is not None and row.decided_by != row.reviewer:
        text.append(f" ({line(row.decided_by)})", style="dim")
    return text


def item_cells(row: ItemRow) -> tuple[Text, ...]:
    """The item's cells after the mark, in the order of ITEM_COLUMNS."""
    return (
        Text(str(row.item_id), justify="right"),
        plain(row.contractor),
        plain(row.project),
        plain(row.scope),
        plain(row.access),
        plain(row.reviewer),
        decision_text(row),
        day_count(row.days_since_granted),
        day_count(row.days_left, warn_below=7),
        day_text(row.contract_end),
        plain(row.requester),
        plain(", ".join(row.approvers), "dim"),
        flag(row.client_paused, "paused"),
        flag(row.contractor_offboarded, "offboarded"),
        Text(f"{row.peers:,}", justify="right"),
        plain(row.previous_decision or "—", "dim"),
        flag(row.ended_before_decision, line(row.grant_state)),
    )


ITEM_COLUMNS = (
    ("Item", "item"),
    ("Contractor", "contractor"),
    ("Project", "project"),
    ("Scope", "scope"),
    ("Access", "access"),
    ("Reviewer", "reviewer"),
    ("Decision", "decision"),
    ("Days held", "since"),
    ("Days left", "left"),
    ("Contract end", "contract"),
    ("Requester", "requester"),
    ("Approvers", "approvers"),
    ("Paused", "paused"),
    ("Offboarded", "offboarded"),
    ("Peers", "peers"),
    ("Previous", "previous"),
    ("Ended", "ended"),
)


def batch_text(rows: Sequence[ItemRow], count: int) -> Text:
    """The first items of a batch, one a line, and how many more: for a decision's prompt."""
    text = Text()
    for index, row in enumerate(rows[:SUMMARY_ROWS]):
        if index:
            text.append("\n")
        text.append(f"#{row.item_id} ", style="bold")
        text.append(f"{line(row.contractor)} → {line(row.project)}/{line(row.scope)}")
        text.append(f" at {line(row.access)}")
        if row.days_left is not None:
            text.append(f", {row.days_left}d left", style="dim")
    shown = min(len(rows), SUMMARY_ROWS)
    if count > shown:
        text.append(f"\n… and {count - shown:,} more", style="dim")
    return text


def plan_text(plan: ClosePlan) -> Text:
    """What close would do, for its confirmation: the counts, then the groups it empties."""
    text = Text.assemble(
        "Ends ",
        (f"{plan.ends:,} grants", ALERT_STYLE),
        f" of {plan.population:,} (revoked, no-answer revocations and shortens into the past"
        f" included), shortens ",
        (f"{len(plan.shorten):,}", "bold yellow"),
        f", keeps {plan.kept:,}; {plan.no_answer:,} had no answer; "
        f"{plan.ended_before_decision:,} ended before any decision.\n"
        "No TOTP code is needed: close only removes access.",
    )
    if plan.groups:
        members = sum(group.members for group in plan.groups)
        text.append(
            f"\n\nDirectory: {members:,} member removals from {len(plan.groups):,} groups",
            style="bold",
        )
        for group in plan.groups[:GROUP_ROWS]:
            text.append(f"\n  {line(group.target)}: {line(group.group_dn)}")
            text.append(f"  {group.members:,} members", style="red")
        if len(plan.groups) > GROUP_ROWS:
            text.append(f"\n  … and {len(plan.groups) - GROUP_ROWS:,} more groups", style="dim")
    else:
        text.append("\n\nDirectory: no member removals to queue.", style="dim")
    return text


REMINDERS_NAMED = 4  # reviewers named on the reminders line; the counts cover them all
URGENCY_WORDS = (
    ("overdue", "overdue", ALERT_STYLE),
    ("1d", "due within 1 day", "bold yellow"),
    ("7d", "due within 7 days", ""),
)


def reminders_text(lines: Sequence[DueLine]) -> Text:
    """'Reminders: 1 overdue (rita 3 in q1) · 2 due within 1 day (…) · …': who has undecided
    items of open campaigns due within 7 days, 1 day, or past due (review_close.due)."""
    if not lines:
        return Text("Reminders: no undecided items due within 7 days", style="dim")
    text = Text("Reminders:", style="bold")
    for urgency, words, style in URGENCY_WORDS:
        group = [d for d in lines if d.urgency == urgency]
        if not group:
            continue
        text.append(f" {len(group)} {words}", style=style or None)
        text.append(" (")
        for index, d in enumerate(group[:REMINDERS_NAMED]):
            if index:
                text.append(", ")
            text.append(line(d.reviewer))
            text.append(f" {d.undecided:,} in ")
            text.append(line(d.campaign))
        if len(group) > REMINDERS_NAMED:
            text.append(f", … {len(group) - REMINDERS_NAMED} more")
        text.append(")")
    return text

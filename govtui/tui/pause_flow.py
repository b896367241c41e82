"""Pausing and resuming a client from anywhere in the TUI: the blast radius and a reason before
a pause, an approver's TOTP code before a resume, then the directory followed until it
confirms. The browser's keys and the command palette both start it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import App

from govtui.services import operator_views, pause, pause_views
from govtui.services.pause import PauseResult, ResumeResult
from govtui.services.pause_views import BlastRadius
from govtui.tui.context import TuiContext
from govtui.tui.modals.pause_progress import PauseProgress
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.plain import line, notify

RADIUS_ROWS = 12  # scopes listed in the confirmation; the totals always cover them all


def radius_text(radius: BlastRadius) -> Text:
    """What a pause would do, for the confirmation: totals, the largest scopes, the groups."""
    text = Text.assemble(
        "Suspends ",
        (f"{radius.active:,} active grants", "bold red"),
        " and ",
        (f"{radius.requested:,} requests", "bold"),
        f" of {radius.contractors:,} contractors, and removes them from ",
        (f"{len(radius.groups):,} directory groups", "bold"),
        ".\nNo TOTP code is needed; resuming needs an approver's code.\n",
    )
    largest = sorted(radius.scopes, key=lambda s: -(s.active + s.requested))[:RADIUS_ROWS]
    for s in largest:
        text.append(f"\n  {line(s.project)}/{line(s.scope)} ({line(s.access)})", style="")
        text.append(f"  {s.active:,} active, {s.requested:,} requested", style="dim")
    if len(radius.scopes) > RADIUS_ROWS:
        text.append(f"\n  … and {len(radius.scopes) - RADIUS_ROWS} more scopes", style="dim")
    return text


class PauseFlow:
    """The steps of a pause or resume, each a dialog or a worker of the app."""

    def __init__(self, app: App[Any], context: TuiContext, *, changed: Callable[[], None]) -> None:
        self.app = app
        self.context = context
        self.changed = changed  # grants and the directory changed: screens reload

    def pause(self, client: str) -> None:
        """Show the blast radius of pausing `client` and ask for the reason."""
        self.app.run_worker(
            partial(self._load_radius, client),
            thread=True,
            exclusive=True,
            exit_on_error=False,
            group="pause",
            name="blast radius",
        )

    def _load_radius(self, client: str) -> None:
        radius = self.context.workspace.read(pause_views.blast_radius, client)
        self.app.call_from_thread(self._confirm, radius)

    def _confirm(self, radius: BlastRadius) -> None:
        if radius.status == "paused":
            notify(self.app, f"{radius.client} is paused already.", severity="warning")
            return
        self.app.push_screen(
            ReasonPrompt(
                title=f"Pause {line(radius.client)}?",
                details=radius_text(radius),
                action_label="Pause now",
                placeholder="Reason (required; it goes into the pause and the audit log)",
            ),
            partial(self._reason_given, radius.client),
        )

    def _reason_given(self, client: str, reason: str | None) -> None:
        if reason:
            self.app.run_worker(
                partial(self._run_pause, client, reason),
                thread=True,
                exclusive=True,
                exit_on_error=False,
                group="pause",
                name="pause",
            )

    def _run_pause(self, client: str, reason: str) -> None:
        # No code: removing access never waits for one.
        result = self.context.workspace.act(pause.pause, client=client, reason=reason)
        self.app.call_from_thread(self._paused, result)

    def _paused(self, result: PauseResult) -> None:
        headline = (
            f"{line(result.client)} paused: {result.suspended_active:,} grants and "
            f"{result.suspended_requests:,} requests suspended"
        )
        self._follow(result.client, headline)

    def resume(self, client: str) -> None:
        """Check that `client` is paused and the acting operator approves for it, then ask for
        their TOTP code and resume it. A refusal is shown as an error, and no code is asked."""
        self.app.run_worker(
            partial(self._check_resume, client),
            thread=True,
            exclusive=True,
            exit_on_error=False,
            group="pause",
            name="resume check",
        )

    def _check_resume(self, client: str) -> None:
        self.context.workspace.read_as(pause.check_resume, client=client)
        self.app.call_from_thread(self._ask_resume_code, client)

    def _ask_resume_code(self, client: str) -> None:
        workspace = self.context.workspace
        self.app.push_screen(
            TotpPrompt[ResumeResult](
                title=f"Resume {line(client)}?",
                summary=(
                    "Restores exactly the grants the pause suspended that were neither revoked "
                    "nor expired meanwhile, with their original expiry; suspended requests go "
                    "back to the approval queue."
                ),
                attempt=partial(self._resume, client),
                lockout=partial(workspace.read_as, operator_views.lockout),
                action_label="Resume",
            ),
            self._resumed,
        )

    def _resume(self, client: str, code: str) -> ResumeResult:
        """Resume the client with the acting approver's TOTP code (in the prompt's worker)."""
        return self.context.workspace.act(pause.resume, client=client, code=code)

    def _resumed(self, result: ResumeResult | None) -> None:
        if result is None:
            return
        headline = (
            f"{line(result.client)} resumed: {result.restored_active:,} grants restored, "
            f"{result.restored_requests:,} requests back in the queue, "
            f"{result.not_restored:,} not restored"
        )
        self._follow(result.client, headline)

    def _follow(self, client: str, headline: str) -> None:
        self.changed()
        self.app.push_screen(
            PauseProgress(self.context, client=client, headline=headline),
            lambda _: self.changed(),
        )

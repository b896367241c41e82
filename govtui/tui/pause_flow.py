"""Pausing and resuming a client from anywhere in the TUI: the blast radius and a reason before
a pause, an approver's TOTP code before a resume, then the directory followed until it
confirms. The browser's keys and the command palette both start it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import App
from textual.message import Message

from govtui.services import operator_views, pause, pause_views
from govtui.services.pause import PauseResult, ResumeResult
from govtui.services.pause_views import BlastRadius
from govtui.tui.context import TuiContext
from govtui.tui.modals.pause_progress import PauseProgress
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.plain import line, notify

RADIUS_ROWS = 12  # scopes listed in the confirmation; the totals always cover them all


def radius_summary(radius: BlastRadius) -> Text:
    """What a pause would do, in counts: stays in view above the list of scopes."""
    return Text.assemble(
        "Suspends ",
        (f"{radius.active:,} active grants", "bold red"),
        " and ",
        (f"{radius.requested:,} requests", "bold"),
        f" of {radius.contractors:,} contractors, and removes them from ",
        (f"{len(radius.groups):,} directory groups", "bold"),
        ".\nNo TOTP code is needed; resuming needs an approver's code.",
    )


def radius_scopes(radius: BlastRadius) -> Text:
    """The largest scopes a pause would touch (the body that scrolls)."""
    text = Text()
    largest = sorted(radius.scopes, key=lambda s: -(s.active + s.requested))[:RADIUS_ROWS]
    for index, s in enumerate(largest):
        text.append("\n" if index else "")
        text.append(f"  {line(s.project)}/{line(s.scope)} ({line(s.access)})", style="")
        text.append(f"  {s.active:,} active, {s.requested:,} requested", style="dim")
    if len(radius.scopes) > RADIUS_ROWS:
        text.append(f"\n  … and {len(radius.scopes) - RADIUS_ROWS} more scopes", style="dim")
    return text


def radius_text(radius: BlastRadius) -> Text:
    """What a pause would do, for the confirmation: totals, the largest scopes, the groups."""
    return Text("\n\n").join([radius_summary(radius), radius_scopes(radius)])


class ClientStatusChanged(Message):
    """A pause or resume of `client` committed: it is `status` now. Posted to the screens on
    view at once, so the tree and the dashboard turn red (or back) before they reload."""

    def __init__(self, client: str, status: str) -> None:
        super().__init__()
        self.client = client
        self.status = status


class PauseFlow:
    """The steps of a pause or resume, each a dialog or a worker of the app."""

    def __init__(self, app: App[Any], context: TuiContext, *, changed: Callable[[], None]) -> None:
        self.app = app
        self.context = context
        self.changed = changed  # grants and the directory changed: screens reload

    def pause(self, client: str) -> None:
        """Open the confirmation at once (it says the blast radius is being counted), count
        it in a worker, and ask for the reason."""
        prompt = ReasonPrompt(
            title=f"Pause {line(client)}?",
            details=Text(f"Counting what a pause of {line(client)} would suspend…", style="italic"),
            action_label="Pause now",
            placeholder="Reason (required; it goes into the pause and the audit log)",
            pending=True,
        )
        radius: dict[str, BlastRadius] = {}
        self.app.push_screen(prompt, partial(self._reason_given, client, radius))
        self.app.run_worker(
            partial(self._load_radius, client, prompt, radius),
            thread=True,
            exclusive=True,
            exit_on_error=False,
            group="pause",
            name="blast radius",
        )

    def _load_radius(
        self, client: str, prompt: ReasonPrompt, found: dict[str, BlastRadius]
    ) -> None:
        try:
            radius = self.context.workspace.read(pause_views.blast_radius, client)
        except BaseException:
            self.app.call_from_thread(self._radius_failed, prompt)
            raise
        found[client] = radius
        self.app.call_from_thread(self._confirm, prompt, radius)

    def _radius_failed(self, prompt: ReasonPrompt) -> None:
        if prompt.is_attached:
            prompt.dismiss(None)  # the app shows the error

    def _confirm(self, prompt: ReasonPrompt, radius: BlastRadius) -> None:
        if not prompt.is_attached:  # cancelled while counting
            return
        if radius.status == "paused":
            prompt.dismiss(None)
            notify(self.app, f"{radius.client} is paused already.", severity="warning")
            return
        prompt.show_details(radius_summary(radius), radius_scopes(radius))

    def _reason_given(self, client: str, found: dict[str, BlastRadius], reason: str | None) -> None:
        if not reason:
            return
        radius = found.get(client)
        grants = f" {radius.grants:,} grants" if radius is not None else ""
        self.app.push_screen(
            PauseProgress(
                self.context,
                client=client,
                headline=f"Pausing {line(client)}…{grants}",
                change=partial(self._run_pause, client, reason),
                committed=self._paused,
            ),
            lambda _: self.changed(),
        )

    def _run_pause(self, client: str, reason: str) -> PauseResult:
        # No code: removing access never waits for one.
        return self.context.workspace.act(pause.pause, client=client, reason=reason)

    def _paused(self, result: PauseResult) -> str:
        """The pause committed: the screens turn red now; the headline from then on."""
        self._status_changed(result.client, "paused")
        return (
            f"{line(result.client)} paused: {result.suspended_active:,} grants and "
            f"{result.suspended_requests:,} requests suspended"
        )

    def _status_changed(self, client: str, status: str) -> None:
        for screen in self.app.screen_stack:
            screen.post_message(ClientStatusChanged(client, status))
        self.changed()

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
        workspace = self.context.workspace
        workspace.read_as(pause.check_resume, client=client)
        state = workspace.read(pause_views.status, client)
        suspended = state.pause.still_suspended if state.pause is not None else 0
        self.app.call_from_thread(self._ask_resume_code, client, suspended)

    def _ask_resume_code(self, client: str, suspended: int) -> None:
        workspace = self.context.workspace
        running = f"Resuming {line(client)}… {suspended:,} grants"
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
                running=running,
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
        self._status_changed(result.client, "active")
        self._follow(result.client, headline)

    def _follow(self, client: str, headline: str) -> None:
        self.app.push_screen(
            PauseProgress(self.context, client=client, headline=headline),
            lambda _: self.changed(),
        )

"""Attack on issue 14's second wave, on screen: the approvals screen's "N approved" figure
and the request form's days after the caps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from textual.widgets import Input, Select, Static

from govtui.services.grants import ApprovalOutcome
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.request_form import RequestForm
from govtui.tui.screens.approvals import outcome_summary
from govtui.tui.screens.grants import GrantsScreen
from tests.factories import World
from tests.tui.tui_support import SIZE, choose, settle, text_of, wait_until

_END = datetime(2026, 4, 1, tzinfo=UTC)


def _outcome(grant_id: int, activated: bool) -> ApprovalOutcome:
    return ApprovalOutcome(grant_id, 0, activated, _END if activated else None)


def test_n_approved_counts_only_the_requests_made_active() -> None:
    """One restricted request with ann's approval recorded read "1 approved; 1 waits for a
    second approver": one request, two figures, and nothing was approved."""
    assert outcome_summary([_outcome(1, False)]) == "1 waits for a second approver"
    assert outcome_summary([_outcome(1, True), _outcome(2, True), _outcome(3, False)]) == (
        "2 approved; 1 waits for a second approver"
    )
    assert outcome_summary([_outcome(1, True)]) == "1 approved"


async def test_the_forms_days_follow_a_contractor_typed_after_the_days(world: World) -> None:
    """Scope and days first, then the contractor typed by hand: the form kept saying "10 days,
    as asked" while the grant would end with E2's contract, 4 days away (the days were not
    asked again when the contractor changed or their match came back)."""
    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, GrantsScreen), what="grants")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, RequestForm), what="the form")
        form = app.screen
        assert isinstance(form, RequestForm)
        await choose(pilot, form.query_one("#request-scope", Select), "acme/rlhf/notes")
        form.query_one("#request-days", Input).focus()
        await pilot.press("1", "0")
        effective = form.query_one("#request-effective", Static)
        await wait_until(pilot, lambda: text_of(effective) == "10 days, as asked", what="asked")
        form.query_one("#request-contractor", Input).focus()
        await pilot.press("E", "2")
        await wait_until(
            pilot,
            lambda: "the contract's end on 2026-03-06" in text_of(effective),
            what="E2's contract end",
        )
        assert text_of(effective).startswith("4 days after the caps")


async def test_quitting_during_a_write_says_it_may_not_be_made(world: World) -> None:
    """q during a pause, an approval or a revoke interrupts its transaction (rolled back) and
    the app was gone without a word: the person could not tell their change was not made."""
    release = threading.Event()

    def writing() -> None:  # a change being written (it waits, as on a big pause)
        release.wait(10)

    said: list[str] = []
    app = _saying(GovtuiApp(Workspace(world.engine, "req")), said)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.run_worker(writing, thread=True, group="grants-write", exit_on_error=False)
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, what="the exit")
    finally:
        release.set()
    assert len(said) == 1 and "quit while a change was being written" in said[0]
    # Quitting with no change being written says nothing.
    quiet: list[str] = []
    app = _saying(GovtuiApp(Workspace(world.engine, "req")), quiet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, what="the exit")
    assert quiet == [""]


def _saying(app: GovtuiApp, said: list[str]) -> GovtuiApp:
    """The app, its exit message (printed and cleared by Textual on the way out) kept."""
    exit_app = app.exit

    def exit(result: None = None, return_code: int = 0, message: object = None) -> None:
        said.append(str(message or ""))
        exit_app(result, return_code, message)  # type: ignore[arg-type]

    app.exit = exit  # type: ignore[method-assign]
    return app

"""Requests and approvals in the TUI: the request form, the approver's queue with marks, one
TOTP code (masked) for a batch, wrong codes counted and shown, the lock-out shown and obeyed."""

from __future__ import annotations

from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Select, Static

from govtui import db
from govtui.models import Grant
from govtui.services import grant_views
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.request_form import RequestForm
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.grants import GrantsScreen
from tests.conftest import FakeClock
from tests.factories import World
from tests.tui.tui_support import (
    choose,
    open_screen,
    row_ids,
    running,
    settle,
    table_rows,
    text_of,
    wait_until,
    wrong_code,
)


def _notes(messages: list[Message]) -> list[str]:
    return list(dict.fromkeys(m.notification.message for m in messages if isinstance(m, Notify)))


async def _open_approvals(app: GovtuiApp, pilot: Pilot[None]) -> ApprovalsScreen:
    screen = await open_screen(pilot, "a", ApprovalsScreen)
    assert screen.loaded
    return screen


async def _open_prompt(app: GovtuiApp, pilot: Pilot[None], key: str = "A") -> TotpPrompt[object]:
    return await open_screen(pilot, key, TotpPrompt)


def _failures(world: World, name: str) -> int:
    return world.op(name).totp_failures


async def test_request_in_the_form_then_approve_with_a_code_makes_it_active(world: World) -> None:
    async def as_requester() -> int:
        async with running(world.engine, "req") as (app, pilot):
            grants_screen = await open_screen(pilot, "t", GrantsScreen)
            form = await open_screen(pilot, "n", RequestForm)
            await pilot.press("E", "1")  # the contractor box has the focus
            await choose(pilot, form.query_one("#request-scope", Select), "acme/rlhf/pairs")
            await choose(pilot, form.query_one("#request-access", Select), "label")
            form.query_one("#request-days", Input).focus()
            await pilot.press("1", "0")
            form.query_one("#request-reason", Input).focus()
            await pilot.press(*"batch", "space", "7", "enter")
            await settle(pilot)
            with db.read_session(world.engine) as session:
                (row,) = grant_views.list_grants(session)
            assert (row.contractor, row.scope, row.access, row.state) == (
                "E1",
                "acme/rlhf/pairs",
                "label",
                "requested",
            )
            assert (row.requested_by, row.requested_days, row.reason) == ("req", 10, "batch 7")
            # The form closes on success; the new request is the row selected.
            await wait_until(pilot, lambda: app.screen is grants_screen, what="the form to close")
            await wait_until(
                pilot, lambda: grants_screen._cursor_id() == row.id, what="the new row selected"
            )
            table = grants_screen.query_one("#grant-table", DataTable)
            (shown,) = table_rows(table)
            assert shown == [
                str(row.id),
                "requested",
                "asks 10d",
                "E1",
                "Ada",
                "acme/rlhf/pairs",
                "label",
                "req",
                "",
            ]
            return row.id

    async def as_approver(grant_id: int) -> None:
        messages: list[Message] = []
        async with running(world.engine, "ann", messages=messages) as (app, pilot):
            screen = await _open_approvals(app, pilot)
            table = screen.query_one("#approval-table", DataTable)
            assert row_ids(table) == [grant_id]
            await pilot.press("space")
            assert screen.marked == {grant_id}
            assert table_rows(table)[0][0] == "✓"
            prompt = await _open_prompt(app, pilot)
            code_box = prompt.query_one("#totp-code", Input)
            assert code_box.password  # masked
            assert f"#{grant_id} E1 Ada → acme/rlhf/pairs" in text_of(
                prompt.query_one("#totp-summary", Static)
            )
            await pilot.press(*world.code("ann"), "enter")
            await settle(pilot)
            assert app.screen is screen  # the dialog closed
            assert world.grant(grant_id).state == "active"
            assert "1 approved" in _notes(messages)
            assert table.row_count == 0  # the queue refreshed
            await pilot.press("t")
            await settle(pilot)
            grants_table = app.screen.query_one("#grant-table", DataTable)
            (shown,) = table_rows(grants_table)
            assert shown[0] == str(grant_id)
            assert shown[1] == "active"
            assert "(expires in 10d)" in shown[2]
            assert shown[8] == "ann"

    grant_id = await as_requester()
    await as_approver(grant_id)


async def test_a_wrong_code_is_shown_counted_and_approves_nothing(world: World) -> None:
    grant_id = world.request()

    async with running(world.engine, "ann") as (app, pilot):
        await _open_approvals(app, pilot)
        prompt = await _open_prompt(app, pilot, key="enter")  # Enter on the row
        await pilot.press(*wrong_code(world.secrets["ann"]), "enter")
        await settle(pilot)
        assert app.screen is prompt  # still asking
        error = text_of(prompt.query_one("#totp-error", Static))
        assert error == (
            f"a wrong code for 'ann': approval of grant {grant_id} refused "
            "(4 tries left before a 15 minutes lock-out)"
        )
        assert prompt.query_one("#totp-code", Input).value == ""  # not kept
        assert world.grant(grant_id).state == "requested"
        assert _failures(world, "ann") == 1  # counted and committed
        # The right code in the same dialog still works.
        await pilot.press(*world.code("ann"), "enter")
        await settle(pilot)
        assert not isinstance(app.screen, TotpPrompt)
        assert world.grant(grant_id).state == "active"
        assert _failures(world, "ann") == 0


async def test_five_wrong_codes_lock_out_and_the_dialog_refuses(
    world: World, fake_clock: FakeClock
) -> None:
    grant_id = world.request()
    wrong = wrong_code(world.secrets["ann"])

    async with running(world.engine, "ann") as (app, pilot):
        screen = await _open_approvals(app, pilot)
        prompt = await _open_prompt(app, pilot)
        lock_line = prompt.query_one("#totp-lockout", Static)
        assert not lock_line.display
        code_box = prompt.query_one("#totp-code", Input)
        await pilot.press(*wrong, "enter")  # typed once; then pasted, to keep this quick
        for _ in range(4):
            await settle(pilot)
            assert code_box.has_focus and code_box.value == ""
            code_box.insert_text_at_cursor(wrong)
            await pilot.press("enter")
        await settle(pilot)
        assert "approvals locked for 15 minutes after 5 failures" in text_of(
            prompt.query_one("#totp-error", Static)
        )
        assert lock_line.display
        assert "stay locked for 15 minutes" in text_of(lock_line)
        assert prompt.query_one("#totp-code", Input).disabled
        assert prompt.query_one("#totp-submit", Button).disabled
        # Refuses even the right code: the box takes no keys and submit does nothing.
        await pilot.press(*world.code("ann"), "enter")
        prompt.submit()
        await settle(pilot)
        assert app.screen is prompt
        assert world.grant(grant_id).state == "requested"
        assert world.op("ann").totp_locked_until is not None

        # Opened again later, the dialog shows the time left at once.
        await pilot.press("escape")
        await settle(pilot)
        assert "locked for 15 minutes" in text_of(screen.query_one("#approval-status"))
        fake_clock.advance(minutes=6)
        prompt = await _open_prompt(app, pilot)
        assert "stay locked for 9 minutes" in text_of(prompt.query_one("#totp-lockout"))
        assert prompt.query_one("#totp-submit", Button).disabled

        # When the lock-out ends, the open dialog notices (it re-checks) and accepts.
        fake_clock.advance(minutes=10)
        prompt.check_lockout()
        await settle(pilot)
        assert not prompt.query_one("#totp-code", Input).disabled
        await pilot.press(*world.code("ann"), "enter")
        await settle(pilot)
        assert world.grant(grant_id).state == "active"


async def test_a_batch_of_marked_requests_is_approved_with_one_code(world: World) -> None:
    pairs = world.request(scope="acme/rlhf/pairs")
    notes = world.request(scope="acme/rlhf/notes")
    redteam = world.request(scope="acme/rlhf/redteam")  # restricted: two approvers

    messages: list[Message] = []
    async with running(world.engine, "ann", messages=messages) as (app, pilot):
        screen = await _open_approvals(app, pilot)
        table = screen.query_one("#approval-table", DataTable)
        assert row_ids(table) == [pairs, notes, redteam]
        # Space marks and moves down: mark the first two, leave the third.
        await pilot.press("space", "space")
        assert screen.marked == {pairs, notes}
        status = text_of(screen.query_one("#approval-status"))
        assert status.startswith("3 wait for your decision · showing 1\N{EN DASH}3 ·")
        assert "· 2 marked" in status
        prompt = await _open_prompt(app, pilot)
        summary = text_of(prompt.query_one("#totp-summary", Static))
        assert f"#{pairs} " in summary and f"#{notes} " in summary
        assert f"#{redteam} " not in summary
        await pilot.press(*world.code("ann"), "enter")
        await settle(pilot)
        assert [world.grant(g).state for g in (pairs, notes, redteam)] == [
            "active",
            "active",
            "requested",
        ]
        assert "2 approved" in _notes(messages)
        assert row_ids(table) == [redteam]
        assert screen.marked == set()

        # ctrl+a marks everything left; a restricted scope waits for a second approver.
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: screen.mark is not None, what="the mark")
        assert screen.mark is not None and screen.mark.marked == 1
        assert screen.is_marked(redteam)
        await _open_prompt(app, pilot, key="enter")
        await pilot.press(*world.code("ann", 1), "enter")  # the next step: one use each
        await settle(pilot)
        assert "1 waits for a second approver" in _notes(messages)
        assert not any("approved" in note for note in _notes(messages)[1:])  # none made active
        assert world.grant(redteam).state == "requested"
        assert row_ids(table) == []  # ann may not approve it twice


async def test_deny_marked_requests_with_a_reason(world: World) -> None:
    first = world.request(scope="acme/rlhf/pairs")
    second = world.request(scope="acme/rlhf/notes")

    async with running(world.engine, "ann") as (app, pilot):
        screen = await _open_approvals(app, pilot)
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: screen.mark is not None, what="the mark")
        await pilot.press("x")  # (d is the dashboard, on every screen)
        await settle(pilot)
        dialog = app.screen
        deny_button = dialog.query_one("#reason-submit", Button)
        assert deny_button.disabled  # no reason, no denial
        await pilot.press(*"wrong", "space", *"project", "enter")
        await settle(pilot)
        assert app.screen is screen
        await wait_until(pilot, lambda: not screen.rows, what="the queue to empty")
        for grant_id in (first, second):
            grant: Grant = world.grant(grant_id)
            assert (grant.state, grant.end_reason) == ("denied", "wrong project")


async def test_an_unexpected_error_in_the_dialog_is_reported_and_the_dialog_carries_on(
    world: World,
) -> None:
    grant_id = world.request()

    def broken(*args: object) -> object:
        raise RuntimeError("disk on fire")

    messages: list[Message] = []
    async with running(world.engine, "ann", messages=messages) as (app, pilot):
        await _open_approvals(app, pilot)
        prompt = await _open_prompt(app, pilot)
        prompt.attempt = broken  # what the approval call would raise
        await pilot.press(*world.code("ann"), "enter")
        await settle(pilot)
        errors = [
            m.notification.message
            for m in messages
            if isinstance(m, Notify) and m.notification.severity == "error"
        ]
        assert errors == ["unexpected RuntimeError: disk on fire"]
        assert app.screen is prompt
        assert "The action failed" in text_of(prompt.query_one("#totp-error", Static))
        assert not prompt.query_one("#totp-submit", Button).disabled
        assert world.grant(grant_id).state == "requested"

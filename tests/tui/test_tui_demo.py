"""The demo is the product, working (issue 14): its operator alex enrols, requests, approves
someone else's request, revokes, pauses and resumes, all by keys; in the demo only, `w` acts
as another of its operators; the enrolment screen shows the secret as text and fits 80x24."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, Static

from govtui import db
from govtui.models import Grant
from govtui.security import totp
from govtui.services import grant_views, operators, pause
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.act_as import ActAsPrompt
from govtui.tui.modals.confirm_revoke import ConfirmRevoke
from govtui.tui.modals.pause_progress import PauseProgress
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.request_form import RequestForm
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.enrol import EnrolScreen
from govtui.tui.screens.grants import GrantsScreen
from tests.conftest import FakeClock
from tests.tui.test_tui_pause import client_label, open_client
from tests.tui.tui_support import (
    choose,
    open_screen,
    row_ids,
    running,
    screen_text,
    settle,
    text_of,
    wait_until,
)


def _state(engine: Engine, grant_id: int) -> str:
    with db.read_session(engine) as session:
        grant = session.get(Grant, grant_id)
        assert grant is not None
        return grant.state


def _next_code(secret: str, fake_clock: FakeClock) -> str:
    """The code of the next TOTP step (each step's code is accepted once)."""
    fake_clock.advance(seconds=totp.STEP_SECONDS)
    return totp.code_for_step(secret, totp.step_of(fake_clock()))


async def _enrol(app: GovtuiApp, pilot: Pilot[None], fake_clock: FakeClock) -> str:
    """alex enrols from the approvals screen's `e`; the secret typed from the screen."""
    await open_screen(pilot, "a", ApprovalsScreen)
    screen = await open_screen(pilot, "e", EnrolScreen)
    await pilot.press("enter")  # "Show a new QR code"
    await settle(pilot)
    shown = text_of(screen.query_one("#enrol-secret", Static))
    secret = "".join(shown.split("\n", 1)[1].split())
    assert len(secret) == totp.SECRET_LENGTH
    await pilot.press(*_next_code(secret, fake_clock), "enter")
    await settle(pilot)
    assert "Enrolled." in text_of(screen.query_one("#enrol-done", Static))
    assert not screen.query("#enrol-qr, #enrol-secret")  # the secret left the screen
    await pilot.press("escape")
    await settle(pilot)
    return secret


async def test_the_demo_operator_does_every_task_by_keys(
    demo_engine: Engine, fake_clock: FakeClock
) -> None:
    async with running(demo_engine, "alex", demo=True) as (app, pilot):
        secret = await _enrol(app, pilot, fake_clock)

        # Approve someone else's request: the queue holds sam's requests for alex's clients.
        approvals = app.screen
        assert isinstance(approvals, ApprovalsScreen)
        assert "press e to enrol" not in screen_text(app)
        table = approvals.query_one("#approval-table", DataTable)
        assert table.row_count > 0
        first = int(table.ordered_rows[0].key.value or 0)
        await pilot.press("space", "A")
        await wait_until(pilot, lambda: isinstance(app.screen, TotpPrompt), what="the prompt")
        await pilot.press(*_next_code(secret, fake_clock), "enter")
        await settle(pilot)
        assert _state(demo_engine, first) == "active"

        # Request access (the grants screen's form).
        grants_screen = await open_screen(pilot, "t", GrantsScreen)
        form = await open_screen(pilot, "n", RequestForm)
        await pilot.press(*"C00001")
        await choose(
            pilot, form.query_one("#request-scope", Select), "orbital-research/math-proofs/problems"
        )
        await choose(pilot, form.query_one("#request-access", Select), "write")
        form.query_one("#request-days", Input).focus()
        await pilot.press("5")
        form.query_one("#request-reason", Input).focus()
        await pilot.press(*"demo", "enter")
        await settle(pilot)
        with db.read_session(demo_engine) as session:
            alex = operators.find(session, "alex").id
            mine = session.execute(
                sa.select(col(Grant.id)).where(
                    col(Grant.requested_by) == alex, col(Grant.reason) == "demo"
                )
            ).scalar_one()
        assert _state(demo_engine, mine) == "requested"
        await pilot.press("escape")
        await settle(pilot)

        # Revoke the grant alex just approved.
        assert app.screen is grants_screen
        table = grants_screen.query_one("#grant-table", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, what="grants")
        keys = row_ids(table)
        assert first in keys, "the grants screen lists the newest grants first"
        table.move_cursor(row=keys.index(first))
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmRevoke)
        await pilot.press(*"done", "enter")
        await settle(pilot)
        assert _state(demo_engine, first) == "revoked"

        # Pause a client alex approves for, then resume it with a code.
        browser = await open_client(app, pilot, "orbital-research")
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        assert not app.screen.pending  # the blast radius is shown
        await pilot.press(*"lab call", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        progress = app.screen
        assert isinstance(progress, PauseProgress)
        # The dialog stays until the pause's transaction is done (it cannot be left half-way).
        await wait_until(pilot, lambda: not progress.running, what="the pause to commit")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is browser, what="the browser again")
        assert client_label(browser, "orbital-research") == "orbital-research (paused)"
        assert _state(demo_engine, mine) == "suspended"
        await pilot.press("u")
        # The resume checks run in a worker before the prompt opens (a loaded CI run was slower
        # than one settle).
        await wait_until(pilot, lambda: isinstance(app.screen, TotpPrompt), what="the prompt")
        await pilot.press(*_next_code(secret, fake_clock), "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        await pilot.press("escape")
        await settle(pilot)
        assert client_label(browser, "orbital-research") == "orbital-research"
        assert _state(demo_engine, mine) == "requested"


async def test_in_the_demo_w_acts_as_another_operator_and_every_screen_follows(
    demo_engine: Engine,
) -> None:
    async with running(demo_engine, "alex", demo=True) as (app, pilot):
        assert "acting as alex (demo" in app.title
        await pilot.press("a")
        await settle(pilot)
        prompt = await open_screen(pilot, "w", ActAsPrompt)
        names = [o.id for o in prompt.query_one("#act-as-list", OptionList).options]
        assert names == sorted(names) and {"alex", "blair", "quinn"} <= set(names)
        prompt.query_one("#act-as-list", OptionList).highlighted = names.index("blair")
        await pilot.press("enter")
        await settle(pilot)
        assert app.actor_name == "blair" and "acting as blair" in app.title
        screen = app.screen
        assert isinstance(screen, ApprovalsScreen) and screen.actor_name == "blair"
        await settle(pilot)
        # blair's queue: alex's requests are there now, for blair to approve.
        table = screen.query_one("#approval-table", DataTable)
        with db.read_session(demo_engine) as session:
            alex = operators.find(session, "alex").id
            waiting = {g.id for g in grant_views.list_grants(session, state="requested", limit=500)}
            theirs = {
                gid
                for gid, by in session.execute(sa.select(col(Grant.id), col(Grant.requested_by)))
                if by == alex and gid in waiting
            }
        shown = set(row_ids(table))
        assert theirs and theirs <= shown


async def test_outside_the_demo_the_operator_stays_fixed(demo_engine: Engine) -> None:
    async with running(demo_engine, "alex") as (app, pilot):
        await pilot.press("w")
        await settle(pilot)
        assert not isinstance(app.screen, ActAsPrompt)
        assert "demo" not in app.title and app.actor_name == "alex"
        assert "Act as" not in [c.title for c in app.get_system_commands(app.screen)]
        # A forged message does not switch either.
        app.post_message(GovtuiApp.ActorChecked("blair"))
        await settle(pilot)
        assert app.actor_name == "alex" and app.workspace.actor_name == "alex"


async def _show_qr_code(app: GovtuiApp, pilot: Pilot[None]) -> EnrolScreen:
    """The enrolment screen (the palette's Enrol), its "Show a new QR code" pressed."""
    app.action_enrol()
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, EnrolScreen)
    await pilot.press("enter")
    await settle(pilot)
    return screen


async def test_the_enrolment_screen_fits_80x24_with_the_secret_beside_the_qr_code(
    demo_engine: Engine,
) -> None:
    async with running(demo_engine, "alex", demo=True, size=(80, 24)) as (app, pilot):
        screen = await _show_qr_code(app, pilot)
        qr = screen.query_one("#enrol-qr", Static)
        secret = screen.query_one("#enrol-secret", Static)
        assert qr.display and not screen.query_one("#enrol-too-small").display
        region, side = qr.region, secret.region
        # Wholly on the screen, between the header and the footer; the secret to its right.
        assert region.x >= 0 and region.right <= 80 and region.y >= 1 and region.bottom <= 23
        assert region.height == len(text_of(qr).split("\n"))
        assert side.x >= region.right and side.right <= 80
        text = screen_text(app)
        lines = text_of(secret).split("\n")[1:]
        assert len(lines) == 2 and all(len(part) == 4 for row in lines for part in row.split())
        for row in lines:  # the secret is readable as text, in groups of four
            assert row in text
        assert screen.query_one("#enrol-code", Input).region.bottom <= 23


async def test_a_terminal_too_small_for_the_qr_code_is_told_to_grow(demo_engine: Engine) -> None:
    async with running(demo_engine, "alex", demo=True, size=(70, 20)) as (app, pilot):
        screen = await _show_qr_code(app, pilot)
        assert not screen.query_one("#enrol-qr").display
        note = text_of(screen.query_one("#enrol-too-small", Static))
        assert "needs a terminal of at least" in note and "this one is 70x20" in note
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert screen.query_one("#enrol-qr").display
        assert not screen.query_one("#enrol-too-small").display


async def test_resume_asks_for_no_code_before_its_checks_pass(demo_engine: Engine) -> None:
    """Issue 14: `u` checked the code first; now a client that is not paused, or an operator
    who does not approve for it, gets the refusal and no code prompt."""
    messages: list[Message] = []
    async with running(demo_engine, "alex", demo=True, messages=messages) as (app, pilot):
        browser = await open_client(app, pilot, "orbital-research")
        await pilot.press("u")
        await settle(pilot)
        assert app.screen is browser  # no TOTP prompt
        assert any("'orbital-research' is not paused" in n for n in _notes(messages))
    Workspace(demo_engine, "alex").act(pause.pause, client="northwind-ai", reason="breach")
    messages.clear()
    async with running(demo_engine, "alex", demo=True, messages=messages) as (app, pilot):
        browser = await open_client(app, pilot, "northwind-ai")
        await pilot.press("u")
        await settle(pilot)
        assert app.screen is browser
        assert any(
            "'alex' is not an approver for client 'northwind-ai'" in n for n in _notes(messages)
        )


def _notes(messages: list[Message]) -> list[str]:
    return [m.notification.message for m in messages if isinstance(m, Notify)]

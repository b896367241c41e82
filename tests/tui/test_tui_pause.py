"""Pause and resume in the TUI: the blast radius and a reason before a pause (cancelling changes
nothing), the directory followed until it confirms, a TOTP code before a resume, paused
clients marked in red, and the command palette offering both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import col
from textual.widgets import Input, ProgressBar, Static, Tree

from govtui import db
from govtui.models import Grant
from govtui.services import sync
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.pause_progress import PauseProgress
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.browser import BrowserScreen, ClientNode
from tests.conftest import FakeClock, snapshot
from tests.directory_support import Directory, add_target, norm, private_subtree
from tests.factories import World
from tests.tui.tui_support import SIZE, settle, text_of, wait_until, wrong_code


def states(world: World) -> dict[int, str]:
    with db.read_session(world.engine) as session:
        return dict(session.execute(sa.select(col(Grant.id), col(Grant.state))).all())


async def open_client(app: GovtuiApp, pilot: object, client: str) -> BrowserScreen:
    """The browser with the cursor on the client's row."""
    await pilot.press("b")  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]
    screen = app.screen
    assert isinstance(screen, BrowserScreen)
    tree = screen.query_one("#catalog", Tree)
    node = next(
        n for n in tree.root.children if isinstance(n.data, ClientNode) and n.data.name == client
    )
    tree.move_cursor(node)
    await settle(pilot)  # type: ignore[arg-type]
    return screen


def client_label(screen: BrowserScreen, client: str) -> str:
    tree = screen.query_one("#catalog", Tree)
    node = next(
        n for n in tree.root.children if isinstance(n.data, ClientNode) and n.data.name == client
    )
    label = node.label
    return label.plain if hasattr(label, "plain") else str(label)


async def test_pause_from_the_browser_after_the_blast_radius_then_resume_with_a_code(
    world: World, fake_clock: FakeClock
) -> None:
    active = world.request("E1")
    world.approve(active)
    waiting = world.request("E1", access="label")
    other = world.request("E1", scope="other/p/s")

    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Pause client acme" in titles and "Pause client other" in titles
        await open_client(app, pilot, "acme")
        before = snapshot(world.engine)

        await pilot.press("p")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, ReasonPrompt)
        radius = text_of(prompt.query_one("#reason-details", Static))
        assert "Suspends 1 active grants and 1 requests of 1 contractors" in radius
        assert "rlhf/pairs (read)" in radius
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert snapshot(world.engine) == before  # cancelled: nothing written

        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press(*"lab call")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        progress = app.screen
        await wait_until(
            pilot,
            lambda: bool(text_of(progress.query_one("#pause-progress-status", Static))),
            what="the directory's outcome",
        )
        status = text_of(progress.query_one("#pause-progress-status", Static))
        assert "client acme is PAUSED" in status
        assert "acme paused: 1 grants and 1 requests suspended" in str(
            progress.query_one(".dialog-title", Static).visual
        )
        await pilot.press("escape")
        await settle(pilot)
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        assert client_label(browser, "acme") == "acme (paused)"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Resume client acme" in titles and "Pause client acme" not in titles
    assert states(world)[active] == "suspended" and states(world)[waiting] == "suspended"
    assert states(world)[other] == "requested"
    fake_clock.advance(seconds=31)

    app = GovtuiApp(engine=world.engine, actor_name="bob")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_client(app, pilot, "acme")
        await pilot.press("u")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, TotpPrompt)
        prompt.query_one("#totp-code", Input).value = wrong_code(world.secrets["bob"])
        await pilot.press("enter")
        await settle(pilot)
        assert "wrong code" in text_of(prompt.query_one("#totp-error", Static))
        assert states(world)[active] == "suspended"
        prompt.query_one("#totp-code", Input).value = world.code("bob")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        progress = app.screen
        await wait_until(
            pilot,
            lambda: bool(text_of(progress.query_one("#pause-progress-status", Static))),
            what="the directory's outcome",
        )
        assert "client acme is active (resumed)" in text_of(
            progress.query_one("#pause-progress-status", Static)
        )
    assert states(world)[active] == "active" and states(world)[waiting] == "requested"


@pytest.fixture
def directory() -> Iterator[Directory]:
    yield from private_subtree()


async def test_progress_follows_the_directory_until_every_removal_is_confirmed(
    world: World, directory: Directory
) -> None:
    add_target(world.engine, directory)
    ada = directory.add_person("ada")
    pairs = directory.group("acme-rlhf-pairs-read")
    world.approve(world.request("E1"))
    sync.run_once(world.engine)
    assert norm(ada) in (directory.members(pairs) or set())

    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_client(app, pilot, "acme")
        await pilot.press("p")
        await settle(pilot)
        await pilot.press(*"now")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        progress = app.screen
        status = progress.query_one("#pause-progress-status", Static)
        await wait_until(pilot, lambda: bool(text_of(status)), what="the outcome")
        assert "complete: 1/1 directory removals confirmed" in text_of(status)
        bar = progress.query_one("#pause-progress-bar", ProgressBar)
        assert bar.total == bar.progress == 1
    assert norm(ada) not in (directory.members(pairs) or set())

"""Pause and resume in the TUI: the blast radius and a reason before a pause (cancelling changes
nothing), the directory followed until it confirms, a TOTP code before a resume, paused
clients marked in red, and the command palette offering both."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import col
from textual.widgets import Button, Input, ProgressBar, Static, Tree

from govtui import db
from govtui.models import Grant
from govtui.services import pause, pause_views, sync
from govtui.services.workspace import Workspace
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


async def radius_shown(app: GovtuiApp, pilot: object) -> ReasonPrompt:
    """The pause confirmation, once its blast radius is counted."""
    prompt = app.screen
    assert isinstance(prompt, ReasonPrompt)
    details = prompt.query_one("#reason-details", Static)
    await wait_until(pilot, lambda: "Suspends" in text_of(details), what="the blast radius")  # type: ignore[arg-type]
    return prompt


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

    app = GovtuiApp(Workspace(world.engine, "root"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Pause client acme" in titles and "Pause client other" in titles
        await open_client(app, pilot, "acme")
        before = snapshot(world.engine)

        await pilot.press("p")
        prompt = app.screen
        assert isinstance(prompt, ReasonPrompt)
        details = prompt.query_one("#reason-details", Static)
        await wait_until(pilot, lambda: "Suspends" in text_of(details), what="the blast radius")
        radius = text_of(details)
        assert "Suspends 1 active grants and 1 requests of 1 contractors" in radius
        assert "rlhf/pairs (read)" in text_of(prompt.query_one("#reason-body", Static))
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert snapshot(world.engine) == before  # cancelled: nothing written

        await pilot.press("p")
        await radius_shown(app, pilot)
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

    app = GovtuiApp(Workspace(world.engine, "bob"))
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

    app = GovtuiApp(Workspace(world.engine, "root"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_client(app, pilot, "acme")
        await pilot.press("p")
        await radius_shown(app, pilot)
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


async def test_long_pause_shows_itself_from_the_key_to_the_commit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirmation opens at once while the blast radius is counted (no pause possible
    yet, whatever is typed); the pause then says what runs and for how long, cannot be closed
    half-way, and the tree turns red the moment it commits, before any reload."""
    world.approve(world.request("E1"))
    world.request("E1", access="label")
    radius_gate, pause_gate = threading.Event(), threading.Event()
    slow_radius, slow_pause = pause_views.blast_radius, pause.pause

    def blast_radius(*args: object, **kwargs: object) -> object:
        assert radius_gate.wait(30)
        return slow_radius(*args, **kwargs)  # type: ignore[arg-type]

    def run_pause(*args: object, **kwargs: object) -> object:
        assert pause_gate.wait(30)
        return slow_pause(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pause_views, "blast_radius", blast_radius)
    monkeypatch.setattr(pause, "pause", run_pause)
    app = GovtuiApp(Workspace(world.engine, "root"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        browser = await open_client(app, pilot, "acme")
        await pilot.press("p")
        prompt = app.screen
        assert isinstance(prompt, ReasonPrompt)
        assert "Counting what a pause of acme would suspend" in text_of(
            prompt.query_one("#reason-details", Static)
        )
        # (No settle while a worker waits at a gate: settle waits for every worker.)
        await pilot.press(*"lab call")
        await pilot.pause(0.2)
        assert prompt.query_one("#reason-submit", Button).disabled
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.screen is prompt  # nothing to confirm yet
        radius_gate.set()
        await radius_shown(app, pilot)
        assert not prompt.query_one("#reason-submit", Button).disabled
        # At 80x24 the title, the counts and the button stay in view with the reason box
        # focused; only the list of scopes scrolls.
        await pilot.pause(0.1)
        for selector in (".dialog-title", "#reason-details", "#reason-input", "#reason-submit"):
            region = prompt.query_one(selector).region
            assert region.height > 0 and region.y >= 0 and region.bottom <= 24, selector

        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        progress = app.screen
        heading = progress.query_one("#pause-progress-title", Static)
        await wait_until(
            pilot, lambda: "Pausing acme… 2 grants, " in text_of(heading), what="running"
        )
        assert progress.query_one("#pause-progress-close", Button).disabled
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.screen is progress  # a pause is never left half-done
        assert client_label(browser, "acme") == "acme"
        pause_gate.set()
        await wait_until(
            pilot, lambda: client_label(browser, "acme") == "acme (paused)", what="red tree"
        )
        await wait_until(
            pilot, lambda: "acme paused: 1 grants and 1 requests" in text_of(heading), what="done"
        )
        await wait_until(
            pilot,
            lambda: bool(text_of(progress.query_one("#pause-progress-status", Static))),
            what="the directory's outcome",
        )

"""`q` quits at once, and no key can end the app with a traceback: not one pressed while a
screen is still loading, nor one pressed while the app quits (`NoMatches: '#grant-table'`
once did). `q` cancels the workers and interrupts the queries they run, so a long load or
count keeps nobody waiting."""

from __future__ import annotations

import asyncio
import threading
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from tests.factories import World
from tests.tui.tui_support import SIZE, settle, wait_until

SCREEN_KEYS = ("d", "b", "c", "g", "a", "v", "y")
# Keys a person presses while a screen comes up: moves, drill in, sort, dialogs and back.
BURST = ("down", "up", "end", "home", "pagedown", "enter", "escape", "o", "space", "escape")


async def test_keys_pressed_while_each_screen_loads_never_raise(demo_engine: Engine) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        for key in SCREEN_KEYS:
            # No pause between the screen's key and the next ones: they land while the
            # screen composes and its first worker runs.
            await pilot.press(key, *BURST)
        await settle(pilot)
        assert app.is_running
        await pilot.press("d")  # the app still answers
        await wait_until(pilot, lambda: app.current_mode == "dashboard", what="the dashboard")


async def test_keys_pressed_while_quitting_never_raise(demo_engine: Engine) -> None:
    """`q` in the middle of loads, then more keys while the app goes: it exits cleanly (the
    test harness re-raises anything the app raised)."""
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a", "g", "c", "down", "q")
        for key in ("g", "a", "enter", "down", "end", "c", "b", "escape"):
            if not app.is_running:
                break
            await pilot.press(key)
    assert app.return_code in (0, None)


def _endless(started: threading.Event, session: Session) -> None:
    started.set()
    session.execute(
        sa.text(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        )
    ).scalar_one()


async def test_q_interrupts_a_query_still_running(world: World) -> None:
    """A worker's query that would never end stops when q is pressed: the app exits and the
    worker's thread is free again, so the process does not wait for it."""
    started, ended = threading.Event(), threading.Event()
    app = GovtuiApp(Workspace(world.engine, "root"))

    def run(workspace: Workspace) -> None:
        try:
            workspace.read(partial(_endless, started))
        finally:
            ended.set()

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.run_worker(partial(run, app.workspace), thread=True, exit_on_error=False)
        await wait_until(pilot, started.is_set, what="the query to start")
        await asyncio.sleep(0.2)  # well inside the statement
        await pilot.press("q")
    assert await asyncio.to_thread(ended.wait, 30), "the query was not interrupted"

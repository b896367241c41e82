"""`govtui doctor`'s checks at TUI start (issue 15): they run in a background worker, the
dashboard shows a red line when one fails (its text escaped: a file name in site-packages is
data), a dim one when all pass, and q never waits for them nor raises while they run."""

from __future__ import annotations

import asyncio
import threading

import pytest
from textual.widgets import Static

from govtui.services import doctor
from govtui.services.doctor_findings import Finding
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from tests.factories import World
from tests.tui.tui_support import SIZE, text_of, wait_until

TAMPERED = Finding("files", "fail", "textual/[b]app\x1b[2J.py", "SHA-256 differs from RECORD")


def _line(app: GovtuiApp) -> Static:
    return app.screen.query_one("#dashboard-doctor", Static)


async def test_a_failed_check_shows_a_red_line_on_the_dashboard(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "install_findings", lambda: [TAMPERED])
    app = GovtuiApp(Workspace(world.engine, "root"), doctor=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.context.doctor is not None, what="the checks")
        await wait_until(pilot, lambda: "FAILED" in text_of(_line(app)), what="the red line")
        line = _line(app)
        assert text_of(line) == (
            "doctor: 1 check FAILED · files: textual/[b]app\\x1b[2J.py: SHA-256 differs from "
            "RECORD · run `govtui doctor`"
        )
        assert line.has_class("alert")
        assert line.display
        # Leaving the dashboard and coming back keeps the line.
        await pilot.press("t")
        await wait_until(pilot, lambda: app.current_mode == "grants", what="the grants")
        await pilot.press("d")
        await wait_until(pilot, lambda: app.current_mode == "dashboard", what="the dashboard")
        assert _line(app).has_class("alert")


async def test_checks_that_end_while_another_screen_shows_reach_the_dashboard(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()

    def held() -> list[Finding]:
        go.wait(30)
        return [TAMPERED]

    monkeypatch.setattr(doctor, "install_findings", held)
    app = GovtuiApp(Workspace(world.engine, "root"), doctor=True)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t")
            await wait_until(pilot, lambda: app.current_mode == "grants", what="the grants")
            go.set()
            await wait_until(pilot, lambda: app.context.doctor is not None, what="the checks")
            await pilot.press("d")
            await wait_until(pilot, lambda: app.current_mode == "dashboard", what="dashboard")
            await wait_until(pilot, lambda: _line(app).has_class("alert"), what="the red line")
            assert text_of(_line(app)).startswith("doctor: 1 check FAILED · files: ")
    finally:
        go.set()


async def test_checks_that_pass_show_a_quiet_line(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        doctor, "install_findings", lambda: [Finding("packages", "ok", "lock", "35 packages")]
    )
    app = GovtuiApp(Workspace(world.engine, "root"), doctor=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.context.doctor is not None, what="the checks")
        await wait_until(
            pilot, lambda: "every check passed" in text_of(_line(app)), what="the line"
        )
        assert text_of(_line(app)).startswith("doctor: every check passed (")
        assert not _line(app).has_class("alert")


async def test_without_the_checks_the_line_is_not_shown(world: World) -> None:
    app = GovtuiApp(Workspace(world.engine, "root"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.query("#dashboard-doctor"), what="the line")
        assert not _line(app).display
        assert not any(w.group == "doctor" for w in app.workers)


async def test_q_while_the_checks_run_neither_waits_nor_raises(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The install checks still hashing (here: blocked) when q is pressed: the app exits
    cleanly at once, the checks left to finish in their daemon thread."""
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    daemon: list[bool] = []

    def slow() -> list[Finding]:
        # A daemon thread of its own: asyncio's executor threads (where a thread worker runs)
        # are joined when the app's loop closes, so a check there would hold up the exit.
        daemon.append(threading.current_thread().daemon)
        started.set()
        release.wait(60)
        finished.set()
        return [TAMPERED]

    monkeypatch.setattr(doctor, "install_findings", slow)
    app = GovtuiApp(Workspace(world.engine, "root"), doctor=True)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, started.is_set, what="the checks to start")
            await pilot.press("q")
        # The app is gone while the checks are still blocked: quitting did not wait.
        assert not finished.is_set()
        assert app.return_code in (0, None)
        assert app.context.doctor is None
        assert daemon == [True]
    finally:
        release.set()
    assert await asyncio.to_thread(finished.wait, 30)

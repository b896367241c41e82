"""The contractors table: windows fetched from the database, search in SQL, stale answers
dropped, and 100,000 contractors (timed by scripts/bench_tui, not here)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from textual.widgets import DataTable, Input, Static

from govtui import db
from govtui.services import contractors
from govtui.services.contractors import PAGE, ContractorRow
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.contractors import ContractorsScreen
from tests.tui.tui_support import (
    BIG_CONTRACTORS,
    DEMO_CONTRACTORS,
    NEEDLE,
    NEEDLES,
    SIZE,
    settle,
    table_rows,
    text_of,
    wait_until,
)


def _status(screen: ContractorsScreen) -> str:
    return text_of(screen.query_one("#contractor-status", Static))


def _table(screen: ContractorsScreen) -> DataTable[object]:
    return screen.query_one("#contractor-table", DataTable)


async def _open_contractors(app: GovtuiApp, pilot: object) -> ContractorsScreen:
    await pilot.press("c")  # type: ignore[attr-defined]
    screen = app.screen
    assert isinstance(screen, ContractorsScreen)
    await wait_until(pilot, lambda: screen.total is not None, what="the first window")  # type: ignore[arg-type]
    await settle(pilot)  # type: ignore[arg-type]
    return screen


async def test_first_window_only_then_search_narrows_rows_and_count(demo_engine: Engine) -> None:
    with db.read_session(demo_engine) as session:
        matching = contractors.count(session, search="ada")
    assert 0 < matching < PAGE

    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_contractors(app, pilot)
        assert _table(screen).row_count == PAGE  # one window, not all 450
        assert _status(screen) == f"{DEMO_CONTRACTORS} contractors · showing {PAGE}"

        await pilot.press("slash", *"ada")
        await wait_until(pilot, lambda: screen.total is not None, what="the search")
        rows = table_rows(_table(screen))
        assert len(rows) == matching
        for external_id, name, email, uid, *_ in rows:
            assert any("ada" in value.lower() for value in (external_id, name, email, uid))
        assert _status(screen) == f"{matching} contractors match “ada” · showing {matching}"

        # Clearing the search brings the first window of everyone back.
        await pilot.press("backspace", "backspace", "backspace")
        await wait_until(pilot, lambda: screen.total == DEMO_CONTRACTORS, what="all again")
        await settle(pilot)
        assert _table(screen).row_count == PAGE


async def test_reaching_the_end_loads_the_next_windows_in_order(demo_engine: Engine) -> None:
    with db.read_session(demo_engine) as session:
        everyone = contractors.window(session, limit=10 * DEMO_CONTRACTORS)

    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_contractors(app, pilot)
        table = _table(screen)
        assert table.row_count == PAGE
        # By the cursor: onto the last row loaded (ctrl+end and G go to the real last one).
        table.move_cursor(row=table.row_count - 1)
        await wait_until(pilot, lambda: table.row_count == 2 * PAGE, what="window 2")
        # By scrolling (a mouse wheel does not move the cursor).
        table.scroll_end(animate=False, immediate=True)
        await wait_until(pilot, lambda: table.row_count == DEMO_CONTRACTORS, what="window 3")
        await settle(pilot)
        shown = [row[0] for row in table_rows(table)]
        assert shown == [row.external_id for row in everyone]  # in order, none twice
        assert _status(screen) == (f"{DEMO_CONTRACTORS} contractors · showing {DEMO_CONTRACTORS}")
        # The last window was short: nothing more is fetched.
        table.move_cursor(row=table.row_count - 1)
        await settle(pilot)
        assert table.row_count == DEMO_CONTRACTORS


async def test_the_table_stops_growing_at_its_cap(
    demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ContractorsScreen, "MAX_ROWS", 2 * PAGE)

    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_contractors(app, pilot)
        table = _table(screen)
        for _ in range(3):
            table.move_cursor(row=table.row_count - 1)  # the last row loaded
            await settle(pilot)
        assert table.row_count == 2 * PAGE
        assert _status(screen) == (
            f"{DEMO_CONTRACTORS} contractors · showing {2 * PAGE}"
            " (type to narrow the list for more)"
        )


async def test_answers_to_an_older_search_are_dropped(demo_engine: Engine) -> None:
    stale = ContractorRow(
        1, "X00001", "Stale Row", "s@x.example", "stale", date(2027, 1, 1), "active"
    )

    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_contractors(app, pilot)
        before = table_rows(_table(screen))
        old = screen.generation - 1
        screen.post_message(ContractorsScreen.WindowLoaded(old, "st", [stale], first=True))
        screen.post_message(ContractorsScreen.CountLoaded(old, "st", 1))
        await pilot.pause()
        assert table_rows(_table(screen)) == before
        assert _status(screen) == f"{DEMO_CONTRACTORS} contractors · showing {PAGE}"

        # A burst of typing that ends where it began: the last search (all) wins.
        await pilot.press("slash", "z", "z", "backspace", "backspace")
        await wait_until(pilot, lambda: screen.total is not None, what="the last search")
        await settle(pilot)
        assert screen.query_one("#contractor-search", Input).value == ""
        assert table_rows(_table(screen)) == before
        assert _status(screen) == f"{DEMO_CONTRACTORS} contractors · showing {PAGE}"


async def test_100k_contractors_open_and_search_in_windows(big_engine: Engine) -> None:
    """How fast (first rows, answer, event-loop stalls) is scripts/bench_tui's to measure."""
    app = GovtuiApp(Workspace(big_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await _open_contractors(app, pilot)
        assert _table(screen).row_count == PAGE
        assert _status(screen) == f"{BIG_CONTRACTORS:,} contractors · showing {PAGE}"

        await pilot.press("slash", *NEEDLE.lower())
        await wait_until(pilot, lambda: screen.total == NEEDLES, what="the search")
        rows = table_rows(_table(screen))
        assert len(rows) == NEEDLES
        assert all(row[1].endswith(NEEDLE) for row in rows)

        await pilot.press("escape", "ctrl+end")
        await wait_until(pilot, lambda: screen.total is not None)

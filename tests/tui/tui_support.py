"""Helpers for driving GovtuiApp with Textual's Pilot (no sleeps: wait for a condition)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from rich.text import Text
from sqlalchemy.engine import Engine
from textual.app import App
from textual.message import Message
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, OptionList, Select, Static
from textual.widgets._select import SelectOverlay
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState

from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.act_as import ActAsPrompt
from tests.factories import code

SIZE = (120, 40)
# Enough for three windows of the contractors table (200 + 200 + 50).
DEMO_CONTRACTORS = 450
BIG_CONTRACTORS = 100_000
# A surname that only the big dataset's needles carry, so a search for it has a known answer.
NEEDLE = "Quokka"
NEEDLE_EVERY = 2700
NEEDLES = 37

S = TypeVar("S", bound=Screen[Any])


async def wait_for_workers(pilot: Pilot[None]) -> None:
    """Wait for every worker of the app to finish, however it ends.

    `app.workers.wait_for_complete()` raises if one of them failed or was cancelled (an
    exclusive worker superseded by a newer one) or has not started yet; these tests expect
    all three."""
    for _ in range(1000):
        busy = [worker for worker in pilot.app.workers if not worker.is_finished]
        if not busy:
            return
        for worker in busy:
            if worker.state is not WorkerState.PENDING:
                with suppress(WorkerFailed, WorkerCancelled):
                    await worker.wait()
        await pilot.pause()
    raise AssertionError("workers kept running")


async def settle(pilot: Pilot[None]) -> None:
    """Wait until no worker runs and every message they posted has been handled (a handled
    message may start the next worker, hence the loop)."""
    for _ in range(50):
        await wait_for_workers(pilot)
        await pilot.pause()
        if all(worker.is_finished for worker in pilot.app.workers):
            return
    raise AssertionError("workers kept running")


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Let the app run until `condition()` holds (workers, timers and debounces included)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def text_of(static: Static | Widget) -> str:
    """The plain text a Static shows."""
    assert isinstance(static, Static)
    return str(static.visual)


def rendered_bold_red(static: Static, word: str) -> bool:
    """Whether `word` is drawn in bold red in the Static, as Textual renders it on screen."""
    for segment in static.render_line(0):
        if word in segment.text:
            style = segment.style
            assert style is not None and style.color is not None
            # ANSI red, or the true colour Textual blends it into over a tinted background.
            rgb = style.color.get_truecolor()
            red = rgb.red >= 128 and rgb.red > 2 * max(rgb.green, rgb.blue)
            return bool(style.bold) and red
    raise AssertionError(f"{word!r} is not drawn in {static.id}")


def cell_text(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def table_rows(table: DataTable[object]) -> list[list[str]]:
    """Every row of a DataTable as plain strings, in display order."""
    return [[cell_text(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def row_ids(table: DataTable[object]) -> list[int]:
    """The integer keys of a DataTable's rows (grant or request ids), in display order."""
    return [int(row.key.value or 0) for row in table.ordered_rows]


def screen_text(app: App[None]) -> str:
    """What the terminal shows right now, as plain text lines (notifications included)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def app_of(pilot: Pilot[None]) -> GovtuiApp:
    app = pilot.app
    assert isinstance(app, GovtuiApp)
    return app


def wrong_code(secret: str) -> str:
    """A code that none of the steps the server accepts now would match."""
    accepted = {code(secret, offset) for offset in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in accepted)


async def choose(pilot: Pilot[None], select: Select[str], value: str) -> None:
    """Pick `value` in a Select with the keyboard, as a person would."""
    select.focus()
    await pilot.pause()
    await pilot.press("enter")  # opens the menu
    await pilot.pause()
    overlay = select.query_one(SelectOverlay)
    for _ in range(50):
        index = overlay.highlighted
        if index is not None and select._options[index][1] == value:
            break
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()
    assert select.value == value, (select.value, value)


@asynccontextmanager
async def running(
    engine: Engine,
    operator: str,
    *,
    demo: bool = False,
    size: tuple[int, int] = SIZE,
    messages: list[Message] | None = None,
) -> AsyncIterator[tuple[GovtuiApp, Pilot[None]]]:
    """GovtuiApp over `engine`, acting as `operator`, run with Pilot and settled on its first
    screen; every message it handles lands in `messages` when given."""
    app = GovtuiApp(Workspace(engine, operator), demo=demo)
    hook = None if messages is None else messages.append
    async with app.run_test(size=size, message_hook=hook) as pilot:
        await settle(pilot)
        yield app, pilot


async def open_screen(pilot: Pilot[None], key: str, kind: type[S]) -> S:
    """Press `key`, wait for the screen of type `kind` it opens, let it load, return it."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind), what=kind.__name__)
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, kind), screen
    return screen


async def act_as(pilot: Pilot[None], name: str) -> ActAsPrompt:
    """In the demo, `w` and pick operator `name` in its list (Enter pressed; the prompt is
    returned for what it listed)."""
    await pilot.press("w")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ActAsPrompt), what="act as")
    prompt = pilot.app.screen
    assert isinstance(prompt, ActAsPrompt)
    options = prompt.query_one("#act-as-list", OptionList)
    options.highlighted = [o.id for o in options.options].index(name)
    await pilot.press("enter")
    return prompt

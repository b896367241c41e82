#!/usr/bin/env python3
"""The body of scripts/bench_tui (run that: it sets up the venv).

Builds the TUI tests' big roster (the demo data plus contractors imported in bulk up to
--contractors, tests/factories.py's big_roster), then drives the real app headless with Pilot:
open the contractors screen ("c") and search for a surname that --needles of them carry. Each
step is set against its floor measured in the same run on the same database: the same service
queries (the first window, then the count) in a read session, with no UI. App and floor
alternate which goes first in each of --rounds rounds; the medians are reported, with every
sample. The event loop's worst stall (how long the UI could not draw) is watched throughout.

Targets: first rows on screen at most 0.5 s after the key, and no stall over 0.1 s. Prints
PASS or MISS for each and exits 0 unless something is broken (a later issue makes them
binding and grows the data to a million grants). Not a test."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The checkout, for the builders and Pilot helpers the tests use: one copy of each.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import Engine
from textual.widgets import DataTable

from govtui import db, migrations
from govtui.services import contractors
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.contractors import ContractorsScreen
from tests import factories
from tests.tui.tui_support import DEMO_CONTRACTORS, NEEDLE, SIZE, settle

FIRST_ROWS_TARGET = 0.5  # seconds from the key to the first rows on screen
STALL_TARGET = 0.1  # seconds the event loop may be kept from running
STEP_TIMEOUT = 60.0


class LoopLag:
    """The longest stretch the event loop (the UI) was kept from running, while active."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - before - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _until(condition: Callable[[], bool], what: str) -> float:
    """Poll every 2 ms (the app runs in between) until `condition()`; when it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while not condition():
        if loop.time() > deadline:
            raise SystemExit(f"bench: no {what} within {STEP_TIMEOUT} s")
        await asyncio.sleep(0.002)
    return loop.time()


async def app_round(engine: Engine, actor: str, needles: int) -> dict[str, float]:
    """One run of the app: open the screen, then search; seconds of each, and the stall."""
    app = GovtuiApp(Workspace(engine, actor))
    loop = asyncio.get_running_loop()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with LoopLag() as lag:
            pressed = loop.time()
            await pilot.press("c")
            screen = app.screen
            if not isinstance(screen, ContractorsScreen):
                raise SystemExit(f"bench: 'c' opened {type(screen).__name__}")
            table = screen.query_one("#contractor-table", DataTable)
            first = await _until(lambda: table.row_count > 0, "first rows")
            counted = await _until(lambda: screen.total is not None, "count")
            await settle(pilot)
            await pilot.press("slash", *NEEDLE.lower())
            typed = loop.time()
            answered = await _until(lambda: screen.total == needles, "search answer")
            if table.row_count != needles:
                raise SystemExit(f"bench: the search shows {table.row_count} rows")
            await settle(pilot)
    return {
        "first_rows": first - pressed,
        "counted": counted - pressed,
        "answered": answered - typed,
        "stall": lag.worst,
    }


def floor_round(engine: Engine, needles: int) -> dict[str, float]:
    """The screen's own queries, straight on the database: first window, then the count."""
    out = {}
    for step, search in (("open", None), ("search", NEEDLE.lower())):
        start = time.perf_counter()
        with db.read_session(engine) as session:
            rows = contractors.window(session, search=search, limit=ContractorsScreen.PAGE)
            first = time.perf_counter()
            total = contractors.count(session, search=search)
        done = time.perf_counter()
        if search is not None and (total, len(rows)) != (needles, needles):
            raise SystemExit(f"bench: the floor's search found {total} ({len(rows)} rows)")
        out[f"{step}_first"], out[f"{step}_all"] = first - start, done - start
    return out


def _samples(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contractors", type=int, default=100_000)
    parser.add_argument("--needle-every", type=int, default=2700)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrations.upgrade(engine)
        started = time.perf_counter()
        needles = factories.big_roster(
            engine,
            total=args.contractors,
            demo_contractors=DEMO_CONTRACTORS,
            needle=NEEDLE,
            every=args.needle_every,
        )
        built = time.perf_counter() - started
        actor = "alex"  # the demo's admin
        apps: list[dict[str, float]] = []
        floors: list[dict[str, float]] = []
        for round_ in range(args.rounds):
            sides = ["floor", "app"] if round_ % 2 == 0 else ["app", "floor"]
            for side in sides:
                if side == "floor":
                    floors.append(floor_round(engine, needles))
                else:
                    apps.append(asyncio.run(app_round(engine, actor, needles)))
        engine.dispose()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    def col(rows: list[dict[str, float]], key: str) -> list[float]:
        return [r[key] for r in rows]

    debounce = ContractorsScreen.DEBOUNCE
    print(
        f"contractors screen, {args.contractors:,} contractors ({needles} carry {NEEDLE!r}), "
        f"{args.rounds} rounds, built in {built:.1f} s; medians, then every sample"
    )
    print(
        f"  open: first rows   app {med(apps, 'first_rows'):6.3f} s  "
        f"floor {med(floors, 'open_first'):6.3f} s  {_samples(col(apps, 'first_rows'))}"
    )
    print(
        f"  open: count known  app {med(apps, 'counted'):6.3f} s  "
        f"floor {med(floors, 'open_all'):6.3f} s  {_samples(col(apps, 'counted'))}"
    )
    print(
        f"  search answered    app {med(apps, 'answered'):6.3f} s  "
        f"floor {med(floors, 'search_all'):6.3f} s  {_samples(col(apps, 'answered'))}"
        f"  (the app waits {debounce} s of quiet typing first)"
    )
    worst = max(col(apps, "stall"))
    print(f"  worst event-loop stall {worst:.3f} s  {_samples(col(apps, 'stall'))}")
    first_rows = med(apps, "first_rows")
    print(
        f"  target: first rows at most {FIRST_ROWS_TARGET} s: "
        f"{verdict(first_rows, FIRST_ROWS_TARGET)} ({first_rows:.3f} s)"
    )
    print(
        f"  target: no stall over {STALL_TARGET} s: {verdict(worst, STALL_TARGET)} ({worst:.3f} s)"
    )


if __name__ == "__main__":
    main()

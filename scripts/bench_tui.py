#!/usr/bin/env python3
"""The body of scripts/bench_tui (run that: it sets up the venv).

Builds a vendor of 100,000 contractors and 1,000,000 grants (900,000 active, 50,000 requests
waiting for the approver the app acts as, 50,000 expired) with the shared bulk builder
(tests/factories.py), cached under ~/.cache/govtui/bench_tui/ keyed by this builder's version,
the sizes and the login (rebuilt after a day, when its soonest grants would start to expire;
upgraded in place when the schema has moved on), so a rerun starts in seconds; each run works
on a copy. Then it drives the real app headless with Pilot, acting as the approver, and times on
every screen (dashboard from the start, then b, c, g, a):

- first rows: from the key to the screen's table (or tree) showing rows, and to the load
  being over (no worker of the screen running, every message it posted handled);
- PageDown, End (to the real last row) and a sort (`o`), where the screen has them;
- a filter: a surname typed into the screen's contractor or search box, to every row shown
  matching it (the screen's debounce included).

Every step is found by widget ids and waited for on what the screen shows, not on internals,
so the benchmark keeps working as the screens change. Each step's floor is the service calls
the screen's workers made for it (recorded as the app ran), run again one after another
straight on the same database in the same run, with no UI. App and floor alternate which goes
first in each of --rounds rounds; the medians are reported, with every sample.

While each screen loads, a probe presses down/up every 50 ms and times each key to the screen
(the cursor moved; on a table with no rows yet, the key reached the widget): the worst is the
input-to-screen latency. The event loop's worst stall is watched throughout.

Targets: first rows at most 0.5 s on every screen, the dashboard loaded in at most 1 s, and a
key answered in at most 0.1 s while a screen loads. Prints PASS or MISS for each and exits 0
unless something is broken. Not a test."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

# The checkout, for the builders the tests use: one copy of each.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from rich.text import Text
from sqlalchemy.engine import Engine
from textual import events
from textual.app import App
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Tree
from textual.worker import NoActiveWorker, get_current_worker

from govtui import clock, db, migrations
from govtui.models import Grant
from govtui.services import grant_views
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from tests import factories

BUILDER_VERSION = 1  # raise when the data built changes: the cache is keyed by it
FIRST_ROWS_TARGET = 0.5  # seconds from the key to the first rows on screen
DASHBOARD_TARGET = 1.0  # seconds from the start to the dashboard loaded
KEY_TARGET = 0.1  # seconds from a key to the screen while a screen loads
STEP_TIMEOUT = 120.0
END_TIMEOUT = 45.0  # End on a table that cannot reach its last row loads windows until capped
GIVE_UP = 2.0  # seconds a settled screen may show no change before a step is "not reached"
PROBE_EVERY = 0.05
POLL = 0.003  # seconds between looks at the screen
SIZE = (120, 40)

CLIENTS = ("acme-ai", "helios", "kestrel", "orbital", "zephyr")
PROJECTS, SCOPES = 4, 5  # per client and per project: 100 scopes
SENSITIVITY = ("internal", "confidential", "internal", "restricted", "confidential")
APPROVER = "ann"  # approves for every client; the app acts as them
NEEDLE = "Quokka"  # a surname only every NEEDLE_EVERY-th contractor carries
NEEDLE_EVERY = 2700
CACHE = Path.home() / ".cache" / "govtui" / "bench_tui"
MAX_CACHE_AGE = timedelta(days=1)
ENDED_REASON = "bulk, ended"  # the soonest grant ends 2 days after the build


# -- the database -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    contractors: int
    grants: int
    requests: int
    ended: int

    @property
    def active(self) -> int:
        return self.grants - self.requests - self.ended


def _sizes_tag(sizes: Sizes) -> str:
    return (
        f"{sizes.contractors}c-{sizes.grants}g-{sizes.requests}r-{sizes.ended}e-"
        f"{getpass.getuser()}.sqlite"
    )


def cache_path(sizes: Sizes) -> Path:
    return CACHE / f"v{BUILDER_VERSION}-{_sizes_tag(sizes)}"


def build(path: Path, sizes: Sizes) -> None:
    """The vendor, in bulk: catalogue, the approver and the contractors through the services
    (factories.bulk_vendor), then the grants a scope at a time (factories.insert_grants)."""
    engine = db.make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    rng = random.Random(14)
    vendor = factories.bulk_vendor(
        engine,
        scopes=[
            factories.Scope(f"{c}/p{p}/s{s}", SENSITIVITY[s])
            for c in CLIENTS
            for p in range(PROJECTS)
            for s in range(SCOPES)
        ],
        contractors=sizes.contractors,
        ops=[factories.Op(APPROVER, ("approver",), CLIENTS)],
        target=None,  # no directory: the app's background sync has nothing to do
        external_id="B{i:06d}",
        name=factories.roster_names(random.Random(11), NEEDLE, NEEDLE_EVERY),
        email="b{i}@bulk.example",
        uid="bulk{i}",
    )
    scopes = vendor.scopes
    now = clock.now()
    for k, scope in enumerate(scopes):
        share = _share(sizes.active, len(scopes), k)
        wanted = factories.spread(rng, sizes.contractors, [scope], share)
        for j in range(10):  # ten expiries per scope, 2 to 151 days away
            vendor.grant(
                wanted[j::10],
                expires_in=timedelta(days=2 + (k * 37 + j * 11) % 150, hours=j),
                started=timedelta(days=1 + j),
            )
    with db.write_session(engine) as session:
        for k, scope in enumerate(scopes):
            # Requests (at "label", so no live grant clashes) and expired grants (at "write").
            requests = factories.spread(
                rng,
                sizes.contractors,
                [scope],
                _share(sizes.requests, len(scopes), k),
                (("label", 1),),
            )
            factories.insert_grants(
                session,
                requests,
                vendor.person_ids,
                starts_at=now - timedelta(hours=k),
                expires_at=now,
                requested_days=30,
                reason="bulk request",
                state="requested",
            )
            ended = factories.spread(
                rng,
                sizes.contractors,
                [scope],
                _share(sizes.ended, len(scopes), k),
                (("write", 1),),
            )
            factories.insert_grants(
                session,
                ended,
                vendor.person_ids,
                starts_at=now - timedelta(days=100),
                expires_at=now - timedelta(days=10 + k % 30),
                requested_days=90,
                reason=ENDED_REASON,  # inserted active, ended below
            )
        # As the services leave them: a request has no window yet; an expired grant ended.
        table = Grant.__table__  # type: ignore[attr-defined]
        session.execute(
            sa.update(table)
            .where(table.c.state == "requested")
            .values(starts_at=None, expires_at=None)
        )
        session.execute(
            sa.update(table)
            .where(table.c.reason == ENDED_REASON)
            .values(state="expired", ended_at=table.c.expires_at)
        )
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as connection:  # one file to copy
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _share(total: int, parts: int, k: int) -> int:
    return total // parts + (1 if k < total % parts else 0)


def _head(path: Path) -> Path:
    """The audit chain's checkpoint that govtui keeps beside a SQLite file: it moves with it."""
    return path.with_name(path.name + ".audit-head")


def _copy(source: Path, target: Path, *, move: bool = False) -> None:
    for a, b in ((source, target), (_head(source), _head(target))):
        if move:
            a.replace(b)
        else:
            shutil.copyfile(a, b)


def cached_database(sizes: Sizes, tmp: Path, rebuild: bool) -> tuple[Path, str]:
    """A copy of the cached database (built first if missing, stale or asked for)."""
    cached = cache_path(sizes)
    age = time.time() - cached.stat().st_mtime if cached.exists() else None
    fresh = age is not None and age < MAX_CACHE_AGE.total_seconds() and _head(cached).exists()
    how = f"cached {cached} ({(age or 0) / 60:.0f} min old)"
    if rebuild or not fresh:
        CACHE.mkdir(parents=True, exist_ok=True)
        for old in CACHE.glob(f"v*-{_sizes_tag(sizes)}*"):
            old.unlink()  # stale, or of an older builder or schema: hundreds of MB each
        building = tmp / "building.sqlite"
        started = time.perf_counter()
        build(building, sizes)
        _copy(building, cached, move=True)
        how = f"built in {time.perf_counter() - started:.0f} s into {cached}"
    else:
        engine = db.make_engine(f"sqlite:///{cached}")
        if migrations.current_version(engine) < migrations.LATEST:
            migrations.upgrade(engine)  # a newer schema since the build: upgraded once, kept
            how += f", upgraded to schema {migrations.LATEST}"
        engine.dispose()
    copy = tmp / "bench.sqlite"
    _copy(cached, copy)
    return copy, how


# -- recording the screens' service calls ---------------------------------------------------------


@dataclass
class Call:
    """One service read a screen's worker made, and when (perf_counter seconds)."""

    as_actor: bool
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    node: object
    started: float
    ended: float = float("inf")

    @property
    def name(self) -> str:
        module = getattr(self.fn, "__module__", "").rsplit(".", 1)[-1]
        return f"{module}.{getattr(self.fn, '__name__', '?')}"


class RecordingWorkspace(Workspace):
    """The app's workspace, noting every read made from a worker (the floors replay them)."""

    calls: ClassVar[list[Call]] = []

    def read(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._noted(False, fn, args, kwargs):
            return super().read(fn, *args, **kwargs)

    def read_as(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._noted(True, fn, args, kwargs):
            return super().read_as(fn, *args, **kwargs)

    @contextmanager
    def _noted(self, as_actor: bool, fn: Any, args: Any, kwargs: Any) -> Iterator[None]:
        try:
            node = get_current_worker().node
        except NoActiveWorker:
            node = None
        call = Call(as_actor, fn, args, kwargs, node, time.perf_counter())
        self.calls.append(call)
        try:
            yield
        finally:
            call.ended = time.perf_counter()


def replay(engine: Engine, calls: Sequence[Call]) -> list[float]:
    """The calls again, one after another, straight on the database; each one's seconds."""
    workspace = Workspace(engine, APPROVER)
    times = []
    for call in calls:
        run = workspace.read_as if call.as_actor else workspace.read
        started = time.perf_counter()
        run(call.fn, *call.args, **call.kwargs)
        times.append(time.perf_counter() - started)
    return times


@dataclass(frozen=True)
class Floor:
    """One step's floor: to shown, to settled, and by service function (seconds)."""

    shown: float | None
    settled: float | None
    by_call: dict[str, float]


def floor_of(engine: Engine, step: Step) -> Floor:
    if not step.calls_all:
        return Floor(None, None, {})
    times = replay(engine, step.calls_all)
    shown_ids = {id(c) for c in step.calls_shown}
    by_call: dict[str, float] = defaultdict(float)
    for call, seconds in zip(step.calls_all, times, strict=True):
        by_call[call.name] += seconds
    shown = sum(t for c, t in zip(step.calls_all, times, strict=True) if id(c) in shown_ids)
    return Floor(shown if step.calls_shown else None, sum(times), dict(by_call))


# -- watching the app ---------------------------------------------------------------------------


class LoopLag:
    """The longest stretch the event loop (the UI) was kept from running, while active."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.stopped = False
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while not self.stopped:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - before - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        # A flag as well as the cancel: Python 3.11's wait_for can swallow a cancellation.
        self.stopped = True
        assert self._task is not None
        self._task.cancel()


DISPATCHED: dict[int, int] = defaultdict(int)  # id of a Key event -> times dispatched


def message_hook(message: Message) -> None:
    if isinstance(message, events.Key):
        DISPATCHED[id(message)] += 1


def send_key(app: App[Any], key: str) -> events.Key:
    """A key as the terminal sends it (what Pilot.press does, without its waits for idle)."""
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    driver = app._driver
    assert driver is not None
    driver.send_message(event)
    return event


def cursor_of(widget: Widget | None) -> int | None:
    if isinstance(widget, DataTable):
        return widget.cursor_row
    if isinstance(widget, Tree):
        return widget.cursor_line
    return None


def lines_of(widget: Widget | None) -> int:
    if isinstance(widget, DataTable):
        return widget.row_count
    if isinstance(widget, Tree):
        return widget.last_line + 1
    return 0


class Prober:
    """Presses down and up in turn every PROBE_EVERY seconds; the worst key-to-screen time."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self.samples: list[float] = []
        self.stopped = False
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        down = True
        while not self.stopped:
            await asyncio.sleep(PROBE_EVERY)
            if self.stopped:
                break  # the load ended: a key now is not pressed while it runs
            widget = self.app.focused
            # A widget of the screen being left (the new one not focused yet) never moves:
            # the key goes to the screen that is active when it is handled.
            if widget is not None and widget.screen is not self.app.screen:
                widget = None
            before, lines = cursor_of(widget), lines_of(widget)
            moves = before is not None and (before < lines - 1 if down else before > 0)
            event = send_key(self.app, "down" if down else "up")
            sent = time.perf_counter()
            while time.perf_counter() - sent < STEP_TIMEOUT:
                if moves and (cursor_of(widget) != before or self.app.focused is not widget):
                    break
                if not moves and DISPATCHED.get(id(event), 0) >= 2:
                    break  # past the app to the widget: as far as a key on no rows goes
                await asyncio.sleep(POLL)
            await painted(widget if widget is not None else self.app.screen)
            # Kept when the load ended meanwhile: the key was pressed while it ran, and the
            # slowest keys are those that wait for its last work.
            self.samples.append(time.perf_counter() - sent)
            DISPATCHED.pop(id(event), None)
            if moves:
                down = not down

    def __enter__(self) -> Prober:
        self._task = asyncio.get_running_loop().create_task(self._probe())
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = True  # no new key; the one on its way is timed to the end (drain)

    async def drain(self) -> None:
        """Wait for the key pressed last to reach the screen."""
        assert self._task is not None
        try:
            await asyncio.wait_for(self._task, STEP_TIMEOUT)
        except TimeoutError:
            self._task.cancel()


async def painted(widget: Widget) -> None:
    """Once the screen has been repainted with what the widget shows now."""
    if widget.is_mounted:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(widget.wait_for_refresh(), STEP_TIMEOUT)


def busy(screen: Screen[Any]) -> bool:
    """Whether a worker of the screen runs or a message to it waits."""
    if any(w.node is screen and not w.is_finished for w in screen.app.workers):
        return True
    return screen._message_queue.qsize() > 0


def table_of(screen: Screen[Any]) -> Widget | None:
    """The screen's list: its first DataTable, or its Tree."""
    for kind in (DataTable, Tree):
        found = screen.query(kind)  # type: ignore[type-abstract]
        if found:
            return found.first()
    return None


def signature(widget: Widget | None) -> tuple[object, ...]:
    """What changes when a table shows other rows: its size, first and last row keys."""
    if not isinstance(widget, DataTable) or widget.row_count == 0:
        return (lines_of(widget),)
    first = widget.coordinate_to_cell_key(Coordinate(0, 0)).row_key.value
    last = widget.coordinate_to_cell_key(Coordinate(widget.row_count - 1, 0)).row_key.value
    return (widget.row_count, first, last)


def first_row(widget: Widget | None) -> object:
    """The table's first row object (a new one after the table is filled again)."""
    if not isinstance(widget, DataTable) or widget.row_count == 0:
        return None
    return widget.rows.get(widget.coordinate_to_cell_key(Coordinate(0, 0)).row_key)


class Reloaded:
    """Whether a table has been filled again: new row objects, or (should a screen update
    its cells in place) its screen was seen loading and is done."""

    def __init__(self, table: Widget | None) -> None:
        self.table, self.was, self.loading = table, first_row(table), False

    def __call__(self, screen: Screen[Any]) -> bool:
        if first_row(self.table) is not self.was:
            return True
        if busy(screen):
            self.loading = True
            return False
        return self.loading


def all_rows_match(widget: Widget | None, needle: str) -> bool:
    if not isinstance(widget, DataTable) or widget.row_count == 0:
        return False
    for index in range(widget.row_count):
        cells = widget.get_row_at(index)
        if not any(needle in (c.plain if isinstance(c, Text) else str(c)).lower() for c in cells):
            return False
    return True


@dataclass
class Step:
    """One measured step of one app round."""

    shown: float | None = None  # seconds to the visible answer (None: not reached)
    cpu: float | None = None  # CPU seconds the process (all its threads) used until then
    # Where the time to shown went: the first service call started (the screen is up and its
    # worker runs), the last call it waited for ended, the rows were in the widget.
    phases: tuple[float, float, float] | None = None
    settled: float | None = None  # seconds to the load being over
    calls_shown: list[Call] = field(default_factory=list)
    calls_all: list[Call] = field(default_factory=list)
    keys: list[float] = field(default_factory=list)  # the probes' key-to-screen seconds
    stall: float = 0.0
    note: str = ""
    last_key: object = None  # the table's last row key when the step ended


async def measure(
    app: App[Any],
    screen_of: Callable[[], Screen[Any] | None],
    start: Callable[[], Awaitable[None] | None],
    shown: Callable[[Screen[Any]], bool],
    *,
    probe: bool = False,
    started: float | None = None,
    first_call: int | None = None,
    timeout: float = STEP_TIMEOUT,
) -> Step:
    """Start the step, then wait for `shown` and for the screen to settle. `started`, and
    `first_call` (the calls recorded since): when the step began before this call."""
    if first_call is None:
        first_call = len(RecordingWorkspace.calls)
    with LoopLag() as lag, Prober(app) if probe else _nothing() as prober:
        t0 = time.perf_counter() if started is None else started
        cpu0 = time.process_time() if started is None else None
        begun = start()
        if begun is not None:
            await begun
        step = Step()
        rows_at = t0
        last_change, last_seen = time.perf_counter(), None
        tables: dict[int, Widget | None] = {}  # by screen: found once, not on every poll
        while time.perf_counter() - t0 < timeout:
            screen = screen_of()
            if screen is not None:
                table = tables.get(id(screen))
                if table is None:
                    table = table_of(screen)  # (None while the screen is still composing)
                    if table is not None:
                        tables[id(screen)] = table
                if step.shown is None and shown(screen):
                    rows_at = time.perf_counter()
                    # On screen: once the screen has been painted with it.
                    await painted(table or screen)
                    step.shown = time.perf_counter() - t0
                    step.cpu = None if cpu0 is None else time.process_time() - cpu0
                if step.shown is not None and not busy(screen):
                    step.settled = time.perf_counter() - t0
                    break
                now = time.perf_counter()
                seen = (signature(table), cursor_of(table), busy(screen))
                if seen != last_seen:
                    last_seen, last_change = seen, now
                elif step.shown is None and not seen[2] and now - last_change > GIVE_UP:
                    step.note = "not reached"
                    break
            await asyncio.sleep(POLL)
        else:
            step.note = f"not reached in {timeout:.0f} s"
        end = time.perf_counter()
    calls = [
        c
        for c in RecordingWorkspace.calls[first_call:]
        if isinstance(c.node, Screen) and c.ended <= end
    ]
    if step.shown is not None:
        step.calls_shown = [c for c in calls if c.ended <= rows_at]
        if step.calls_shown:
            first = min(c.started for c in step.calls_shown) - t0
            last = max(c.ended for c in step.calls_shown) - t0
            step.phases = (first, last, rows_at - t0)
    step.calls_all = calls
    if prober is not None:
        await prober.drain()
    step.stall = lag.worst
    step.keys = list(prober.samples) if prober is not None else []
    return step


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


SCREENS = ("browser", "contractors", "grants", "approvals")


def key_for(node: App[Any] | Screen[Any], wanted: Callable[[str], bool]) -> str | None:
    """The key bound (on the node, its base classes included) to an action `wanted` accepts:
    looked up, so the benchmark follows the key map when it changes."""
    for key, bindings in node._bindings.key_to_bindings.items():
        if any(wanted(binding.action) for binding in bindings):
            return key
    return None


def filter_box(screen: Screen[Any]) -> Input | None:
    """The screen's contractor or search box, if it has one."""
    for box in screen.query(Input):
        if box.id and ("contractor" in box.id or "search" in box.id):
            return box
    return None


class Progress(dict[str, Step]):
    """The steps of a round, each said on stderr as it ends (a round takes minutes)."""

    def __setitem__(self, name: str, step: Step) -> None:
        super().__setitem__(name, step)
        shown = "—" if step.shown is None else f"{step.shown:.3f} s"
        print(f"bench_tui: {name}: {shown} {step.note}", file=sys.stderr, flush=True)


def _in_mode(app: App[Any], mode: str) -> Callable[[], Screen[Any] | None]:
    return lambda: app.screen if app.current_mode == mode else None


def _press(app: App[Any], key: str) -> Callable[[], None]:
    def press() -> None:
        send_key(app, key)

    return press


def _rows_shown(screen: Screen[Any]) -> bool:
    return lines_of(table_of(screen)) > 0


async def app_round(engine: Engine) -> dict[str, Step]:
    """One run of the app over every screen; each step's timings."""
    RecordingWorkspace.calls = []
    # As `govtui` starts it: with doctor's checks of the install in the background.
    app = GovtuiApp(RecordingWorkspace(engine, APPROVER), doctor=True)
    steps: dict[str, Step] = Progress()
    opened = time.perf_counter()
    async with app.run_test(size=SIZE, message_hook=message_hook):
        dashboard = _in_mode(app, "dashboard")
        steps["dashboard: loaded at start"] = await measure(
            app, dashboard, lambda: None, _rows_shown, probe=True, started=opened, first_call=0
        )
        screen = app.screen
        table = table_of(screen)
        await _settle(screen, table)
        reload = key_for(screen, lambda action: action == "reload") or "r"
        steps[f"dashboard: {reload} (reload)"] = await measure(
            app, dashboard, _press(app, reload), Reloaded(table), probe=True
        )
        await _settle(screen, table)
        for mode in SCREENS:
            key = key_for(app, lambda action, mode=mode: action == f"show({mode!r})")
            if key is None:
                raise SystemExit(f"bench: no key shows the {mode} screen")
            steps[f"{mode}: first rows"] = await measure(
                app, _in_mode(app, mode), _press(app, key), _rows_shown, probe=True
            )
            screen = app.screen
            table = table_of(screen)
            if isinstance(table, DataTable):
                await _settle(screen, table)
                await table_steps(app, mode, screen, table, steps)
        app.exit()
    return steps


async def table_steps(
    app: App[Any], mode: str, screen: Screen[Any], table: DataTable[Any], steps: dict[str, Step]
) -> None:
    """PageDown, End, a sort and a filter on a screen's table, as far as the screen has them."""
    where = _in_mode(app, mode)
    before = table.cursor_row
    steps[f"{mode}: PageDown"] = await measure(
        app, where, _press(app, "pagedown"), lambda s: table.cursor_row > before
    )
    await _settle(screen, table)

    was = signature(table)
    step = steps[f"{mode}: End"] = await measure(
        app,
        where,
        _press(app, "end"),
        lambda s: signature(table) != was and table.cursor_row == table.row_count - 1,
        timeout=END_TIMEOUT,
    )
    step.last_key = signature(table)[-1]
    await _settle(screen, table)

    sort = key_for(screen, lambda action: "sort" in action)
    if sort is not None:
        was = signature(table)
        steps[f"{mode}: sort ({sort})"] = await measure(
            app, where, _press(app, sort), lambda s: signature(table) != was and table.row_count > 0
        )
        await _settle(screen, table)

    box = filter_box(screen)
    if box is not None:
        needle = NEEDLE.lower()
        box.focus()
        await asyncio.sleep(0.05)
        for char in needle[:-1]:
            send_key(app, char)
            await asyncio.sleep(0.03)  # typing, not a paste
        was = signature(table)
        steps[f"{mode}: filter {needle!r}"] = await measure(
            app,
            where,
            _press(app, needle[-1]),
            lambda s: signature(table) != was and all_rows_match(table, needle),
        )
        await _settle(screen, table)


async def _settle(screen: Screen[Any], table: Widget | None) -> None:
    """Let the screen finish its work (its workers, then what it does on the UI thread, such
    as a table measuring its new rows), and give the table the focus back: the next step
    times its own key, not what is left of this one."""
    deadline = time.perf_counter() + STEP_TIMEOUT
    while busy(screen) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    if table is not None:
        table.focus()
    while time.perf_counter() < deadline:  # idle: under 10% of a CPU over 0.2 s
        cpu = time.process_time()
        await asyncio.sleep(0.2)
        if time.process_time() - cpu < 0.02:
            break


# -- the report -----------------------------------------------------------------------------------


def _samples(values: Sequence[float | None]) -> str:
    return "(" + ", ".join("—" if v is None else f"{v:.3f}" for v in values) + ")"


def _median(values: Sequence[float | None]) -> float | None:
    """The median, if every round has a value."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else None


def _s(value: float | None) -> str:
    return "     —" if value is None else f"{value:6.3f}"


def verdict(value: float | None, target: float) -> str:
    return "PASS" if value is not None and value <= target else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contractors", type=int, default=100_000)
    parser.add_argument("--grants", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--ended", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="build the database anew")
    args = parser.parse_args()
    sizes = Sizes(args.contractors, args.grants, args.requests, args.ended)
    apps: list[dict[str, Step]] = []
    floors: list[dict[str, Floor]] = []
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        path, how = cached_database(sizes, Path(tmp), args.rebuild)
        engine = db.make_engine(f"sqlite:///{path}")
        migrations.upgrade(engine)
        with db.read_session(engine) as session:
            last_grant = grant_views.window(session, from_end=True, limit=1)[0].id

        def floors_of(steps: dict[str, Step]) -> dict[str, Floor]:
            return {name: floor_of(engine, step) for name, step in steps.items()}

        for round_ in range(args.rounds):
            # The floor replays a round's calls: after it in even rounds, before the next
            # round's app in odd ones (so neither side always runs on a warm cache).
            if round_ % 2 == 1:
                floors.append(floors_of(apps[-1]))
            apps.append(asyncio.run(app_round(engine)))
            if round_ % 2 == 0:
                floors.append(floors_of(apps[-1]))
        engine.dispose()

    print(
        f"bench_tui: {sizes.contractors:,} contractors, {sizes.grants:,} grants "
        f"({sizes.active:,} active, {sizes.requests:,} requests for {APPROVER}, "
        f"{sizes.ended:,} expired), acting as {APPROVER}; database {how}"
    )
    print(f"load average {load_before} before, {_load()} after; {os.cpu_count()} CPUs")
    report(args.rounds, apps, floors, last_grant)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def report(
    rounds: int,
    apps: list[dict[str, Step]],
    floors: list[dict[str, Floor]],
    last_grant: int,
) -> None:
    print(
        f"{rounds} rounds, app and floor alternating; medians in seconds, then the app's every "
        "sample. shown: the answer on screen (painted); floor: the service calls the screen "
        "made for the step, run again one after another straight on the database (no "
        "debounce); cpu: the app process's CPU seconds until shown (all threads: what a busy "
        "machine does not inflate); settled: the screen's load over (its workers done)"
    )
    names = list(dict.fromkeys(name for a in apps for name in a))
    print(
        f"  {'step':<30} {'shown':>6} {'floor':>6} {'ratio':>6} {'cpu':>6} {'settled':>7} "
        f"{'floor':>6}  shown in each round"
    )
    for name in names:
        steps = [a.get(name, Step(note="missing")) for a in apps]
        shown = _median([s.shown for s in steps])
        settled = _median([s.settled for s in steps])
        none = Floor(None, None, {})
        floor_shown = _median([f.get(name, none).shown for f in floors])
        floor_all = _median([f.get(name, none).settled for f in floors])
        ratio = f"{shown / floor_shown:5.1f}x" if shown and floor_shown else "     —"
        notes = sorted({s.note for s in steps if s.note})
        print(
            f"  {name:<30} {_s(shown)} {_s(floor_shown)} {ratio} "
            f"{_s(_median([s.cpu for s in steps]))} {_s(settled):>7} "
            f"{_s(floor_all)}  {_samples([s.shown for s in steps])}"
            + (f"  [{'; '.join(notes)}]" if notes else "")
        )
        called = sorted({c for f in floors for c in f.get(name, none).by_call})
        if called:
            each = [
                f"{c} {statistics.median(f.get(name, none).by_call.get(c, 0.0) for f in floors):.3f}"
                for c in called
            ]
            print(f"  {'':<30} floor by call: {', '.join(each)}")
    print("where the time to shown went (medians): key to the first service call started (the")
    print("screen built and its worker running), to the last call it waited for ended, to the rows")
    print("in the widget, to the screen painted")
    for name in names:
        steps = [a.get(name, Step()) for a in apps]
        phases = [s.phases for s in steps if s.phases is not None]
        if len(phases) == len(steps) and phases:
            first, last, rows = (statistics.median(p[i] for p in phases) for i in range(3))
            painted_at = _median([s.shown for s in steps])
            print(
                f"  {name:<30} call {first:6.3f}  answered {last:6.3f}  in widget {rows:6.3f}  "
                f"painted {_s(painted_at).strip()}"
            )
    ends = [str(a["grants: End"].last_key) for a in apps if "grants: End" in a]
    if ends:
        real = "the list's real last row" if set(ends) == {str(last_grant)} else "NOT the last"
        print(f"  grants: End showed #{', #'.join(ends)} last: {real} (#{last_grant})")

    print("while each screen loads: worst key to screen (probes), worst event-loop stall")
    probed = [n for n in names if any(a.get(n, Step()).keys for a in apps)]
    for name in probed:
        steps = [a.get(name, Step()) for a in apps]
        keys = [max(s.keys) if s.keys else None for s in steps]
        count = sum(len(s.keys) for s in steps)
        worst = max((k for k in keys if k is not None), default=None)
        print(
            f"  {name:<30} key {_s(worst)} s over {count:3} keys {_samples(keys)}  "
            f"stall {max(s.stall for s in steps):.3f} s"
        )

    print("targets:")

    def target(what: str, value: float | None, limit: float) -> None:
        shown = "never" if value is None else f"{value:.3f} s"
        print(f"  {what:<48} {verdict(value, limit)} ({shown})")

    for name in names:
        steps = [a.get(name, Step()) for a in apps]
        if name.startswith("dashboard") and name.endswith("(reload)"):
            target(
                f"dashboard data at most {DASHBOARD_TARGET} s (r)",
                _median([s.shown for s in steps]),
                DASHBOARD_TARGET,
            )
        elif name.endswith("first rows"):
            target(
                f"{name} at most {FIRST_ROWS_TARGET} s",
                _median([s.shown for s in steps]),
                FIRST_ROWS_TARGET,
            )
    for name in probed:
        worst = max((k for a in apps for k in a.get(name, Step()).keys), default=None)
        what = name.replace("first rows", "loading").replace("loaded at", "loading at")
        target(f"keys at most {KEY_TARGET} s, {what}", worst, KEY_TARGET)


if __name__ == "__main__":
    main()

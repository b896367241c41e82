"""The approvals screen on a queue bigger than a window: counts over the whole filter, End
reaching the real last request, ctrl+a marking the whole filter as of now without loading its
rows, the batch approving exactly what was marked (a request made after is left waiting), deny
on x; the footer fits; a non-approver is told so and for which clients requests wait."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from textual.widgets import DataTable, Input, Select, Static

from govtui import clock, db
from govtui.models import Grant
from govtui.services import catalog, grant_views, grants, operators
from govtui.tui.footer import MORE_KEYS, GovtuiFooter
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.dashboard import DashboardScreen
from tests.factories import ADMIN, Op, Scope, World, build_world, import_contractors
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import (
    choose,
    open_screen,
    running,
    screen_text,
    settle,
    text_of,
    wait_until,
)

PEOPLE, SCOPES = 300, 10  # 3,000 bulk requests on acme: fifteen windows of 200
BETA = 5  # requests on beta, made through the services
DASH = "\N{EN DASH}"


def _vendor(engine: Engine) -> World:
    world = build_world(
        engine,
        scopes=[*(Scope(f"acme/p/s{s}") for s in range(SCOPES)), Scope("beta/p/s")],
        ops=[Op("ann", ("approver",), ("acme", "beta"), enrol=True)],
    )
    with db.write_session(engine) as session:
        people = import_contractors(session, operators.find(session, ADMIN), PEOPLE)
        scopes = [s for s in catalog.list_scopes(session) if s.client == "acme"]
    now = clock.now()
    rows = [
        {
            "contractor_id": people[p],
            "scope_id": scope.id,
            "access": "read",
            "state": "requested",
            "reason": "bulk",
            "requested_by": 1,
            "requested_days": 30,
            "requested_at": now - timedelta(hours=1),
        }
        for scope in scopes
        for p in range(PEOPLE)
    ]
    with db.write_session(engine) as session:
        session.execute(sa.insert(Grant.__table__), rows)  # type: ignore[attr-defined]
    for p in range(BETA):
        _request_beta(world, p)
    return world


def _request_beta(world: World, person: int) -> int:
    with db.write_session(world.engine) as session:
        grant = grants.request(
            session,
            operators.find(session, ADMIN),
            contractor=f"X{person:05d}",
            scope_path="beta/p/s",
            access="read",
            days=10,
            reason="beta batch",
        )
        return db.ident(grant)


def _status(screen: ApprovalsScreen) -> str:
    return text_of(screen.query_one("#approval-status", Static))


def _state(engine: Engine, grant_id: int) -> str:
    with db.read_session(engine) as session:
        grant = session.get(Grant, grant_id)
        assert grant is not None
        return grant.state


async def test_a_big_queue_is_windowed_and_a_mark_of_the_filter_is_as_of_now(
    sqlite_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    vendor = _vendor(sqlite_engine)
    total = PEOPLE * SCOPES + BETA
    with db.read_session(sqlite_engine) as session:
        ann = operators.find(session, "ann")
        last = grant_views.queue_window(session, ann, from_end=True, limit=1)[0].id

    async with running(vendor.engine, "ann") as (app, pilot):
        screen = await open_screen(pilot, "a", ApprovalsScreen)
        await wait_until(pilot, lambda: f"showing 1{DASH}200" in _status(screen), what="rows")
        await wait_until(pilot, lambda: "counting" not in _status(screen), what="counts")
        assert _status(screen).startswith(
            f"{total:,} wait for your decision · showing 1{DASH}200 · by expiry, soonest first"
        )
        # End: the real last request (of 3,005), not the end of the 200 loaded; Home: back.
        await pilot.press("end")
        await wait_until(pilot, lambda: screen._cursor_id() == last, what="the last row")
        assert f"showing {total - 199:,}{DASH}{total:,}" in _status(screen)
        await pilot.press("home")
        await wait_until(pilot, lambda: f"showing 1{DASH}200" in _status(screen), what="top")

        # ctrl+a marks the whole filter in SQL terms: no row more is loaded for it.
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: screen.mark is not None, what="the mark")
        assert screen.mark is not None and screen.mark.marked == total
        assert len(screen.rows) == 200
        assert f"{total:,} marked (all of the filter as of" in _status(screen)
        table = screen.query_one("#approval-table", DataTable)
        assert str(table.get_row_at(0)[0]) == "✓"
        await pilot.press("space")  # leaves one out
        assert screen.mark.marked == total - 1 and str(table.get_row_at(0)[0]) == ""

        # A filter of its own: the old mark ends; marked again, then a request comes in.
        await choose(pilot, screen.query_one("#approval-client", Select), "beta")
        await wait_until(pilot, lambda: "(client beta)" in _status(screen), what="filter")
        await wait_until(pilot, lambda: len(screen.rows) == BETA, what="beta's rows")
        assert screen.mark is None
        await pilot.press("ctrl+a")
        await wait_until(pilot, lambda: screen.mark is not None, what="beta's mark")
        marked = set(screen.rows)
        later = _request_beta(vendor, BETA)
        await pilot.press("escape")  # from the filters back to the table
        assert app.focused is screen.query_one("#approval-table")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TotpPrompt), what="the prompt")
        prompt = app.screen
        assert f"Approve {BETA} requests as ann" in screen_text(app)
        await pilot.press(*vendor.code("ann"), "enter")
        await wait_until(pilot, lambda: app.screen is screen, what="the prompt to close")
        assert prompt is not screen
        assert {_state(sqlite_engine, g) for g in marked} == {"active"}
        assert _state(sqlite_engine, later) == "requested"
        await wait_until(pilot, lambda: set(screen.rows) == {later}, what="what is left")

        # Deny is on x (d is the dashboard everywhere).
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ReasonPrompt), what="deny")
        await pilot.press(*"late", "enter")
        await wait_until(pilot, lambda: _state(sqlite_engine, later) == "denied", what="denial")


async def test_the_footer_fits_and_d_is_the_dashboard(world: World) -> None:
    world.request()
    async with running(world.engine, "ann", size=(160, 40)) as (app, pilot):
        screen = await open_screen(pilot, "a", ApprovalsScreen)
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="the queue")
        footer = screen.query_one(GovtuiFooter)
        keys, _palette = footer.keys()
        # The screen's own keys whole on the one line, before the global ones are cut.
        drawn = footer.render().plain
        assert len(drawn) <= 160
        for key in keys:
            if key.description in {"Mark", "Mark all", "Approve", "Deny", "Dashboard"}:
                assert f" {key.display} {key.description} " in drawn
        assert drawn.rstrip().endswith(f"? {MORE_KEYS}")
        await pilot.press("space", "d")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)  # never "Deny 1 request?"


async def test_a_non_approver_is_told_so_and_for_which_clients(world: World) -> None:
    world.request(scope="acme/rlhf/pairs")
    world.request(scope="other/p/s")
    async with running(world.engine, "req") as (app, pilot):  # a requester, approving nothing
        screen = await open_screen(pilot, "a", ApprovalsScreen)
        await wait_until(pilot, lambda: "approver" in _status(screen), what="the status")
        assert _status(screen) == "You are not an approver: no request waits on any client."
    # root: not an approver, and requests (not theirs) wait on both clients.
    async with running(world.engine, ADMIN) as (app, pilot):
        screen = await open_screen(pilot, "a", ApprovalsScreen)
        await wait_until(pilot, lambda: "approver" in _status(screen), what="the status")
        assert _status(screen) == (
            "You are not an approver: requests wait on acme (1), other (1); an admin can "
            "make you an approver for them (operator approves add)."
        )
        assert "press e to enrol" not in screen_text(app)
        screen.query_one("#approval-contractor", Input)  # the filters are there still

"""The grants screen: filters narrow the list in SQL, soon-ending grants and paused clients stand
out, Enter shows the history, x revokes after a confirmation (no code), and the background
expiry ends grants while the app is open and the screens refresh."""

from __future__ import annotations

from typing import Any

import pytest
from rich.style import Style
from rich.text import Text
from sqlmodel import select
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import DataTable, Input, Select, Static

from govtui import db
from govtui.models import AuditEvent
from govtui.services import catalog, grant_views, operators
from govtui.services import grants as grant_service
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.confirm_revoke import ConfirmRevoke
from govtui.tui.modals.grant_detail import GrantDetailModal
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.grants import GrantsScreen
from tests.conftest import FakeClock
from tests.factories import World
from tests.tui.tui_support import SIZE, choose, settle, table_rows, text_of, wait_until

STATE, EXPIRES, SCOPE = 1, 2, 5  # columns of the grants table (state and expiry first)
DASH = "\N{EN DASH}"  # showing 1-200


class Grants:
    """The grants of the scenario, by what they are."""

    def __init__(self, world: World) -> None:
        self.long = world.request("E1", "acme/rlhf/pairs")  # active, 10 days
        self.soon = world.request("E2", "acme/rlhf/pairs")  # active, ends with E2's contract
        self.gone = world.request("E2", "acme/rlhf/notes")  # revoked
        world.approve(self.long, self.soon, self.gone)
        with db.write_session(world.engine) as session:
            root = operators.find(session, "root")
            grant_service.revoke(session, root, grant_id=self.gone, reason="done")
        self.asked = world.request("E1", "acme/rlhf/notes", access="label")  # requested
        self.paused = world.request("E1", "other/p/s")  # requested, on a client then paused
        with db.write_session(world.engine) as session:
            client = catalog.find_client(session, "other")
            client.status = "paused"  # as `client pause` leaves it (no active grant there)
            session.add(client)


def _ids(screen: GrantsScreen) -> list[int]:
    table = screen.query_one("#grant-table", DataTable)
    return [int(row.key.value or 0) for row in table.ordered_rows]


def _expected(world: World, **filters: Any) -> list[int]:
    """The grants the filter holds, in the screen's default order (soonest expiry first)."""
    with db.read_session(world.engine) as session:
        query = grant_views.GrantQuery(**filters)
        return [row.id for row in grant_views.window(session, query, limit=10_000)]


def _row(screen: GrantsScreen, grant_id: int) -> list[object]:
    return screen.query_one("#grant-table", DataTable).get_row(str(grant_id))


def _style(cell: object) -> Style:
    assert isinstance(cell, Text)
    return Style.parse(str(cell.style)) if cell.style else Style()


def _notes(messages: list[Message]) -> list[str]:
    return list(dict.fromkeys(m.notification.message for m in messages if isinstance(m, Notify)))


async def _open_grants(app: GovtuiApp, pilot: object) -> GrantsScreen:
    await settle(pilot)  # type: ignore[arg-type]
    await pilot.press("t")  # type: ignore[attr-defined]
    screen = app.screen
    assert isinstance(screen, GrantsScreen)
    await settle(pilot)  # type: ignore[arg-type]
    assert screen.loaded
    return screen


async def test_filters_narrow_the_list_like_the_service_does(world: World) -> None:
    grants = Grants(world)

    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_grants(app, pilot)
        everything = _expected(world)
        assert len(everything) == 5
        assert _ids(screen) == everything  # soonest expiry first, requests last
        assert everything[0] == grants.soon and everything[-2:] == [grants.asked, grants.paused]
        status = screen.query_one("#grant-status", Static)
        assert text_of(status) == (
            f"5 grants · showing 1{DASH}5 · by expiry, soonest first · 1 expire within 7 days"
        )

        # Soon-ending grants stand out; paused clients' rows are marked.
        soon = _row(screen, grants.soon)
        assert str(soon[EXPIRES]).endswith("(expires in 4d)")
        assert _style(soon[EXPIRES]) == Style.parse("bold yellow")
        assert not _style(_row(screen, grants.long)[EXPIRES]).bold
        assert str(_row(screen, grants.long)[EXPIRES]).endswith("(expires in 10d)")
        assert str(_row(screen, grants.paused)[SCOPE]) == "other/p/s (client paused)"
        assert str(_row(screen, grants.long)[SCOPE]) == "acme/rlhf/pairs"

        # State.
        await choose(pilot, screen.query_one("#filter-state", Select), "active")
        await settle(pilot)
        assert _ids(screen) == _expected(world, state="active") == [grants.soon, grants.long]
        assert text_of(status).startswith(f"2 grants (active) · showing 1{DASH}2")

        # Expiring within 7 days (typed: the query waits for a pause in the typing).
        screen.query_one("#filter-expiring", Input).focus()
        await pilot.press("7")
        await wait_until(pilot, lambda: _ids(screen) == [grants.soon], what="expiring")
        await settle(pilot)
        assert _ids(screen) == _expected(world, state="active", expiring_within=7)
        assert text_of(status).startswith(
            f"1 grant (active, expiring within 7d) · showing 1{DASH}1"
        )

        # Clear both; then a client, then a contractor.
        screen.query_one("#filter-state", Select).clear()
        screen.query_one("#filter-expiring", Input).value = ""
        await wait_until(pilot, lambda: len(_ids(screen)) == 5, what="all again")
        await choose(pilot, screen.query_one("#filter-client", Select), "other")
        await settle(pilot)
        assert _ids(screen) == _expected(world, client="other") == [grants.paused]
        screen.query_one("#filter-client", Select).clear()
        screen.query_one("#filter-contractor", Input).value = "E2"
        await wait_until(pilot, lambda: len(_ids(screen)) == 2, what="contractor E2")
        assert _ids(screen) == _expected(world, contractor="E2") == [grants.soon, grants.gone]

        # The contractors screen's search: part of a name finds them (Bo is E2), and a
        # contractor nobody matches is no grants, not an error on every keystroke.
        screen.query_one("#filter-contractor", Input).value = "bo"
        await settle(pilot)
        assert _ids(screen) == [grants.soon, grants.gone]
        assert "contractors matching “bo”" in text_of(status)
        screen.query_one("#filter-contractor", Input).value = "Gita"
        await wait_until(pilot, lambda: _ids(screen) == [], what="no match")
        await settle(pilot)
        assert screen.refused is None
        assert text_of(status).startswith("0 grants (contractors matching “Gita”) · showing none")


async def test_windows_are_fetched_near_the_end_and_a_refresh_keeps_them(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    Grants(world)
    monkeypatch.setattr(GrantsScreen, "PAGE", 2)
    monkeypatch.setattr(GrantsScreen, "LOOKAHEAD", 1)  # fetch on reaching the last row

    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_grants(app, pilot)
        everything = _expected(world)
        assert _ids(screen) == everything[:2]  # one window, not the table
        status = screen.query_one("#grant-status", Static)
        # The count is of the whole list, not of the window.
        assert text_of(status).startswith(f"5 grants · showing 1{DASH}2 ·")
        await pilot.press("j")  # like down: onto the last row loaded, which fetches more
        await settle(pilot)
        assert _ids(screen) == everything[:4]
        await pilot.press("down", "down")
        await settle(pilot)
        assert _ids(screen) == everything  # in order, none twice; the last window was short
        assert text_of(status).startswith(f"5 grants · showing 1{DASH}5 ·")
        # A refresh asks for as many rows as are shown, and keeps the cursor's grant.
        await pilot.press("G")  # the last row; nothing more to fetch
        await pilot.press("r")
        await settle(pilot)
        assert _ids(screen) == everything
        table = screen.query_one("#grant-table", DataTable)
        assert table.cursor_row == 4


@pytest.mark.parametrize("key", ["end", "ctrl+end", "G"])
async def test_end_goes_to_the_real_last_row_and_home_back(
    world: World, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """On a list bigger than a window, End (ctrl+End, G) shows the list's last rows, read
    from the end; k/up at their top reads the rows before; g (Home) goes back to the first."""
    Grants(world)
    monkeypatch.setattr(GrantsScreen, "PAGE", 2)
    monkeypatch.setattr(GrantsScreen, "LOOKAHEAD", 1)

    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_grants(app, pilot)
        everything = _expected(world)
        table = screen.query_one("#grant-table", DataTable)
        status = screen.query_one("#grant-status", Static)
        await pilot.press(key)
        await settle(pilot)
        # The last window of the list (not of the rows loaded), the cursor on the last row.
        assert _ids(screen) == everything[-2:]
        assert screen._cursor_id() == everything[-1]
        assert text_of(status).startswith(f"5 grants · showing 4{DASH}5 ·")
        # Up to the top of it: the rows before are read, the cursor stays on its grant.
        await pilot.press("k")
        await settle(pilot)
        assert _ids(screen) == everything[-4:]
        assert screen._cursor_id() == everything[-2]
        assert text_of(status).startswith(f"5 grants · showing 2{DASH}5 ·")
        await pilot.press("g")
        await settle(pilot)
        assert _ids(screen) == everything[:2]
        assert table.cursor_row == 0
        assert text_of(status).startswith(f"5 grants · showing 1{DASH}2 ·")
        await pilot.press("home")  # at the first row already: it stays
        await settle(pilot)
        assert table.cursor_row == 0 and _ids(screen) == everything[:2]


async def test_sorting_by_key_and_by_header_keeps_paging_by_keyset(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants = Grants(world)
    monkeypatch.setattr(GrantsScreen, "PAGE", 2)
    monkeypatch.setattr(GrantsScreen, "LOOKAHEAD", 1)

    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_grants(app, pilot)
        status = screen.query_one("#grant-status", Static)
        assert screen.sort == "expires"
        assert _ids(screen)[0] == grants.soon
        await pilot.press("o")  # the next order: newest first
        await settle(pilot)
        assert screen.sort == "newest"
        assert "by newest first" in text_of(status)
        with db.read_session(world.engine) as session:
            newest = [r.id for r in grant_views.window(session, sort="newest", limit=99)]
        assert _ids(screen) == newest[:2]
        await pilot.press("G")
        await settle(pilot)
        assert _ids(screen) == newest[-2:]
        # A header click: by state (then id); the header says which column sorts.
        await pilot.click("#grant-table", offset=(_header_x(screen, "State"), 0))
        await settle(pilot)
        assert screen.sort == "state"
        with db.read_session(world.engine) as session:
            by_state = [r.id for r in grant_views.window(session, sort="state", limit=99)]
        assert _ids(screen) == by_state[:2]
        await pilot.press("down", "down", "down")
        await settle(pilot)
        assert _ids(screen) == by_state
        table = screen.query_one("#grant-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "State ▲" in labels and "Expires (UTC)" in labels
        # A column that does not sort says so.
        await pilot.click("#grant-table", offset=(_header_x(screen, "Access"), 0))
        await settle(pilot)
        assert screen.sort == "state"


def _header_x(screen: GrantsScreen, name: str) -> int:
    table = screen.query_one("#grant-table", DataTable)
    x = 0
    for key, column in table.columns.items():
        if key.value == name:
            return x + 1
        x += column.get_render_width(table)
    raise AssertionError(name)


async def test_revoke_shows_what_ends_cancel_keeps_it_confirm_ends_it(world: World) -> None:
    grants = Grants(world)

    messages: list[Message] = []
    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await _open_grants(app, pilot)
        table = screen.query_one("#grant-table", DataTable)
        for _ in range(_ids(screen).index(grants.long)):
            await pilot.press("down")
        await pilot.press("x")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmRevoke)  # not a TOTP prompt: no code to remove
        shown = text_of(dialog.query_one("#reason-details", Static))
        for line in (
            "This ends at once:",
            f"Grant        #{grants.long}",
            "Contractor   E1 (Ada)",
            "Scope        acme/rlhf/pairs  confidential",
            "Access       read",
            "State        active",
            "Expires      2026-03-12 09:00 (expires in 10d)",
            "E1 loses read access to acme/rlhf/pairs now. The grant keeps its history.",
        ):
            assert line in shown, line

        # Cancel: nothing happens.
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen
        assert world.grant(grants.long).state == "active"

        # A reason is required: Enter on an empty box does nothing.
        await pilot.press("delete")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmRevoke)
        await pilot.press("enter")
        assert app.screen is dialog
        await pilot.press(*"left", "space", *"the", "space", *"project", "enter")
        await settle(pilot)
        assert app.screen is screen
        grant = world.grant(grants.long)
        assert (grant.state, grant.end_reason) == ("revoked", "left the project")
        assert str(_row(screen, grants.long)[STATE]) == "revoked"
        assert f"Grant #{grants.long} revoked: E1 no longer has read on acme/rlhf/pairs" in _notes(
            messages
        )
        assert table.cursor_row == _ids(screen).index(grants.long)  # the cursor stayed

        # Revoking it again: nothing to revoke, no dialog.
        await pilot.press("x")
        await settle(pilot)
        assert app.screen is screen
        assert f"Grant #{grants.long} is revoked already: nothing to revoke." in _notes(messages)

        # Enter shows its history.
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen
        assert isinstance(detail, GrantDetailModal)
        history = table_rows(detail.query_one("#detail-history", DataTable))
        assert [row[1] for row in history] == ["requested", "approved", "active", "revoked"]
        assert history[1][2] == "ann" and history[3][2] == "req"
        assert "reason: left the project" in history[3][3]
        await pilot.press("escape")
        assert app.screen is screen
        assert not any(isinstance(s, TotpPrompt) for s in app.screen_stack)


async def test_background_expiry_ends_grants_and_the_screens_refresh(
    world: World, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants = Grants(world)
    monkeypatch.setattr(GovtuiApp, "EXPIRY_INTERVAL", 0.1)

    messages: list[Message] = []
    app = GovtuiApp(Workspace(world.engine, "ann"))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        dashboard = app.screen
        screen = await _open_grants(app, pilot)
        assert str(_row(screen, grants.soon)[STATE]) == "active"

        fake_clock.advance(days=6)  # past the end of E2's contract, not of grant `long`
        await wait_until(
            pilot,
            lambda: str(_row(screen, grants.soon)[STATE]) == "expired",
            what="the grants screen to show the expiry",
        )
        assert str(_row(screen, grants.long)[STATE]) == "active"
        assert world.grant(grants.soon).state == "expired"
        assert "1 grant expired" in _notes(messages)
        with db.read_session(world.engine) as session:
            (event,) = session.exec(
                select(AuditEvent).where(AuditEvent.action == "grant.expire")
            ).all()
        assert event.actor == "system (tui ann)"

        # The dashboard, not visible then, shows it when it is shown.
        await pilot.press("d")
        await settle(pilot)
        assert app.screen is dashboard
        acme = table_rows(dashboard.query_one("#clients", DataTable))[0]
        assert acme[0] == "acme"
        assert acme[2:8] == ["1", "1", "0", "1", "1", "0"]  # by GRANT_STATES, after the status

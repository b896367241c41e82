"""One global key map: screen keys never shadow a global key, j/k/g/G move on every screen,
Enter drills in, the help lists govtui's keys only, and the request and revoke dialogs say
what is missing inline and what the caps make of the days asked."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from textual.binding import Binding
from textual.widgets import DataTable, Input, Select, Static, Tree

from govtui import db
from govtui.services import contractors, grant_views
from govtui.tui.app import SCREEN_MODES, GovtuiApp
from govtui.tui.modals.confirm_revoke import ConfirmRevoke
from govtui.tui.modals.request_form import RequestForm
from govtui.tui.screens.base import GLOBAL_KEYS, SCREEN_KEYS, GovtuiScreen
from govtui.tui.screens.contractors import ContractorsScreen
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.enrol import EnrolScreen
from govtui.tui.screens.grants import GrantsScreen
from govtui.tui.screens.help import HelpScreen
from govtui.tui.screens.review_items import ReviewItemsScreen
from tests.factories import World
from tests.tui.tui_support import (
    DEMO_CONTRACTORS,
    choose,
    open_screen,
    running,
    settle,
    table_rows,
    text_of,
    wait_until,
)


def test_no_screen_binds_a_global_key_to_something_else() -> None:
    screens: list[type[GovtuiScreen]] = [cls for cls, _title in SCREEN_MODES.values()]
    shadowing = []
    for cls in [*screens, ReviewItemsScreen, EnrolScreen]:
        own = Binding.make_bindings(cls.__dict__.get("BINDINGS", []))
        shadowing += [
            (cls.__name__, binding.key, binding.action)
            for binding in own
            if binding.key in GLOBAL_KEYS
        ]
    assert shadowing == []
    assert len(set(SCREEN_KEYS.values())) == len(SCREEN_KEYS)  # a key per screen
    app_keys = {
        binding.key
        for binding in Binding.make_bindings(GovtuiApp.BINDINGS)
        if binding.action.startswith("show(")
    }
    assert app_keys == set(SCREEN_KEYS.values())


async def test_j_k_g_and_shift_g_move_on_every_screen_with_a_table(world: World) -> None:
    async with running(world.engine, "root") as (app, pilot):
        for key, widget_id in (("d", "#clients"), ("c", "#contractor-table")):
            await pilot.press(key)
            await settle(pilot)
            table = app.screen.query_one(widget_id, DataTable)
            await wait_until(pilot, lambda t=table: t.row_count >= 2, what=widget_id)  # type: ignore[misc]
            await pilot.press("G")
            assert table.cursor_row == table.row_count - 1, widget_id
            await pilot.press("k")
            assert table.cursor_row == table.row_count - 2, widget_id
            await pilot.press("g")
            assert table.cursor_row == 0, widget_id
            await pilot.press("j")
            assert table.cursor_row == 1, widget_id
            assert isinstance(app.screen, DashboardScreen | ContractorsScreen)  # g stayed here
        await pilot.press("b")
        await settle(pilot)
        tree = app.screen.query_one("#catalog", Tree)
        await wait_until(pilot, lambda: tree.last_line > 2, what="the tree")
        await pilot.press("G")
        assert tree.cursor_line == tree.last_line
        await pilot.press("g", "j")
        assert tree.cursor_line == 1


async def test_enter_on_a_client_or_a_contractor_shows_their_grants(world: World) -> None:
    for name in ("E1", "E2"):
        world.request(name, "acme/rlhf/pairs")
    world.request("E1", "other/p/s")
    async with running(world.engine, "root") as (app, pilot):

        async def grants_shown(what: str) -> list[list[str]]:
            await wait_until(pilot, lambda: isinstance(app.screen, GrantsScreen), what=what)
            screen = app.screen
            assert isinstance(screen, GrantsScreen)
            await wait_until(pilot, lambda: screen.counts is not None, what=f"{what}'s count")
            await settle(pilot)
            return table_rows(screen.query_one("#grant-table", DataTable))

        # The dashboard: a client's row.
        table = app.screen.query_one("#clients", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, what="the clients")
        table.move_cursor(row=table.get_row_index("other"))
        await pilot.press("enter")
        rows = await grants_shown("other's grants")
        assert [row[5] for row in rows] == ["other/p/s"]
        screen = app.screen
        assert isinstance(screen, GrantsScreen)
        assert screen.query_one("#filter-client", Select).value == "other"
        assert "client other" in text_of(screen.query_one("#grant-status", Static))

        # The contractors screen: a contractor's row; only theirs, by exact id.
        await pilot.press("c")
        await settle(pilot)
        table = app.screen.query_one("#contractor-table", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, what="the contractors")
        row = next(i for i, cells in enumerate(table_rows(table)) if cells[0] == "E2")
        table.move_cursor(row=row)
        await pilot.press("enter")
        rows = await grants_shown("E2's grants")
        assert {r[3] for r in rows} == {"E2"}
        assert screen.query_one("#filter-contractor", Input).value == "E2"
        assert screen.query_one("#filter-client", Select).is_blank()

        # The browser: Enter on a client node.
        await pilot.press("b")
        await settle(pilot)
        tree = app.screen.query_one("#catalog", Tree)
        await wait_until(pilot, lambda: tree.last_line > 0, what="the tree")
        await pilot.press("g", "enter")  # the first client: acme
        rows = await grants_shown("acme's grants")
        assert {r[5].split("/")[0] for r in rows} == {"acme"}
        assert screen.query_one("#filter-contractor", Input).value == ""


async def test_help_lists_govtuis_keys_not_the_widgets(world: World) -> None:
    async with running(world.engine, "root") as (app, pilot):
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        rows = table_rows(app.screen.query_one("#help-keys", DataTable))
        shown = {(key, what) for _where, key, what in rows}
        for pair in [
            ("d", "Dashboard"),
            ("t", "Grants"),
            ("g", "First row"),
            ("G", "Last row"),
            ("j", "Down"),
            ("k", "Up"),
            ("enter", "Show the grant's history"),
            ("n", "New request"),
            ("^p", "Open the command palette"),
        ]:
            assert pair in shown, pair
        keys = {key for key, _what in shown}
        words = " ".join(what for _key, what in shown)
        assert not keys & {"super+c", "^c", "^pgup", "tab", "shift+tab"}, keys
        assert "Page Left" not in words and "Copy" not in words, words


async def test_the_request_form_shows_the_days_after_caps_and_empty_fields_inline(
    world: World,
) -> None:
    async with running(world.engine, "req") as (app, pilot):
        screen = await open_screen(pilot, "t", GrantsScreen)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, RequestForm), what="the form")
        form = app.screen
        assert isinstance(form, RequestForm)
        # Nothing filled in: each required field says so beside it.
        form.query_one("#request-reason", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        for field in ("contractor", "scope", "days", "reason"):
            error = form.query_one(f"#request-{field}-error", Static)
            assert error.display and text_of(error).startswith(("Give", "Choose")), field
        assert text_of(form.query_one("#request-result", Static)) == "4 required fields empty."
        # 45 days on a confidential scope: the service says 30 and why.
        form.query_one("#request-contractor", Input).focus()
        await pilot.press("E", "1")
        await choose(pilot, form.query_one("#request-scope", Select), "acme/rlhf/pairs")
        effective = form.query_one("#request-effective", Static)
        await wait_until(pilot, lambda: "At most 30 days" in text_of(effective), what="the cap")
        form.query_one("#request-days", Input).focus()
        await pilot.press("4", "5")
        await wait_until(
            pilot,
            lambda: (
                text_of(effective)
                == "30 days after the caps (45 asked: the confidential tier's cap of 30 days)"
            ),
            what="the days after caps",
        )
        assert not form.query_one("#request-contractor-error", Static).display
        form.query_one("#request-reason", Input).focus()
        await pilot.press(*"labelling", "enter")
        # Success closes the form; the new request is the selected row.
        await wait_until(pilot, lambda: app.screen is screen, what="the form to close")
        await wait_until(pilot, lambda: screen._cursor_id() is not None, what="a row")
        await settle(pilot)
        with db.read_session(world.engine) as session:
            (row,) = grant_views.list_grants(session)
        assert (row.requested_days, row.state) == (45, "requested")
        assert screen._cursor_id() == row.id


async def test_an_empty_revoke_reason_says_so(world: World) -> None:
    grant_id = world.request("E1", "acme/rlhf/pairs")
    async with running(world.engine, "root") as (app, pilot):
        screen = await open_screen(pilot, "t", GrantsScreen)
        await wait_until(pilot, lambda: screen._cursor_id() == grant_id, what="the grant")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmRevoke), what="dialog")
        dialog = app.screen
        error = dialog.query_one("#reason-error", Static)
        assert not error.display
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        assert error.display
        assert "Give a reason" in text_of(error)
        await pilot.press("o")
        await pilot.pause()
        assert not error.display


async def test_shift_g_reaches_the_real_last_contractor_and_g_the_first(
    demo_engine: Engine,
) -> None:
    with db.read_session(demo_engine) as session:
        (last,) = contractors.window(session, from_end=True, limit=1)
        first = contractors.window(session, limit=1)[0]
    async with running(demo_engine, "alex") as (_, pilot):
        screen = await open_screen(pilot, "c", ContractorsScreen)
        table = screen.query_one("#contractor-table", DataTable)
        status = screen.query_one("#contractor-status", Static)
        await wait_until(pilot, lambda: screen.total is not None, what="the count")
        assert table.row_count < DEMO_CONTRACTORS  # a window, not the list
        await pilot.press("G")
        await wait_until(pilot, lambda: screen.from_end, what="the last window")
        assert table_rows(table)[table.cursor_row][0] == last.external_id
        assert f"showing the last {contractors.PAGE}" in text_of(status)
        await pilot.press("g")
        await wait_until(pilot, lambda: not screen.from_end and table.row_count > 0)
        await settle(pilot)
        assert table.cursor_row == 0
        assert table_rows(table)[0][0] == first.external_id

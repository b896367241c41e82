"""The app shell: header, keys between screens, command palette, help, failed workers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from textual.binding import Binding
from textual.command import CommandPalette
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import DataTable, Header, Input, OptionList

from govtui import db
from govtui.errors import ConfigurationError
from govtui.services import dashboard
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.base import GovtuiScreen
from govtui.tui.screens.browser import BrowserScreen
from govtui.tui.screens.contractors import ContractorsScreen
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.enrol import EnrolScreen
from govtui.tui.screens.grants import GrantsScreen
from govtui.tui.screens.help import HelpScreen
from tests.tui.tui_support import SIZE, screen_text, settle, table_rows, text_of, wait_until


async def test_opens_on_the_dashboard_acting_as_the_operator(demo_engine: Engine) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert app.title == "govtui — acting as alex"
        assert app.screen.query_one(Header).screen_title == "govtui — acting as alex"
        # The title is on the terminal too, not only in the attribute.
        assert "govtui — acting as alex" in screen_text(app)


async def test_keys_switch_screens_and_keep_their_state(demo_engine: Engine) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ContractorsScreen)
        contractors_screen = app.screen
        await pilot.press("slash", *"ada", "enter")
        await wait_until(pilot, lambda: contractors_screen.total is not None)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("c")
        # The same screen, with its search, comes back.
        assert app.screen is contractors_screen
        assert app.screen.query_one("#contractor-search", Input).value == "ada"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_typing_a_search_does_not_trigger_screen_keys(demo_engine: Engine) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await settle(pilot)
        await pilot.press("slash", *"dbcq?r")
        await pilot.pause()
        assert isinstance(app.screen, ContractorsScreen)
        assert app.screen.query_one("#contractor-search", Input).value == "dbcq?r"
        assert app.is_running


@pytest.mark.parametrize(
    ("typed", "title", "screen_type"),
    [
        ("clients", "Clients / projects / scopes", BrowserScreen),
        ("contr", "Contractors", ContractorsScreen),
        ("help", "Help", HelpScreen),
        ("dashb", "Dashboard", DashboardScreen),
        ("grants", "Grants", GrantsScreen),
        ("approv", "Approvals", ApprovalsScreen),
        ("enrol", "Enrol my authenticator", EnrolScreen),
    ],
)
async def test_command_palette_reaches_every_screen(
    demo_engine: Engine, typed: str, title: str, screen_type: type
) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        if screen_type is DashboardScreen:
            await pilot.press("c")  # start elsewhere so that arriving means something
            await settle(pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*typed)
        palette = app.screen
        options = palette.query_one(OptionList)
        await wait_until(
            pilot,
            lambda: (
                options.option_count > 0 and title in str(options.get_option_at_index(0).prompt)
            ),
            what=f"the palette to offer {title!r}",
        )
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, screen_type), what=title)
        await settle(pilot)


async def test_the_palette_lists_clients_without_touching_the_database_on_the_ui_thread(
    demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_ui_thread: list[str] = []

    def watched(name: str, real: Callable[[Engine], Any]) -> Callable[[Engine], Any]:
        def session(engine: Engine) -> Any:
            if threading.current_thread() is threading.main_thread():
                on_ui_thread.append(name)
            return real(engine)

        return session

    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for name in ("read_session", "write_session"):
            monkeypatch.setattr(db, name, watched(name, getattr(db, name)))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert [t for t in titles if t.startswith("Pause client ")], titles
        assert on_ui_thread == []


async def test_help_lists_every_binding_of_the_app_and_the_screen(demo_engine: Engine) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = table_rows(app.screen.query_one("#help-keys", DataTable))
        shown = {(key, what) for _where, key, what in rows}
        # Every binding govtui gives the app and the screen, read back from Textual itself,
        # so a binding added tomorrow is checked tomorrow; none of Textual's own.
        for node in (app, screen):
            for bindings in node._bindings.key_to_bindings.values():
                for binding in bindings:
                    pair = (app.get_key_display(binding), _what(binding))
                    if _govtuis(node, binding):
                        assert pair in shown
                    else:
                        assert pair not in shown or binding.key == "ctrl+p"
        # And the ones this issue names, spelled as a person reads them.
        for key, what in [
            ("d", "Dashboard"),
            ("b", "Browse"),
            ("c", "Contractors"),
            ("t", "Grants"),
            ("a", "Approvals"),
            ("?", "Help"),
            ("f1", "Help"),
            ("q", "Quit"),
            ("r", "Refresh"),
            ("/", "Search"),
            ("^p", "Open the command palette"),
        ]:
            assert (key, what) in shown, (key, what)
        screens_text = text_of(app.screen.query_one("#help-screens"))
        for title in (
            "Dashboard",
            "Clients / projects / scopes",
            "Contractors",
            "Grants",
            "Approvals",
            "Enrol my authenticator",
        ):
            assert f"{title}: " in screens_text
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("d")  # the help is modal: screen keys wait until it closes
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert app.screen is screen


@pytest.mark.parametrize(
    ("key", "screen_type", "expected"),
    [
        ("t", GrantsScreen, [("n", "New request"), ("x", "Revoke"), ("del", "Revoke")]),
        (
            "a",
            ApprovalsScreen,
            [
                ("space", "Mark"),
                ("^a", "Mark all"),
                ("⏎", "Approve"),
                ("x", "Deny"),
                ("o", "Sort"),
                ("/", "Filter"),
                ("e", "Enrol authenticator"),
            ],
        ),
    ],
)
async def test_help_lists_the_keys_of_the_grant_screens(
    demo_engine: Engine, key: str, screen_type: type, expected: list[tuple[str, str]]
) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, screen_type)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = table_rows(app.screen.query_one("#help-keys", DataTable))
        shown = {(k, what) for _where, k, what in rows}
        for bindings in screen._bindings.key_to_bindings.values():
            for binding in bindings:
                if _govtuis(screen, binding):
                    assert (app.get_key_display(binding), _what(binding)) in shown
        for pair in expected:
            assert pair in shown, pair


async def test_a_failing_worker_shows_its_message(
    demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: object, **_options: object) -> dashboard.Overview:
        raise ConfigurationError("the database went away [check the disk]")

    messages: list[Message] = []
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE, message_hook=messages.append, notifications=True) as pilot:
        await settle(pilot)
        monkeypatch.setattr(dashboard, "overview", broken)
        await pilot.press("r")
        await settle(pilot)
        # message_hook sees a bubbling message at each node on its way: count it once.
        failed = list(
            {id(m): m for m in messages if isinstance(m, GovtuiScreen.WorkerFailed)}.values()
        )
        assert [m.worker_name for m in failed] == ["load_overview"]
        errors = _errors(messages)
        # The GovtuiError's text as it is (markup off: the brackets survive).
        assert errors == ["the database went away [check the disk]"]
        await wait_until(
            pilot,
            lambda: "the database went away [check the disk]" in screen_text(app),
            what="the error on the screen",
        )
        assert app.is_running  # exit_on_error=False: the app carries on


async def test_an_unexpected_database_error_is_shown_not_raised(tmp_db_url: str) -> None:
    engine = db.make_engine(tmp_db_url)  # no schema: every query fails
    messages: list[Message] = []
    app = GovtuiApp(Workspace(engine, "alex"))
    async with app.run_test(size=SIZE, message_hook=messages.append, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        errors = _errors(messages)
        # The dashboard, the contractors screen, the command palette's client list and the
        # background expiry on start.
        assert len(errors) == 4
        assert all(e.startswith("unexpected OperationalError:") for e in errors)
        assert all("no such table" in e for e in errors)
        # The expiry fails the same way every minute: shown once, then only logged.
        app.run_expiry()
        await settle(pilot)
        assert len(_errors(messages)) == 4
        assert app.is_running
    engine.dispose()


def _govtuis(node: object, binding: Binding) -> bool:
    """Whether govtui, not one of Textual's base classes, binds the key on the node."""
    for cls in type(node).__mro__:
        own = Binding.make_bindings(cls.__dict__.get("BINDINGS", []))
        if any((b.key, b.action) == (binding.key, binding.action) for b in own):
            return cls.__module__.startswith("govtui")
    return True  # bound at run time (the demo's w)


def _what(binding: Binding) -> str:
    return binding.tooltip or binding.description or binding.action.replace("_", " ")


def _errors(messages: list[Message]) -> list[str]:
    return [
        m.notification.message
        for m in messages
        if isinstance(m, Notify) and m.notification.severity == "error"
    ]

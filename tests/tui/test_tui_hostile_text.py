"""Hostile text in every field the TUI shows (issue 11, finding 6): Rich/Textual markup
(`[/b]`, `[link=…]`, `[bold red]`) and terminal escapes (ESC, BEL) in client, project, scope,
contractor, operator, target and reason fields, in the directory's errors and in drift. Every
screen and dialog must open without a crash, show the text literally (control characters as
visible escapes, govtui.text.one_line), and apply no style or link from the data.

Names that validation refuses are written by plain SQL, as an older database may hold them:
the TUI must stay safe for whatever is already in the database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from textual.app import App
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Static, Tree

from govtui import clock, db
from govtui.services import convergence, grants, operators, reconcile, sync
from govtui.services.catalog import ScopeView
from govtui.services.reconcile import Drift
from govtui.services.workspace import Workspace
from govtui.text import one_line
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.confirm_fix import ConfirmFix
from govtui.tui.modals.confirm_revoke import ConfirmRevoke
from govtui.tui.modals.grant_detail import GrantDetailModal
from govtui.tui.modals.pause_progress import PauseProgress
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.request_form import RequestForm
from govtui.tui.modals.totp_prompt import TotpPrompt
from govtui.tui.screens.browser import BrowserScreen
from govtui.tui.screens.enrol import EnrolScreen
from govtui.tui.screens.help import HelpScreen
from tests.factories import UNREACHABLE_TARGET, Op, Person, Scope, World, build_world
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import settle, wait_until

# Markup that crashes (an unmatched close tag), a link, a style, and terminal escapes that
# clear the screen and set the window title.
HOSTILE = "[/b][link=https://evil.test]x[/link][bold red]\x1b[2J\x1b]0;t\x07"
SHOWN = one_line(HOSTILE)
# Each field gets a tag before the hostile text, so the test knows which field it sees.
V = {
    "client": f"C{HOSTILE}",
    "project": f"P{HOSTILE}",
    "scope": f"S{HOSTILE}",
    "external_id": f"X{HOSTILE}",
    "name": f"Bob [/b] Smith{HOSTILE}",
    "email": f"M{HOSTILE}",
    "uid": f"U{HOSTILE}",
    "requester": f"R{HOSTILE}",
    "approver": f"B{HOSTILE}",
    "actor": f"A{HOSTILE}",
    "reason": f"W{HOSTILE}",
    "end_reason": f"V{HOSTILE}",
    "target": f"T{HOSTILE}",
    "url": f"L{HOSTILE}",
    "group": f"G{HOSTILE}",
    "last_error": f"E{HOSTILE}",
    "health": f"H{HOSTILE}",
    "sync_error": f"Y{HOSTILE}",
    "drift_uid": f"D{HOSTILE}",
    "drift_group": f"Q{HOSTILE}",
    "drift_user": f"K{HOSTILE}",
}
WIDE = (600, 50)  # wide enough that no column of the hostile rows is cut off


def shown(key: str) -> str:
    return one_line(V[key])


@pytest.fixture
def hostile(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> World:
    """A requested grant (E1 on pairs), an active one (E1 on notes, approved by bob, with an
    outbox operation that failed) and a revoked one (E2 on notes); then every name, reason and
    error rewritten by SQL to hostile text. The app acts as ann (approver of acme)."""
    world = build_world(
        sqlite_engine,
        scopes=[Scope("acme/rlhf/pairs", "confidential"), Scope("acme/rlhf/notes", "internal")],
        ops=[
            Op("req", ("requester",)),
            Op("ann", ("approver", "requester"), ("acme",), enrol=True),
            Op("bob", ("approver",), ("acme",), enrol=True),
        ],
        people=[Person("E1", "Ada", "ada"), Person("E2", "Bo", "bo", date(2027, 1, 1))],
        target=UNREACHABLE_TARGET,
    )
    world.request("E1", scope="acme/rlhf/pairs")
    world.approve(world.request("E1", scope="acme/rlhf/notes"), by="bob")
    revoked = world.request("E2", scope="acme/rlhf/notes")
    world.approve(revoked, by="bob", totp=world.code("bob", 1))
    with db.write_session(world.engine) as session:
        grants.revoke(session, operators.find(session, "root"), grant_id=revoked, reason="x")
    with db.write_session(world.engine) as session:
        session.execute(
            sa.text("UPDATE access_grant SET end_reason=:v WHERE id=:id"),
            {"v": V["end_reason"], "id": revoked},
        )
        for sql in (
            "UPDATE client SET name=:client WHERE name='acme'",
            "UPDATE project SET name=:project WHERE name='rlhf'",
            "UPDATE dataset_scope SET name=:scope WHERE name='pairs'",
            "UPDATE contractor SET external_id=:external_id, name=:name, email=:email,"
            " directory_uid=:uid WHERE external_id='E1'",
            # The factories bind every operator to the test login, shared: here only the
            # requester shares one (a hostile one); root and bob get a login each.
            "UPDATE operator SET shared_login=:no WHERE name <> 'req'",
            "UPDATE operator SET login=name || '-login' WHERE name IN ('root','bob')",
            # The requester shares a login (a hostile one), the approver is locked out: both
            # are named on the dashboard.
            "UPDATE operator SET name=:requester, login=:uid, shared_login=1 WHERE name='req'",
            "UPDATE operator SET name=:approver, totp_locked_until=:locked WHERE name='bob'",
            "UPDATE operator SET name=:actor WHERE name='ann'",
            "UPDATE access_grant SET reason=:reason",
            "UPDATE directory_target SET name=:target, url=:url",
            "UPDATE outbox_op SET state='failed', last_error=:last_error, group_dn=:group,"
            " directory_uid=:uid",
        ):
            session.execute(
                sa.text(sql), {**V, "no": False, "locked": clock.now() + timedelta(hours=1)}
            )
    return world


@pytest.fixture
def directory_says_hostile_things(monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory's answers (health, sync errors, drift) carry hostile text; nothing is
    contacted."""

    def check_targets(_engine: Engine) -> dict[str, BaseException | None]:
        return {V["target"]: OSError(V["health"])}

    def sync_now(_engine: Engine, **_kw: object) -> convergence.SyncRun:
        report = sync.SyncReport(failed=1, errors=[V["sync_error"]])
        return convergence.SyncRun(report, {V["target"]: OSError(V["health"])})

    def compare(_engine: Engine, _target: str) -> list[Drift]:
        return [Drift("unexpected_member", V["drift_group"], V["drift_user"], V["drift_uid"])]

    monkeypatch.setattr(convergence, "check_targets", check_targets)
    monkeypatch.setattr(convergence, "sync_now", sync_now)
    monkeypatch.setattr(reconcile, "compare", compare)


def screen_lines(app: App[None]) -> str:
    """What the terminal shows, after checking that no raw control character reaches it and
    that no segment carries a link or a click action (none of the app's own text has one)."""
    lines = []
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            assert not any(c in segment.text for c in "\x1b\x07\x9b"), repr(segment.text)
            style = segment.style
            if style is not None:
                assert not style.link, (segment.text, style.link)
                assert "@click" not in (style.meta or {}), segment.text
        lines.append(strip.text)
    return "\n".join(lines)


def assert_shown(app: App[None], *keys: str, where: str | None = None) -> str:
    """Each field's hostile text is on screen literally, control characters escaped: on
    one line of the screen, or (`where`: a Static of a dialog, which wraps) in that Static."""
    text = screen_lines(app)
    if where is not None:
        text = str(app.screen.query_one(where, Static).visual)
    for key in keys:
        assert shown(key) in text, f"{key} not shown as {shown(key)!r}:\n{text[:3000]}"
    assert "evil.test" in text  # the link's target is text, not a link
    return text


def notes(app: App[None]) -> list[str]:
    return [n.message for n in app._notifications]


def app_for(world: World) -> GovtuiApp:
    return GovtuiApp(Workspace(world.engine, V["actor"]))


async def test_dashboard_browser_palette_and_pause_show_hostile_names_as_text(
    hostile: World, directory_says_hostile_things: None
) -> None:
    app = app_for(hostile)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert_shown(app, "client", "actor")  # the title names the acting operator
        operators = assert_shown(app, "requester", "uid", "approver", where="#dashboard-operators")
        assert f"{shown('requester')} (login {shown('uid')})" in operators
        assert f"{shown('approver')} until 10:00:00 UTC" in operators

        await pilot.press("b")
        await settle(pilot)
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        assert_shown(app, "client", "project", "scope")
        tree = browser.query_one("#catalog", Tree)
        scope_node = next(
            n for n in tree.root.children[0].children[0].children if isinstance(n.data, ScopeView)
        )
        tree.move_cursor(scope_node)
        await settle(pilot)
        details = str(browser.query_one("#scope-details", Static).visual)
        assert one_line(f"{V['client']}/{V['project']}/{V['scope']}") in details

        await pilot.press("ctrl+p")
        await settle(pilot)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"pause")
        await wait_until(pilot, lambda: shown("client") in screen_lines(app), what="palette")
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        assert_shown(app, "client", "project", "scope")
        await pilot.press(*"[/b] [bold]why", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PauseProgress), what="progress")
        progress = app.screen
        await wait_until(
            pilot,
            lambda: bool(str(progress.query_one("#pause-progress-status", Static).visual)),
            what="the directory's outcome",
        )
        assert_shown(app, "client")
        await pilot.press("escape")
        await settle(pilot)
        # Paused already: the notice names the client as typed.
        app.pause_flow.pause(V["client"])
        await settle(pilot)
        assert f"{shown('client')} is paused already." in notes(app)
        screen_lines(app)


async def test_contractors_grants_and_their_dialogs_show_hostile_text(
    hostile: World, directory_says_hostile_things: None
) -> None:
    app = app_for(hostile)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert_shown(app, "external_id", "name", "email", "uid")

        await pilot.press("t")
        await settle(pilot)
        assert_shown(app, "external_id", "name", "client", "project", "scope", "requester")
        assert_shown(app, "approver")
        table = app.screen.query_one("#grant-table", DataTable)
        table.focus()
        # The revoked grant: its detail shows the end reason and the history.
        states = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        table.move_cursor(row=states.index("revoked"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, GrantDetailModal)
        assert_shown(app, "end_reason", "reason", "requester", "approver", where="#detail-facts")
        await pilot.press("escape")
        await settle(pilot)

        table.move_cursor(row=states.index("active"))  # the active grant: revoke it
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmRevoke)
        assert_shown(app, "reason", "requester", "approver", where="#reason-details")
        await pilot.press(*"[/b] done", "enter")
        await settle(pilot)
        revoked = [n for n in notes(app) if "revoked" in n]
        assert revoked and shown("external_id") in revoked[0], notes(app)
        screen_lines(app)

        await pilot.press("slash")  # the client filter lists the hostile client
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert_shown(app, "client")
        await pilot.press("escape", "escape")
        await settle(pilot)

        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, RequestForm)
        await pilot.press("tab", "enter")  # the scope list
        await settle(pilot)
        assert_shown(app, "client", "project", "scope", "actor")
        await pilot.press("escape")
        await settle(pilot)
        # A refusal echoing what was typed is shown as typed.
        form.query_one("#request-contractor", Input).value = "[/b]nobody"
        await pilot.pause()
        form.submit()
        await settle(pilot)
        result = str(form.query_one("#request-result", Static).visual)
        assert result, result
        screen_lines(app)


async def test_approvals_prompts_and_enrolment_show_hostile_text(
    hostile: World, directory_says_hostile_things: None
) -> None:
    app = app_for(hostile)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("a")  # the screen that crashed for every approver
        await settle(pilot)
        assert_shown(app, "external_id", "name", "client", "scope", "requester", "reason")

        await pilot.press("A")
        await settle(pilot)
        prompt = app.screen
        assert isinstance(prompt, TotpPrompt)
        assert_shown(app, "actor", "external_id", "name", "client", "scope")
        await wait_until(pilot, lambda: not prompt.query_one("#totp-code", Input).disabled)
        prompt.query_one("#totp-code", Input).value = "000000"
        prompt.submit()
        await settle(pilot)
        assert str(prompt.query_one("#totp-error", Static).visual)
        screen_lines(app)
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("x")  # deny (d is the dashboard)
        await settle(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        assert_shown(app, "external_id", "name", "client", "scope")
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EnrolScreen)
        assert_shown(app, "actor")
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        screen_lines(app)


async def test_directory_screen_sync_drift_and_fix_show_hostile_text(
    hostile: World, directory_says_hostile_things: None
) -> None:
    app = app_for(hostile)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert_shown(app, "target", "url", "uid", "group", "last_error", "health")

        await pilot.press("s")
        await settle(pilot)
        assert_shown(app, "sync_error")
        assert any(shown("sync_error") in n for n in notes(app)), notes(app)

        await pilot.press("R")
        await settle(pilot)
        assert_shown(app, "target", "drift_uid", "drift_group", "drift_user")
        assert any(shown("target") in n for n in notes(app)), notes(app)

        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmFix)
        assert_shown(app, "target", "drift_uid", "drift_group")
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("d")  # the dashboard after all that
        await settle(pilot)
        assert_shown(app, "client")


async def test_hostile_names_are_cut_not_wrapped_at_80x24(
    hostile: World, directory_says_hostile_things: None
) -> None:
    app = app_for(hostile)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "dbcgay":
            await pilot.press(key)
            await settle(pilot)
            lines = screen_lines(app).splitlines()
            assert len(lines) == 24
            # Every table row is one line: a hostile cell never spills into the next row.
            for table in app.screen.query(DataTable):
                assert all(row.height == 1 for row in table.ordered_rows), key
            # The header (title with the hostile operator) stays one line at the top.
            assert lines[0].count("govtui") == 1, lines[0]
            if key == "d":  # the operators line names them all: cut at the edge, one line
                operators = app.screen.query_one("#dashboard-operators", Static)
                assert operators.size.height == 1
                assert shown("requester")[:20] in screen_lines(app)

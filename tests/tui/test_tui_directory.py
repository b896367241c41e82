"""The directory screen against the real OpenLDAP of scripts/test: targets with their health and
outbox counts, the pending and failed operations, a sync run with a progress bar, drift from a
member added by hand and its fix behind a confirmation; the background sync; the dashboard's
failed operations and drift in red."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from rich.style import Style
from rich.text import Text
from sqlmodel import select
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import DataTable, ProgressBar, Static

from govtui import db
from govtui.models import AuditEvent
from govtui.services import sync
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.confirm_fix import ConfirmFix
from govtui.tui.screens.dashboard import DashboardScreen
from govtui.tui.screens.directory import DirectoryScreen
from govtui.tui.screens.help import HelpScreen
from tests.directory_support import Directory, add_target, norm, outbox, private_subtree
from tests.factories import World
from tests.tui.tui_support import (
    SIZE,
    rendered_bold_red,
    settle,
    table_rows,
    text_of,
    wait_until,
)

PAIRS_READ = "acme-rlhf-pairs-read"
NOTES_READ = "acme-rlhf-notes-read"
# Columns of the targets and outbox tables.
T_PENDING, T_DONE, T_FAILED, T_DRIFT, T_CONNECTION = 3, 4, 5, 6, 7
O_STATE, O_OPERATION, O_UID, O_ATTEMPTS, O_ERROR, O_GROUP = 2, 3, 4, 5, 7, 8


@pytest.fixture
def directory() -> Iterator[Directory]:
    yield from private_subtree()


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    """ada and bo in the directory, and the test's subtree as target 'ldap'."""
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    return directory


def _notes(messages: list[Message], severity: str | None = None) -> list[str]:
    return [
        m.notification.message
        for m in messages
        if isinstance(m, Notify) and (severity is None or m.notification.severity == severity)
    ]


def _style(cell: object) -> Style:
    assert isinstance(cell, Text)
    return Style.parse(str(cell.style)) if cell.style else Style()


def _is_red(style: Style) -> bool:
    return style.color is not None and style.color.name == "red"


async def _open_directory(app: GovtuiApp, pilot: object) -> DirectoryScreen:
    await settle(pilot)  # type: ignore[arg-type]
    await pilot.press("y")  # type: ignore[attr-defined]
    screen = app.screen
    assert isinstance(screen, DirectoryScreen)
    await settle(pilot)  # type: ignore[arg-type]
    assert screen.loaded
    return screen


def _audit_actions(world: World) -> list[str]:
    with db.read_session(world.engine) as session:
        return [e.action for e in session.exec(select(AuditEvent)).all()]


async def test_screen_lists_targets_and_pending_ops_and_sync_drains_them(
    world: World, ldap: Directory
) -> None:
    pairs, notes = ldap.group(PAIRS_READ), ldap.group(NOTES_READ)
    world.approve(world.request(), world.request(scope="acme/rlhf/notes"))
    ops = outbox(world.engine)
    assert [op.state for op in ops] == ["pending", "pending"]

    messages: list[Message] = []
    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await _open_directory(app, pilot)
        (target,) = table_rows(screen.query_one("#target-table", DataTable))
        assert target[:6] == ["ldap", ldap.url, "openldap", "2", "0", "0"]
        assert target[T_CONNECTION].startswith("ok (")  # connected and bound
        assert target[T_DRIFT] == "not checked"
        rows = table_rows(screen.query_one("#outbox-table", DataTable))
        assert [
            (r[0], r[O_STATE], r[O_OPERATION], r[O_GROUP], r[O_UID], r[O_ATTEMPTS]) for r in rows
        ] == [  # newest first
            (str(ops[1].id), "pending", "add_member", notes, "ada", "0"),
            (str(ops[0].id), "pending", "add_member", pairs, "ada", "0"),
        ]
        status = text_of(screen.query_one("#outbox-status", Static))
        assert status == "Outbox: 2 pending · 0 failed · all shown, failed first"
        bar = screen.query_one("#sync-progress", ProgressBar)
        assert not bar.display  # no sync yet
        assert ldap.members(pairs) is None  # nothing pushed before the person asks

        await pilot.press("s")
        await settle(pilot)
        # The bar went through run_once's progress callback and completed.
        assert app.context.sync_progress == (2, 2)
        assert bar.display and bar.total == 2 and bar.percentage == 1.0
        sync_status = text_of(screen.query_one("#sync-status", Static))
        assert "(asked for): 2 done, 0 to retry, 0 failed" in sync_status
        assert "2 done, 0 to retry, 0 failed" in _notes(messages)
        assert table_rows(screen.query_one("#outbox-table", DataTable)) == []
        (target,) = table_rows(screen.query_one("#target-table", DataTable))
        assert target[T_PENDING:T_DRIFT] == ["0", "2", "0"]
        assert text_of(screen.query_one("#outbox-status", Static)) == (
            "Outbox: 0 pending · 0 failed"
        )
        assert norm(ldap.user("ada")) in (ldap.members(pairs) or set())
        assert norm(ldap.user("ada")) in (ldap.members(notes) or set())
        assert [op.state for op in outbox(world.engine)] == ["done", "done"]
        assert _notes(messages, "error") == []


async def test_outbox_window_is_bounded_and_says_so(
    world: World, ldap: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DirectoryScreen, "OUTBOX_LIMIT", 3)
    world.approve(
        *(
            world.request(contractor, scope)
            for contractor in ("E1", "E2")
            for scope in ("acme/rlhf/pairs", "acme/rlhf/notes")
        )
    )
    ids = [op.id for op in outbox(world.engine)]
    assert len(ids) == 4

    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(app, pilot)
        rows = table_rows(screen.query_one("#outbox-table", DataTable))
        assert [int(r[0]) for r in rows] == sorted(ids, reverse=True)[:3]
        status = text_of(screen.query_one("#outbox-status", Static))
        assert status.startswith("Outbox: 4 pending · 0 failed · the newest 3 shown")


async def test_drift_from_a_hand_added_member_and_its_fix_behind_a_confirmation(
    world: World, ldap: Directory
) -> None:
    pairs = ldap.group(PAIRS_READ)
    world.approve(world.request())
    sync.run_once(world.engine)
    ldap.add_member(pairs, ldap.user("bo"))  # by hand: bo has no grant
    before = _audit_actions(world)
    ops_before = len(outbox(world.engine))

    messages: list[Message] = []
    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await _open_directory(app, pilot)
        drift_status = screen.query_one("#drift-status", Static)
        assert "not checked in this session" in text_of(drift_status)
        # f before any compare: nothing to confirm.
        await pilot.press("f")
        await settle(pilot)
        assert app.screen is screen
        assert "Compare ldap first: R finds the drift to fix." in _notes(messages)

        await pilot.press("R")
        await settle(pilot)
        drift = table_rows(screen.query_one("#drift-table", DataTable))
        assert drift == [
            [
                "member without a grant",
                "bo",
                "remove from the group",
                pairs,
                norm(ldap.user("bo")),
            ]
        ]
        assert text_of(drift_status).startswith("Drift on ldap: 1 items, 1 fixable")
        (target,) = table_rows(screen.query_one("#target-table", DataTable))
        assert target[T_DRIFT] == "1 (1 fixable)"
        drift_cell = screen.query_one("#target-table", DataTable).get_row("ldap")[T_DRIFT]
        assert _is_red(_style(drift_cell))
        assert norm(ldap.user("bo")) in (ldap.members(pairs) or set())  # only reported

        # Cancelling the confirmation changes nothing, anywhere.
        await pilot.press("f")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmFix)
        plan = text_of(dialog.query_one("#fix-details", Static))
        assert f"bo: remove from the group {pairs}" in plan
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen
        assert norm(ldap.user("bo")) in (ldap.members(pairs) or set())
        assert len(outbox(world.engine)) == ops_before
        assert _audit_actions(world) == before
        assert len(table_rows(screen.query_one("#drift-table", DataTable))) == 1

        # Confirming removes bo from the group, through the outbox, with an audit event.
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmFix)
        await pilot.press("enter")  # the Fix button has the focus
        await settle(pilot)
        assert app.screen is screen
        assert ldap.members(pairs) == {norm(ldap.placeholder), norm(ldap.user("ada"))}
        assert _audit_actions(world) == [*before, "directory.reconcile_fix"]
        (fix_op,) = outbox(world.engine)[ops_before:]
        assert (fix_op.operation, fix_op.directory_uid, fix_op.state) == (
            "remove_member",
            "bo",
            "done",
        )
        assert table_rows(screen.query_one("#drift-table", DataTable)) == []
        assert text_of(drift_status).startswith("Drift on ldap: none")
        assert "ldap: 1 fixed (1 done, 0 to retry, 0 failed)" in _notes(messages)
        assert _notes(messages, "error") == []


async def test_fix_refused_by_policy_is_one_line_and_changes_nothing(
    world: World, ldap: Directory
) -> None:
    pairs = ldap.group(PAIRS_READ)
    world.approve(world.request())
    sync.run_once(world.engine)
    ldap.add_member(pairs, ldap.user("bo"))

    messages: list[Message] = []
    app = GovtuiApp(engine=world.engine, actor_name="req")  # not an admin
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await _open_directory(app, pilot)
        await pilot.press("R")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
        assert _notes(messages, "error") == ["operator 'req' lacks the admin role for this action"]
        assert norm(ldap.user("bo")) in (ldap.members(pairs) or set())
        assert len(table_rows(screen.query_one("#drift-table", DataTable))) == 1


async def test_dashboard_shows_failed_ops_and_drift_in_red(world: World, ldap: Directory) -> None:
    with db.write_session(world.engine) as session:
        session.execute(sa.text("UPDATE directory_target SET max_attempts = 1"))
    ldap.delete_tree(ldap.user("bo"))  # bo's grant cannot reach the directory
    world.approve(world.request("E1"), world.request("E2"))

    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        outbox_line = dashboard.query_one("#dashboard-outbox", Static)
        failed = dashboard.query_one("#dashboard-failed", Static)
        drift = dashboard.query_one("#dashboard-drift", Static)
        assert text_of(outbox_line) == "Directory: 2 operations pending"
        assert text_of(failed) == "0 failed"
        assert not failed.has_class("alert") and not rendered_bold_red(failed, "0 failed")
        assert text_of(drift).startswith("drift: not checked")
        assert not drift.has_class("alert")

        # Another process syncs: bo's operation fails at once (one attempt allowed).
        report = sync.run_once(world.engine)
        assert (report.done, report.failed) == (1, 1)
        await pilot.press("r")
        await settle(pilot)
        assert text_of(outbox_line) == "Directory: 0 operations pending"
        assert text_of(failed) == "1 failed"
        assert failed.has_class("alert") and rendered_bold_red(failed, "1 failed")

        # The directory screen lists the failure with its error.
        screen = await _open_directory(app, pilot)
        (row,) = table_rows(screen.query_one("#outbox-table", DataTable))
        assert row[O_STATE] == "failed" and row[O_UID] == "bo"
        assert "no entry for uid 'bo'" in row[O_ERROR]
        cell = screen.query_one("#outbox-table", DataTable).get_row_at(0)[O_STATE]
        assert _is_red(_style(cell))
        # Its compare finds bo's grant missing from the group: the dashboard shows it.
        await pilot.press("R")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert app.screen is dashboard
        assert text_of(drift).startswith("drift: 1 (checked ")
        assert drift.has_class("alert") and rendered_bold_red(drift, "1")
        assert not rendered_bold_red(drift, "checked")


async def test_background_sync_pushes_the_outbox_and_refreshes_the_screens(
    world: World, ldap: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = ldap.group(PAIRS_READ)
    monkeypatch.setattr(GovtuiApp, "SYNC_INTERVAL", 0.1)

    messages: list[Message] = []
    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        screen = await _open_directory(app, pilot)
        targets = screen.query_one("#target-table", DataTable)

        # A grant approved elsewhere: the background sync pushes it, the screen follows.
        world.approve(world.request())
        await wait_until(
            pilot,
            lambda: table_rows(targets)[0][T_DONE] == "1",
            what="the directory screen to show the op done",
        )
        assert norm(ldap.user("ada")) in (ldap.members(pairs) or set())
        assert app.context.last_sync is not None and not app.context.last_sync.manual
        sync_status = screen.query_one("#sync-status", Static)
        await wait_until(  # between two runs (the next one may be going)
            pilot, lambda: "(background): " in text_of(sync_status), what="the last sync"
        )
        assert _notes(messages, "error") == []

        # The directory goes away: its error is shown once, however many runs fail.
        ldap.stop_server()
        world.approve(world.request(scope="acme/rlhf/notes"), by="bob")  # a fresh code
        runs = [m for m in messages if isinstance(m, GovtuiApp.SyncFinished)]
        started = len(runs)
        await wait_until(
            pilot,
            lambda: sum(isinstance(m, GovtuiApp.SyncFinished) for m in messages) >= started + 4,
            what="several background runs",
        )
        errors = _notes(messages, "error")
        assert len(errors) == 1 and "connect failed" in errors[0], errors
        connection = table_rows(targets)[0][T_CONNECTION]
        assert "connect failed" in connection
        assert _is_red(_style(targets.get_row("ldap")[T_CONNECTION]))
        assert [op.state for op in outbox(world.engine)] == ["done", "pending"]

        # Back again: the next runs push the change (after its backoff) and say ok.
        ldap.start_server()
        for op in outbox(world.engine):
            assert op.attempts <= 1  # a connection refused counts as one attempt
        await wait_until(
            pilot,
            lambda: table_rows(targets)[0][T_CONNECTION].startswith("ok ("),
            what="the health to recover",
        )
        assert len(_notes(messages, "error")) == 1


async def test_background_sync_without_a_target_does_nothing(world: World) -> None:
    messages: list[Message] = []
    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        version = app.context.directory_version
        assert app.start_sync(manual=False)
        assert not app.start_sync(manual=False)  # one run at a time
        await settle(pilot)
        finished = [m for m in messages if isinstance(m, GovtuiApp.SyncFinished)]
        assert [m.run for m in finished] == [None]
        assert app.context.last_sync is None and not app.context.syncing
        assert app.context.directory_version == version
        assert _notes(messages) == []


async def test_directory_keys_are_in_the_help_and_the_screen_in_the_palette(world: World) -> None:
    app = GovtuiApp(engine=world.engine, actor_name="root")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_directory(app, pilot)
        assert "No directory target" in text_of(screen.query_one("#outbox-status", Static))
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = table_rows(app.screen.query_one("#help-keys", DataTable))
        shown = {(key, what) for _where, key, what in rows}
        for key, what in [
            ("y", "Directory"),
            ("s", "Sync now: push the pending operations"),
            ("R", "Reconcile: compare the target with the grants"),
            ("f", "Fix the drift found (after a confirmation)"),
            ("r", "Refresh"),
        ]:
            assert (key, what) in shown, (key, what)
        assert "Directory: " in text_of(app.screen.query_one("#help-screens"))
        titles = [command.title for command in app.get_system_commands(screen)]
        assert "Directory" in titles

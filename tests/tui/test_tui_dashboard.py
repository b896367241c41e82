"""The dashboard shows every client with its counts, paused clients in bold red, and totals;
operators who share a login or are locked out in red."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from rich.style import Style
from rich.text import Text
from sqlalchemy.engine import Engine
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker

from govtui import clock, db
from govtui.models import GRANT_STATES, OutboxOp
from govtui.services import catalog, dashboard, demo, directory_targets, operators
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.dashboard import DashboardScreen
from tests.factories import World
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import SIZE, rendered_bold_red, settle, table_rows, text_of


def _pause(engine: Engine, name: str) -> None:
    with db.write_session(engine) as session:
        client = catalog.find_client(session, name)
        client.status = "paused"
        session.add(client)


def _is_bold_red(cell: object) -> bool:
    assert isinstance(cell, Text)
    style = Style.parse(str(cell.style)) if cell.style else Style()
    return bool(style.bold) and style.color is not None and style.color.name == "red"


async def test_dashboard_shows_demo_clients_counts_and_totals(demo_engine: Engine) -> None:
    with db.read_session(demo_engine) as session:
        expected = dashboard.overview(session)

    messages: list[Message] = []
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        # Opening the screen queries the database once (the app's own background expiry
        # aside).
        workers = {
            id(m.worker)
            for m in messages
            if isinstance(m, Worker.StateChanged) and m.worker.node is app.screen
        }
        assert len(workers) == 1
        table = app.screen.query_one("#clients", DataTable)
        rows = table_rows(table)
        assert [row[0] for row in rows] == [*sorted(demo.CLIENTS), "Total"]
        for row, client in zip(rows, expected.clients, strict=False):
            # The grant states first (all of them fit 80 columns), then the catalog's sizes.
            states = len(GRANT_STATES)
            assert row[:2] == [client.name, client.status]
            assert row[2 : 2 + states] == [f"{client.grants.get(s, 0):,}" for s in GRANT_STATES]
            assert row[2 + states :] == [
                f"{client.projects:,}",
                f"{client.scopes:,}",
                f"{client.contractors:,}",
            ]
        total = rows[-1]
        states = len(GRANT_STATES)
        assert total[2 + states] == str(sum(c.projects for c in expected.clients))
        assert total[3 + states] == str(sum(c.scopes for c in expected.clients))
        for index, state in enumerate(GRANT_STATES, start=2):
            assert total[index] == f"{sum(c.grants.get(state, 0) for c in expected.clients):,}"
        totals = text_of(app.screen.query_one("#dashboard-totals", Static))
        grants = sum(sum(c.grants.values()) for c in expected.clients)
        assert totals == (
            f"3 clients · {expected.contractors_total:,} contractors"
            f" ({expected.contractors_active:,} active) · {grants:,} grants"
        )


async def test_a_paused_client_stands_out_and_refresh_shows_changes(demo_engine: Engine) -> None:
    _pause(demo_engine, "northwind-ai")

    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#clients", DataTable)
        paused = table.get_row("northwind-ai")
        assert paused[1].plain == "PAUSED"
        assert _is_bold_red(paused[0]) and _is_bold_red(paused[1])
        for name in ("helios-labs", "orbital-research"):
            row = table.get_row(name)
            assert row[1].plain == "active"
            assert not _is_bold_red(row[0]) and not _is_bold_red(row[1])
        assert "(1 paused)" in text_of(app.screen.query_one("#dashboard-totals", Static))

        # Another process pauses a second client; `r` shows it.
        _pause(demo_engine, "helios-labs")
        await pilot.press("r")
        await settle(pilot)
        assert _is_bold_red(table.get_row("helios-labs")[1])
        assert "(2 paused)" in text_of(app.screen.query_one("#dashboard-totals", Static))


def _outbox_rows(engine: Engine, states: dict[str, int]) -> None:
    """A directory target (never contacted) and outbox rows in the given states."""
    with db.write_session(engine) as session:
        target = directory_targets.add(
            session,
            operators.find(session, "alex"),
            name="corp",
            url="ldap://127.0.0.1:1",
            insecure_plaintext=True,
            bind_dn="cn=govtui,dc=example,dc=com",
            users_base="ou=people,dc=example,dc=com",
            groups_base="ou=groups,dc=example,dc=com",
            password="not-used",
        )
        now = clock.now()
        for state, count in states.items():
            for n in range(count):
                session.add(
                    OutboxOp(
                        target_id=db.ident(target),
                        operation="remove_member",
                        group_dn="cn=g,ou=groups,dc=example,dc=com",
                        directory_uid=f"{state}{n}",
                        state=state,
                        next_attempt_at=now,
                        created_at=now,
                        last_error="refused" if state == "failed" else None,
                    )
                )


async def test_the_directory_line_counts_open_operations_and_failures_stand_out(
    demo_engine: Engine, memory_keyring: MemoryKeyring
) -> None:
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        outbox = app.screen.query_one("#dashboard-outbox", Static)
        failed = app.screen.query_one("#dashboard-failed", Static)
        drift = app.screen.query_one("#dashboard-drift", Static)
        # No target: nothing to count, nothing to check.
        assert text_of(outbox).startswith("Directory: none set up")
        assert not failed.display and not drift.display

        _outbox_rows(demo_engine, {"pending": 3, "failed": 2, "done": 4})
        with db.read_session(demo_engine) as session:
            overview = dashboard.overview(session)
        assert (overview.directory_targets, overview.outbox_pending) == (1, 3)
        assert overview.outbox_failed == 2
        await pilot.press("r")
        await settle(pilot)
        assert text_of(outbox) == "Directory: 3 operations pending"
        assert failed.display and text_of(failed) == "2 failed"
        assert failed.has_class("alert")
        assert rendered_bold_red(failed, "2 failed")
        assert text_of(drift).startswith("drift: not checked")
        assert not drift.has_class("alert")


async def test_shared_logins_and_lock_outs_stand_out_in_red(world: World) -> None:
    """Two operators on one login (no separation) and a locked-out approver: both in red on
    the dashboard; a lock-out that has run out and a removed operator are not listed."""
    now = clock.now()
    with db.write_session(world.engine) as session:
        for sql, values in (
            # The factories bind every operator to the test login, shared: give the others a
            # login each (root keeps the test login, alone), so only ann and bob share one.
            (
                "UPDATE operator SET login=name || '-login', shared_login=:no"
                " WHERE name NOT IN ('ann','bob','root')",
                {"no": False},
            ),
            ("UPDATE operator SET shared_login=:no WHERE name='root'", {"no": False}),
            ("UPDATE operator SET login='desk', shared_login=1 WHERE name IN ('ann','bob')", {}),
            (
                "UPDATE operator SET totp_locked_until=:until WHERE name='olga'",
                {"until": now + timedelta(minutes=10)},
            ),
            (
                "UPDATE operator SET totp_locked_until=:until WHERE name='req'",
                {"until": now - timedelta(minutes=1)},
            ),
        ):
            session.execute(sa.text(sql), values)

    app = GovtuiApp(Workspace(world.engine, "root"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        line = app.screen.query_one("#dashboard-operators", Static)
        text = text_of(line)
        assert text == (
            "Operators: 6 · shared login, no separation: ann (login desk), bob (login desk)"
            " · locked out: olga until 09:10:00 UTC"
        )
        assert rendered_bold_red(line, "ann (login desk)")
        assert rendered_bold_red(line, "olga until")
        assert not rendered_bold_red(line, "Operators: 6")

        with db.write_session(world.engine) as session:
            session.execute(
                sa.text("UPDATE operator SET shared_login=0, totp_locked_until=NULL"), {}
            )
        await pilot.press("r")
        await settle(pilot)
        assert text_of(line) == "Operators: 6 · none shares a login or is locked out"


async def test_dashboard_shows_the_audit_chain_line(demo_engine: Engine) -> None:
    """Issue 13: 'audit chain: N events, head signed|unsigned, verified X ago', from a verify
    run by the dashboard's own worker once per session (and again on r)."""
    app = GovtuiApp(Workspace(demo_engine, "alex"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        line = text_of(app.screen.query_one("#dashboard-chain", Static))
        with db.read_session(demo_engine) as session:
            events = session.execute(sa.text("SELECT count(*) FROM audit_event")).scalar_one()
        # The demo's first admin holds the evidence key, which signs every head it writes.
        assert line == f"audit chain: {events:,} events, head signed, verified just now"

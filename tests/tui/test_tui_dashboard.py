"""The dashboard shows every client with its counts, paused clients in bold red, and totals."""

from __future__ import annotations

import asyncio

from rich.style import Style
from rich.text import Text
from sqlalchemy.engine import Engine
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import Worker

from govtui import db
from govtui.models import GRANT_STATES
from govtui.services import catalog, dashboard, demo
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.dashboard import DashboardScreen
from tests.tui.tui_support import SIZE, settle, table_rows, text_of


def _pause(engine: Engine, name: str) -> None:
    with db.write_session(engine) as session:
        client = catalog.find_client(session, name)
        client.status = "paused"
        session.add(client)


def _is_bold_red(cell: object) -> bool:
    assert isinstance(cell, Text)
    style = Style.parse(str(cell.style)) if cell.style else Style()
    return bool(style.bold) and style.color is not None and style.color.name == "red"


def test_dashboard_shows_demo_clients_counts_and_totals(demo_engine: Engine) -> None:
    with db.read_session(demo_engine) as session:
        expected = dashboard.overview(session)

    async def scenario() -> None:
        messages: list[Message] = []
        app = GovtuiApp(engine=demo_engine, actor_name="alex")
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
                assert row[:5] == [
                    client.name,
                    client.status,
                    f"{client.projects:,}",
                    f"{client.scopes:,}",
                    f"{client.contractors:,}",
                ]
                assert row[5:] == [f"{client.grants.get(s, 0):,}" for s in GRANT_STATES]
            total = rows[-1]
            assert total[2] == str(sum(c.projects for c in expected.clients))
            assert total[3] == str(sum(c.scopes for c in expected.clients))
            for index, state in enumerate(GRANT_STATES, start=5):
                assert total[index] == f"{sum(c.grants.get(state, 0) for c in expected.clients):,}"
            totals = text_of(app.screen.query_one("#dashboard-totals", Static))
            grants = sum(sum(c.grants.values()) for c in expected.clients)
            assert totals == (
                f"3 clients · {expected.contractors_total:,} contractors"
                f" ({expected.contractors_active:,} active) · {grants:,} grants"
            )

    asyncio.run(scenario())


def test_a_paused_client_stands_out_and_refresh_shows_changes(demo_engine: Engine) -> None:
    _pause(demo_engine, "northwind-ai")

    async def scenario() -> None:
        app = GovtuiApp(engine=demo_engine, actor_name="alex")
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

    asyncio.run(scenario())

"""The browser shows clients → projects → scopes as a tree, and a scope's details beside it."""

from __future__ import annotations

from rich.text import Text
from sqlalchemy.engine import Engine
from textual.widgets import Static, Tree

from govtui import db
from govtui.services import catalog
from govtui.services.catalog import ScopeView
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.browser import BrowserScreen, ClientNode, ProjectNode
from tests.tui.tui_support import SIZE, settle, text_of


def _label(node: object) -> str:
    label = node.label  # type: ignore[attr-defined]
    return label.plain if isinstance(label, Text) else str(label)


async def test_tree_mirrors_the_catalog_and_a_scope_shows_its_details(demo_engine: Engine) -> None:
    with db.read_session(demo_engine) as session:
        scopes = catalog.list_scopes(session)
        projects = [(c, p.name) for c, p in catalog.list_projects(session)]
        clients = [c.name for c in catalog.list_clients(session)]

    app = GovtuiApp(engine=demo_engine, actor_name="alex")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        tree = app.screen.query_one("#catalog", Tree)
        found_clients, found_projects, found_scopes = [], [], []
        for client_node in tree.root.children:
            assert isinstance(client_node.data, ClientNode)
            found_clients.append(client_node.data.name)
            for project_node in client_node.children:
                assert isinstance(project_node.data, ProjectNode)
                found_projects.append((client_node.data.name, project_node.data.name))
                for scope_node in project_node.children:
                    assert isinstance(scope_node.data, ScopeView)
                    assert _label(scope_node).startswith(scope_node.data.name)
                    found_scopes.append(scope_node.data)
        assert found_clients == clients
        assert found_projects == projects
        assert found_scopes == scopes

        # Walk the cursor down to the third scope and select it with Enter.
        target = scopes[2]
        details = app.screen.query_one("#scope-details", Static)
        assert "Select a scope" in text_of(details)
        for _ in range(tree.last_line + 1):
            await pilot.press("down")
            node = tree.cursor_node
            if node is not None and node.data == target:
                break
        await pilot.press("enter")
        shown = text_of(details)
        assert f"Path          {target.path}" in shown
        assert f"Sensitivity   {target.sensitivity}" in shown
        assert f"Max days      {target.max_grant_days}" in shown


async def test_a_paused_client_is_marked_in_the_tree(demo_engine: Engine) -> None:
    with db.write_session(demo_engine) as session:
        client = catalog.find_client(session, "orbital-research")
        client.status = "paused"
        session.add(client)

    app = GovtuiApp(engine=demo_engine, actor_name="alex")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await settle(pilot)
        tree = app.screen.query_one("#catalog", Tree)
        labels = {_label(node): node for node in tree.root.children}
        assert set(labels) == {"helios-labs", "northwind-ai", "orbital-research (paused)"}
        label = labels["orbital-research (paused)"].label
        assert isinstance(label, Text) and "red" in str(label.style)

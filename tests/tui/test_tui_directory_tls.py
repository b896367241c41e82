"""The directory screen names every target that binds in clear text, in red (issue 10, item
5); with none, the line is not there."""

from __future__ import annotations

from textual.widgets import Static

from govtui import db
from govtui.services import directory_targets, operators
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.directory import DirectoryScreen
from tests.factories import World
from tests.tui.tui_support import SIZE, rendered_bold_red, settle, text_of


def _add(world: World, name: str, url: str, **kwargs: object) -> None:
    with db.write_session(world.engine) as session:
        directory_targets.add(
            session,
            operators.find(session, "root"),
            name=name,
            url=url,
            bind_dn="cn=admin,dc=x",
            users_base="ou=people,dc=x",
            groups_base="ou=groups,dc=x",
            password="never used",  # nothing listens on port 9
            **kwargs,  # type: ignore[arg-type]
        )


async def _insecure_line(world: World) -> str | None:
    """The red line's text, or None when it is hidden (read while the app runs)."""
    app = GovtuiApp(Workspace(world.engine, "root"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DirectoryScreen) and screen.loaded
        line = screen.query_one("#insecure-status", Static)
        if not line.display:
            return None
        assert rendered_bold_red(line, "INSECURE")
        return text_of(line)


async def test_an_insecure_target_is_named_in_red_and_a_tls_one_is_not(world: World) -> None:
    _add(world, "tls", "ldaps://127.0.0.1:9")
    assert await _insecure_line(world) is None

    _add(world, "plain", "ldap://127.0.0.1:9", insecure_plaintext=True)
    assert await _insecure_line(world) == (
        "INSECURE: plaintext bind to plain (ldap://127.0.0.1:9): the bind password crosses "
        "the network in clear text"
    )

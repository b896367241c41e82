"""The items screen's R key: an admin moves the marked items of one reviewer to another
(target, reason, then the admin's TOTP code); a conflicted target is refused in one line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from textual.message import Message
from textual.notifications import Notify

from govtui import db
from govtui.models import ReviewItem
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.reason_prompt import ReasonPrompt
from govtui.tui.modals.totp_prompt import TotpPrompt
from tests.factories import ADMIN, World, review_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.test_tui_reviews import _grants, _item_ids, _items, _start
from tests.tui.tui_support import SIZE, settle


def _reviewers(world: World) -> dict[int, tuple[int, int | None]]:
    with db.read_session(world.engine) as session:
        rows = session.execute(
            sa.select(ReviewItem.id, ReviewItem.reviewer_id, ReviewItem.original_reviewer_id)
        ).all()
    return {int(i): (int(r), o) for i, r, o in rows}


def _notes(messages: list[Message]) -> list[str]:
    return [m.notification.message for m in messages if isinstance(m, Notify)]


@pytest.fixture
def rworld(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> World:
    """Three grants of acme requested by req and approved by ann, all reviewed by rita."""
    world = review_vendor(sqlite_engine)
    _grants(world)
    _start(world)
    return world


async def test_r_reassigns_the_marked_items_with_the_admins_code(rworld: World) -> None:
    messages: list[Message] = []
    app = GovtuiApp(Workspace(rworld.engine, ADMIN))
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        items = await _items(pilot)
        first, second, _third = _item_ids(items)
        await pilot.press("space")
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press(*"ravi", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press(*"rita on leave", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TotpPrompt)
        await pilot.press(*rworld.code(ADMIN), "enter")
        await settle(pilot)
        assert app.screen is items
        moved = _reviewers(rworld)
        assert moved[first] == (rworld.op("ravi").id, rworld.op("rita").id)
        assert moved[second] == (rworld.op("rita").id, None)
        assert "1 item(s) moved from rita to ravi" in _notes(messages)

        # req requested every grant: refused in one line, nothing moves.
        table_row = _item_ids(items).index(second)
        items.query_one("#item-table").move_cursor(row=table_row)  # type: ignore[attr-defined]
        await pilot.press("R")
        await settle(pilot)
        await pilot.press(*"req", "enter")
        await settle(pilot)
        await pilot.press(*"rita on leave", "enter")
        await settle(pilot)
        await pilot.press(*rworld.code(ADMIN, 1), "enter")
        await settle(pilot)
        assert app.screen is items
        assert _reviewers(rworld)[second] == (rworld.op("rita").id, None)
        assert any("'req' may not review item(s)" in n for n in _notes(messages))

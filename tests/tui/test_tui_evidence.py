"""Evidence packs from the TUI (issue 13): E on the reviews screen exports the selected
campaign's pack, E on the browser a client's over a period; the dialog takes the file (and
the period), shows a progress bar, then the pack's SHA-256; a refusal is one line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from textual.pilot import Pilot
from textual.widgets import Button, Input, ProgressBar, Static, Tree

from govtui import clock
from govtui.services import evidence_keys, evidence_pack, evidence_verify, reviews
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.modals.evidence_export import EvidenceExport
from govtui.tui.screens.browser import BrowserScreen
from govtui.tui.screens.reviews import ReviewsScreen
from tests.conftest import FakeClock
from tests.factories import ADMIN, World, review_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import SIZE, settle, text_of, wait_until


@pytest.fixture
def eworld(sqlite_engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock) -> World:
    """review_vendor with two active grants of acme in campaign q1 (items for rita)."""
    world = review_vendor(sqlite_engine)
    ids = [world.request(person) for person in ("E1", "E2")]
    world.approve(*ids, by="ann")
    spec = reviews.CampaignSpec(
        name="q1",
        client="acme",
        reviewers=("rita",),
        due_at=clock.now() + timedelta(days=10),
        if_no_answer="keep",
    )
    Workspace(world.engine, ADMIN).act(reviews.start, spec=spec)
    fake_clock.advance(seconds=31)
    return world


def make_key(world: World) -> str:
    made = Workspace(world.engine, ADMIN).act(evidence_keys.init_key, code=world.code(ADMIN))
    return made.fingerprint


async def run_dialog(pilot: Pilot[None], path: Path, first: str = "", last: str = "") -> str:
    dialog = pilot.app.screen
    assert isinstance(dialog, EvidenceExport)
    dialog.query_one("#evidence-path", Input).value = str(path)
    if dialog.period:
        dialog.query_one("#evidence-from", Input).value = first
        dialog.query_one("#evidence-to", Input).value = last
    status = dialog.query_one("#evidence-status", Static)
    status.update("")
    await pilot.click("#evidence-export")
    status = dialog.query_one("#evidence-status", Static)
    await wait_until(
        pilot,
        lambda: text_of(status).strip() not in ("", "Exporting…"),
        what="the export to finish",
    )
    await settle(pilot)
    return text_of(status)


async def test_reviews_screen_exports_the_campaigns_pack_with_its_sha256(
    eworld: World, tmp_path: Path
) -> None:
    fingerprint = make_key(eworld)
    path = tmp_path / "q1.zip"
    app = GovtuiApp(Workspace(eworld.engine, ADMIN))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ReviewsScreen)
        await pilot.press("E")
        await settle(pilot)
        assert isinstance(app.screen, EvidenceExport)
        shown = await run_dialog(pilot, path)
        bar = app.screen.query_one("#evidence-bar", ProgressBar)
        assert bar.percentage == 1
        assert f"SHA-256 {evidence_pack.file_sha256(path)}" in shown
        assert fingerprint in shown
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ReviewsScreen)
    assert evidence_verify.verify(path, expect_key=fingerprint).ok


async def test_without_a_key_the_dialog_says_so_in_one_line(eworld: World, tmp_path: Path) -> None:
    path = tmp_path / "q1.zip"
    app = GovtuiApp(Workspace(eworld.engine, ADMIN))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        await pilot.press("E")
        await settle(pilot)
        shown = await run_dialog(pilot, path)
        assert "no evidence key" in shown and "SHA-256" not in shown
        assert not app.screen.query_one("#evidence-export", Button).disabled
    assert not path.exists()


async def test_browser_exports_a_clients_pack_over_a_period(eworld: World, tmp_path: Path) -> None:
    fingerprint = make_key(eworld)
    path = tmp_path / "acme.zip"
    today = clock.now().date().isoformat()
    app = GovtuiApp(Workspace(eworld.engine, ADMIN))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        tree = app.screen.query_one("#catalog", Tree)
        tree.move_cursor(tree.root.children[0])  # acme
        await settle(pilot)
        await pilot.press("E")
        await settle(pilot)
        shown = await run_dialog(pilot, path, "2026-01-01", "2025-01-01")
        assert "before it starts" in shown  # a bad period: one line, nothing written
        assert not path.exists()
        shown = await run_dialog(pilot, path, "2020-01-01", today)
        assert f"SHA-256 {evidence_pack.file_sha256(path)}" in shown
    result = evidence_verify.verify(path, expect_key=fingerprint)
    assert result.ok and result.kind == "client-period"
    assert result.subject["client"] == "acme"

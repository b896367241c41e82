"""Enrolling one's authenticator in the TUI: a QR code, confirmed with a code from it, and its
widget removed once confirmed, after three wrong codes, or when the screen closes; re-enrolling
needs the current code; a first enrolment is an admin's to start; an unsafe keyring is refused
with its message."""

from __future__ import annotations

import keyring
from keyring.backends import fail
from textual.widgets import Input, Static

from govtui.security import secrets
from govtui.services import second_factor
from govtui.services.workspace import Workspace
from govtui.tui.app import GovtuiApp
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.enrol import EnrolScreen
from tests.conftest import code
from tests.factories import World, allow_enrolment
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import SIZE, screen_text, settle, text_of

QR_BLOCKS = set("█▀▄")


def _pending_secret(world: World, name: str) -> str:
    key = Workspace(world.engine, name).read(second_factor.secret_key, name, pending=True)
    assert key is not None
    secret = secrets.load(key)
    assert secret is not None
    return secret


def _secret(world: World, name: str) -> str | None:
    key = Workspace(world.engine, name).read(second_factor.secret_key, name)
    return secrets.load(key) if key is not None else None


def _qr_shown(screen: EnrolScreen) -> bool:
    """Whether the QR code's widget is in the screen at all (it is removed, not hidden)."""
    found = list(screen.query("#enrol-qr"))
    assert all(widget.display for widget in found)
    return bool(found)


def _wrong(secret: str) -> str:
    return "000000" if code(secret) != "000000" else "111111"


async def _open_enrol(app: GovtuiApp, pilot: object) -> EnrolScreen:
    await settle(pilot)  # type: ignore[arg-type]
    await pilot.press("a")  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]
    assert isinstance(app.screen, ApprovalsScreen)
    await pilot.press("e")  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]
    screen = app.screen
    assert isinstance(screen, EnrolScreen)
    return screen


def _error(screen: EnrolScreen) -> str:
    return text_of(screen.query_one("#enrol-error", Static))


async def test_enrolment_shows_a_qr_code_and_a_right_code_enrols_and_removes_it(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    old_secret = world.secrets["ann"]

    app = GovtuiApp(Workspace(world.engine, "ann"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        current = screen.query_one("#enrol-current", Input)
        assert current.display and current.password and screen.focused is current
        assert not _qr_shown(screen)
        await pilot.press("enter")  # no current code
        await settle(pilot)
        assert "'ann' is enrolled already: re-enrolling needs their current code" in (
            _error(screen)
        )
        assert not _qr_shown(screen)
        await pilot.press(*code(old_secret), "enter")
        await settle(pilot)
        assert _error(screen) == ""
        assert _qr_shown(screen)
        drawn = text_of(screen.query_one("#enrol-qr", Static))
        assert set(drawn) <= QR_BLOCKS | {" ", "\n"} and QR_BLOCKS & set(drawn)
        lines = drawn.splitlines()
        assert len({len(line) for line in lines}) == 1  # square, unwrapped
        assert any(line.strip() and set(line.strip()) <= QR_BLOCKS for line in lines)
        assert "█" in screen_text(app)  # on the terminal, not only in the widget
        code_box = screen.query_one("#enrol-code", Input)
        assert code_box.password and screen.focused is code_box

        new_secret = _pending_secret(world, "ann")
        # A wrong code: said so (and counted), the QR code stays for another try.
        await pilot.press(*_wrong(new_secret), "enter")
        await settle(pilot)
        assert "does not match the new secret" in _error(screen)
        assert _qr_shown(screen)
        assert world.op("ann").totp_failures == 1

        await pilot.press(*code(new_secret), "enter")
        await settle(pilot)
        assert not _qr_shown(screen)
        assert not QR_BLOCKS & set(screen_text(app))  # gone from the terminal
        assert "Enrolled." in text_of(screen.query_one("#enrol-done"))
        assert _secret(world, "ann") == new_secret != old_secret
        assert "an authenticator is enrolled since" in text_of(screen.query_one("#enrol-status"))
        await pilot.press("escape")
        assert isinstance(app.screen, ApprovalsScreen)


async def test_three_wrong_codes_take_the_qr_code_away(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    app = GovtuiApp(Workspace(world.engine, "ann"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        await pilot.press(*code(world.secrets["ann"]), "enter")
        await settle(pilot)
        new_secret = _pending_secret(world, "ann")
        for attempt in range(EnrolScreen.MAX_CONFIRM_TRIES):
            assert _qr_shown(screen)
            await pilot.press(*_wrong(new_secret), "enter")
            await settle(pilot)
            assert "does not match the new secret" in _error(screen), attempt
        assert not _qr_shown(screen)
        assert not QR_BLOCKS & set(screen_text(app))
        assert "ask for a new one" in _error(screen)
        assert world.op("ann").totp_enrolled_at is not None  # the old secret still holds


async def test_closing_the_screen_takes_the_qr_code_away(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    app = GovtuiApp(Workspace(world.engine, "ann"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        await pilot.press(*code(world.secrets["ann"]), "enter")
        await settle(pilot)
        assert _qr_shown(screen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ApprovalsScreen)
        assert not _qr_shown(screen)
        assert not QR_BLOCKS & set(screen_text(app))


async def test_a_first_enrolment_needs_an_admins_allowance(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    assert world.op("req").totp_enrolled_at is None
    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        assert "no authenticator is enrolled yet" in text_of(screen.query_one("#enrol-status"))
        await pilot.press("enter")
        await settle(pilot)
        assert "needs an admin's allowance" in _error(screen)
        assert not _qr_shown(screen)
        assert world.op("req").totp_pending_at is None
    # Once an admin allowed it, req enrols themself here: the QR code is shown to them.
    allow_enrolment(world.engine, "req")
    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert _qr_shown(screen)
        assert world.op("req").totp_pending_at is not None


async def test_an_unsafe_keyring_is_refused_with_its_message(world: World) -> None:
    keyring.set_keyring(fail.Keyring())  # the memory_keyring fixture puts the old one back

    app = GovtuiApp(Workspace(world.engine, "req"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        await pilot.press("enter")
        await settle(pilot)
        error = _error(screen)
        assert error.startswith("the keyring backend keyring.backends.fail.Keyring does not")
        assert "start a Secret Service" in error
        assert screen.query_one("#enrol-error").display
        assert not _qr_shown(screen)
        assert world.op("req").totp_pending_at is None

"""Enrolling one's authenticator in the TUI: a QR code, confirmed with a code from it, and gone
from the screen once confirmed; re-enrolling needs the current code; an unsafe keyring is
refused with its message."""

from __future__ import annotations

import keyring
from keyring.backends import fail
from textual.widgets import Input, Static

from govtui.tui.app import GovtuiApp
from govtui.tui.screens.approvals import ApprovalsScreen
from govtui.tui.screens.enrol import EnrolScreen
from tests.conftest import code
from tests.factories import World
from tests.memory_keyring import MemoryKeyring
from tests.tui.tui_support import SIZE, screen_text, settle, text_of

QR_BLOCKS = set("█▀▄")


def _pending_secret(backend: MemoryKeyring, name: str) -> str:
    (secret,) = [
        value
        for (_service, user), value in backend.entries.items()
        if user.startswith(f"totp-pending:{name}@")
    ]
    return secret


def _secret(backend: MemoryKeyring, name: str) -> str:
    (secret,) = [
        value
        for (_service, user), value in backend.entries.items()
        if user.startswith(f"totp:{name}@")
    ]
    return secret


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
    assert world.op("req").totp_enrolled_at is None

    app = GovtuiApp(engine=world.engine, actor_name="req")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        assert "no authenticator is enrolled yet" in text_of(screen.query_one("#enrol-status"))
        qr = screen.query_one("#enrol-qr", Static)
        assert not qr.display
        await pilot.press("enter")  # the start button has the focus
        await settle(pilot)
        assert qr.display
        drawn = text_of(qr)
        assert set(drawn) <= QR_BLOCKS | {" ", "\n"} and QR_BLOCKS & set(drawn)
        lines = drawn.splitlines()
        assert len({len(line) for line in lines}) == 1  # square, unwrapped
        assert any(line.strip() and set(line.strip()) <= QR_BLOCKS for line in lines)
        assert "█" in screen_text(app)  # on the terminal, not only in the widget
        code_box = screen.query_one("#enrol-code", Input)
        assert code_box.password and screen.focused is code_box

        secret = _pending_secret(memory_keyring, "req")
        # A wrong code: said so, the QR code stays for another try.
        wrong = "000000" if code(secret) != "000000" else "111111"
        await pilot.press(*wrong, "enter")
        await settle(pilot)
        assert "does not match the new secret" in _error(screen)
        assert qr.display
        assert world.op("req").totp_enrolled_at is None

        await pilot.press(*code(secret), "enter")
        await settle(pilot)
        assert world.op("req").totp_enrolled_at is not None
        assert not qr.display and text_of(qr) == ""
        assert not QR_BLOCKS & set(screen_text(app))  # gone from the terminal
        assert "Enrolled." in text_of(screen.query_one("#enrol-done"))
        assert _secret(memory_keyring, "req") == secret
        assert "an authenticator is enrolled since 2026-03-02 09:00" in text_of(
            screen.query_one("#enrol-status")
        )
        await pilot.press("escape")
        assert isinstance(app.screen, ApprovalsScreen)


async def test_re_enrolment_needs_the_current_code(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    old_secret = world.secrets["ann"]

    app = GovtuiApp(engine=world.engine, actor_name="ann")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        current = screen.query_one("#enrol-current", Input)
        assert current.display and current.password and screen.focused is current
        await pilot.press("enter")  # no current code
        await settle(pilot)
        assert "'ann' is enrolled already: re-enrolling needs their current code" in (
            _error(screen)
        )
        assert not screen.query_one("#enrol-qr").display
        await pilot.press(*code(old_secret), "enter")
        await settle(pilot)
        assert _error(screen) == ""
        assert screen.query_one("#enrol-qr").display
        new_secret = _pending_secret(memory_keyring, "ann")
        await pilot.press(*code(new_secret), "enter")
        await settle(pilot)
        assert _secret(memory_keyring, "ann") == new_secret != old_secret
        assert not screen.query_one("#enrol-qr").display


async def test_an_unsafe_keyring_is_refused_with_its_message(world: World) -> None:
    keyring.set_keyring(fail.Keyring())  # the memory_keyring fixture puts the old one back

    app = GovtuiApp(engine=world.engine, actor_name="req")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_enrol(app, pilot)
        await pilot.press("enter")
        await settle(pilot)
        error = _error(screen)
        assert error.startswith("the keyring backend keyring.backends.fail.Keyring does not")
        assert "start a Secret Service" in error
        assert screen.query_one("#enrol-error").display
        assert not screen.query_one("#enrol-qr").display
        assert world.op("req").totp_pending_at is None

"""Every screen at 80x24 in a real terminal (tmux), read back as a person sees it: the key
facts of each are on screen (the dashboard's every grant state, the grants' state and expiry,
the request form's buttons, the help's keys), and a footer that cannot show every key ends
with "? more keys"."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govtui import clock, db, migrations
from tests.conftest import FakeClock
from tests.factories import ADMIN, small_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.test_tui_tmux import GOVTUI, _tmux_or_skip, _wait_for

pytestmark = pytest.mark.tmux

MORE = "? more keys"
# key -> what must be visible on that screen at 80x24
SCREENS: list[tuple[str, list[str]]] = [
    ("d", ["Client", "Status", "Requested", "Active", "Susp.", "Expired", "Revoked", "Denied"]),
    ("b", ["acme", "other", "Pause client"]),
    ("c", ["External id", "E1", "Ada", "2 contractors"]),
    ("t", ["Id", "State", "Expires (UTC)", "requested", "grants · showing"]),
    ("a", ["Approvals"]),
    ("v", ["Reviews"]),
    ("y", ["Directory"]),
]


def test_every_screen_at_80x24_shows_its_key_facts_and_a_footer_that_fits(
    tmp_path: Path, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    tmux = _tmux_or_skip()
    url = f"sqlite:///{tmp_path / 'small.db'}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    clock.set_source(lambda: datetime.now(UTC))  # govtui in tmux runs on the real clock
    try:
        world = small_vendor(engine)
        world.request("E1", "acme/rlhf/pairs")
        world.request("E1", "other/p/s")
    finally:
        clock.set_source(fake_clock)
    engine.dispose()

    socket = Path(tempfile.gettempdir()) / f"govtui-tmux-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    name = "small"
    exit_file = tmp_path / "exit-code"
    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": ADMIN, "TERM": "xterm-256color"}
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    shell = (
        'while [ "$(stty size)" != "24 80" ]; do sleep 0.05; done; '
        f"env {env_words} {shlex.quote(str(GOVTUI))}; echo $? > {shlex.quote(str(exit_file))}"
    )

    def tmux_run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tmux, "-S", str(socket), *args], check=check, capture_output=True, text=True
        )

    def screen() -> str:
        return tmux_run("capture-pane", "-p", "-t", name, check=False).stdout

    def footer() -> str:
        lines = [line for line in screen().splitlines() if line.strip()]
        return lines[-1].rstrip() if lines else ""

    def keys(*sent: str) -> None:
        tmux_run("send-keys", "-t", name, *sent)

    def shows(*texts: str) -> bool:
        shown = screen()
        return all(text in shown for text in texts)

    try:
        tmux_run("new-session", "-d", "-s", name, "-x", "80", "-y", "24", shell)
        _wait_for(lambda: "Dashboard" in screen(), "the app", screen)
        for key, facts in SCREENS:
            keys(key)
            _wait_for(lambda f=facts: shows(*f), f"{facts} after {key}", screen)  # type: ignore[misc]
            # Every key fits, or the footer says there are more (and ? lists them).
            _wait_for(
                lambda: footer().endswith((MORE, "^p palette")), f"the footer of {key}", screen
            )
            assert len(footer()) <= 80
        # The dashboard and the grants cannot show every key at 80 columns.
        for key in ("d", "t"):
            keys(key)
            _wait_for(lambda: footer().endswith(MORE), f"{MORE!r} on {key}", screen)

        # The request form: its buttons in view without scrolling.
        keys("t")
        _wait_for(lambda: "grants · showing" in screen(), "the grants", screen)
        keys("n")
        _wait_for(lambda: shows("Request a grant", "Request", "Close"), "the form", screen)
        buttons = [line for line in screen().splitlines() if "Request " in line and "Close" in line]
        assert buttons, screen()
        keys("Escape")
        _wait_for(lambda: "Request a grant" not in screen(), "the form to close", screen)

        # The help: govtui's keys in view, none of Textual's widget internals.
        keys("?")
        _wait_for(lambda: shows("keys and screens", "New request", "First row"), "the help", screen)
        assert "super+c" not in screen() and "Page Left" not in screen()
        keys("Escape")
        _wait_for(lambda: "keys and screens" not in screen(), "the help to close", screen)

        keys("q")
        _wait_for(lambda: exit_file.exists(), "govtui to quit", screen)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux_run("kill-session", "-t", name, check=False)
        tmux_run("kill-server", check=False)
        socket.unlink(missing_ok=True)

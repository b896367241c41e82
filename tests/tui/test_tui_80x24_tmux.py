"""Every screen at 80x24 in a real terminal (tmux), read back as a person sees it: the key
facts of each are on screen (the dashboard's every grant state, the grants' state and expiry,
the request form's buttons, the help's keys), and a footer that cannot show every key ends
with "? more keys"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FakeClock
from tests.factories import ADMIN, small_vendor
from tests.memory_keyring import MemoryKeyring
from tests.tui.tmux_support import GOVTUI, migrated_sqlite, real_clock, terminal

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
    url, engine = migrated_sqlite(tmp_path / "small.db")
    with real_clock(fake_clock):  # govtui in tmux runs on the real clock
        world = small_vendor(engine)
        world.request("E1", "acme/rlhf/pairs")
        world.request("E1", "other/p/s")
    engine.dispose()

    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": ADMIN, "TERM": "xterm-256color"}
    with terminal(tmp_path, "small", [str(GOVTUI)], env, size=(80, 24)) as term:
        screen, keys, shows = term.screen, term.keys, term.shows

        def footer() -> str:
            lines = [line for line in screen().splitlines() if line.strip()]
            return lines[-1].rstrip() if lines else ""

        term.wait(lambda: "Dashboard" in screen(), "the app")
        for key, facts in SCREENS:
            keys(key)
            term.wait(lambda f=facts: shows(*f), f"{facts} after {key}")  # type: ignore[misc]
            # Every key fits, or the footer says there are more (and ? lists them).
            term.wait(lambda: footer().endswith((MORE, "^p palette")), f"the footer of {key}")
            assert len(footer()) <= 80
        # The dashboard and the grants cannot show every key at 80 columns.
        for key in ("d", "t"):
            keys(key)
            term.wait(lambda: footer().endswith(MORE), f"{MORE!r} on {key}")

        # The request form: its buttons in view without scrolling.
        keys("t")
        term.wait(lambda: "grants · showing" in screen(), "the grants")
        keys("n")
        term.wait(lambda: shows("Request a grant", "Request", "Close"), "the form")
        buttons = [line for line in screen().splitlines() if "Request " in line and "Close" in line]
        assert buttons, screen()
        keys("Escape")
        term.wait(lambda: "Request a grant" not in screen(), "the form to close")

        # The help: govtui's keys in view, none of Textual's widget internals.
        keys("?")
        term.wait(lambda: shows("keys and screens", "New request", "First row"), "the help")
        assert "super+c" not in screen() and "Page Left" not in screen()
        keys("Escape")
        term.wait(lambda: "keys and screens" not in screen(), "the help to close")

        keys("q")
        term.wait(term.exited, "govtui to quit")
        assert term.exit_code() == "0"

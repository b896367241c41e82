"""The grants screen in tmux at 80x24, as a person sees it: the count of the whole list, End
to its real last row and g back to the first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from govtui import db
from govtui.services import grant_views
from tests.conftest import FakeClock
from tests.factories import ADMIN, Scope, bulk_vendor, every_pair
from tests.memory_keyring import MemoryKeyring
from tests.tui.tmux_support import GOVTUI, migrated_sqlite, real_clock, terminal

pytestmark = pytest.mark.tmux

PEOPLE, SCOPES = 120, 5  # 600 grants: three windows
DASH = "\N{EN DASH}"


def test_grants_at_80x24_count_the_whole_list_and_end_reaches_its_last_row(
    tmp_path: Path, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    url, engine = migrated_sqlite(tmp_path / "grants.db")
    with real_clock(fake_clock):  # govtui in tmux runs on the real clock
        vendor = bulk_vendor(
            engine,
            scopes=[Scope(f"acme/p/s{s}") for s in range(SCOPES)],
            contractors=PEOPLE,
            target=None,
        )
        for k, scope in enumerate(vendor.scopes):
            vendor.grant(every_pair(range(PEOPLE), [scope]), expires_in=timedelta(days=3 + k * 3))
        with db.read_session(engine) as session:
            last = grant_views.window(session, from_end=True, limit=1)[0]
    engine.dispose()

    total = PEOPLE * SCOPES
    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": ADMIN, "TERM": "xterm-256color"}
    with terminal(tmp_path, "grants", [str(GOVTUI)], env, size=(80, 24)) as term:
        screen, keys = term.screen, term.keys

        def flat() -> str:  # the status line wraps at 80 columns
            return " ".join(screen().split())

        term.wait(lambda: "Dashboard" in screen() or "acme" in screen(), "the app")
        keys("t")
        term.wait(lambda: f"{total} grants · showing 1{DASH}200" in screen(), "the count")
        # Scopes 0 and 1 end within 7 days: 240 of them, counted over the whole list.
        term.wait(lambda: "240 expire within 7 days" in flat(), "the soon count")
        keys("End")
        term.wait(lambda: f"showing 401{DASH}600" in screen(), "the last window")
        assert f" {last.id} " in screen()
        keys("g")
        term.wait(lambda: f"showing 1{DASH}200" in screen(), "the first window again")
        keys("q")
        term.wait(term.exited, "govtui to quit")
        assert term.exit_code() == "0"

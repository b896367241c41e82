"""The grants screen in tmux at 80x24, as a person sees it: the count of the whole list, End
to its real last row and g back to the first."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govtui import clock, db, migrations
from govtui.services import grant_views
from tests.conftest import FakeClock
from tests.factories import ADMIN, Scope, bulk_vendor, every_pair
from tests.memory_keyring import MemoryKeyring
from tests.tui.test_tui_tmux import GOVTUI, _tmux_or_skip, _wait_for

pytestmark = pytest.mark.tmux

PEOPLE, SCOPES = 120, 5  # 600 grants: three windows
DASH = "\N{EN DASH}"


def test_grants_at_80x24_count_the_whole_list_and_end_reaches_its_last_row(
    tmp_path: Path, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    tmux = _tmux_or_skip()
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    clock.set_source(lambda: datetime.now(UTC))  # govtui in tmux runs on the real clock
    try:
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
    finally:
        clock.set_source(fake_clock)
    engine.dispose()

    socket = Path(tempfile.gettempdir()) / f"govtui-tmux-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    name = "grants"
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

    def flat() -> str:  # the status line wraps at 80 columns
        return " ".join(screen().split())

    def keys(*sent: str) -> None:
        tmux_run("send-keys", "-t", name, *sent)

    total = PEOPLE * SCOPES
    try:
        tmux_run("new-session", "-d", "-s", name, "-x", "80", "-y", "24", shell)
        _wait_for(lambda: "Dashboard" in screen() or "acme" in screen(), "the app", screen)
        keys("t")
        _wait_for(lambda: f"{total} grants · showing 1{DASH}200" in screen(), "the count", screen)
        # Scopes 0 and 1 end within 7 days: 240 of them, counted over the whole list.
        _wait_for(lambda: "240 expire within 7 days" in flat(), "the soon count", screen)
        keys("End")
        _wait_for(lambda: f"showing 401{DASH}600" in screen(), "the last window", screen)
        assert f" {last.id} " in screen()
        keys("g")
        _wait_for(lambda: f"showing 1{DASH}200" in screen(), "the first window again", screen)
        keys("q")
        _wait_for(lambda: exit_file.exists(), "govtui to quit", screen)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux_run("kill-session", "-t", name, check=False)
        tmux_run("kill-server", check=False)
        socket.unlink(missing_ok=True)

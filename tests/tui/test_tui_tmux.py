"""The real `govtui` executable, in a real terminal (tmux): start, search contractors, quit."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from govtui import db
from govtui.services import contractors

GOVTUI = Path(sys.executable).parent / "govtui"
SEARCH = "abara"  # a demo surname, lower case as a person types it


def _tmux_or_skip() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing: CI must run the tmux tests (scripts/test installs it)")
        pytest.skip("tmux is not installed")
    return tmux


def _wait_for(
    check: Callable[[], bool], what: str, shows: Callable[[], str], timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{shows()}")
        time.sleep(0.1)


@pytest.mark.tmux
def test_govtui_in_tmux_shows_dashboard_searches_contractors_and_quits(tmp_path: Path) -> None:
    tmux = _tmux_or_skip()
    url = f"sqlite:///{tmp_path / 'tmux.db'}"
    for command in (["init"], ["demo"]):
        subprocess.run([str(GOVTUI), "--db", url, *command], check=True, capture_output=True)
    engine = db.make_engine(url)
    with db.read_session(engine) as session:
        matching = contractors.count(session, search=SEARCH)
    engine.dispose()
    assert matching > 0

    # A private tmux server on a socket of its own: nothing of the user's own tmux is touched,
    # and server and socket go when the test ends.
    socket = Path(tempfile.gettempdir()) / f"govtui-tmux-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    session_name = "govtui"
    exit_file = tmp_path / "exit-code"
    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": "alex", "TERM": "xterm-256color"}
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # tmux may size the pane after starting its command; wait for the size so that govtui
    # starts at 120x40 rather than missing the resize.
    shell = (
        'while [ "$(stty size)" != "40 120" ]; do sleep 0.05; done; '
        f"env {env_words} {shlex.quote(str(GOVTUI))}; echo $? > {shlex.quote(str(exit_file))}"
    )

    def tmux_run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tmux, "-S", str(socket), *args], check=check, capture_output=True, text=True
        )

    def screen() -> str:
        return tmux_run("capture-pane", "-p", "-t", session_name, check=False).stdout

    def pane() -> str:
        size = "#{pane_width}x#{pane_height}"
        shown = tmux_run("display", "-p", "-t", session_name, size, check=False).stdout
        return f"[pane {shown.strip()}]\n{screen()}"

    def alive() -> bool:
        return tmux_run("has-session", "-t", session_name, check=False).returncode == 0

    try:
        tmux_run("new-session", "-d", "-s", session_name, "-x", "120", "-y", "40", shell)
        _wait_for(lambda: "helios-labs" in screen(), "the dashboard", pane)
        dashboard = screen()
        assert "govtui — acting as alex" in dashboard
        assert "northwind-ai" in dashboard and "orbital-research" in dashboard

        tmux_run("send-keys", "-t", session_name, "c")
        _wait_for(lambda: "contractors · showing" in screen(), "the contractors screen", pane)
        tmux_run("send-keys", "-t", session_name, "/")
        # The search box has the focus once the footer stops offering the screen keys.
        _wait_for(lambda: "d Dashboard" not in screen(), "the search box to take focus", pane)
        tmux_run("send-keys", "-t", session_name, "-l", SEARCH)
        status = f"{matching} contractors match “{SEARCH}”"
        _wait_for(lambda: status in screen(), f"the status line {status!r}", pane)
        shown = screen()
        assert "Abara" in shown
        # Only matching rows: every table row (they carry a C00000-style id) names Abara.
        rows = [line for line in shown.splitlines() if " C0" in line]
        assert rows and all("Abara" in line or "abara" in line for line in rows), rows

        tmux_run("send-keys", "-t", session_name, "Enter")  # from the search to the table
        # Keys sent faster than a person types would otherwise reach the search box still.
        _wait_for(lambda: "d Dashboard" in screen(), "the table to take focus", pane)
        tmux_run("send-keys", "-t", session_name, "q")
        _wait_for(lambda: exit_file.exists(), "govtui to quit", pane)
        assert exit_file.read_text().strip() == "0"
        _wait_for(lambda: not alive(), "the tmux session to end", pane)
    finally:
        tmux_run("kill-session", "-t", session_name, check=False)
        tmux_run("kill-server", check=False)
        socket.unlink(missing_ok=True)

"""The real `govtui` executable, in a real terminal (tmux): start, search contractors, quit;
and a reviewer revoking an item of an access review (keys sent, the screen read back)."""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col

from govtui import clock, db, migrations
from govtui.models import ReviewItem
from govtui.services import contractors, operators, reviews
from tests.conftest import FakeClock
from tests.factories import ADMIN, review_vendor
from tests.memory_keyring import MemoryKeyring

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


@pytest.mark.tmux
def test_reviewer_revokes_an_item_in_tmux_without_a_code(
    tmp_path: Path, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    tmux = _tmux_or_skip()
    url = f"sqlite:///{tmp_path / 'review.db'}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    # Built on the real clock: govtui in tmux runs on it, and would expire grants of the
    # tests' fixed day.
    clock.set_source(lambda: datetime.now(UTC))
    try:
        world = review_vendor(engine)
        # (E2's contract ended on the tests' fixed day: E1 twice instead.)
        wanted = [("E1", "acme/rlhf/pairs"), ("E3", "acme/rlhf/pairs"), ("E1", "acme/rlhf/notes")]
        grant_ids = [world.request(person, scope=scope) for person, scope in wanted]
        world.approve(*grant_ids, by="ann")
        spec = reviews.CampaignSpec(
            name="q1",
            client="acme",
            reviewers=("rita",),
            due_at=clock.now() + timedelta(days=10),
            if_no_answer="keep",
        )
        with db.write_session(engine) as session:
            reviews.start(session, operators.find(session, ADMIN), spec=spec)
    finally:
        clock.set_source(fake_clock)
    engine.dispose()

    socket = Path(tempfile.gettempdir()) / f"govtui-tmux-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    session_name = "reviews"
    exit_file = tmp_path / "exit-code"
    env = {"GOVTUI_DB": url, "GOVTUI_OPERATOR": "rita", "TERM": "xterm-256color"}
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
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

    def keys(*sent: str, literal: bool = False) -> None:
        tmux_run("send-keys", "-t", session_name, *(["-l"] if literal else []), *sent)

    try:
        tmux_run("new-session", "-d", "-s", session_name, "-x", "120", "-y", "40", shell)
        _wait_for(lambda: "Reviews: 1 open" in screen(), "the dashboard's reviews line", screen)
        keys("v")
        _wait_for(lambda: "0/3" in screen() and "q1" in screen(), "the campaigns", screen)
        # As a person would: press Enter again if the first one landed while the table was
        # still being filled (seen once under a loaded CI machine).
        for attempt in range(3):
            keys("Enter")
            try:
                _wait_for(lambda: "3 of 3 items" in screen(), "the items of q1", screen, 10.0)
                break
            except AssertionError:
                if attempt == 2 or "Reviews" not in screen().splitlines()[0]:
                    raise
        keys("x")
        _wait_for(lambda: "Revoke 1 item of q1?" in screen(), "the reason prompt", screen)
        assert "No code is needed" in screen()
        keys("left the project", literal=True)
        keys("Enter")
        _wait_for(lambda: "2 of 2 items" in screen(), "the item to leave the list", screen)
        assert "TOTP" not in screen()  # revoking never asked for a code
        keys("Escape")
        _wait_for(lambda: "1/3" in screen(), "the campaign's progress", screen)
        keys("q")
        _wait_for(lambda: exit_file.exists(), "govtui to quit", screen)
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux_run("kill-session", "-t", session_name, check=False)
        tmux_run("kill-server", check=False)
        socket.unlink(missing_ok=True)
    engine = db.make_engine(url)
    with db.read_session(engine) as session:
        decided = session.execute(
            sa.select(ReviewItem.decision, ReviewItem.reason).where(
                col(ReviewItem.decision).is_not(None)
            )
        ).all()
    engine.dispose()
    assert [tuple(row) for row in decided] == [("revoke", "left the project")]

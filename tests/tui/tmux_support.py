"""Helpers for driving a program in a real terminal (tmux): a private tmux server on a socket
of its own, the pane read back as a person sees it, keys sent as a person types them."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from govtui import clock, db, migrations
from tests.conftest import FakeClock

GOVTUI = Path(sys.executable).parent / "govtui"


def tmux_or_skip() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing: CI must run the tmux tests (scripts/test installs it)")
        pytest.skip("tmux is not installed")
    return tmux


def wait_for(
    check: Callable[[], bool], what: str, shows: Callable[[], str], timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{shows()}")
        time.sleep(0.1)


@contextmanager
def real_clock(fake_clock: FakeClock) -> Iterator[None]:
    """Build a world on the real clock (govtui in tmux runs on it, and would expire grants of
    the tests' fixed day), then put the tests' fake clock back."""
    clock.set_source(lambda: datetime.now(UTC))
    try:
        yield
    finally:
        clock.set_source(fake_clock)


def migrated_sqlite(path: Path) -> tuple[str, Engine]:
    """The URL of a new SQLite database at `path`, and an engine on it, migrated."""
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    return url, engine


class Terminal:
    """One tmux session on a private server: `name` is the session's target."""

    def __init__(self, tmux: str, socket: Path, name: str, exit_file: Path) -> None:
        self.tmux = tmux
        self.socket = socket
        self.name = name
        self.exit_file = exit_file

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.tmux, "-S", str(self.socket), *args], check=check, capture_output=True, text=True
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name, check=False).stdout

    def pane(self) -> str:
        """The screen, headed by the pane's size (to tell a missed resize from a slow app)."""
        size = "#{pane_width}x#{pane_height}"
        shown = self.run("display", "-p", "-t", self.name, size, check=False).stdout
        return f"[pane {shown.strip()}]\n{self.screen()}"

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.name, check=False).returncode == 0

    def keys(self, *sent: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.name, *(["-l"] if literal else []), *sent)

    def shows(self, *texts: str) -> bool:
        shown = self.screen()
        return all(text in shown for text in texts)

    def wait(
        self,
        check: Callable[[], bool],
        what: str,
        timeout: float = 20.0,
        shows: Callable[[], str] | None = None,
    ) -> None:
        wait_for(check, what, shows or self.screen, timeout)

    def exited(self) -> bool:
        return self.exit_file.exists()

    def exit_code(self) -> str:
        return self.exit_file.read_text().strip()


@contextmanager
def terminal(
    tmp_path: Path,
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    size: tuple[int, int] = (120, 40),
    linger: bool = False,
) -> Iterator[Terminal]:
    """`command` (with `env`) in a new tmux session of `size` (columns, rows) on a private
    server: nothing of the user's own tmux is touched, and server and socket go when the block
    ends. The command's exit status lands in the Terminal's exit_file; with `linger` the pane
    stays open after it (to read what it printed last)."""
    tmux = tmux_or_skip()
    socket = Path(tempfile.gettempdir()) / f"govtui-tmux-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    term = Terminal(tmux, socket, name, tmp_path / "exit-code")
    columns, rows = size
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # tmux may size the pane after starting its command; wait for the size so that the
    # program starts at it rather than missing the resize.
    shell = (
        f'while [ "$(stty size)" != "{rows} {columns}" ]; do sleep 0.05; done; '
        f"env {env_words} {shlex.join(command)}; echo $? > {shlex.quote(str(term.exit_file))}"
        + ("; sleep 600" if linger else "")
    )
    try:
        term.run("new-session", "-d", "-s", name, "-x", str(columns), "-y", str(rows), shell)
        yield term
    finally:
        term.run("kill-session", "-t", name, check=False)
        term.run("kill-server", check=False)
        socket.unlink(missing_ok=True)

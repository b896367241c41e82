"""After a failed or aborted `govtui operator enroll` (three wrong codes, Ctrl-C, end of input)
the QR code, which is the secret, is cleared from the screen and the scrollback (issue 11,
finding 8): run in a real pseudo-terminal, against the real Secret Service."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from govtui.cli.people_commands import CLEAR_SCREEN
from govtui.security import totp

from .factories import World, small_vendor
from .test_secrets import _real_secret_service

QR_BLOCKS = ("█", "▀", "▄")


@pytest.fixture
def real_world(sqlite_engine: Engine) -> World:
    _real_secret_service()
    return small_vendor(sqlite_engine)


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (stdin), so
    getpass and Ctrl-C behave as at a person's terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _fresh_code(world: World, name: str) -> str:
    """A code of the real clock (the child process runs on it) for a step not used yet."""
    now = totp.step_of(datetime.now(UTC))
    last = world.op(name).totp_last_step or 0
    # The current step, not the one before: the child may take seconds to start on a loaded machine.
    return totp.code_for_step(world.secrets[name], max(now, last + 1))


def _enrol_in_a_pty(world: World, *, feed: list[bytes], interrupt: bool = False) -> tuple[str, int]:
    """Run `operator enroll ann` (re-enrolment with her current code) in a pseudo-terminal,
    answer each code prompt with the next of `feed` (or Ctrl-C); the output and exit code."""
    url = world.engine.url.render_as_string(hide_password=False)
    command = [
        sys.executable,
        "-m",
        "govtui",
        "--db",
        url,
        "--as",
        "ann",
        "operator",
        "enroll",
        "ann",
        "--current-code",
        _fresh_code(world, "ann"),
    ]
    main, child = pty.openpty()
    proc = subprocess.Popen(
        command, stdin=child, stdout=child, stderr=child, preexec_fn=_own_terminal, close_fds=True
    )
    os.close(child)
    out = b""
    answers = list(feed)
    interrupted = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            out += chunk
            if out.count(b"code it shows now") > len(feed) - len(answers):
                if interrupt and not answers and not interrupted:
                    interrupted = True
                    os.killpg(proc.pid, signal.SIGINT)
                elif answers:
                    os.write(main, answers.pop(0))
        elif proc.poll() is not None:
            break
    rc = proc.wait(timeout=30)
    os.close(main)
    return out.decode(errors="replace"), rc


def _cleared_after_the_qr(out: str) -> bool:
    last_qr = max(out.rfind(block) for block in QR_BLOCKS)
    return last_qr > 0 and out.find(CLEAR_SCREEN, last_qr) > last_qr


def test_three_wrong_codes_clear_the_qr_code(real_world: World) -> None:
    out, rc = _enrol_in_a_pty(real_world, feed=[b"000000\r", b"111111\r", b"222222\r"])
    assert rc == 2, out
    assert "three wrong codes" in out
    assert _cleared_after_the_qr(out), out[-500:]


def test_end_of_input_clears_the_qr_code(real_world: World) -> None:
    out, rc = _enrol_in_a_pty(real_world, feed=[b"\x04"])
    assert rc == 2, out
    assert "Traceback" not in out and "stays pending" in out
    assert _cleared_after_the_qr(out), out[-500:]


def test_ctrl_c_clears_the_qr_code(real_world: World) -> None:
    out, rc = _enrol_in_a_pty(real_world, feed=[], interrupt=True)
    assert rc == 130, out
    assert "Traceback" not in out
    assert _cleared_after_the_qr(out), out[-500:]

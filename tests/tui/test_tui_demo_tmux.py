"""`scripts/run --demo` in a real terminal (tmux), as a new user would (issue 14): enrol, then
request → approve → revoke → pause → resume → reconcile, by keys, the screen read back; the
demo's Secret Service, OpenLDAP and data are gone after quitting, and also when the demo fails.
The demo's OpenLDAP speaks ldaps:// only, with a certificate from a throw-away CA, so the demo
passes its own `govtui doctor` (the dashboard's line, and the command) while sync and
reconcile run live over TLS."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from govtui.security import totp
from tests.tui.tmux_support import terminal, tmux_or_skip

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "scripts" / "run"
SECRET_LINE = re.compile(r"((?:[A-Z2-7]{4} ){3}[A-Z2-7]{4})\s*$")


def _slapd_or_skip() -> None:
    if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
        if os.environ.get("CI"):
            pytest.fail("slapd is missing: CI must run this test (scripts/test installs it)")
        pytest.skip("slapd is not installed")


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Codes:
    """Each TOTP step's code is accepted once: the next usable step (now, or the next one,
    which govtui's window accepts too), waiting when both are used up."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.last: int | None = None

    def next(self) -> str:
        while True:
            now = int(time.time()) // totp.STEP_SECONDS
            # Not now - 1: the step could end before govtui checks it.
            step = now if self.last is None else max(self.last + 1, now)
            if step <= now + 1:
                self.last = step
                return totp.code_for_step(self.secret, step)
            time.sleep(1)


@pytest.mark.tmux
def test_scripts_run_demo_does_every_core_task_by_keys_and_cleans_up(tmp_path: Path) -> None:
    tmux_or_skip()
    _slapd_or_skip()
    # Everything scripts/run makes (data, slapd, the keyring's home) goes under this TMPDIR.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"TERM": "xterm-256color", "GOVTUI_DEMO_CONTRACTORS": "120", "TMPDIR": str(scratch)}
    command = [str(RUN), "--demo"]
    with terminal(tmp_path, "demo", command, env, size=(160, 40), linger=True) as term:
        screen, keys = term.screen, term.keys

        def wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
            term.wait(check, what, timeout)

        def shows(text: str, timeout: float = 30.0) -> None:
            wait(lambda: text in screen(), repr(text), timeout)

        def query(sql: str, *args: object) -> list[tuple[object, ...]]:
            with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as conn:
                return conn.execute(sql, args).fetchall()

        wait(lambda: "govtui — acting as alex" in screen(), "the TUI", timeout=240)
        made = sorted(p.name.split(".")[0] for p in scratch.iterdir())
        assert made == ["govtui-demo", "govtui-keyring", "govtui-slapd"], made
        (db_file,) = scratch.glob("govtui-demo.*/demo.db")
        (args,) = scratch.glob("govtui-slapd.*/slapd.args")
        # slapd listens on ldaps:// alone: no plain ldap:// listener to send a password to.
        port = re.search(r"-h ldaps://127\.0\.0\.1:(\d+)/ ", args.read_text())
        assert port and "ldap://" not in args.read_text(), args.read_text()
        ldap_port = int(port.group(1))
        assert _answers(ldap_port)
        # The throw-away CA: its key is gone once it signed; the server's key is private.
        tls = args.parent / "tls"
        assert sorted(p.name for p in tls.iterdir() if p.suffix in (".key", ".pem")) == [
            "ca.pem",
            "server.key",
            "server.pem",
        ]
        assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
        assert "acting as alex (demo: w switches)" in screen()
        # The demo passes its own doctor: the dashboard's line says so once the checks ran
        # (warnings are the development lock's extra packages, where scripts/test set it up).
        shows("doctor: every check passed", timeout=60)
        doctor_line = next(line for line in screen().splitlines() if "doctor:" in line)
        assert "FAILED" not in doctor_line, screen()

        # Enrol: the secret is on the screen as text; type a code from it.
        keys("a")
        shows("Approvals")
        keys("e")
        shows("Show a new QR code")
        keys("Enter")
        shows("Secret")
        lines = [m.group(1) for line in screen().splitlines() if (m := SECRET_LINE.search(line))]
        assert len(lines) == 2, screen()
        codes = Codes("".join("".join(lines).split()))
        keys(codes.next(), literal=True)
        keys("Enter")
        shows("Enrolled.")
        keys("Escape")  # (a key sent right after Escape would arrive as Alt+key: wait)
        shows("⏎ Approve")
        # The queue reloads after the enrolment (its hint goes with the reload).
        wait(lambda: "press e to enrol" not in screen(), "the enrol hint to go")

        # Request: a new grant, alex's own, from the grants screen's form.
        keys("t")
        shows("Grants")
        keys("n")
        shows("Request a grant (as alex)")
        keys("C00007", literal=True)
        time.sleep(1.0)  # the search settles on the one match
        # Enter on the contractor box goes on to the scope (picking the one match, or closing
        # a list of matches still open: a Tab would land in it); then the scope menu: its
        # second entry; the access level as it is; days.
        for key in ("Enter", "Enter", "Down", "Enter", "Tab", "Tab", "3", "Tab"):
            keys(key)
            time.sleep(0.4)
        keys("tmux demo", literal=True)
        time.sleep(0.4)
        keys("Enter")
        shows("Requested grant #")
        (mine,) = query("SELECT id FROM access_grant WHERE reason = 'tmux demo'")
        # The form closes on success, or stays open for the next request: either way, gone.
        if "Request a grant (as alex)" in screen():
            keys("Escape")
        wait(lambda: "Request a grant (as alex)" not in screen(), "the form to close")

        # Approve someone else's request (sam's), the first in alex's queue.
        keys("a")
        shows("⏎ Approve")
        time.sleep(1)
        keys("Space", "A")
        shows("6-digit code from your authenticator")
        time.sleep(0.5)  # the box opens once the lock-out is known
        keys(codes.next(), literal=True)
        keys("Enter")
        shows("1 approved")
        (approved,) = query(
            "SELECT g.id, c.external_id FROM access_grant g JOIN approval a ON a.grant_id = g.id"
            " JOIN operator o ON o.id = a.approver_id JOIN contractor c ON c.id = g.contractor_id"
            " WHERE o.name = 'alex'"
        )
        grant_id = approved[0]
        assert query("SELECT state FROM access_grant WHERE id = ?", grant_id) == [("active",)]

        # Revoke it: on the grants screen (newest first, so among the rows shown), the
        # cursor on its row, x, a reason.
        keys("t")
        shows("grants · showing")
        # The rows are by expiry: filter by its contractor (/, then Tab to the contractor box).
        keys("/")
        for key in ("Tab", "Tab"):
            time.sleep(0.3)
            keys(key)
        time.sleep(0.3)
        keys(approved[1], literal=True)
        time.sleep(1)
        keys("Enter")  # back to the table
        shows(f"{approved[1]}")
        time.sleep(1)
        keys("C-Home")  # the first row
        time.sleep(0.5)
        rows = [
            line
            for line in screen().splitlines()
            if re.match(r"^\s*\d+\s+(requested|active|suspended|expired|revoked|denied)\s", line)
        ]
        index = next(i for i, line in enumerate(rows) if line.split()[0] == str(grant_id))
        for _ in range(index):
            keys("Down")
            time.sleep(0.2)
        keys("x")
        shows("This ends at once:")
        keys("tmux demo done", literal=True)
        keys("Enter")
        wait(
            lambda: (
                query("SELECT state FROM access_grant WHERE id = ?", grant_id) == [("revoked",)]
            ),
            "the revocation",
        )

        # Pause a client alex approves for (the command palette), then resume it with a code.
        keys("C-p")
        time.sleep(0.5)
        keys("Pause client orbital", literal=True)
        time.sleep(0.5)
        keys("Enter")
        shows("Suspends")
        keys("client asked", literal=True)
        keys("Enter")
        shows("is PAUSED", timeout=60)
        keys("Escape")
        wait(lambda: "is PAUSED" not in screen(), "the progress to close")
        assert query("SELECT status FROM client WHERE name = 'orbital-research'") == [("paused",)]
        keys("C-p")
        time.sleep(0.5)
        keys("Resume client orbital", literal=True)
        time.sleep(0.5)
        keys("Enter")
        shows("6-digit code from your authenticator")
        time.sleep(0.5)  # the box opens once the lock-out is known
        keys(codes.next(), literal=True)
        keys("Enter")
        shows("(resumed)", timeout=60)
        keys("Escape")
        wait(lambda: "(resumed)" not in screen(), "the progress to close")
        assert query("SELECT status FROM client WHERE name = 'orbital-research'") == [("active",)]
        assert query("SELECT state FROM access_grant WHERE id = ?", mine[0]) == [("requested",)]

        # Reconcile: the directory screen's sync, then drift — none.
        keys("y")
        shows("Drift")
        keys("s")
        time.sleep(2)
        keys("R")
        shows("Drift on demo-ldap: none", timeout=60)

        keys("q")
        wait(term.exited, "scripts/run to end", timeout=60)
        assert term.exit_code() == "0"
        # Everything it started is stopped, everything it made is gone.
        assert list(scratch.iterdir()) == []
        assert not _answers(ldap_port)


def test_scripts_run_demo_stops_its_directory_when_the_demo_fails(tmp_path: Path) -> None:
    _slapd_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVTUI_")}
    env["GOVTUI_DEMO_CONTRACTORS"] = "-1"  # govtui demo refuses it: exit 2
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [str(RUN), "--demo"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode != 0
    out = done.stdout + done.stderr
    found = re.search(r"throw-away data in (\S+/demo\.db)", out)
    port = re.search(r"ok: ldaps://127\.0\.0\.1:(\d+)", out)
    assert found and port, out
    assert not Path(found.group(1)).parent.exists()
    assert list(tmp_path.iterdir()) == []  # the data, slapd's and the keyring's directories
    assert not _answers(int(port.group(1)))


def test_scripts_run_demo_passes_its_own_doctor(tmp_path: Path) -> None:
    """`scripts/run --demo doctor --json`: the same checks as the dashboard's line, every one
    passed; demo-ldap over ldaps:// trusting the demo's CA file (which the doctor found there,
    readable, not writable by others)."""
    _slapd_or_skip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVTUI_")}
    env["GOVTUI_DEMO_CONTRACTORS"] = "20"
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [str(RUN), "--demo", "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    report = json.loads(out[out.index("\n{") :])
    failed = [f for f in report["findings"] if f["status"] == "fail"]
    assert report["ok"] and not failed, failed
    (target,) = [f for f in report["findings"] if f["check"] == "directory"]
    assert target["status"] == "ok" and target["subject"] == "directory demo-ldap", target
    ca_file = re.search(
        r"^ldaps://, certificate checked against CA file (\S+/tls/ca\.pem),", target["detail"]
    )
    assert ca_file, target
    assert list(tmp_path.iterdir()) == []  # the CA went with slapd's directory

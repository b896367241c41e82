"""Red-team reproductions (attack14) against issue 14's first wave: the demo-only operator
switch (services/demo.is_demo), scripts/run --demo, "check before asking" and the streaming
lists. The attacker: a colleague at the same keyboard (the same login or another), who can
write the SQLite file, plant files in /tmp and paste escape codes into names. Plain tests are
attacks that held (kept as regression tests); a finding fixed here is a plain test too; an
open one is a strict xfail that fails the day it stops working."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli.main import main
from govtui.errors import ConflictError
from govtui.models import Contractor, Operator
from govtui.services import demo, pause, second_factor
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import World, small_vendor
from .memory_keyring import MemoryKeyring

ROOT = Path(__file__).resolve().parent.parent


# -- 1. what makes a database a demo -------------------------------------------------------


def test_a_real_first_admin_added_as_demo_does_not_make_a_demo(
    sqlite_url: str, memory_keyring: MemoryKeyring
) -> None:
    """Finding: is_demo read only the first operator.add's actor, and the CLI's bootstrap
    writes whatever --as (or GOVTUI_OPERATOR) says there: `govtui --as demo operator add`
    on a real, empty database made it a demo for ever, so the TUI offered `w` on it."""
    assert main(["--db", sqlite_url, "init"]) == 0
    assert (
        main(["--db", sqlite_url, "--as", "demo", "operator", "add", "root", "--role", "admin"])
        == 0
    )
    engine = db.make_engine(sqlite_url)
    with db.read_session(engine) as session:
        assert not demo.is_demo(session)
    engine.dispose()


def test_the_demo_is_still_a_demo(sqlite_url: str, memory_keyring: MemoryKeyring) -> None:
    assert main(["--db", sqlite_url, "init"]) == 0
    assert main(["--db", sqlite_url, "demo", "--contractors", "40"]) == 0
    engine = db.make_engine(sqlite_url)
    with db.read_session(engine) as session:
        assert demo.is_demo(session)
    engine.dispose()


# -- 3. check before asking: what the service checks again, under lock ---------------------


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock) -> World:
    return small_vendor(engine)


def test_a_resume_raced_after_its_check_refuses_before_the_code_counts(
    world: World, fake_clock: FakeClock
) -> None:
    """Held: the TUI's check (pause.check_resume) passes, someone else resumes the client
    while the prompt is open; the code then typed is refused as "not paused" and counts as
    no failure (resume re-checks under the client's lock before it verifies the code)."""
    ann, bob = Workspace(world.engine, "ann"), Workspace(world.engine, "bob")
    ann.act(pause.pause, client="acme", reason="incident")
    ann.read_as(pause.check_resume, client="acme")  # what u checks before the prompt
    fake_clock.advance(seconds=31)
    bob.act(pause.resume, client="acme", code=world.code("bob"))
    fake_clock.advance(seconds=31)
    with pytest.raises(ConflictError, match="not paused"):
        ann.act(pause.resume, client="acme", code="000000")
    with db.read_session(world.engine) as session:
        row = session.execute(sa.select(Operator).where(Operator.name == "ann")).scalar_one()
        assert second_factor.remaining_lockout(row) is None
        assert not row.totp_failures


# -- 4. streaming lists --------------------------------------------------------------------


def _plant(engine: Engine, external_id: str, name: str) -> None:
    """What the attacker writes by SQL (input refuses it)."""
    with db.write_session(engine) as session:
        session.execute(
            sa.update(Contractor).where(Contractor.external_id == external_id).values(name=name)
        )


def test_one_huge_planted_name_does_not_pad_every_line_of_a_list(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding: text lists padded every column to its widest cell in the first 1,000 rows,
    so one 100,000-character name planted by SQL made each of 1,000 lines 100 KB long
    (100 MB of spaces); a table's padding is now capped, the long cell still shown whole."""
    huge = "A" * 100_000
    _plant(world.engine, "E1", huge)
    url = world.engine.url.render_as_string(hide_password=False)
    capsys.readouterr()
    assert main(["--db", url, "--as", "root", "contractor", "list"]) == 0
    out = capsys.readouterr().out
    assert huge in out  # shown whole
    assert len(out) < 2 * len(huge)  # not repeated as padding on the other lines
    capsys.readouterr()
    assert main(["--db", url, "--as", "root", "grant", "list"]) == 0


def test_escape_codes_planted_in_names_never_reach_the_terminal(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Held: ESC, C1 CSI (U+009B), bidi overrides and Rich markup planted by SQL come out
    of text, --json and --jsonl lists as visible escapes (markup is inert text)."""
    _plant(world.engine, "E1", "Ada\x1b[2J\x1b]0;pwned\x07\u009b31m\u202eevil[bold red]x[/]")
    url = world.engine.url.render_as_string(hide_password=False)
    for form in ([], ["--json"], ["--jsonl"]):
        for listing in (["contractor", "list"], ["grant", "list"]):
            capsys.readouterr()
            assert main(["--db", url, "--as", "root", *listing, *form]) == 0
            out = capsys.readouterr().out
            assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out)


@pytest.mark.parametrize("value", ["-1", "0", "1000001", "9" * 40, "1e3", "-" + "9" * 5000])
@pytest.mark.parametrize("listing", [["grant", "list"], ["contractor", "list"]])
def test_a_bad_limit_is_one_line_and_exit_2(
    sqlite_url: str, value: str, listing: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Held: --limit out of range is refused by argparse before any database is opened."""
    try:
        status = main(["--db", sqlite_url, *listing, "--limit", value])
    except SystemExit as stop:
        status = stop.code  # type: ignore[assignment]
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 600
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


# -- 2. scripts/run --demo ----------------------------------------------------------------


def test_no_script_puts_the_directory_password_on_a_command_line() -> None:
    """Finding: start_slapd (slappasswd -s) and the demo session (ldapadd -w) passed the
    private slapd's admin password as an argument, which any login on the machine reads in
    ps while it runs; with it, that login writes the demo's (or the tests') directory on
    loopback. They read it from a file in their private directory instead (-T, -y)."""
    argv_password = re.compile(r"(ldap\w+|slappasswd)\b[^\n]*\s-[ws]\s+\"?\$")
    lib = ROOT / "scripts" / "lib"
    for path in [ROOT / "scripts" / "run", lib / "slapd.sh", lib / "demo_session.sh"]:
        text = path.read_text()
        joined = text.replace("\\\n", " ")  # continued lines as one command
        assert not argv_password.search(joined), path.name


def _marked(mark: str) -> list[int]:
    """The processes whose environment holds `mark` (all that a run below started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark.encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dbus-run-session", "gnome-keyring-daemon")),
    reason="needs dbus and gnome-keyring (scripts/test installs them)",
)
def test_a_hangup_leaves_no_secret_service_bus_behind(tmp_path: Path) -> None:
    """Finding: closing the terminal of `scripts/run --demo` (SIGHUP to its process group)
    killed dbus-run-session, but its dbus-daemon (which takes SIGHUP as "reload") lived on,
    orphaned, after the demo's files were deleted. with_secret_service now stops it."""
    mark = f"ATTACK14_MARK={uuid.uuid4().hex}"
    key, value = mark.split("=")
    script = (
        f"source {ROOT}/scripts/lib/common.sh; source {ROOT}/scripts/lib/keyring.sh; "
        f"with_secret_service sh -c 'echo ready >{tmp_path}/ready; sleep 60'"
    )
    run = subprocess.Popen(
        ["bash", "-c", script],
        env={**os.environ, key: value},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if (tmp_path / "ready").exists():
                break
            time.sleep(0.1)
        assert (tmp_path / "ready").exists(), "the Secret Service did not start"
        os.killpg(run.pid, signal.SIGHUP)  # what a closed terminal sends
        run.wait(timeout=20)
        left: list[int] = []
        for _ in range(50):
            left = _marked(mark)
            if not left:
                break
            time.sleep(0.1)
        assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
    finally:
        for pid in _marked(mark):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dbus-run-session", "gnome-keyring-daemon")),
    reason="needs dbus and gnome-keyring (scripts/test installs them)",
)
def test_the_demo_writes_nothing_where_the_callers_govtui_settings_point(tmp_path: Path) -> None:
    """Finding: scripts/run --demo left the caller's GOVTUI_AUDIT_HEAD set, so the demo
    wrote its chain head into the checkpoint file of the caller's real database (which then
    refused every write: "event #151 differs from the audit checkpoint"). Its own settings
    (GOVTUI_DEMO_*) are the only ones it keeps. (About 30 s: a whole demo, no directory.)"""
    real_head = tmp_path / "real.audit-head"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GOVTUI_")},
        "GOVTUI_AUDIT_HEAD": str(real_head),
        "GOVTUI_OPERATOR": "mallory",
        "GOVTUI_DEMO_LDAP": "0",
        "GOVTUI_DEMO_CONTRACTORS": "20",
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / "run"), "--demo", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "audit chain intact" in done.stdout
    assert not real_head.exists()

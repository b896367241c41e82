"""A hostile directory server's words never reach the terminal raw (issue 10, security review):
its WhoAmI answer, a bind diagnostic and a megabyte-long search diagnostic, full of escape
codes, come out escaped, on one line and cut (at most 300 characters of the server's text),
from `directory test`, `directory add` and `sync`, and are stored so in the outbox."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.errors import InputError
from govtui.services import directory_targets

from .conftest import snapshot
from .directory_support import add_target
from .factories import World, small_vendor
from .fake_ldap import Fake
from .memory_keyring import MemoryKeyring

ESC = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mFAKE: all checks passed"
BIG = (ESC + "A" * 1_000_000).encode()
PREFIX = "govtui: error: "


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return small_vendor(engine)


class _Fake:
    """What add_target needs of a Directory, for the fake server."""

    def __init__(self, fake: Fake) -> None:
        self.url = f"ldap://127.0.0.1:{fake.port}"
        self.admin_dn, self.admin_password = "cn=admin,dc=x", "S3cret-bind-pw"
        self.people, self.groups = "ou=people,dc=x", "ou=groups,dc=x"


def _cli(world: World, *args: str) -> int:
    return main(
        ["--db", world.engine.url.render_as_string(hide_password=False), "--as", "root", *args]
    )


def _clean(text: str) -> None:
    """No control character at all but the newline ending each line, and short lines."""
    for line in text.splitlines():
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line), repr(line[:200])
        assert len(line.removeprefix(PREFIX)) <= 400, len(line)


def test_directory_test_escapes_whoami_and_a_megabyte_diagnostic(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = Fake(whoami=("dn:" + ESC).encode(), search_result=(80, BIG)).start()
    add_target(world.engine, _Fake(fake), name="corp")  # type: ignore[arg-type]
    assert _cli(world, "directory", "test", "corp") == 2
    out, err = capsys.readouterr()
    _clean(out)
    _clean(err)
    assert "as dn:\\x1b]0;PWNED\\x07\\x1b[2J" in out  # shown, visibly, not obeyed
    assert len(err.splitlines()) == 1 and "\\x1b" in err and "…" in err
    fake.stop()


def test_directory_test_escapes_a_bind_diagnostic(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = Fake(bind_result=(49, ESC.encode() + b"\n" + b"C" * 1_000_000)).start()
    add_target(world.engine, _Fake(fake), name="corp")  # type: ignore[arg-type]
    assert _cli(world, "directory", "test", "corp") == 2
    out, err = capsys.readouterr()
    _clean(out + err)
    assert "bind failed" in err and "\\x1b]0;PWNED" in err and len(err.splitlines()) == 1
    fake.stop()


def test_directory_add_bind_failure_is_escaped_and_nothing_stored(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Fake(bind_result=(49, ESC.encode() + b"\n" + b"C" * 1_000_000)).start()
    before = snapshot(world.engine)
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    code = _cli(
        world, "directory", "add", "corp", "--url", f"ldap://127.0.0.1:{fake.port}",
        "--bind-dn", "cn=admin,dc=x", "--users-base", "ou=people,dc=x",
        "--groups-base", "ou=groups,dc=x", "--password-stdin", "--insecure-plaintext",
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2
    _clean(out + err)
    assert "not added: bind failed" in err and "\\x1b[2J" in err and len(err.splitlines()) == 1
    assert snapshot(world.engine) == before
    fake.stop()


def test_sync_escapes_and_cuts_a_megabyte_diagnostic_printed_and_stored(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = Fake(search_result=(80, BIG)).start()
    add_target(world.engine, _Fake(fake), name="corp")  # type: ignore[arg-type]
    world.approve(world.request("E1"))
    assert _cli(world, "sync") == 1
    out, err = capsys.readouterr()
    _clean(out + err)
    warnings = [line for line in err.splitlines() if line.startswith("govtui: warning:")]
    assert warnings and all("\\x1b]0;PWNED" in w for w in warnings)
    assert len(err) < 2_000
    with db.read_session(world.engine) as session:
        stored = session.execute(sa.text("SELECT last_error FROM outbox_op")).scalars().all()
    assert stored and all(
        e and "\x1b" not in e and "\n" not in e and len(e) <= 1000 for e in stored
    )
    assert _cli(world, "sync", "status") == 0
    out, err = capsys.readouterr()
    _clean(out + err)
    fake.stop()


def test_the_cli_prints_every_error_escaped_on_one_line(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: whatever a GovtuiError says, the printer escapes it."""

    def hostile(*_: object) -> None:
        raise InputError("no\x1b[2Jsuch\nname " + "D" * 5_000)

    monkeypatch.setattr(directory_targets, "find", hostile)
    assert _cli(world, "directory", "test", "x") == 2
    _out, err = capsys.readouterr()
    assert "\x1b" not in err and err.count("\n") == 1 and "no\\x1b[2Jsuch\\x0aname" in err
    assert len(err) < 1_100

"""`directory add` checks before it writes and `directory test` checks step by step (issue 10,
item 5), against the test slapd (plain ldap:// on loopback, so `--insecure-plaintext`): a bad
URL, port, CA file, TLS name or DN is one line and exit 2 with the database unchanged; plain
ldap:// without StartTLS is refused unless accepted, and then stored, listed, audited; an
unreachable or wrong directory is named by its step and nothing is stored unless --no-check;
a row edited by SQL into plain text is refused when connecting."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from govtui import db
from govtui.cli import main
from govtui.models import AuditEvent, DirectoryTarget
from govtui.services import convergence, directory_targets, sync

from .conftest import snapshot
from .directory_support import Directory, add_target, reseal_password
from .factories import World
from .memory_keyring import MemoryKeyring
from .throwaway_ca import make_ca


def _cli(world: World, *args: str) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", "root", *args])


def _add(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    *extra: str,
    url: str,
    password: str = "secret",  # noqa: S107  # nothing listens, or the test's own server
    name: str = "corp",
    users: str = "ou=people,dc=x",
    groups: str = "ou=groups,dc=x",
    bind_dn: str = "cn=admin,dc=x",
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return _cli(
        world,
        "directory",
        "add",
        name,
        "--url",
        url,
        "--bind-dn",
        bind_dn,
        "--users-base",
        users,
        "--groups-base",
        groups,
        "--password-stdin",
        *extra,
    )


def _passwords(keyring: MemoryKeyring) -> list[str]:
    """The bind passwords in the keyring (the approvers' TOTP secrets are there too)."""
    return [key for _service, key in keyring.entries if key.startswith("directory:")]


@pytest.fixture
def garbage_ca(tmp_path: Path) -> str:
    path = tmp_path / "garbage.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return str(path)


BAD_INPUT = [
    # (URL, extra arguments, what the one line says)
    ("ldaps://127.0.0.1:99999", (), "port 99999 is not 1-65535"),
    ("ldaps://127.0.0.1:0", (), "port 0 is not 1-65535"),
    ("ldaps://[::1", (), "Invalid IPv6 URL"),
    ("ldaps://127.0.0.1:port", (), "port 'port' is no number"),
    ("ldaps://", (), "no host"),
    ("http://127.0.0.1", (), "not ldap:// or ldaps://"),
    ("ldaps://admin:pw@127.0.0.1", (), "no user or password in the URL"),
    ("ldaps://127.0.0.1/dc=x?cn", (), "only scheme, host and port"),
    ("ldap://127.0.0.1:1", (), "would send the bind password in clear text"),
    ("ldaps://127.0.0.1", ("--starttls",), "either ldaps:// or --starttls"),
    ("ldaps://127.0.0.1", ("--insecure-plaintext",), "--insecure-plaintext is only for"),
    ("ldap://127.0.0.1", ("--insecure-plaintext", "--tls-name", "x.test"), "needs ldaps://"),
    ("ldaps://127.0.0.1", ("--tls-name", "*"), "invalid TLS name '*'"),
    ("ldaps://127.0.0.1", ("--tls-name", "*.ad.test"), "invalid TLS name"),
    ("ldaps://127.0.0.1", ("--tls-name", "a b"), "invalid TLS name"),
    ("ldaps://127.0.0.1", ("--ca-file", "/nonexistent/ca.pem"), "does not exist"),
    ("ldaps://127.0.0.1", ("--ca-file", "/"), "is not a file"),
    ("ldaps://127.0.0.1", ("--ca-file", "GARBAGE"), "holds no PEM certificate"),
    ("ldaps://127.0.0.1", ("--ca-file", "/dev/null"), "is not a file"),
]


@pytest.mark.parametrize(("url", "extra", "message"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    world: World,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    garbage_ca: str,
    url: str,
    extra: tuple[str, ...],
    message: str,
) -> None:
    extra = tuple(garbage_ca if e == "GARBAGE" else e for e in extra)
    before = snapshot(world.engine)
    # The check would fail too (nothing listens on 127.0.0.1:636); the input is refused first.
    assert _add(world, monkeypatch, *extra, url=url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("govtui: error: "), err
    assert message in err and "Traceback" not in err
    assert snapshot(world.engine) == before
    assert not _passwords(memory_keyring)


@pytest.mark.parametrize(
    ("field", "value"),
    [("bind_dn", "admin)(uid=*"), ("users", "ou=people,dc=x,"), ("groups", "people")],
)
def test_a_bad_dn_is_one_line_exit_2_and_writes_nothing(
    world: World,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: str,
) -> None:
    before = snapshot(world.engine)
    code = _add(world, monkeypatch, "--no-check", url="ldaps://127.0.0.1", **{field: value})
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a distinguished name" in err
    assert snapshot(world.engine) == before and not _passwords(memory_keyring)


def test_the_ca_file_is_stored_as_an_absolute_path(
    world: World,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ca = make_ca(tmp_path / "ca")
    monkeypatch.chdir(tmp_path)
    args = ("--no-check", "--ca-file", "ca/govtui-test-CA.pem")
    assert _add(world, monkeypatch, *args, url="ldaps://dc1.example.test") == 0
    with db.read_session(world.engine) as session:
        assert directory_targets.find(session, "corp").ca_file == str(ca.cert)


def test_an_unreachable_directory_is_not_added_unless_no_check(
    world: World,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(world.engine)
    assert _add(world, monkeypatch, url="ldaps://127.0.0.1:9") == 2
    assert capsys.readouterr().err == (
        "govtui: error: directory target corp not added: connect failed: nothing answers on "
        "127.0.0.1:9 (connection refused) (--no-check adds it without connecting)\n"
    )
    assert snapshot(world.engine) == before and not _passwords(memory_keyring)

    assert _add(world, monkeypatch, "--no-check", url="ldaps://127.0.0.1:9") == 0
    assert "added, not checked (--no-check)" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        (event,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == "directory.add")
        ).all()
        assert json.loads(event.details)["checked"] is False
    assert _cli(world, "directory", "test", "corp") == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "govtui: error: directory corp: connect failed: nothing answers on 127.0.0.1:9 "
        "(connection refused)\n"
    )


def test_plaintext_accepted_with_the_flag_is_stored_listed_and_audited(
    world: World,
    memory_keyring: MemoryKeyring,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = dict(
        url=directory.url,
        password=directory.admin_password,
        users=directory.people,
        groups=directory.groups,
        bind_dn=directory.admin_dn,
    )
    before = snapshot(world.engine)
    assert _add(world, monkeypatch, **target) == 2
    err = capsys.readouterr().err
    assert "would send the bind password in clear text" in err and "--insecure-plaintext" in err
    assert snapshot(world.engine) == before

    assert _add(world, monkeypatch, "--insecure-plaintext", **target) == 0
    out = capsys.readouterr().out
    assert "directory target corp added, checked" in out
    assert "INSECURE: plaintext bind: the bind password crosses the network in clear text" in out
    with db.read_session(world.engine) as session:
        stored = directory_targets.find(session, "corp")
        assert stored.insecure_plaintext and not stored.starttls and stored.tls_name is None
        (event,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == "directory.add")
        ).all()
        details = json.loads(event.details)
        assert details["insecure_plaintext"] is True and details["checked"] is True

    assert _cli(world, "directory", "list") == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.endswith("INSECURE: plaintext bind")
    assert _cli(world, "directory", "list", "--json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["insecure_plaintext"] is True and listed["tls_name"] is None

    assert _cli(world, "directory", "test", "corp") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["TLS", "INSECURE"]
    assert lines[3].endswith(f"as dn:{directory.admin_dn}")
    assert lines[-1] == "directory corp: every check passed"


def test_a_wrong_password_or_a_missing_base_is_named_and_nothing_is_stored(
    world: World,
    memory_keyring: MemoryKeyring,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = dict(url=directory.url, users=directory.people, bind_dn=directory.admin_dn)
    before = snapshot(world.engine)
    code = _add(
        world,
        monkeypatch,
        "--insecure-plaintext",
        **target,
        password="wrong",
        groups=directory.groups,
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "not added: bind failed: the server refused" in err and "invalidCredentials" in err
    missing = f"ou=missing,{directory.base}"
    code = _add(
        world,
        monkeypatch,
        "--insecure-plaintext",
        **target,
        password=directory.admin_password,
        groups=missing,
    )
    assert code == 2
    assert capsys.readouterr().err == (
        f"govtui: error: directory target corp not added: groups base failed: {missing} does "
        "not exist (or the bind account cannot see it)\n"
    )
    assert snapshot(world.engine) == before and not _passwords(memory_keyring)


def test_a_row_edited_into_plaintext_by_sql_is_refused_when_connecting(
    world: World,
    memory_keyring: MemoryKeyring,
    directory: Directory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defence in depth: the flag is what allows a clear-text bind, not the URL alone."""
    directory.add_person("ada")
    add_target(world.engine, directory)
    with db.write_session(world.engine) as session:
        session.execute(sa.update(DirectoryTarget).values(insecure_plaintext=False))
    reseal_password(world.engine)  # a row as an older govtui let it in, not an attack
    world.approve(world.request())
    report = sync.run_once(world.engine)
    assert report.done == 0
    assert any("TLS failed: plain ldap:// without StartTLS" in e for e in report.errors)
    assert directory.members(directory.group("acme-rlhf-pairs-read")) is None
    health = convergence.check_targets(world.engine)
    assert "was not added with --insecure-plaintext: refused" in str(health["ldap"])
    assert _cli(world, "directory", "test", "ldap") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TLS failed: plain ldap://" in err


def test_a_row_edited_to_a_bad_port_fails_at_connect_in_one_line(
    world: World,
    memory_keyring: MemoryKeyring,
    directory: Directory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_target(world.engine, directory)
    with db.write_session(world.engine) as session:
        session.execute(sa.update(DirectoryTarget).values(url="ldap://127.0.0.1:99999"))
    reseal_password(world.engine)  # a row as an older govtui let it in, not an attack
    assert _cli(world, "directory", "test", "ldap") == 2
    assert capsys.readouterr().err == (
        "govtui: error: directory ldap: connect failed: invalid directory URL "
        "'ldap://127.0.0.1:99999': port 99999 is not 1-65535\n"
    )
    health = convergence.check_targets(world.engine)
    assert "port 99999 is not 1-65535" in str(health["ldap"])


def test_the_health_check_names_a_missing_base(
    world: World, memory_keyring: MemoryKeyring, directory: Directory
) -> None:
    add_target(world.engine, directory, users_base=f"ou=gone,{directory.base}")
    health = convergence.check_targets(world.engine)
    assert str(health["ldap"]) == (
        f"{directory.url}: users base failed: ou=gone,{directory.base} does not exist "
        "(or the bind account cannot see it)"
    )

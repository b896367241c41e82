"""TLS to the directory is validated (issues 4 and 10): a second private slapd with a certificate
from a throw-away CA, on ldaps:// and (for StartTLS) ldap://. Given the CA, connecting works;
without it, or with another CA, or under a name the certificate does not carry, it is refused,
the error names the step that failed and says why in one line (the names the certificate
carries, never a dump of it); --tls-name names the certificate's host when the URL uses an
address; an expired certificate says so."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from govtui import db
from govtui.cli import main
from govtui.directory.connection import DirectoryError, Endpoint, connect
from govtui.models import AuditEvent, DirectoryTarget
from govtui.services import directory_targets, operators

from .conftest import bootstrap_admin, snapshot
from .directory_support import admin_connection
from .memory_keyring import MemoryKeyring
from .throwaway_ca import Certificate, make_ca, make_server_cert

SUFFIX = "dc=tls,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
PASSWORD = "throw-away-tls-test"  # a throw-away server on loopback
CERT_NAME = "ldap.tls.test"  # the DNS name the certificate carries besides 127.0.0.1
PEOPLE, GROUPS = f"ou=people,{SUFFIX}", f"ou=groups,{SUFFIX}"


@dataclass(frozen=True)
class TlsServer:
    ldaps_url: str
    ldap_url: str  # for StartTLS
    ca_file: str
    other_ca_file: str  # a CA that did not sign the server's certificate
    ca: Certificate
    port: int  # of ldaps; 127.0.0.2 reaches the same server under a name it lacks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(pidfile: Path) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().split()[0])
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return
        if "\nState:\tZ" in status:  # exited; nobody reaps it in some containers
            return
        time.sleep(0.02)
    os.kill(pid, 9)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A private slapd serving a certificate from a throw-away CA, stopped afterwards."""
    missing = [tool for tool in ("slapd", "slappasswd", "openssl") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing {', '.join(missing)}: run the suite with scripts/test")
        pytest.skip(f"missing {', '.join(missing)}: run the suite with scripts/test")
    base = tmp_path_factory.mktemp("tls-slapd")
    ca = make_ca(base / "ca")
    other = make_ca(base / "other-ca", name="some other CA")
    server = make_server_cert(ca, base / "ca", ip="127.0.0.1", dns=(CERT_NAME,))
    (base / "data").mkdir()
    hashed = subprocess.run(
        ["slappasswd", "-s", PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    pidfile = base / "slapd.pid"
    conf = base / "slapd.conf"
    conf.write_text(
        f"""include /etc/ldap/schema/core.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {pidfile}
argsfile {base / "slapd.args"}
TLSCACertificateFile {ca.cert}
TLSCertificateFile {server.cert}
TLSCertificateKeyFile {server.key}
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {hashed}
directory {base / "data"}
"""
    )
    ldaps_port, ldap_port = _free_port(), _free_port()
    found = TlsServer(
        ldaps_url=f"ldaps://127.0.0.1:{ldaps_port}",
        ldap_url=f"ldap://127.0.0.1:{ldap_port}",
        ca_file=str(ca.cert),
        other_ca_file=str(other.cert),
        ca=ca,
        port=ldaps_port,
    )
    subprocess.run(
        [
            "slapd",
            "-f",
            str(conf),
            "-h",
            # 127.0.0.2: the same server under an address its certificate does not name.
            f"{found.ldaps_url}/ ldaps://127.0.0.2:{ldaps_port}/ {found.ldap_url}/",
            "-s",
            "0",
        ],
        check=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = admin_connection(found.ldap_url, ADMIN_DN, PASSWORD)
                break
            except Exception:
                assert time.monotonic() < deadline, f"the TLS slapd does not answer ({conf})"
                time.sleep(0.05)
        # The bases a target names, which `directory add` and `directory test` look for.
        conn.add(SUFFIX, ["dcObject", "organization"], {"dc": "tls", "o": "tls"})
        conn.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
        conn.add(GROUPS, ["organizationalUnit"], {"ou": "groups"})
        conn.unbind()
        yield found
    finally:
        _stop(pidfile)


def _endpoint(url: str, **kwargs: object) -> Endpoint:
    return Endpoint(url, ADMIN_DN, **kwargs)  # type: ignore[arg-type]


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "{" not in text, text  # never a certificate dump
    return text


def test_ldaps_with_the_ca_given_binds(tls_server: TlsServer) -> None:
    conn = connect(_endpoint(tls_server.ldaps_url, ca_file=tls_server.ca_file), PASSWORD)
    try:
        assert conn.bound and conn.extend.standard.who_am_i() == f"dn:{ADMIN_DN}"
        assert conn.socket.version().startswith("TLS")  # an SSLSocket, not plain text
    finally:
        conn.unbind()


def test_ldaps_without_the_ca_is_refused_at_tls_in_one_line(tls_server: TlsServer) -> None:
    address = f"127.0.0.1:{tls_server.port}"
    with pytest.raises(DirectoryError) as system:
        connect(_endpoint(tls_server.ldaps_url), PASSWORD)  # the system's CAs only
    assert system.value.step == "TLS"
    # slapd sends its CA along: OpenSSL says "self-signed certificate in certificate chain".
    assert _one_line(system.value) == (
        f"{tls_server.ldaps_url}: TLS failed: the certificate of {address} was not issued by "
        "a CA in the system's CAs (self-signed certificate in certificate chain)"
    )
    with pytest.raises(DirectoryError) as other:
        connect(_endpoint(tls_server.ldaps_url, ca_file=tls_server.other_ca_file), PASSWORD)
    assert f"was not issued by a CA in {tls_server.other_ca_file}" in _one_line(other.value)


def test_a_name_mismatch_says_which_names_the_certificate_carries(
    tls_server: TlsServer,
) -> None:
    # The certificate is for 127.0.0.1 and ldap.tls.test; 127.0.0.2 is the same server.
    url = tls_server.ldaps_url.replace("127.0.0.1", "127.0.0.2")
    with pytest.raises(DirectoryError) as refused:
        connect(_endpoint(url, ca_file=tls_server.ca_file), PASSWORD)
    assert refused.value.step == "TLS"
    assert _one_line(refused.value) == (
        f"{url}: TLS failed: the certificate of 127.0.0.2:{tls_server.port} is for "
        f"127.0.0.1, {CERT_NAME}, not 127.0.0.2 (use --tls-name if the URL names an address)"
    )
    # --tls-name names the expected host: the same address now binds, the CA still checked.
    conn = connect(_endpoint(url, ca_file=tls_server.ca_file, tls_name=CERT_NAME), PASSWORD)
    conn.unbind()
    with pytest.raises(DirectoryError, match="not issued by a CA"):
        connect(_endpoint(url, ca_file=tls_server.other_ca_file, tls_name=CERT_NAME), PASSWORD)
    with pytest.raises(DirectoryError) as wrong_name:
        connect(_endpoint(url, ca_file=tls_server.ca_file, tls_name="other.tls.test"), PASSWORD)
    assert _one_line(wrong_name.value).endswith(
        f"is for 127.0.0.1, {CERT_NAME}, not 127.0.0.2 or other.tls.test "
        "(the target's --tls-name is other.tls.test)"
    )


def test_a_wildcard_tls_name_never_turns_the_name_check_off(tls_server: TlsServer) -> None:
    """ldap3 takes a valid name "*" as any name: the connection refuses it outright."""
    url = tls_server.ldaps_url.replace("127.0.0.1", "127.0.0.2")
    with pytest.raises(DirectoryError, match="invalid TLS name"):
        connect(_endpoint(url, ca_file=tls_server.ca_file, tls_name="*"), PASSWORD)


def test_starttls_with_the_ca_binds_and_without_it_fails_at_tls(tls_server: TlsServer) -> None:
    conn = connect(
        _endpoint(tls_server.ldap_url, starttls=True, ca_file=tls_server.ca_file), PASSWORD
    )
    try:
        assert conn.tls_started and conn.extend.standard.who_am_i() == f"dn:{ADMIN_DN}"
    finally:
        conn.unbind()
    with pytest.raises(DirectoryError) as refused:
        connect(_endpoint(tls_server.ldap_url, starttls=True), PASSWORD)
    assert refused.value.step == "TLS"
    assert "was not issued by a CA in the system's CAs" in _one_line(refused.value)


def test_plain_ldap_without_the_stored_flag_is_refused_before_any_bind(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    binds: list[object] = []
    monkeypatch.setattr("ldap3.Connection.bind", lambda conn, *a, **k: binds.append(conn))
    with pytest.raises(DirectoryError) as refused:
        connect(_endpoint(tls_server.ldap_url), PASSWORD)
    assert refused.value.step == "TLS" and "clear text" in str(refused.value)
    assert binds == []
    monkeypatch.undo()
    conn = connect(_endpoint(tls_server.ldap_url, insecure_plaintext=True), PASSWORD)
    conn.unbind()


@pytest.fixture
def expired_server(tls_server: TlsServer, tmp_path: Path) -> Iterator[str]:
    """An ldaps:// URL whose server shows a certificate from the test CA that has expired
    (a bare TLS server: the client gives up in the handshake, before any LDAP)."""
    cert = make_server_cert(tls_server.ca, tmp_path, ip="127.0.0.1", days=0)
    time.sleep(1.1)  # valid for no second: past its notAfter now
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        # The client refuses the certificate mid-handshake: what the test wants.
        with raw, contextlib.suppress(OSError):
            context.wrap_socket(raw, server_side=True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"ldaps://127.0.0.1:{port}"
    finally:
        listener.close()
        thread.join(5)


def test_an_expired_certificate_says_so_in_one_line(
    tls_server: TlsServer, expired_server: str
) -> None:
    with pytest.raises(DirectoryError) as refused:
        connect(_endpoint(expired_server, ca_file=tls_server.ca_file), PASSWORD)
    port = expired_server.rsplit(":", 1)[1]
    assert _one_line(refused.value) == (
        f"{expired_server}: TLS failed: the certificate of 127.0.0.1:{port} has expired "
        "(certificate has expired)"
    )


def _cli(engine: Engine, *args: str) -> int:
    url = engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", "root", *args])


def _add_args(name: str, url: str, *extra: str) -> list[str]:
    return [
        "directory",
        "add",
        name,
        "--url",
        url,
        "--bind-dn",
        ADMIN_DN,
        "--users-base",
        PEOPLE,
        "--groups-base",
        GROUPS,
        "--password-stdin",
        *extra,
    ]


def test_directory_test_command_prints_each_step_or_the_failed_one(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    tls_server: TlsServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap_admin(engine)
    with db.write_session(engine) as session:
        root = operators.find(session, "root")
        for name, ca_file in (("good", tls_server.ca_file), ("no-ca", None)):
            directory_targets.add(
                session,
                root,
                name=name,
                url=tls_server.ldaps_url,
                bind_dn=ADMIN_DN,
                users_base=PEOPLE,
                groups_base=f"ou=missing,{SUFFIX}" if ca_file is None else GROUPS,
                password=PASSWORD,
                ca_file=ca_file,
            )
    assert _cli(engine, "directory", "test", "good") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"directory good ({tls_server.ldaps_url}):"
    assert [line.split()[:2] for line in out[1:6]] == [
        ["connect", "ok"],
        ["TLS", "ok"],
        ["bind", "ok"],
        ["users", "base"],
        ["groups", "base"],
    ]
    assert (
        f"certificate for 127.0.0.1, {CERT_NAME} verified against {tls_server.ca_file}" in (out[2])
    )
    assert out[3].endswith(f"as dn:{ADMIN_DN}")  # WhoAmI answered by slapd
    assert out[4].endswith(PEOPLE) and out[5].endswith(GROUPS)
    assert out[6] == "directory good: every check passed"

    assert _cli(engine, "directory", "test", "no-ca") == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1:] == [f"  connect      ok  127.0.0.1:{tls_server.port}"]
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("govtui: error: directory no-ca: TLS failed: the certificate")


def test_directory_add_checks_tls_and_stores_the_tls_name(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    tls_server: TlsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap_admin(engine)
    url = tls_server.ldaps_url.replace("127.0.0.1", "127.0.0.2")
    before = snapshot(engine)
    for extra, expected in (
        (("--ca-file", tls_server.ca_file), "is for 127.0.0.1, ldap.tls.test, not 127.0.0.2 (use"),
        (("--tls-name", CERT_NAME), "not issued by a CA in the system's CAs"),
    ):
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert _cli(engine, *_add_args("tls", url, *extra)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "{" not in err, err
        assert err.startswith("govtui: error: directory target tls not added: TLS failed: ")
        assert expected in err
        assert snapshot(engine) == before and memory_keyring.entries == {}

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    extra = ("--tls-name", CERT_NAME, "--ca-file", tls_server.ca_file)
    assert _cli(engine, *_add_args("tls", url, *extra)) == 0
    assert "directory target tls added, checked" in capsys.readouterr().out
    with db.read_session(engine) as session:
        target = directory_targets.find(session, "tls")
        assert (target.tls_name, target.insecure_plaintext) == (CERT_NAME, False)
        (event,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == "directory.add")
        ).all()
        details = json.loads(event.details)
        assert details["tls_name"] == CERT_NAME and details["checked"] is True
        assert details["insecure_plaintext"] is False
    assert _cli(engine, "directory", "test", "tls") == 0
    assert f"as dn:{ADMIN_DN}" in capsys.readouterr().out
    assert _cli(engine, "directory", "list") == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[-3:] == ["ldaps", "as", CERT_NAME]


def test_directory_add_names_a_missing_base_and_writes_nothing(
    engine: Engine,
    memory_keyring: MemoryKeyring,
    tls_server: TlsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap_admin(engine)
    before = snapshot(engine)
    args = _add_args("tls", tls_server.ldaps_url, "--ca-file", tls_server.ca_file)
    args[args.index(GROUPS)] = f"ou=nowhere,{SUFFIX}"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert _cli(engine, *args) == 2
    assert capsys.readouterr().err == (
        "govtui: error: directory target tls not added: groups base failed: "
        f"ou=nowhere,{SUFFIX} does not exist (or the bind account cannot see it)\n"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    args = _add_args("tls", tls_server.ldaps_url, "--ca-file", tls_server.ca_file)
    assert _cli(engine, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"govtui: error: directory target tls not added: bind failed: the server refused {ADMIN_DN}"
    )
    assert snapshot(engine) == before and memory_keyring.entries == {}
    with db.read_session(engine) as session:
        assert session.exec(select(DirectoryTarget)).first() is None

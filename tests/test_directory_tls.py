"""TLS to the directory is validated (issue 4): a second private slapd with a certificate from a
throw-away CA, on ldaps:// and (for StartTLS) ldap://. Given the CA, connecting works; without
it, or with another CA, or under a name the certificate does not carry, it is refused, and the
error names the step that failed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.directory.connection import DirectoryError, Endpoint, connect
from govtui.services import directory_targets, operators

from .conftest import bootstrap_admin
from .directory_support import admin_connection
from .memory_keyring import MemoryKeyring
from .throwaway_ca import make_ca, make_server_cert

SUFFIX = "dc=tls,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
PASSWORD = "throw-away-tls-test"  # a throw-away server on loopback


@dataclass(frozen=True)
class TlsServer:
    ldaps_url: str
    ldap_url: str  # for StartTLS
    ca_file: str
    other_ca_file: str  # a CA that did not sign the server's certificate


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
    server = make_server_cert(ca, base / "ca", ip="127.0.0.1")
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
                admin_connection(found.ldap_url, ADMIN_DN, PASSWORD).unbind()
                break
            except Exception:
                assert time.monotonic() < deadline, f"the TLS slapd does not answer ({conf})"
                time.sleep(0.05)
        yield found
    finally:
        _stop(pidfile)


def test_ldaps_with_the_ca_given_binds(tls_server: TlsServer) -> None:
    conn = connect(Endpoint(tls_server.ldaps_url, ADMIN_DN, ca_file=tls_server.ca_file), PASSWORD)
    try:
        assert conn.bound and conn.extend.standard.who_am_i() == f"dn:{ADMIN_DN}"
        assert conn.socket.version().startswith("TLS")  # an SSLSocket, not plain text
    finally:
        conn.unbind()


def test_ldaps_without_the_ca_is_refused_at_connect(tls_server: TlsServer) -> None:
    with pytest.raises(DirectoryError, match=r"connect failed: .*certificate verify failed"):
        connect(Endpoint(tls_server.ldaps_url, ADMIN_DN), PASSWORD)  # the system's CAs only
    with pytest.raises(DirectoryError, match=r"connect failed: .*certificate verify failed"):
        connect(
            Endpoint(tls_server.ldaps_url, ADMIN_DN, ca_file=tls_server.other_ca_file), PASSWORD
        )


def test_ldaps_under_a_name_the_certificate_lacks_is_refused(tls_server: TlsServer) -> None:
    # The certificate is for 127.0.0.1 only; 127.0.0.2 is the same loopback server.
    url = tls_server.ldaps_url.replace("127.0.0.1", "127.0.0.2")
    with pytest.raises(DirectoryError, match=r"127.0.0.2:\d+: connect failed: .*certificate"):
        connect(Endpoint(url, ADMIN_DN, ca_file=tls_server.ca_file), PASSWORD)


def test_starttls_with_the_ca_binds_and_without_it_fails_at_starttls(
    tls_server: TlsServer,
) -> None:
    conn = connect(
        Endpoint(tls_server.ldap_url, ADMIN_DN, starttls=True, ca_file=tls_server.ca_file),
        PASSWORD,
    )
    try:
        assert conn.tls_started and conn.extend.standard.who_am_i() == f"dn:{ADMIN_DN}"
    finally:
        conn.unbind()
    with pytest.raises(DirectoryError, match=r"StartTLS failed: .*certificate verify failed"):
        connect(Endpoint(tls_server.ldap_url, ADMIN_DN, starttls=True), PASSWORD)


def test_directory_test_command_reports_tls_and_the_failed_step(
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
                users_base=f"ou=people,{SUFFIX}",
                groups_base=f"ou=groups,{SUFFIX}",
                password=PASSWORD,
                ca_file=ca_file,
            )
    url = engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "--as", "root", "directory", "test", "good"]) == 0
    assert f"connected, TLS verified, bound as dn:{ADMIN_DN}" in capsys.readouterr().out
    assert main(["--db", url, "--as", "root", "directory", "test", "no-ca"]) == 2
    err = capsys.readouterr().err
    assert "connect failed" in err and "certificate verify failed" in err

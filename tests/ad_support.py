"""The real Active Directory domain controller the AD tests talk to: a Samba AD DC started by
scripts/test in a network namespace of its own (see scripts/lib/samba_ad.sh), reached on two
loopback ports. Gives connections that validate the DC's certificate, a fresh OU per test
(deleted with everything in it afterwards: that is how state is reset between tests), and a
way to stop and restart the DC in the middle of a test.

Test modules make `private_ou()` their `ad` fixture:

    @pytest.fixture
    def ad() -> Iterator[AdDirectory]:
        yield from private_ou()

The DC's certificate names DC1.<realm> (CN only, no subjectAltName) while the URLs use
127.0.0.1, so validation names the expected host explicitly: ldap3's Tls(valid_names=[...])
accepts the certificate when it matches one of those names (and only then, with
validate=CERT_REQUIRED and the DC's CA as the only trust anchor).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import ldap3
import pytest
from ldap3.utils.dn import escape_rdn

# groupType values (MS-ADTS 2.2.12): the security flag plus the scope.
GLOBAL_SECURITY_GROUP = -2147483646
DOMAIN_LOCAL_SECURITY_GROUP = -2147483644
UNIVERSAL_SECURITY_GROUP = -2147483640
# userAccountControl flags.
UAC_ACCOUNTDISABLE = 0x2
UAC_NORMAL_ACCOUNT = 0x200
# The tree-delete control: deletes an entry and everything under it in one request.
TREE_DELETE = "1.2.840.113556.1.4.805"


def as_root(*command: str) -> list[str]:
    """The command line that runs `command` as root (samba_ad.sh made sure sudo -n works)."""
    return list(command) if os.geteuid() == 0 else ["sudo", "-n", *command]


def norm(dn: str) -> str:
    return dn.strip().lower()


def single(value: Any) -> Any:
    """One attribute value, whether ldap3 gave it as a list (get_info=NONE) or not."""
    if isinstance(value, list):
        assert len(value) == 1, f"expected one value, got {value!r}"
        return value[0]
    return value


@dataclass(frozen=True)
class AdServer:
    """Where the test DC is and how to reach it (from the GOVTUI_TEST_AD_* variables)."""

    url: str  # ldaps://127.0.0.1:PORT
    starttls_url: str  # ldap://127.0.0.1:PORT, StartTLS required for a simple bind
    root: str  # the domain's base DN (DC=ad,DC=govtui,DC=test)
    admin_dn: str
    admin_password: str
    ca_file: str
    tls_name: str  # the name the certificate carries (dc1.<realm>)
    netns: str | None
    smb_conf: str | None

    @classmethod
    def from_environment(cls) -> AdServer:
        env = os.environ
        return cls(
            url=env["GOVTUI_TEST_AD_URL"],
            starttls_url=env["GOVTUI_TEST_AD_STARTTLS_URL"],
            root=env["GOVTUI_TEST_AD_BASE"],
            admin_dn=env["GOVTUI_TEST_AD_ADMIN_DN"],
            admin_password=env["GOVTUI_TEST_AD_ADMIN_PASSWORD"],
            ca_file=env["GOVTUI_TEST_AD_CA"],
            tls_name=env["GOVTUI_TEST_AD_TLS_NAME"],
            netns=env.get("GOVTUI_TEST_AD_NETNS"),
            smb_conf=env.get("GOVTUI_TEST_AD_SMB_CONF"),
        )

    def tls(self, *, ca_file: str | None = None, names: list[str] | None = None) -> ldap3.Tls:
        """Certificate validation against the DC's CA (or ca_file), accepting the DC's own
        name (or `names`; [] means the URL's host only)."""
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=ca_file or self.ca_file,
            valid_names=[self.tls_name] if names is None else names,
        )

    def server(self, *, starttls: bool = False, tls: ldap3.Tls | None = None) -> ldap3.Server:
        parsed = urlparse(self.starttls_url if starttls else self.url)
        assert parsed.hostname and parsed.port
        return ldap3.Server(
            parsed.hostname,
            port=parsed.port,
            use_ssl=not starttls,
            tls=tls or self.tls(),
            connect_timeout=5,
            get_info=ldap3.NONE,
        )

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        starttls: bool = False,
        tls: ldap3.Tls | None = None,
    ) -> ldap3.Connection:
        """A connection bound as `user` (default: Administrator) over LDAPS, or over LDAP
        with StartTLS first; raises on any failure (TLS, bind, later operations)."""
        conn = ldap3.Connection(
            self.server(starttls=starttls, tls=tls),
            user=user or self.admin_dn,
            password=self.admin_password if password is None else password,
            raise_exceptions=True,
            receive_timeout=10,
        )
        try:
            conn.open()
            if starttls:
                conn.start_tls()
            conn.bind()
        except BaseException:
            with contextlib.suppress(ldap3.core.exceptions.LDAPException, OSError):
                conn.unbind()  # a failed TLS handshake leaves a socket unbind cannot use
            raise
        return conn

    # -- the server itself -------------------------------------------------------------------

    def _need_netns(self) -> tuple[str, str]:
        assert self.netns and self.smb_conf, "GOVTUI_TEST_AD_NETNS/SMB_CONF are not set"
        return self.netns, self.smb_conf

    def _pid(self) -> int | None:
        _, conf = self._need_netns()
        pidfile = Path(conf).parent.parent / "run" / "samba.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def stop_server(self) -> None:
        """Stop samba (SIGTERM, then SIGKILL) and wait until it no longer answers."""
        pid = self._pid()
        if pid is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not Path(f"/proc/{pid}").exists():
                    break
                subprocess.run(as_root("kill", f"-{sig.value}", str(pid)), check=False)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                    time.sleep(0.02)
                if not Path(f"/proc/{pid}").exists():
                    break
        deadline = time.monotonic() + 5
        while self.server_up():
            assert time.monotonic() < deadline, "samba still answers after being stopped"
            time.sleep(0.05)

    def start_server(self) -> None:
        """Start samba again in its namespace with the same config; return once it answers."""
        if self.server_up():
            return
        netns, conf = self._need_netns()
        logs = Path(conf).parent.parent / "log"
        subprocess.run(
            as_root("ip", "netns", "exec", netns, "samba", "-D", "-s", conf, "-l", str(logs)),
            check=True,
        )
        deadline = time.monotonic() + 20
        while not self.server_up():
            assert time.monotonic() < deadline, f"samba did not come back (log in {logs})"
            time.sleep(0.05)

    def server_up(self) -> bool:
        try:
            conn = self.connect()
        except ldap3.core.exceptions.LDAPException:
            return False
        conn.unbind()
        return True


def ad_server() -> AdServer:
    """The test DC, or a skip that says why there is none (a failure in CI unless
    scripts/test gave a reason: a CI run must not lose the AD tests silently)."""
    reason = os.environ.get("GOVTUI_TEST_AD_SKIP")
    if reason:
        pytest.skip(f"no AD domain controller: {reason}")
    if not os.environ.get("GOVTUI_TEST_AD_URL"):
        message = "GOVTUI_TEST_AD_URL is not set: run the suite with scripts/test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return AdServer.from_environment()


@dataclass
class AdDirectory:
    """One test's private OU=t<random>,<domain> with OU=people and OU=groups in it."""

    server: AdServer
    base: str
    _conn: ldap3.Connection | None = field(default=None, repr=False)

    @property
    def root(self) -> str:
        return self.server.root

    @property
    def people(self) -> str:
        return f"OU=people,{self.base}"

    @property
    def groups(self) -> str:
        return f"OU=groups,{self.base}"

    @property
    def conn(self) -> ldap3.Connection:
        """A bound Administrator connection (reopened after the DC was restarted)."""
        if self._conn is None or self._conn.closed:
            self._conn = self.server.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.unbind()
            self._conn = None

    def add_ou(self, dn: str) -> str:
        ou = ldap3.utils.dn.parse_dn(dn)[0][1]
        self.conn.add(dn, ["organizationalUnit"], {"ou": ou})
        return dn

    def add_user(
        self,
        cn: str,
        sam: str | None = None,
        *,
        password: str | None = None,
        under: str | None = None,
    ) -> str:
        """A user CN=<cn> (escaped here) with this sAMAccountName (default: a random one);
        enabled, with `password` if given (AD wants an encrypted connection for that)."""
        dn = f"CN={escape_rdn(cn)},{under or self.people}"
        attributes: dict[str, Any] = {
            "cn": cn,
            "sAMAccountName": sam or f"u{secrets.token_hex(6)}",
        }
        if password is not None:
            attributes["unicodePwd"] = f'"{password}"'.encode("utf-16-le")
            attributes["userAccountControl"] = UAC_NORMAL_ACCOUNT
        self.conn.add(dn, ["top", "person", "organizationalPerson", "user"], attributes)
        return dn

    def add_group(
        self,
        cn: str,
        sam: str | None = None,
        *,
        group_type: int = GLOBAL_SECURITY_GROUP,
        members: list[str] | None = None,
        under: str | None = None,
    ) -> str:
        dn = f"CN={escape_rdn(cn)},{under or self.groups}"
        attributes: dict[str, Any] = {
            "cn": cn,
            "sAMAccountName": sam or f"g{secrets.token_hex(6)}",
            "groupType": group_type,
        }
        if members:
            attributes["member"] = members
        self.conn.add(dn, ["top", "group"], attributes)
        return dn

    def add_member(self, group_dn: str, member: str) -> None:
        self.conn.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [member])]})

    def remove_member(self, group_dn: str, member: str) -> None:
        self.conn.modify(group_dn, {"member": [(ldap3.MODIFY_DELETE, [member])]})

    def members(self, group_dn: str) -> set[str] | None:
        """The group's normalised member DNs, or None if there is no such group."""
        values = self.attribute(group_dn, "member")
        return None if values is None else {norm(m) for m in values}

    def attribute(self, dn: str, name: str) -> list[Any] | None:
        """The values of one attribute (always a list), or None if there is no such entry."""
        try:
            self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[name])
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:
            return None
        value = self.conn.response[0]["attributes"].get(name)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def uac(self, dn: str) -> int:
        values = self.attribute(dn, "userAccountControl")
        assert values, f"no userAccountControl on {dn}"
        return int(single(values))

    def stop_server(self) -> None:
        """Stop the DC (see AdServer.stop_server), dropping the admin connection first."""
        self.close()
        self.server.stop_server()

    def start_server(self) -> None:
        self.server.start_server()

    def delete_tree(self, dn: str) -> None:
        """Delete dn and everything under it in one request (AD's tree-delete control)."""
        with contextlib.suppress(ldap3.core.exceptions.LDAPNoSuchObjectResult):
            self.conn.delete(dn, controls=[(TREE_DELETE, True, None)])


def private_ou() -> Iterator[AdDirectory]:
    """A fresh OU of the test DC for one test, deleted with its contents afterwards."""
    server = ad_server()
    found = AdDirectory(server=server, base=f"OU=t{secrets.token_hex(6)},{server.root}")
    found.add_ou(found.base)
    found.add_ou(found.people)
    found.add_ou(found.groups)
    try:
        yield found
    finally:
        found.start_server()  # a test that stopped it must not take the others down with it
        found.delete_tree(found.base)
        found.close()

"""The real OpenLDAP the directory tests talk to (started by scripts/test, see
scripts/lib/slapd.sh): a fresh subtree per test, an admin connection to look at it, and a way
to stop and restart the server in the middle of a test."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from govtui import db
from govtui.directory import naming
from govtui.models import DirectoryTarget, OutboxOp
from govtui.security import secrets as keyring_secrets
from govtui.services import directory_targets, operators

LDAP_URL = os.environ.get("GOVTUI_TEST_LDAP_URL")


def norm(dn: str) -> str:
    return dn.strip().lower()


def admin_connection(url: str, dn: str, password: str) -> ldap3.Connection:
    """A plain ldap3 admin connection, independent of govtui's own connect()."""
    server = ldap3.Server(url, connect_timeout=5, get_info=ldap3.NONE)
    return ldap3.Connection(
        server, user=dn, password=password, auto_bind=True, raise_exceptions=True
    )


def _process_gone(pid: int) -> bool:
    """Whether pid has exited (a zombie counts: nobody may reap slapd in a container)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@dataclass
class Directory:
    """One test's private subtree ou=t<random>,<base> with ou=people and ou=groups."""

    url: str
    admin_dn: str
    admin_password: str
    root: str  # the server's base (dc=govtui,dc=test)
    base: str  # this test's subtree
    conf: str | None
    _conn: ldap3.Connection | None = field(default=None, repr=False)

    @property
    def people(self) -> str:
        return f"ou=people,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=groups,{self.base}"

    @property
    def placeholder(self) -> str:
        return naming.placeholder_dn(self.groups)

    def group(self, name: str) -> str:
        return f"cn={name},{self.groups}"

    def user(self, uid: str) -> str:
        return f"uid={uid},{self.people}"

    # -- admin access ------------------------------------------------------------------------

    @property
    def conn(self) -> ldap3.Connection:
        """A bound admin connection (reopened after the server was restarted)."""
        if self._conn is None or self._conn.closed:
            self._conn = admin_connection(self.url, self.admin_dn, self.admin_password)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.unbind()
            self._conn = None

    def add_ou(self, dn: str) -> str:
        ou = dn.split(",", 1)[0].split("=", 1)[1]
        self.conn.add(dn, ["organizationalUnit"], {"ou": ou})
        return dn

    def add_person(self, uid: str, *, under: str | None = None) -> str:
        """An inetOrgPerson with this uid (under the people OU unless told)."""
        dn = f"uid={ldap3.utils.dn.escape_rdn(uid)},{under or self.people}"
        self.conn.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid})
        return dn

    def add_group(self, dn: str, members: list[str]) -> str:
        """A groupOfNames made by hand (no govtui placeholder)."""
        self.conn.add(dn, ["groupOfNames"], {"member": members})
        return dn

    def add_member(self, group_dn: str, member: str) -> None:
        self.conn.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [member])]})

    def remove_member(self, group_dn: str, member: str) -> None:
        self.conn.modify(group_dn, {"member": [(ldap3.MODIFY_DELETE, [member])]})

    def members(self, group_dn: str) -> set[str] | None:
        """The group's normalised member DNs, or None if there is no such group."""
        try:
            self.conn.search(group_dn, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:
            return None
        return {norm(m) for m in self.conn.response[0]["attributes"].get("member", [])}

    def attribute(self, dn: str, name: str) -> list[Any]:
        self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[name])
        value = self.conn.response[0]["attributes"].get(name) or []
        return value if isinstance(value, list) else [value]

    def snapshot(self, base: str | None = None) -> dict[str, dict[str, list[str]]]:
        """Every entry under `base` (default: the whole server) with its user attributes."""
        self.conn.search(base or self.root, "(objectClass=*)", ldap3.SUBTREE, attributes=["*"])
        return {
            norm(entry["dn"]): {
                key.lower(): sorted(str(v) for v in (val if isinstance(val, list) else [val]))
                for key, val in entry["raw_attributes"].items()
            }
            for entry in self.conn.response
            if entry.get("type") == "searchResEntry"
        }

    def delete_tree(self, dn: str) -> None:
        """Delete dn and everything under it, groups first (so the memberof overlay never has
        to touch a group whose member goes), leaves before their parents."""
        try:
            self.conn.search(dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["objectClass"])
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:
            return
        entries = [e for e in self.conn.response if e.get("type") == "searchResEntry"]

        def order(entry: dict[str, Any]) -> tuple[int, int]:
            classes = {c.lower() for c in entry["attributes"].get("objectClass", [])}
            is_group = "groupofnames" in classes
            return (0 if is_group else 1, -len(ldap3.utils.dn.parse_dn(entry["dn"])))

        for entry in sorted(entries, key=order):
            self.conn.delete(entry["dn"])

    # -- the server itself -------------------------------------------------------------------

    def _pidfile(self) -> Path:
        assert self.conf is not None, "GOVTUI_TEST_SLAPD_CONF is not set"
        for line in Path(self.conf).read_text().splitlines():
            if line.startswith("pidfile"):
                return Path(line.split(None, 1)[1].strip())
        raise AssertionError(f"no pidfile line in {self.conf}")

    def stop_server(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL) and wait until it is gone."""
        self.close()
        pidfile = self._pidfile()
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text().split()[0])
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not _process_gone(pid):
                time.sleep(0.02)
            if _process_gone(pid):
                break
        pidfile.unlink(missing_ok=True)
        assert not self.server_up(), "slapd still answers after being stopped"

    def start_server(self) -> None:
        """Start slapd again with the same config and URL; return once it answers."""
        if self.server_up():
            return
        assert self.conf is not None
        subprocess.run(["slapd", "-f", self.conf, "-h", f"{self.url}/", "-s", "0"], check=True)
        deadline = time.monotonic() + 10
        while not self.server_up():
            assert time.monotonic() < deadline, "slapd did not come back"
            time.sleep(0.05)

    def server_up(self) -> bool:
        try:
            conn = admin_connection(self.url, self.admin_dn, self.admin_password)
        except ldap3.core.exceptions.LDAPException:
            return False
        conn.unbind()
        return True


def private_subtree() -> Iterator[Directory]:
    """A fresh subtree of the test slapd for one test, deleted afterwards (test modules make
    it their `directory` fixture)."""
    if LDAP_URL is None:
        if os.environ.get("CI"):
            pytest.fail("GOVTUI_TEST_LDAP_URL is not set: run the suite with scripts/test")
        pytest.skip("no test directory: run the suite with scripts/test")
    root = os.environ["GOVTUI_TEST_LDAP_BASE"]
    found = Directory(
        url=LDAP_URL,
        admin_dn=os.environ["GOVTUI_TEST_LDAP_ADMIN_DN"],
        admin_password=os.environ["GOVTUI_TEST_LDAP_ADMIN_PASSWORD"],
        root=root,
        base=f"ou=t{secrets.token_hex(6)},{root}",
        conf=os.environ.get("GOVTUI_TEST_SLAPD_CONF"),
    )
    found.add_ou(found.base)
    found.add_ou(found.people)
    found.add_ou(found.groups)
    try:
        yield found
    finally:
        found.start_server()  # a test that stopped it must not take the others down with it
        found.delete_tree(found.base)
        found.close()


def add_target(
    engine: Engine, directory: Directory, name: str = "ldap", **overrides: Any
) -> DirectoryTarget:
    """Register the test subtree as a directory target (acting as the bootstrap admin)."""
    values: dict[str, Any] = dict(
        name=name,
        url=directory.url,
        bind_dn=directory.admin_dn,
        users_base=directory.people,
        groups_base=directory.groups,
        password=directory.admin_password,
        # The test slapd listens on plain ldap:// on loopback only (the TLS tests run their own).
        insecure_plaintext=True,
    )
    values.update(overrides)
    with db.write_session(engine) as session:
        return directory_targets.add(session, operators.find(session, "root"), **values)


def reseal_password(engine: Engine, name: str = "ldap") -> None:
    """Store a target's bind password again for its row as it now stands: a test that edits
    the row by SQL to stand for an old or broken row (not an attack) says so with this, since
    govtui refuses to send the password to settings it was not stored for."""
    with db.read_session(engine) as session:
        stored = keyring_secrets.load(directory_targets.password_key(session, name))
        assert stored is not None
        directory_targets.store_password(session, name, json.loads(stored)["password"])


def outbox(engine: Engine) -> list[OutboxOp]:
    """Every outbox row, in id order."""
    with db.read_session(engine) as session:
        return list(session.exec(select(OutboxOp).order_by(col(OutboxOp.id))).all())


@dataclass
class WriteCounter:
    """Counts the directory writes (add and modify) that the server accepted, per DN; can
    run a hook after an accepted write (to stop the server mid-sync)."""

    writes: dict[str, int] = field(default_factory=dict)
    after_write: Callable[[str], None] | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for method in ("add", "modify"):
            original = getattr(ldap3.Connection, method)
            monkeypatch.setattr(ldap3.Connection, method, self._wrap(original))

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        counter = self

        def wrapped(conn: ldap3.Connection, dn: str, *args: Any, **kwargs: Any) -> Any:
            result = original(conn, dn, *args, **kwargs)
            counter.writes[norm(dn)] = counter.writes.get(norm(dn), 0) + 1
            if counter.after_write is not None:
                counter.after_write(dn)
            return result

        return wrapped

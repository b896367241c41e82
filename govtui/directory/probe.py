"""Checking a directory target step by step: connect → TLS → bind → users base → groups base.
`directory add` runs it before it stores a target, `directory test` prints it, and the TUI's
health check reads its first failure: the steps are decided here only.

Each step's outcome is a frozen Step; the probe stops at the first failure (a later step
would only fail because of it). WhoAmI is optional (a Samba AD DC does not answer it): the
bound identity is reported when the server tells it, else the bind DN is."""

from __future__ import annotations

from dataclasses import dataclass

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult

from govtui.directory.connection import (
    BIND,
    CONNECT,
    TLS,
    DirectoryError,
    Endpoint,
    connect,
)
from govtui.text import one_line

USERS_BASE, GROUPS_BASE = "users base", "groups base"
STEPS = (CONNECT, TLS, BIND, USERS_BASE, GROUPS_BASE)


@dataclass(frozen=True)
class Step:
    """One step: whether it worked, and what it found or (in one line) why it failed."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProbeResult:
    url: str
    steps: tuple[Step, ...]  # up to and including the first failure
    identity: str | None = None  # who the server says we are bound as (WhoAmI), if it says

    @property
    def ok(self) -> bool:
        return len(self.steps) == len(STEPS) and all(step.ok for step in self.steps)

    @property
    def failure(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def error(self) -> DirectoryError | None:
        """The first failure as the error a connection would raise, or None."""
        failed = self.failure
        return None if failed is None else DirectoryError(self.url, failed.name, failed.detail)


def probe(endpoint: Endpoint, password: str, *, users_base: str, groups_base: str) -> ProbeResult:
    """Run the steps against the directory; never raises for anything the directory does."""
    steps: list[Step] = []
    try:
        conn = connect(
            endpoint,
            password,
            on_step=lambda name, found: steps.append(Step(name, True, one_line(found))),
        )
    except DirectoryError as exc:
        steps.append(Step(exc.step, False, exc.reason))
        return ProbeResult(endpoint.url, tuple(steps))
    try:
        identity = _who_am_i(conn)
        if identity:
            steps[-1] = Step(BIND, True, f"as {identity}")
        for name, base in ((USERS_BASE, users_base), (GROUPS_BASE, groups_base)):
            step = _base_step(conn, name, base)
            steps.append(step)
            if not step.ok:
                break
    finally:
        conn.unbind()
    return ProbeResult(endpoint.url, tuple(steps), identity)


def _who_am_i(conn: ldap3.Connection) -> str | None:
    """The bound identity by the WhoAmI extended operation, or None where the server has no
    such operation (Samba AD answers it with an error) or says nothing."""
    try:
        answer = conn.extend.standard.who_am_i()
    except LDAPException:
        return None
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8", "replace")
    # The server's own words: a hostile one can answer with escape codes or a megabyte.
    return one_line(answer) if answer else None


def _base_step(conn: ldap3.Connection, name: str, base: str) -> Step:
    try:
        conn.search(base, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
    except LDAPNoSuchObjectResult:
        return Step(name, False, f"{base} does not exist (or the bind account cannot see it)")
    except LDAPException as exc:
        lines = str(exc).strip().splitlines()
        why = one_line(lines[0] if lines else repr(exc))
        return Step(name, False, one_line(f"searching {base} failed ({why})"))
    return Step(name, True, base)

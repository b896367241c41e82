"""`govtui doctor`: is this installation fit to trust? Read-only checks, each returning
Findings (services.doctor_findings): the installed packages and files against the lock
(services.install_integrity), the keyring backend, the database (its files' modes, the schema
version, the audit chain) and each directory target's TLS settings.

Nothing here writes: no database file is created (a missing one is reported, not made), no
migration runs, no keyring entry is written, no directory is contacted. What only a connection
can tell (the server's certificate, its names, its expiry) is said to need the network, with
the command that checks it (`govtui directory test NAME`).

A check that cannot run (an unreadable file, a database that refuses) is a failed finding,
never an exception: the CLI prints every line, and the TUI's background run never raises."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keyring
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlmodel import Session

from govtui import db, migrations
from govtui.directory.connection import is_address, parse_url
from govtui.errors import ConfigurationError, GovtuiError
from govtui.models import DirectoryTarget
from govtui.security import secrets
from govtui.services import audit, audit_checkpoint, directory_targets, install_integrity
from govtui.services.doctor_findings import Finding, Status, failed
from govtui.text import one_line

MAX_DETAIL = 1000
# SQLite's files beside the database: the write-ahead log, its index, a rollback journal.
SIDECARS = ("-wal", "-shm", "-journal")
NETWORK_HINT = "the server's certificate and its names are checked only when connecting"

Cancelled = Callable[[], bool]


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Report:
    """Every finding of one run, and how long the run took (seconds, wall clock)."""

    findings: list[Finding]
    seconds: float

    @property
    def failed(self) -> bool:
        return failed(self.findings)

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.findings)


def run(
    url: str,
    *,
    engine: Engine | None = None,
    chain: bool = True,
    install: bool = True,
    cancelled: Cancelled = _never,
) -> Report:
    """Every check, in the order printed. `engine`: one already open on `url` (the TUI's);
    `chain=False` leaves the audit chain out (the dashboard verifies it on its own line);
    `cancelled` is asked between checks (the TUI quitting): the run then stops early. A URL
    that names no database govtui can use is refused at once (ConfigurationError)."""
    _require_usable(url)
    started = time.monotonic()
    findings: list[Finding] = []
    steps: list[Callable[[], list[Finding]]] = []
    if install:
        steps.append(lambda: _guarded("packages", "install", install_findings))
    steps.append(lambda: _guarded("keyring", "keyring", check_keyring))
    database = _DatabaseRun(url, engine, chain)
    steps.append(lambda: _guarded("database", "database", database.files))
    steps.append(lambda: _guarded("database", "schema", database.schema))
    steps.append(lambda: _guarded("database", "audit chain", database.audit_chain))
    steps.append(lambda: _guarded("directory", "directory targets", database.directories))
    try:
        for step in steps:
            if cancelled():
                break
            findings += step()
    finally:
        database.close()
    return Report(findings, time.monotonic() - started)


def run_on(engine: Engine, *, chain: bool = True, cancelled: Cancelled = _never) -> Report:
    """`run` on the database of an open engine (the TUI's workspace)."""
    url = engine.url.render_as_string(hide_password=False)
    return run(url, engine=engine, chain=chain, cancelled=cancelled)


def _require_usable(url: str) -> None:
    """Refuse a URL that is not SQLite or PostgreSQL (bad input: exit 2, nothing checked)."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigurationError(f"not a database URL: {one_line(url, 80)!r}") from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported database {backend!r}: use sqlite:/// or postgresql://"
        )


def _guarded(check: str, subject: str, fn: Callable[[], list[Finding]]) -> list[Finding]:
    """The check's findings, or one failed finding saying why the check could not run."""
    try:
        return fn()
    except GovtuiError as exc:
        return [_finding(check, "fail", subject, f"could not be checked: {exc}")]
    except DBAPIError as exc:
        # What the driver said, first line: not SQLAlchemy's statement and link around it.
        said = str(exc.orig).strip().splitlines()
        why = said[0] if said else type(exc.orig).__name__
        return [_finding(check, "fail", subject, f"could not be checked: {why}")]
    except Exception as exc:  # a doctor that crashes tells nobody anything
        return [
            _finding(check, "fail", subject, f"could not be checked: {type(exc).__name__}: {exc}")
        ]


def _finding(check: str, status: Status, subject: object, detail: object) -> Finding:
    """A Finding whose subject and detail are one line each (a path or a server's words may
    hold anything); the front ends escape again as they print."""
    return Finding(
        check,
        status,
        one_line(subject, MAX_DETAIL),
        one_line(detail, MAX_DETAIL),
    )


# --- the installed packages (services.install_integrity) --------------------------------------


def install_findings() -> list[Finding]:
    """The install checks: installed distributions against requirements.lock, each RECORD's
    hashes and sizes, stray .py/.pth files."""
    return install_integrity.check_install()


# --- the keyring ---------------------------------------------------------------------------------


def check_keyring() -> list[Finding]:
    """Whether the keyring backend in use protects secrets (security.secrets decides)."""
    backend = keyring.get_keyring()
    kind = f"{type(backend).__module__}.{type(backend).__name__}"
    try:
        secrets.require_safe_backend()
    except GovtuiError as exc:
        return [_finding("keyring", "fail", kind, exc)]
    return [_finding("keyring", "ok", kind, "a backend that protects secrets")]


# --- the database --------------------------------------------------------------------------------


def mode_problem(path: Path) -> str | None:
    """Why a file govtui keeps private is not (group or others may read or write it, or it is
    not a regular file), or None. Follows a symbolic link: what matters is the file read."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return f"mode {mode:04o}, others may read it: `chmod 600 {path}`"
    return None


def database_files(url: str) -> list[Path]:
    """The files of the database that exist: the SQLite file and its sidecars, and the audit
    checkpoint kept outside the database (for PostgreSQL too)."""
    found: list[Path] = []
    path = db.sqlite_path(url)
    if path is not None:
        found += [path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)]
    checkpoint = audit_checkpoint.checkpoint_path(url)
    if checkpoint is not None:
        found.append(checkpoint)
    return [p for p in found if p.exists()]


class _DatabaseRun:
    """The database's checks in order, sharing one engine (opened only once the file is known
    to exist: opening SQLite creates a missing file) and what the schema check found."""

    def __init__(self, url: str, engine: Engine | None, chain: bool) -> None:
        self.url, self.engine, self.chain = url, engine, chain
        self.path = db.sqlite_path(url)
        self._own_engine = False
        # Set by `schema`: whether the rest can read the database with today's models.
        self.current = False
        self.missing = False

    def close(self) -> None:
        if self._own_engine and self.engine is not None:
            self.engine.dispose()

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = db.make_engine(self.url)
            self._own_engine = True
        return self.engine

    def files(self) -> list[Finding]:
        findings: list[Finding] = []
        if self.path is None:
            if self.url.startswith("sqlite"):
                return [_finding("database", "warn", "in-memory", "nothing outlives the process")]
            findings.append(
                _finding(
                    "database",
                    "ok",
                    db.redacted(self.url),
                    "PostgreSQL: the server keeps the files, so their modes are its own "
                    "(not checked here)",
                )
            )
        elif not self.path.exists():
            self.missing = True
            return [
                _finding(
                    "database",
                    "warn",
                    self.path,
                    "no database here yet (`govtui init` creates it): nothing else to check",
                )
            ]
        else:
            folder = self.path.parent.stat()
            if stat.S_IMODE(folder.st_mode) & 0o022 and not folder.st_mode & stat.S_ISVTX:
                findings.append(
                    _finding(
                        "database",
                        "warn",
                        self.path.parent,
                        f"folder mode {stat.S_IMODE(folder.st_mode):04o}: others may replace "
                        "the database's files",
                    )
                )
        for path in database_files(self.url):
            problem = mode_problem(path)
            if problem is None:
                findings.append(_finding("database", "ok", path, "mode 0600"))
            else:
                findings.append(_finding("database", "fail", path, problem))
        return findings

    def schema(self) -> list[Finding]:
        if self.missing:
            return []
        version = migrations.current_version(self._engine())
        latest = migrations.LATEST
        if version == 0:
            self.missing = True
            return [
                _finding("database", "warn", "schema", "no govtui schema yet: run `govtui init`")
            ]
        if version < latest:
            detail = f"version {version}, this govtui needs {latest}: run `govtui init`"
            return [_finding("database", "fail", "schema", detail)]
        if version > latest:
            detail = f"version {version}, newer than this govtui knows ({latest}): upgrade govtui"
            return [_finding("database", "fail", "schema", detail)]
        self.current = True
        return [_finding("database", "ok", "schema", f"version {version} (current)")]

    def audit_chain(self) -> list[Finding]:
        if not self.chain or not self.current:
            return []
        engine = self._engine()
        with db.read_session(engine) as session:
            result = audit.verify(session, engine)
        if not result.ok:
            where = f"broken at event {result.first_bad_seq}" if result.first_bad_seq else "broken"
            detail = f"{where}: {result.problem}; see `govtui audit verify`"
            return [_finding("database", "fail", "audit chain", detail)]
        detail = f"{result.checked:,} events verified"
        if result.signature:
            detail += f", {result.signature}"
        status: Status = "warn" if result.warning else "ok"
        if result.warning:
            detail += f"; {result.warning}"
        return [_finding("database", status, "audit chain", detail)]

    def directories(self) -> list[Finding]:
        if self.missing:
            return []
        if not self.current:
            detail = "not checked: the database is not at the current schema (see above)"
            return [_finding("directory", "warn", "directory targets", detail)]
        with db.read_session(self._engine()) as session:
            targets = directory_targets.all_targets(session)
            if not targets:
                return [_finding("directory", "ok", "directory targets", "none set up")]
            findings: list[Finding] = []
            for target in targets:
                findings += target_findings(target, lambda t: _password_problem(session, t))
        return findings


# --- directory targets ---------------------------------------------------------------------------


def _password_problem(session: Session, target: DirectoryTarget) -> str | None:
    """Why the stored bind password would not be sent (no password in this keyring, or the
    target's settings changed since it was stored: a row edited behind govtui's back)."""
    try:
        directory_targets.bind_password(session, target)
    except GovtuiError as exc:
        return str(exc)
    return None


def tls_problems(target: DirectoryTarget) -> list[str]:
    """What is wrong with a target's TLS settings as stored, without the network: TLS at all
    (ldaps:// or StartTLS), the CA file (there, readable, certificates, not writable by
    others), the name the certificate must carry."""
    try:
        address = parse_url(target.url)
    except GovtuiError as exc:
        return [str(exc)]
    problems: list[str] = []
    encrypted = address.tls or target.starttls
    if address.tls and target.starttls:
        problems.append("both ldaps:// and StartTLS are set: `directory add` never stores that")
    if not encrypted:
        if target.insecure_plaintext:
            problems.append(
                "no TLS: plain ldap:// without StartTLS sends the bind password in clear text "
                "(accepted with --insecure-plaintext); use ldaps:// or --starttls"
            )
        else:
            problems.append(
                "no TLS: plain ldap:// without StartTLS, and not added with "
                "--insecure-plaintext: govtui refuses to connect (the row was changed?)"
            )
        return problems
    if target.insecure_plaintext:
        problems.append(
            "marked --insecure-plaintext though it uses TLS: `directory add` never stores that"
        )
    if target.tls_name is not None and not directory_targets.valid_tls_name(target.tls_name):
        problems.append(f"TLS name {target.tls_name!r} is no host name (a wildcard matches any)")
    if target.ca_file is not None:
        problems += _ca_problems(target.ca_file)
    return problems


def _ca_problems(ca_file: str) -> list[str]:
    if not os.path.isabs(ca_file):
        return [f"CA file {ca_file} is a relative path: it depends on where govtui starts"]
    try:
        directory_targets.checked_ca_file(ca_file)
    except GovtuiError as exc:
        return [str(exc)]
    mode = stat.S_IMODE(os.stat(ca_file).st_mode)
    if mode & 0o022:
        return [
            f"CA file {ca_file} has mode {mode:04o}: whoever may write it decides which "
            f"servers govtui trusts (`chmod go-w {ca_file}`)"
        ]
    return []


def tls_summary(target: DirectoryTarget) -> str:
    """What the settings promise, for an ok line: how TLS is set up, whose CAs, which name."""
    address = parse_url(target.url)
    how = "ldaps://" if address.tls else "StartTLS"
    cas = f"CA file {target.ca_file}" if target.ca_file else "the system's CAs"
    names = address.host if target.tls_name is None else f"{address.host} or {target.tls_name}"
    name_note = (
        " (an address: the certificate must carry it, or set --tls-name)"
        if target.tls_name is None and is_address(address.host)
        else ""
    )
    return (
        f"{how}, certificate checked against {cas}, host name checked as {names}{name_note}; "
        f"{NETWORK_HINT}: `govtui directory test {target.name}`"
    )


def target_findings(
    target: DirectoryTarget, password_problem: Callable[[DirectoryTarget], str | None]
) -> list[Finding]:
    """One finding per problem of the target's TLS settings and its stored password, or one
    ok. A disabled target's problems are warnings: govtui does not connect to it."""
    subject = f"directory {directory_targets.display_name(target)}"
    disabled = target.disabled_at is not None
    problems = tls_problems(target)
    stored = password_problem(target)
    if stored is not None:
        problems.append(stored)
    if problems:
        status: Status = "warn" if disabled else "fail"
        suffix = " (disabled: not connected to)" if disabled else ""
        return [_finding("directory", status, subject, p + suffix) for p in problems]
    detail = tls_summary(target) + (" (disabled)" if disabled else "")
    return [_finding("directory", "ok", subject, detail)]

"""`govtui doctor [--json]` (issue 15): the keyring, database and directory checks, each
failing on what it is there to catch (a database file 0644, an old schema, a broken chain, a
plaintext keyring backend, a target without TLS) and passing on a sound setup; the install
checks of services.install_integrity composed into the same report; the JSON against
schemas/doctor-report.schema.json; every line escaped; nothing written.

The install checks themselves (hashing every installed file) are integ15's and tested there;
here they are replaced by a fixed finding, so these tests are about the composition."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import keyring
import keyring.backends.fail
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.models import Operator
from govtui.services import directory_targets, doctor, install_integrity, operators
from govtui.services.doctor_findings import Finding

from .conftest import snapshot
from .memory_keyring import MemoryKeyring
from .throwaway_ca import make_ca

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "doctor-report.schema.json").read_text()
)
REAL_INSTALL_FINDINGS = doctor.install_findings
INSTALL_OK = Finding("packages", "ok", "requirements.lock", "35 packages at the locked versions")
TARGET: dict[str, Any] = dict(
    bind_dn="cn=admin,dc=x",
    users_base="ou=people,dc=x",
    groups_base="ou=groups,dc=x",
    password="pw",
)


class PlaintextKeyring(MemoryKeyring):
    """Stands for any backend that writes secrets to a plain file."""


@pytest.fixture(autouse=True)
def install_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "install_findings", lambda: [INSTALL_OK])


@pytest.fixture
def root(engine: Engine, memory_keyring: MemoryKeyring) -> Operator:
    from .conftest import bootstrap_admin

    return bootstrap_admin(engine)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run_json(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["--db", url, "doctor", "--json"])
    out = capsys.readouterr().out
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    assert report["ok"] is (code == 0)
    return code, report


def run_text(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["--db", url, "doctor"])
    return code, capsys.readouterr().out.splitlines()


def failures(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (f["check"], f["subject"], f["detail"]) for f in report["findings"] if f["status"] == "fail"
    ]


def add_target(engine: Engine, name: str, **settings: Any) -> None:
    with db.write_session(engine) as session:
        actor = operators.find(session, "root")
        directory_targets.add(session, actor, name=name, **TARGET, **settings)


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(statement), params)


# --- passing -----------------------------------------------------------------------------------


def test_a_sound_setup_passes_and_doctor_writes_nothing(
    engine: Engine, root: Operator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = make_ca(tmp_path / "ca")
    add_target(engine, "corp", url="ldaps://ldap.corp.test", ca_file=str(ca.cert))
    add_target(engine, "ad", url="ldap://dc.corp.test", starttls=True)
    before = snapshot(engine)
    files_before = _files(engine)
    code, report = run_json(url_of(engine), capsys)
    assert failures(report) == []
    assert code == 0
    assert report["counts"]["fail"] == 0
    checks = {f["check"] for f in report["findings"]}
    assert checks == {"packages", "keyring", "database", "directory"}
    subjects = {f["subject"]: f["detail"] for f in report["findings"]}
    assert subjects["schema"] == "version 7 (current)"
    assert "events verified" in subjects["audit chain"]
    assert subjects["directory corp"].startswith(
        f"ldaps://, certificate checked against CA file {ca.cert}"
    )
    assert "`govtui directory test corp`" in subjects["directory corp"]  # needs the network
    assert subjects["directory ad"].startswith("StartTLS, certificate checked against the system")
    if engine.dialect.name == "postgresql":
        assert any(
            d.startswith("PostgreSQL: the server keeps the files") for d in subjects.values()
        )
    else:
        database = db.sqlite_path(url_of(engine))
        assert subjects[str(database)] == "mode 0600"
        assert subjects[f"{database}.audit-head"] == "mode 0600"
    assert snapshot(engine) == before
    assert _files(engine) == files_before  # the audit checkpoint and the database untouched


def _files(engine: Engine) -> dict[str, tuple[int, int]]:
    """Each file beside a SQLite database (bar SQLite's -wal and -shm): size, mtime."""
    path = db.sqlite_path(url_of(engine))
    if path is None:
        return {}
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in path.parent.iterdir()
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_no_database_yet_is_a_warning_and_none_is_made(
    tmp_path: Path, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data" / "govtui.db"
    code, report = run_json(f"sqlite:///{path}", capsys)
    assert code == 0
    assert [(f["status"], f["subject"]) for f in report["findings"][2:]] == [("warn", str(path))]
    assert not path.exists() and not path.parent.exists()


def test_the_text_report_has_one_line_per_finding_and_a_summary(
    engine: Engine, root: Operator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_text(url_of(engine), capsys)
    assert code == 0
    assert lines[0] == "ok    packages   requirements.lock: 35 packages at the locked versions"
    assert lines[1].startswith("ok    keyring    tests.memory_keyring.MemoryKeyring: ")
    assert lines[-1].startswith("doctor: every check passed (")


# --- each check failing ------------------------------------------------------------------------


@pytest.fixture
def sqlite_root(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> Engine:
    from .conftest import bootstrap_admin

    bootstrap_admin(sqlite_engine)
    return sqlite_engine


@pytest.fixture
def open_wal(sqlite_root: Engine) -> Iterator[Path]:
    """The database with a connection open, so its -wal and -shm files exist meanwhile."""
    path = db.sqlite_path(url_of(sqlite_root))
    assert path is not None
    connection = sqlite3.connect(path)
    connection.execute("SELECT count(*) FROM operator").fetchone()
    yield path
    connection.close()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", ".audit-head"])
def test_a_database_file_readable_by_others_fails_naming_it(
    open_wal: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = open_wal.with_name(open_wal.name + suffix)
    assert target.exists()
    target.chmod(0o644)
    code, report = run_json(f"sqlite:///{open_wal}", capsys)
    assert code == 1
    assert failures(report) == [
        ("database", str(target), f"mode 0644, others may read it: `chmod 600 {target}`")
    ]


def test_an_old_schema_fails_and_the_rest_is_not_read(
    sqlite_root: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    sql(sqlite_root, "DELETE FROM schema_version WHERE version = 7")
    code, report = run_json(url_of(sqlite_root), capsys)
    assert code == 1
    assert failures(report) == [
        ("database", "schema", "version 6, this govtui needs 7: run `govtui init`")
    ]
    statuses = {f["subject"]: f["status"] for f in report["findings"]}
    assert "audit chain" not in statuses
    assert statuses["directory targets"] == "warn"


def test_a_broken_audit_chain_fails_naming_the_event(
    engine: Engine, root: Operator, capsys: pytest.CaptureFixture[str]
) -> None:
    sql(engine, "UPDATE audit_event SET actor = 'mallory' WHERE seq = 1")
    code, report = run_json(url_of(engine), capsys)
    assert code == 1
    assert failures(report) == [
        (
            "database",
            "audit chain",
            "broken at event 1: event 1 was altered (its hash does not match); "
            "see `govtui audit verify`",
        )
    ]


@pytest.mark.parametrize(
    "backend",
    [PlaintextKeyring, keyring.backends.fail.Keyring],
    ids=["plaintext", "fail"],
)
def test_a_keyring_backend_that_does_not_protect_secrets_fails(
    sqlite_root: Engine, backend: Callable[[], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    keyring.set_keyring(backend())  # the memory_keyring fixture puts the previous one back
    code, report = run_json(url_of(sqlite_root), capsys)
    assert code == 1
    ((check, subject, detail),) = failures(report)
    kind = type(keyring.get_keyring())
    assert (check, subject) == ("keyring", f"{kind.__module__}.{kind.__name__}")
    assert "does not protect secrets" in detail


def test_a_target_without_tls_fails(
    engine: Engine, root: Operator, capsys: pytest.CaptureFixture[str]
) -> None:
    add_target(engine, "plain", url="ldap://ldap.corp.test", insecure_plaintext=True)
    code, report = run_json(url_of(engine), capsys)
    assert code == 1
    ((check, subject, detail),) = failures(report)
    assert (check, subject) == ("directory", "directory plain")
    assert detail.startswith("no TLS: plain ldap:// without StartTLS sends the bind password")


def test_tls_settings_changed_behind_govtuis_back_fail(
    sqlite_root: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row edited by SQL: TLS switched off, a CA file others may write, a wildcard name;
    and each time the stored password no longer matches the settings (it would not be sent)."""
    ca = make_ca(tmp_path / "ca")
    add_target(sqlite_root, "a", url="ldaps://a.corp.test")
    add_target(sqlite_root, "b", url="ldaps://b.corp.test")
    add_target(sqlite_root, "c", url="ldaps://c.corp.test")
    sql(sqlite_root, "UPDATE directory_target SET url = 'ldap://a.corp.test' WHERE name = 'a'")
    ca.cert.chmod(0o666)
    sql(sqlite_root, "UPDATE directory_target SET ca_file = :f WHERE name = 'b'", f=str(ca.cert))
    sql(sqlite_root, "UPDATE directory_target SET tls_name = '*' WHERE name = 'c'")
    code, report = run_json(url_of(sqlite_root), capsys)
    assert code == 1
    found = failures(report)
    by_target: dict[str, list[str]] = {}
    for check, subject, detail in found:
        assert check == "directory"
        by_target.setdefault(subject, []).append(detail)
    changed = "its connection settings changed since the bind password was stored"
    assert by_target["directory a"][0].startswith("no TLS: plain ldap:// without StartTLS, and not")
    assert by_target["directory b"][0].startswith(f"CA file {ca.cert} has mode 0666: whoever")
    assert by_target["directory c"][0].startswith("TLS name '*' is no host name")
    assert all(changed in details[-1] for details in by_target.values())


def test_a_disabled_targets_problems_are_warnings(
    sqlite_root: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    add_target(sqlite_root, "old", url="ldap://old.corp.test", insecure_plaintext=True)
    sql(sqlite_root, "UPDATE directory_target SET disabled_at = '2026-03-01 00:00:00.000000'")
    code, report = run_json(url_of(sqlite_root), capsys)
    assert code == 0
    (warning,) = [f for f in report["findings"] if f["subject"] == "directory old"]
    assert warning["status"] == "warn"
    assert warning["detail"].endswith("(disabled: not connected to)")


def test_hostile_text_in_a_finding_is_escaped_in_text_and_json(
    sqlite_root: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    add_target(sqlite_root, "x", url="ldaps://x.corp.test")
    evil = "/tmp/\x1b]0;pwned\x07\x1b[32mok\u202e.pem"
    sql(sqlite_root, "UPDATE directory_target SET ca_file = :f", f=evil)
    outputs = []
    for args in ([], ["--json"]):
        assert main(["--db", url_of(sqlite_root), "doctor", *args]) == 1
        outputs.append(capsys.readouterr().out)
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "CA file /tmp/\\x1b]0;pwned\\x07\\x1b[32mok\\u202e.pem does not exist" in outputs[0]
    jsonschema.validate(json.loads(outputs[1]), SCHEMA)


# --- the install checks, composed ----------------------------------------------------------------


def test_the_install_checks_are_composed_into_the_report(
    sqlite_root: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What services.install_integrity.check_install() says comes first, as it says it; one
    of its failures fails the whole report."""
    # The real install_findings, with a stand-in check behind it.
    monkeypatch.setattr(doctor, "install_findings", REAL_INSTALL_FINDINGS)
    tampered = Finding("files", "fail", "textual/app.py", "SHA-256 differs from RECORD")
    monkeypatch.setattr(install_integrity, "check_install", lambda: [tampered])
    code, report = run_json(url_of(sqlite_root), capsys)
    assert code == 1
    assert failures(report) == [("files", "textual/app.py", "SHA-256 differs from RECORD")]
    assert report["findings"][0]["check"] == "files"


def test_a_check_that_raises_is_one_failed_line(
    sqlite_root: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> list[Finding]:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(doctor, "install_findings", broken)
    code, report = run_json(url_of(sqlite_root), capsys)
    assert code == 1
    assert failures(report) == [
        (
            "packages",
            "install",
            "could not be checked: PermissionError: [Errno 13] Permission denied",
        )
    ]


def test_a_url_naming_no_usable_database_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--db", "mysql://h/x", "doctor"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "govtui: error: unsupported database 'mysql': use sqlite:/// or postgresql://\n"
    )

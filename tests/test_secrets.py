"""Secrets: only in a real OS keyring. Unsafe backends are refused; the real Secret Service
(started by scripts/test) holds TOTP secrets, and the database never sees them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import keyring
import keyring.backends.fail
import keyring.backends.null
import pytest
import sqlalchemy as sa
from keyring.backend import KeyringBackend
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from govtui import db
from govtui.errors import ConfigurationError, PolicyError
from govtui.security import secrets, totp
from govtui.services import enrollment, operators, second_factor

from .conftest import code, enroll
from .factories import allow_enrolment
from .memory_keyring import MemoryKeyring


class PlaintextKeyring(MemoryKeyring):
    """Stands for any backend that writes secrets to a plain file."""


@pytest.fixture
def backend_restored() -> Iterator[None]:
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring, keyring.backends.null.Keyring, PlaintextKeyring],
    ids=["fail", "null", "plaintext"],
)
def test_unsafe_backends_are_refused_loudly(
    backend_restored: None, backend: type[KeyringBackend]
) -> None:
    keyring.set_keyring(backend())
    with pytest.raises(
        ConfigurationError,
        match=r"does not protect secrets.*Secret Service.*PYTHON_KEYRING_BACKEND",
    ):
        secrets.store("k", "v")
    with pytest.raises(ConfigurationError):
        secrets.load("k")


def test_enrolment_refused_without_a_safe_keyring(
    sqlite_engine: Engine, backend_restored: None
) -> None:
    with db.write_session(sqlite_engine) as session:
        operators.add(session, None, name="root", roles=["admin"])
    keyring.set_keyring(keyring.backends.null.Keyring())
    with pytest.raises(ConfigurationError), db.write_session(sqlite_engine) as session:
        enrollment.start(session, operators.find(session, "root"), name="root")


def _real_secret_service() -> None:
    backend = keyring.get_keyring()
    if type(backend).__module__ != "keyring.backends.SecretService":
        if os.environ.get("CI"):
            pytest.fail(
                f"no Secret Service in CI (backend {backend!r}): run the suite with scripts/test"
            )
        pytest.skip("no Secret Service: run the suite with scripts/test")


def test_real_secret_service_round_trip() -> None:
    _real_secret_service()
    secrets.store("govtui-test:probe", "s3cret-value")
    assert secrets.load("govtui-test:probe") == "s3cret-value"
    secrets.delete("govtui-test:probe")
    assert secrets.load("govtui-test:probe") is None


def test_enrolment_keeps_the_secret_in_the_keyring_only(sqlite_engine: Engine) -> None:
    _real_secret_service()
    with db.write_session(sqlite_engine) as session:
        operators.add(session, None, name="root", roles=["admin"])
    secret = enroll(sqlite_engine, "root")
    with db.read_session(sqlite_engine) as session:
        key = second_factor.secret_key(session, "root")
        stored = secrets.load(key) if key is not None else None
        dump = repr([session.execute(sa.select(t)).all() for t in SQLModel.metadata.sorted_tables])
    assert stored == secret
    assert secret not in dump
    path = db.sqlite_path(sqlite_engine.url.render_as_string(hide_password=False))
    assert path is not None
    raw = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
    assert secret.encode() not in raw


@pytest.fixture
def root_and_ann(sqlite_engine: Engine, memory_keyring: MemoryKeyring) -> Engine:
    """root (the bootstrap admin, enrolled while alone), then ann and cid (not enrolled)."""
    with db.write_session(sqlite_engine) as session:
        operators.add(session, None, name="root", roles=["admin"])
    enroll(sqlite_engine, "root")
    with db.write_session(sqlite_engine) as session:
        root = operators.find(session, "root")
        operators.add(session, root, name="ann", roles=["approver"])
        operators.add(session, root, name="cid", roles=["approver"])
    return sqlite_engine


def _secret_of(engine: Engine, name: str, *, pending: bool = False) -> str | None:
    with db.read_session(engine) as session:
        key = second_factor.secret_key(session, name, pending=pending)
        return secrets.load(key) if key is not None else None


def _root_code(engine: Engine, offset: int = 0) -> str:
    secret = _secret_of(engine, "root")
    assert secret is not None
    return code(secret, offset)


def _op(engine: Engine, name: str) -> object:
    with db.read_session(engine) as session:
        return operators.find(session, name)


def test_print_uri_leaves_enrolment_pending_until_confirmed(root_and_ann: Engine) -> None:
    engine = root_and_ann
    allow_enrolment(engine, "ann")
    with db.write_session(engine) as session:
        uri = enrollment.start(session, operators.find(session, "ann"), name="ann")
    assert uri.startswith("otpauth://totp/govtui:ann?") and "issuer=govtui" in uri
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    with db.read_session(engine) as session:
        ann = operators.find(session, "ann")
    assert ann.totp_pending_at is not None and ann.totp_enrolled_at is None
    with (
        pytest.raises(second_factor.CodeRejected, match="still pending"),
        db.write_session(engine) as session,
    ):
        enrollment.confirm(session, operators.find(session, "ann"), name="ann", code="000000")
    assert _op(engine, "ann").totp_failures == 1  # type: ignore[attr-defined]  # counted
    with db.write_session(engine) as session:
        enrollment.confirm(session, operators.find(session, "ann"), name="ann", code=code(secret))
    with db.read_session(engine) as session:
        ann = operators.find(session, "ann")
        assert second_factor.secret_key(session, "ann", pending=True) is None
    assert _secret_of(engine, "ann") == secret
    assert ann.totp_enrolled_at is not None and ann.totp_pending_at is None


def test_a_first_enrolment_is_the_operators_own_after_an_admins_allowance(
    root_and_ann: Engine,
) -> None:
    with (
        pytest.raises(PolicyError, match="only 'ann' can enrol themself"),
        db.write_session(root_and_ann) as session,
    ):
        enrollment.start(session, operators.find(session, "cid"), name="ann")
    with (
        pytest.raises(PolicyError, match="needs an admin's allowance"),
        db.write_session(root_and_ann) as session,
    ):
        enrollment.start(session, operators.find(session, "ann"), name="ann")


def test_re_enrolment_needs_the_current_code_or_an_admins_code(root_and_ann: Engine) -> None:
    engine = root_and_ann
    ann_secret = enroll(engine, "ann")
    with pytest.raises(PolicyError, match="enrolled already"), db.write_session(engine) as session:
        enrollment.start(session, operators.find(session, "ann"), name="ann")
    with pytest.raises(PolicyError, match="wrong code"), db.write_session(engine) as session:
        enrollment.start(session, operators.find(session, "ann"), name="ann", current_code="000000")
    with db.write_session(engine) as session:
        enrollment.start(
            session, operators.find(session, "ann"), name="ann", current_code=code(ann_secret)
        )
    root_secret = _secret_of(engine, "root")
    assert root_secret is not None
    with pytest.raises(PolicyError, match="only 'ann'"), db.write_session(engine) as session:
        # an admin never starts it: they allow it, and ann re-enrols in her own session
        enrollment.start(session, operators.find(session, "root"), name="ann")
    with db.write_session(engine) as session:
        root = operators.find(session, "root")
        enrollment.allow(session, root, name="ann", code=code(root_secret))
    with db.write_session(engine) as session:
        uri = enrollment.start(session, operators.find(session, "ann"), name="ann")
    assert "secret=" in uri and totp.new_secret() not in uri


def test_a_chain_with_an_unsafe_backend_is_refused(backend_restored: None) -> None:
    from keyring.backends.chainer import ChainerBackend

    class Chain(ChainerBackend):
        backends = [MemoryKeyring(), PlaintextKeyring()]

    keyring.set_keyring(Chain())
    with pytest.raises(ConfigurationError, match="does not protect secrets"):
        secrets.store("k", "v")


class CommitFailed(Exception):
    """Stands for whatever can make a commit fail after the service call returned."""


def _fail_commit(session: object) -> None:
    raise CommitFailed("disk full")


def _keyring_after_failed_commit(engine: Engine, keys: MemoryKeyring, run: object) -> None:
    """Run `run(session)` in a write_session whose commit fails; the keyring must not change."""
    before = dict(keys.entries)
    with pytest.raises(CommitFailed), db.write_session(engine) as session:
        sa.event.listen(session, "before_commit", _fail_commit)
        run(session)  # type: ignore[operator]
    assert keys.entries == before


def test_a_failed_commit_after_an_enrolment_leaves_the_keyring_as_it_was(
    root_and_ann: Engine, memory_keyring: MemoryKeyring
) -> None:
    engine = root_and_ann
    allow_enrolment(engine, "ann")
    _keyring_after_failed_commit(
        engine,
        memory_keyring,
        lambda s: enrollment.start(s, operators.find(s, "ann"), name="ann"),
    )
    with db.read_session(engine) as session:
        assert operators.find(session, "ann").totp_pending_at is None

    # A re-enrolment whose confirmation is lost must keep the old, still enrolled secret.
    old = enroll(engine, "ann")
    with db.write_session(engine) as session:
        uri = enrollment.start(
            session, operators.find(session, "ann"), name="ann", current_code=code(old)
        )
    new = parse_qs(urlparse(uri).query)["secret"][0]
    _keyring_after_failed_commit(
        engine,
        memory_keyring,
        lambda s: enrollment.confirm(s, operators.find(s, "ann"), name="ann", code=code(new, -1)),
    )
    assert _secret_of(engine, "ann") == old
    assert _secret_of(engine, "ann", pending=True) == new
    with db.read_session(engine) as session:
        assert operators.find(session, "ann").totp_pending_at is not None
    # The same confirmation, committed, switches the keyring over only now.
    with db.write_session(engine) as session:
        enrollment.confirm(session, operators.find(session, "ann"), name="ann", code=code(new, -1))
    assert _secret_of(engine, "ann") == new
    assert _secret_of(engine, "ann", pending=True) is None
    # the old secret's entry is gone from the keyring once the row points at the new one
    assert old not in memory_keyring.entries.values()


def test_govtui_runs_no_program_from_path_to_choose_its_keyring(tmp_path: Path) -> None:
    """keyring's own detection asks its macOS backend, whose find_library runs `gcc` and `ld`
    from PATH on Linux: govtui picks the backend itself, so a planted `ld` never runs."""
    planted = tmp_path / "bin"
    planted.mkdir()
    ran = tmp_path / "ran"
    for tool in ("gcc", "ld", "cc", "objdump"):
        script = planted / tool
        script.write_text(f"#!/bin/sh\necho {tool} >> '{ran}'\nexit 1\n")
        script.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{planted}:{os.environ['PATH']}",
        "GOVTUI_DB": f"sqlite:///{tmp_path / 'absent.db'}",
    }
    env.pop("PYTHON_KEYRING_BACKEND", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "govtui"), "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert '"check": "keyring"' in done.stdout, done.stderr
    assert not ran.exists(), f"ran from PATH: {ran.read_text()}"

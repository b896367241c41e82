"""Issue 13, the evidence key: made once by an admin with their TOTP code, its private half
only in the OS keyring (never the database or a file), rotation keeps old public keys listed so
what they signed still verifies."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import ConfigurationError, PolicyError
from govtui.models import AuditEvent, EvidenceKey
from govtui.security import secrets, signing
from govtui.services import audit, evidence_keys, second_factor
from govtui.services.workspace import Workspace

from .conftest import FakeClock, snapshot
from .factories import ADMIN, World
from .memory_keyring import MemoryKeyring
from .test_bound_identity import cli


def _init(world: World, by: str = ADMIN, offset: int = 0) -> evidence_keys.KeyView:
    ws = Workspace(world.engine, by)
    return ws.act(evidence_keys.init_key, code=world.code(by, offset))


def _rotate(world: World, clock: FakeClock) -> evidence_keys.KeyView:
    clock.advance(seconds=30)  # a fresh TOTP step: the last code is spent
    return Workspace(world.engine, ADMIN).act(evidence_keys.rotate, code=world.code(ADMIN))


def _evidence_entries(keyring: MemoryKeyring) -> dict[str, str]:
    return {
        user: pw for (_svc, user), pw in keyring.entries.items() if user.startswith("evidence:")
    }


def _read(engine: Engine, fn, *args):  # type: ignore[no-untyped-def]
    with db.read_session(engine) as session:
        return fn(session, *args)


def test_init_needs_an_admin(world: World, memory_keyring: MemoryKeyring) -> None:
    before = snapshot(world.engine)
    with pytest.raises(PolicyError, match="lacks the admin role"):
        Workspace(world.engine, "ann").act(evidence_keys.init_key, code=world.code("ann"))
    assert snapshot(world.engine) == before
    assert _evidence_entries(memory_keyring) == {}


def test_init_needs_the_admins_valid_code(world: World, memory_keyring: MemoryKeyring) -> None:
    wrong = "000000" if world.code(ADMIN) != "000000" else "111111"
    with pytest.raises(second_factor.CodeRejected):
        Workspace(world.engine, ADMIN).act(evidence_keys.init_key, code=wrong)
    assert _read(world.engine, evidence_keys.keys) == []
    assert _evidence_entries(memory_keyring) == {}


def test_the_private_key_is_only_in_the_keyring(
    world: World, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    key = _init(world)
    entries = _evidence_entries(memory_keyring)
    assert len(entries) == 1
    ((entry, private),) = entries.items()
    database_id = _read(world.engine, secrets.database_id)
    assert entry.endswith(f"@{database_id}")
    assert signing.fingerprint(signing.public_of(private)) == key.fingerprint
    # Not in any row of the database ...
    rows = snapshot(world.engine)
    assert private not in repr(rows)
    with db.read_session(world.engine) as session:
        row = session.execute(sa.select(EvidenceKey)).scalar_one()
    assert row.public_key == key.public_pem and row.fingerprint == key.fingerprint
    assert entry == secrets.entry_key("evidence", row.keyring_ref, database_id)
    # ... nor in any file govtui wrote (the database, the checkpoint, the data directory).
    raw = private.encode()
    for folder, _dirs, files in os.walk(tmp_path):
        for name in files:
            assert raw not in (Path(folder) / name).read_bytes(), name
    event = _read(
        world.engine,
        lambda s: s.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "evidence.key_init")
        ).scalar_one(),
    )
    assert json.loads(event.details) == {"fingerprint": key.fingerprint, "previous": None}


def test_a_second_init_is_refused(world: World, fake_clock: FakeClock) -> None:
    key = _init(world)
    fake_clock.advance(seconds=30)
    with pytest.raises(PolicyError, match=f"{key.fingerprint} exists already"):
        _init(world)


def test_a_failed_commit_takes_the_new_key_out_of_the_keyring(
    world: World, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_append(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "append", broken_append)
    with pytest.raises(RuntimeError):
        _init(world)
    assert _evidence_entries(memory_keyring) == {}
    assert _read(world.engine, evidence_keys.keys) == []


def test_rotation_keeps_the_old_key_listed_and_its_signatures_valid(
    world: World, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    old = _init(world)
    signed = _read(world.engine, evidence_keys.sign, b"an old pack")
    assert signed.fingerprint == old.fingerprint
    new = _rotate(world, fake_clock)
    listed = _read(world.engine, evidence_keys.keys)
    assert [k.fingerprint for k in listed] == [new.fingerprint, old.fingerprint]
    assert listed[0].retired_at is None and listed[1].retired_at is not None
    assert _read(
        world.engine, evidence_keys.verify, b"an old pack", signed.signature, old.fingerprint
    )
    assert not _read(
        world.engine, evidence_keys.verify, b"an old pack", signed.signature, new.fingerprint
    )
    assert _read(world.engine, evidence_keys.sign, b"x").fingerprint == new.fingerprint
    # The retired private key is gone from this keyring: it never signs again.
    assert len(_evidence_entries(memory_keyring)) == 1
    event = _read(
        world.engine,
        lambda s: s.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "evidence.key_rotate")
        ).scalar_one(),
    )
    details = json.loads(event.details)
    assert {k: details[k] for k in ("fingerprint", "previous")} == {
        "fingerprint": new.fingerprint,
        "previous": old.fingerprint,
    }
    # The retiring key signed its successor: logins that trusted it trust the new one.
    endorsement = base64.b64decode(details["endorsement"])
    assert signing.verify(
        old.public_pem, evidence_keys.rotation_text(old.fingerprint, new.fingerprint), endorsement
    )


def test_rotate_without_a_key_and_by_a_non_admin_is_refused(world: World) -> None:
    with pytest.raises(PolicyError, match="no evidence key to rotate"):
        Workspace(world.engine, ADMIN).act(evidence_keys.rotate, code=world.code(ADMIN))
    with pytest.raises(PolicyError, match="lacks the admin role"):
        Workspace(world.engine, "ann").act(evidence_keys.rotate, code=world.code("ann"))


def test_sign_says_which_key_is_missing(world: World, memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigurationError, match="there is no evidence key"):
        _read(world.engine, evidence_keys.sign, b"x")
    assert not _read(world.engine, evidence_keys.available)
    key = _init(world)
    assert _read(world.engine, evidence_keys.available)
    for entry in _evidence_entries(memory_keyring):
        memory_keyring.delete_password(secrets.SERVICE, entry)
    assert not _read(world.engine, evidence_keys.available)
    with pytest.raises(
        ConfigurationError, match=f"evidence key {key.fingerprint} is not available here"
    ):
        _read(world.engine, evidence_keys.sign, b"x")


def test_a_listed_key_replaced_by_sql_does_not_sign(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    """The keyring's private key must be the listed key's: a public key swapped in the
    database makes this process refuse to sign rather than sign as someone else's key."""
    _init(world)
    other = signing.generate()
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(EvidenceKey).values(
                public_key=other.public_pem, fingerprint=other.fingerprint
            )
        )
    assert not _read(world.engine, evidence_keys.available)
    with pytest.raises(ConfigurationError, match="not available here"):
        _read(world.engine, evidence_keys.sign, b"x")


def test_cli_init_show_rotate(
    world: World, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(world.engine, "evidence", "key", "show", actor=ADMIN) == 0
    assert "no evidence key yet" in capsys.readouterr().out
    assert (
        cli(world.engine, "evidence", "key", "init", "--totp", world.code(ADMIN), actor=ADMIN) == 0
    )
    out = capsys.readouterr().out
    first = _read(world.engine, evidence_keys.keys)[0]
    assert first.fingerprint in out and "only in your keyring" in out
    fake_clock.advance(seconds=30)
    assert (
        cli(world.engine, "evidence", "key", "rotate", "--totp", world.code(ADMIN), actor=ADMIN)
        == 0
    )
    capsys.readouterr()
    assert cli(world.engine, "evidence", "key", "show", "--json", actor=ADMIN) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [k["current"] for k in shown] == [True, False]
    assert shown[1]["fingerprint"] == first.fingerprint
    for k in shown:
        assert signing.fingerprint(k["public_key"]) == k["fingerprint"]
        assert k["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert cli(world.engine, "evidence", "key", "show", actor=ADMIN) == 0
    text = capsys.readouterr().out
    assert f"{shown[0]['fingerprint']} (current;" in text
    assert f"{first.fingerprint} (retired " in text
    assert text.count("-----BEGIN PUBLIC KEY-----") == 2


def test_cli_init_refuses_a_wrong_code_in_one_line(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "000000" if world.code(ADMIN) != "000000" else "111111"
    assert cli(world.engine, "evidence", "key", "init", "--totp", wrong, actor=ADMIN) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("govtui: error: ")
    assert _read(world.engine, evidence_keys.keys) == []

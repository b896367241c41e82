"""Which evidence keys a login trusts (attack13 finding 1): only keys vouched for outside the
database, since whoever can write the database can list a key of their own. Held here (the
current key's private half is in this keyring), pinned here (made or rotated here, or `govtui
evidence key trust FP`), or signed at rotation by a key trusted here."""

from __future__ import annotations

import base64
import json

import pytest
import sqlalchemy as sa

from govtui import db
from govtui.cli.main import main
from govtui.models import AuditEvent, EvidenceKey
from govtui.security import signing
from govtui.services import evidence_keys, operators, sync

from .conftest import FakeClock
from .directory_support import Directory
from .factories import ADMIN, World
from .memory_keyring import MemoryKeyring
from .signed_support import signed_ldap, signed_world  # noqa: F401 (fixtures)
from .test_act_signatures import member, sql, verify


def another_login(keyring: MemoryKeyring) -> None:
    """What the keyring of a login that did not make the evidence key holds: no evidence
    key, no pins (the operators' TOTP and signing keys stay: the tests act through them)."""
    for service, user in list(keyring.entries):
        if user.startswith(("evidence:", "evidence-trust:")):
            del keyring.entries[(service, user)]


def cli(world: World) -> list[str]:
    return ["--db", world.engine.url.render_as_string(hide_password=False)]


def trusted(world: World) -> set[str]:
    with db.read_session(world.engine) as session:
        return {k.fingerprint for k in evidence_keys.trusted_keys(session)}


def current(world: World) -> str:
    with db.read_session(world.engine) as session:
        row = evidence_keys.current_row(session)
        assert row is not None
        return row.fingerprint


def rotate(world: World, fake_clock: FakeClock) -> str:
    fake_clock.advance(seconds=31)
    with db.write_session(world.engine) as session:
        key = evidence_keys.rotate(session, operators.find(session, ADMIN), code=world.code(ADMIN))
    fake_clock.advance(seconds=31)
    return key.fingerprint


def test_the_maker_trusts_its_key_held_and_pinned(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    fingerprint = current(world)
    assert trusted(world) == {fingerprint}
    # Pinned as well as held: with the private half gone, this login still trusts it.
    for service, user in list(memory_keyring.entries):
        if user.startswith("evidence:"):
            del memory_keyring.entries[(service, user)]
    assert trusted(world) == {fingerprint}


def test_another_login_trusts_nothing_until_it_pins_the_key(
    world: World, ldap: Directory, memory_keyring: MemoryKeyring
) -> None:
    """A login that never made the key (e.g. the one sync runs under) checks nothing and
    adds nothing until the fingerprint, checked with the admin, is pinned there."""
    gid = world.request()
    world.approve(gid)
    another_login(memory_keyring)
    assert trusted(world) == set()
    report = verify(world)
    assert not report.ok and "evidence key trust" in report.lines()[0]
    result = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert any("which this login does not trust" in e for e in result.errors), result.errors
    assert main([*cli(world), "evidence", "key", "trust", current(world)]) == 0
    assert verify(world).ok
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada")


def test_a_key_listed_by_sql_is_not_trusted_and_cannot_be_pinned_under_a_trusted_name(
    world: World,
) -> None:
    """A rogue row, and the current row's public key swapped for the attacker's: neither is
    trusted; pinning a row whose public key is not its fingerprint's is refused."""
    rogue = signing.generate()
    fingerprint = current(world)
    with db.write_session(world.engine) as session:
        session.add(
            EvidenceKey(
                fingerprint=rogue.fingerprint, public_key=rogue.public_pem, keyring_ref="x",
                created_by=1, created_at=evidence_keys.keys(session)[0].created_at,
                retired_at=evidence_keys.keys(session)[0].created_at,
            )
        )  # fmt: skip
    assert trusted(world) == {fingerprint}
    sql(
        world.engine,
        "UPDATE evidence_key SET public_key = :p WHERE fingerprint = :f",
        p=rogue.public_pem,
        f=fingerprint,
    )
    assert trusted(world) == set()
    assert main([*cli(world), "evidence", "key", "trust", fingerprint]) == 2


def test_rotation_here_carries_trust_to_another_login_that_pinned_the_old_key(
    world: World, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """The sync login pinned the first key; the admin rotates in their own login, where
    the old key signs the new one: the sync login trusts the new key without a new pin."""
    old = current(world)
    saved = dict(memory_keyring.entries)
    another_login(memory_keyring)
    assert main([*cli(world), "evidence", "key", "trust", old]) == 0
    sync_login = dict(memory_keyring.entries)
    memory_keyring.entries = saved  # the admin's login
    new = rotate(world, fake_clock)
    memory_keyring.entries = {
        k: v for k, v in sync_login.items() if not k[1].startswith("signing:")
    } | {k: v for k, v in memory_keyring.entries.items() if not k[1].startswith("evidence")}
    assert trusted(world) == {old, new}


def test_a_rotation_event_with_a_forged_endorsement_is_not_followed(
    world: World, fake_clock: FakeClock, memory_keyring: MemoryKeyring
) -> None:
    """A rotation whose endorsement the old key did not make (here: made in a login
    without the old key, then an endorsement by the attacker pasted in) is not followed."""
    old = current(world)
    new = rotate(world, fake_clock)
    another_login(memory_keyring)
    assert main([*cli(world), "evidence", "key", "trust", old]) == 0
    assert trusted(world) == {old, new}
    mallory = signing.generate()
    forged = signing.sign(mallory.private_b64, evidence_keys.rotation_text(old, new))
    with db.write_session(world.engine) as session:
        event = session.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "evidence.key_rotate")
        ).scalar_one()
        details = json.loads(event.details)
        details["endorsement"] = base64.b64encode(forged).decode()
        event.details = json.dumps(details)
        session.add(event)
    assert trusted(world) == {old}


@pytest.mark.parametrize("bad", ["SHA256:xyz", "not a fingerprint", "SHA256:" + "0" * 64])
def test_trust_refuses_a_malformed_or_unknown_fingerprint_in_one_line(
    world: World, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli(world), "evidence", "key", "trust", bad]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

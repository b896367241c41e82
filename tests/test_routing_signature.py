"""A target's group routing (users base, groups base, group template, scope mappings) is a
signed admin act (attack13b finding 1): sync adds a member only through a target whose
routing an admin signed as it now is, so whoever can write the database cannot point an
approved scope at another group (or a uid at another subtree)."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli.main import main
from govtui.models import ActSignature, DirectoryTarget
from govtui.security import secrets, signing
from govtui.services import act_signatures, evidence_keys, operators, sync

from .conftest import FakeClock
from .directory_support import Directory, add_target
from .factories import ADMIN, World, small_vendor
from .memory_keyring import MemoryKeyring
from .test_act_signatures import last_errors, member, sql, verify


def _keys_without_confirming(world: World, fake_clock: FakeClock) -> None:
    """The evidence key and the registrations, as with_evidence_key, without confirming the
    routing of the targets that existed before (an upgraded setup)."""
    with db.write_session(world.engine) as session:
        evidence_keys.init_key(session, operators.find(session, ADMIN), code=world.code(ADMIN))
    fake_clock.advance(seconds=31)
    with db.write_session(world.engine) as session:
        pending = [p.fingerprint for p in act_signatures.pending_registrations(session)]
        act_signatures.register_pending(
            session, operators.find(session, ADMIN), code=world.code(ADMIN), fingerprints=pending
        )
    fake_clock.advance(seconds=31)


@pytest.fixture
def upgraded(
    engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock, directory: Directory
) -> tuple[World, Directory]:
    """A target from before schema version 6: its routing is unsigned."""
    world = small_vendor(engine)
    directory.add_person("ada")
    add_target(world.engine, directory)
    sql(world.engine, "DELETE FROM act_signature WHERE subject LIKE 'routing:%'")
    _keys_without_confirming(world, fake_clock)
    return world, directory


def cli(world: World, *args: str) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, *args])


def test_an_unsigned_routing_holds_adds_until_an_admin_confirms_it(
    upgraded: tuple[World, Directory], fake_clock: FakeClock
) -> None:
    world, ldap = upgraded
    gid = world.request()
    world.approve(gid)
    report = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert any("directory confirm ldap" in e for e in report.errors), report.errors
    assert all("group routing of directory ldap" in e for e in last_errors(world, gid))
    assert verify(world).ok  # unsigned routing is named, not BAD (an upgrade)
    fake_clock.advance(seconds=31)
    assert (
        cli(world, "--as", ADMIN, "directory", "confirm", "ldap", "--totp", world.code(ADMIN)) == 0
    )
    sync.run_once(world.engine, due="now", include_failed=True)
    assert member(ldap, "ada")


def test_confirm_is_for_admins_with_a_code_in_one_line(
    upgraded: tuple[World, Directory], fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    world, _ldap = upgraded
    fake_clock.advance(seconds=31)
    assert (
        cli(world, "--as", "ann", "directory", "confirm", "ldap", "--totp", world.code("ann")) == 2
    )
    assert cli(world, "--as", ADMIN, "directory", "confirm", "ldap", "--totp", "000000") == 2
    assert (
        cli(world, "--as", ADMIN, "directory", "confirm", "nope", "--totp", world.code(ADMIN)) == 2
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 3
    with db.read_session(world.engine) as session:
        signed = session.execute(
            sa.select(ActSignature).where(ActSignature.subject.startswith("routing:"))
        ).all()
    assert signed == []


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE directory_target SET group_template = 'cn={client}-{project}-redteam-{access}'",
        "UPDATE directory_target SET users_base = 'ou=elsewhere,dc=example,dc=org'",
    ],
)
def test_routing_changed_by_sql_holds_adds_and_fails_verify(
    upgraded: tuple[World, Directory], fake_clock: FakeClock, change: str
) -> None:
    world, ldap = upgraded
    fake_clock.advance(seconds=31)
    assert (
        cli(world, "--as", ADMIN, "directory", "confirm", "ldap", "--totp", world.code(ADMIN)) == 0
    )
    fake_clock.advance(seconds=31)
    gid = world.request()
    world.approve(gid)
    sql(world.engine, change)
    report = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert any("group routing of directory ldap" in e for e in report.errors), report.errors
    result = verify(world)
    assert not result.ok and any("group routing" in f for f in result.findings)


def test_routing_signed_by_sql_with_a_non_admins_own_key_is_refused(
    upgraded: tuple[World, Directory],
) -> None:
    """ann (an approver with her own key, no admin) signs the routing statement herself."""
    world, ldap = upgraded
    with db.read_session(world.engine) as session:
        act = next(act_signatures._routing_rows(session))
        key = act_signatures.current_key(session, operators.find(session, "ann"))
        assert key is not None
        private = secrets.load(act_signatures._entry(session, key.keyring_ref))
        assert private is not None
        target = session.execute(sa.select(DirectoryTarget.id)).scalar_one()
    with db.write_session(world.engine) as session:
        session.add(
            ActSignature(
                kind="privilege", subject=f"routing:{target}", operator_id=world.op("ann").id or 0,
                operator_key_id=key.id or 0, statement=act.statement,
                signature=base64.b64encode(signing.sign(private, act.statement.encode())).decode(),
                signed_at=clock.now(),
            )
        )  # fmt: skip
    gid = world.request()
    world.approve(gid)
    report = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert any("not an admin" in e for e in report.errors), report.errors

"""Signed acts (issue 13): four eyes that hold against someone who can write the database.

Each way of adding access by SQL (an approval row inserted, a forged signature, an operator
key registered by SQL, a statement changed after signing) is named by verification AND
refused by the sync against the real slapd, while removals still flow; a legitimate flow
passes; an operator without a key acts unsigned, and sync refuses what they approved."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli import main
from govtui.models import (
    ActSignature,
    Approval,
    AuditEvent,
    EvidenceKey,
    Grant,
    OperatorKey,
    OutboxOp,
)
from govtui.security import signing
from govtui.services import (
    act_signatures,
    evidence_keys,
    grant_lifecycle,
    grants,
    operators,
    pause,
    sync,
)

from .conftest import FakeClock
from .directory_support import Directory, add_target, norm
from .factories import World, small_vendor, with_evidence_key
from .memory_keyring import MemoryKeyring
from .signed_support import signed_ldap, signed_world  # noqa: F401 (fixtures)
from .test_review_decide import KEEP, SHORTEN, Setup, setup

__all__ = ["setup"]  # the review fixture, used by name

PAIRS_READ = "acme-rlhf-pairs-read"


def sql(engine: Engine, statement: str, **params: object) -> None:
    """What someone who can write the database does, outside govtui."""
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def member(ldap: Directory, uid: str) -> bool:
    return norm(ldap.user(uid)) in (ldap.members(ldap.group(PAIRS_READ)) or set())


def verify(world: World) -> act_signatures.ActReport:
    with db.read_session(world.engine) as session:
        return act_signatures.verify_all(session)


def last_errors(world: World, grant_id: int) -> list[str]:
    with db.read_session(world.engine) as session:
        rows = session.execute(
            sa.select(OutboxOp.last_error).where(
                OutboxOp.grant_id == grant_id, OutboxOp.operation == "add_member"
            )
        ).scalars()
        return [r or "" for r in rows]


def bad_named(report: act_signatures.ActReport, text: str) -> bool:
    return any(text in line and "BAD" in line for line in report.findings)


def sql_approval(world: World, grant_id: int, approver: str, step: int = 1) -> None:
    """An approval row inserted by SQL, and the grant made active with its add queued."""
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=grant_id,
                round=0,
                approver_id=world.op(approver).id,
                decision="approve",
                totp_step=step,
                decided_at=clock.now(),
            )
        )
        grant = session.get(Grant, grant_id)
        assert grant is not None
        now = clock.now()
        grant_lifecycle.activate(session, grant, now=now, expires_at=now + timedelta(days=10))


def refused_by_sync(world: World, ldap: Directory, grant_id: int) -> None:
    """The sync sends no add for the grant, records why on its op and says so."""
    report = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    wanted = f"approval of grant {grant_id} not signed by a registered key"
    assert any(wanted in e for e in report.errors), report.errors
    assert last_errors(world, grant_id) and all(wanted in e for e in last_errors(world, grant_id))


def test_a_legitimate_flow_verifies_and_syncs(world: World, ldap: Directory) -> None:
    gid = world.request()
    world.approve(gid)
    report = verify(world)
    assert report.ok, report.findings
    assert report.signed >= 1 and report.bad == 0
    assert not any(str(gid) in line for line in report.findings)
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada")
    with db.read_session(world.engine) as session:
        ann = operators.find(session, "ann")
        key = act_signatures.current_key(session, ann)
        assert key is not None and key.registration_sig is not None
        event = session.execute(
            sa.select(AuditEvent.details).where(AuditEvent.action == "grant.approve")
        ).scalar_one()
        assert key.fingerprint in event


def test_an_approval_row_inserted_by_sql(world: World, ldap: Directory) -> None:
    gid = world.request()
    good = world.request("E2")
    sql_approval(world, gid, "ann")
    world.approve(good)
    report = verify(world)
    assert not report.ok
    assert bad_named(report, f"approval of grant {gid} (round 0) by ann: unsigned")
    refused_by_sync(world, ldap, gid)
    assert member(ldap, "bo")  # the good grant next to it still syncs


def test_a_forged_signature(world: World, ldap: Directory) -> None:
    gid = world.request()
    world.approve(gid)
    forger = signing.generate()
    with db.read_session(world.engine) as session:
        row = session.execute(
            sa.select(ActSignature).where(ActSignature.kind == "approve")
        ).scalar_one()
        forged = signing.sign(forger.private_b64, row.statement.encode())
    sql(
        world.engine,
        "UPDATE act_signature SET signature = :s WHERE kind = 'approve'",
        s=base64.b64encode(forged).decode(),
    )
    report = verify(world)
    assert bad_named(report, f"approval of grant {gid}") and "does not verify" in report.findings[0]
    refused_by_sync(world, ldap, gid)


def test_an_operator_key_registered_by_sql(world: World, ldap: Directory) -> None:
    """A key of the attacker's, inserted for bob with a made-up registration, signing an
    approval inserted by SQL: the signature verifies against that key, the key does not."""
    gid = world.request()
    sql_approval(world, gid, "bob", step=7)
    pair = signing.generate()
    statement = act_signatures.approval_statement(
        gid, 0, "acme/rlhf/pairs", "read", "E1", 10, 7, "bob", uid="ada", sensitivity="confidential"
    )
    with db.write_session(world.engine) as session:
        evidence = session.execute(sa.select(EvidenceKey)).scalars().first()
        assert evidence is not None
        key = OperatorKey(
            operator_id=world.op("bob").id or 0,
            fingerprint=pair.fingerprint,
            public_key=pair.public_pem,
            keyring_ref="x",
            registered_at=clock.now(),
            evidence_key_id=evidence.id,
            registration_sig=base64.b64encode(b"\1" * 64).decode(),
        )
        session.add(key)
        session.flush()
        session.add(
            ActSignature(
                kind="approve",
                subject=f"approval:{gid}:0",
                operator_id=world.op("bob").id or 0,
                operator_key_id=key.id or 0,
                statement=statement,
                signature=base64.b64encode(
                    signing.sign(pair.private_b64, statement.encode())
                ).decode(),
                signed_at=clock.now(),
            )
        )
    report = verify(world)
    assert bad_named(report, f"approval of grant {gid} (round 0) by bob")
    assert any("registration signature does not verify" in line for line in report.findings)
    refused_by_sync(world, ldap, gid)


@pytest.mark.parametrize("restate", [False, True], ids=["rows", "rows-and-statement"])
def test_a_statement_changed_after_signing(world: World, ldap: Directory, restate: bool) -> None:
    gid = world.request(days=10)
    world.approve(gid)
    sql(world.engine, "UPDATE access_grant SET requested_days = 30 WHERE id = :g", g=gid)
    if restate:  # the statement rewritten to match: then its signature fails
        sql(
            world.engine,
            "UPDATE act_signature SET statement = replace(statement, :old, :new)",
            old='"days":10',
            new='"days":30',
        )
    report = verify(world)
    why = "does not verify" if restate else "rows changed after signing"
    assert bad_named(report, f"approval of grant {gid}") and why in report.findings[0]
    refused_by_sync(world, ldap, gid)


def test_removals_never_wait(world: World, ldap: Directory) -> None:
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada")
    sql(world.engine, "DELETE FROM act_signature")  # the approval now has no signature
    assert not verify(world).ok
    with db.write_session(world.engine) as session:
        grants.revoke(session, operators.find(session, "ann"), grant_id=gid, reason="done now")
    report = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert report.errors == [] and report.done >= 1


def test_an_operator_without_a_key_acts_unsigned_and_sync_refuses(
    engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock, directory: Directory
) -> None:
    """Mid-upgrade: ann enrolled before schema version 6 has no key (her key was never
    registered: the chain records none). Her approval goes through, recorded unsigned
    (named, not a failure), and sync does not add on it; once she makes a key (`operator key
    create`) her approvals are signed and sync."""
    world = small_vendor(engine)
    ann = world.op("ann").id
    sql(world.engine, "DELETE FROM act_signature WHERE operator_id = :a", a=ann)
    sql(world.engine, "DELETE FROM operator_key WHERE operator_id = :a", a=ann)
    with_evidence_key(world, lambda: fake_clock.advance(seconds=31))
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    ldap = directory
    gid = world.request()
    world.approve(gid)
    report = verify(world)
    assert report.ok and report.unsigned >= 1
    assert any(f"act not verified: approval of grant {gid}" in line for line in report.findings)
    refused_by_sync(world, ldap, gid)
    fake_clock.advance(seconds=31)
    with db.write_session(world.engine) as session:
        act_signatures.create_own_key(
            session, operators.find(session, "ann"), code=world.code("ann")
        )
    fake_clock.advance(seconds=31)
    bo = world.request("E2")
    world.approve(bo)
    sync.run_once(world.engine, due="now")
    assert member(ldap, "bo") and not member(ldap, "ada")


def test_a_pending_registration_until_an_admin_registers_it(
    world: World, ldap: Directory, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key made where the evidence key is not (the operator's own keyring) waits; its
    acts fail until `evidence key register` signs the registration."""
    fake_clock.advance(seconds=31)
    with monkeypatch.context() as patched, db.write_session(world.engine) as session:
        patched.setattr(evidence_keys, "available", lambda session: False)
        key = act_signatures.create_own_key(
            session, operators.find(session, "ann"), code=world.code("ann")
        )
        fingerprint = key.fingerprint
    fake_clock.advance(seconds=31)
    gid = world.request()
    world.approve(gid)
    report = verify(world)
    # Named (not a failure: keys made before the evidence key wait like this), not synced.
    assert any(
        f"act not verified: approval of grant {gid}" in line and "pending" in line
        for line in report.findings
    )
    refused_by_sync(world, ldap, gid)
    with db.read_session(world.engine) as session:
        assert [p.fingerprint for p in act_signatures.pending_registrations(session)] == [
            fingerprint
        ]
    root_code = world.code("root", 1)
    with db.write_session(world.engine) as session:
        act_signatures.register_pending(
            session, operators.find(session, "root"), code=root_code, fingerprints=[fingerprint]
        )
    assert verify(world).ok
    sql(world.engine, "UPDATE outbox_op SET state = 'pending' WHERE grant_id = :g", g=gid)
    sync.run_once(world.engine, due="now", include_failed=True)
    assert member(ldap, "ada")


def test_resume_and_privilege_are_signed_and_checked(world: World, fake_clock: FakeClock) -> None:
    with db.write_session(world.engine) as session:
        pause.pause(session, operators.find(session, "ann"), client="acme", reason="a breach")
    fake_clock.advance(seconds=31)
    with db.write_session(world.engine) as session:
        pause.resume(session, operators.find(session, "ann"), client="acme", code=world.code("ann"))
    report = verify(world)
    assert report.ok, report.findings
    sql(world.engine, "DELETE FROM act_signature WHERE kind = 'resume'")
    assert bad_named(verify(world), "resume of client acme")
    # An approves link inserted by SQL (olga approving acme), "granted" by root.
    sql(
        world.engine,
        "INSERT INTO operator_client (operator_id, client_id, granted_by, granted_at) "
        "SELECT o.id, c.id, r.id, :at FROM operator o, client c, operator r "
        "WHERE o.name = 'olga' AND c.name = 'acme' AND r.name = 'root'",
        at=clock.now(),
    )
    # Privilege rows unsigned are named (not fatal: seeding and older rows are unsigned too).
    assert any("act not verified: approves acme of olga" in line for line in verify(world).findings)


def test_a_new_key_goes_out_of_the_keyring_on_rollback(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    before = dict(memory_keyring.entries)
    with pytest.raises(RuntimeError), db.write_session(world.engine) as session:
        act_signatures.create_key(session, operators.find(session, "olga"))
        assert len(memory_keyring.entries) == len(before) + 1  # written before the commit
        raise RuntimeError("the commit fails")
    assert memory_keyring.entries == before
    with db.read_session(world.engine) as session:
        key = act_signatures.current_key(session, operators.find(session, "olga"))
        assert key is not None  # her enrolment's key is still current


def test_audit_verify_names_the_bad_act(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    gid = world.request()
    world.approve(gid)
    url = world.engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "--as", "root", "audit", "verify"]) == 0
    assert "act signatures:" in capsys.readouterr().out
    sql(world.engine, "UPDATE access_grant SET requested_days = 30 WHERE id = :g", g=gid)
    assert main(["--db", url, "--as", "root", "audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"approval of grant {gid} (round 0) by ann" in out and "BROKEN" in out


def test_review_keep_and_shorten_are_signed_and_checked(
    setup: Setup, fake_clock: FakeClock
) -> None:
    world = with_evidence_key(setup.world, lambda: fake_clock.advance(seconds=31))
    setup.decide("rita", KEEP, setup.b, code=world.code("rita"))
    fake_clock.advance(seconds=31)
    setup.decide("ann", SHORTEN, setup.a, days=5, code=world.code("ann"))
    report = verify(world)
    assert report.ok, report.findings
    # A shortening made longer by SQL, and a keep written by SQL on an undecided item.
    sql(world.engine, "UPDATE review_item SET shorten_days = 50 WHERE grant_id = :g", g=setup.a)
    sql(
        world.engine,
        "UPDATE review_item SET decision = 'keep', reason = 'x', decided_at = :at, "
        "decided_by = reviewer_id WHERE grant_id = :g",
        at=clock.now(),
        g=setup.c,
    )
    report = verify(world)
    assert bad_named(report, f"review shorten of grant {setup.a}")
    assert bad_named(report, f"review keep of grant {setup.c}")
    assert not bad_named(report, f"review keep of grant {setup.b}")


def test_operator_key_create_and_register_from_the_command_line(
    world: World,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = world.engine.url.render_as_string(hide_password=False)
    fake_clock.advance(seconds=31)
    with monkeypatch.context() as patched:
        patched.setattr(evidence_keys, "available", lambda session: False)
        args = ["--db", url, "--as", "ann", "operator", "key", "create", "--totp"]
        assert main([*args, world.code("ann")]) == 0
    out = capsys.readouterr().out
    assert "waits for the evidence key" in out
    assert main(["--db", url, "--as", "root", "operator", "key", "pending"]) == 0
    assert "pending: ann SHA256:" in capsys.readouterr().out
    register = ["--db", url, "--as", "root", "operator", "key", "register", "--totp"]
    assert main([*register, world.code("root", 1)]) == 0
    assert "registered 1 signing key(s)" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        assert act_signatures.pending_registrations(session) == []


def test_nothing_is_checked_before_there_is_an_evidence_key(
    engine: Engine, memory_keyring: MemoryKeyring, directory: Directory
) -> None:
    """An upgraded setup is not locked out: until `evidence key init` sync adds as before;
    after it, deleting the evidence key by SQL does not switch the checks off."""
    plain = small_vendor(engine)
    directory.add_person("ada")
    add_target(engine, directory)
    plain.approve(plain.request())
    with db.read_session(engine) as session:
        assert act_signatures.verify_all(session).not_enforced
    sync.run_once(engine, due="now")
    assert member(directory, "ada")
    sql(engine, "UPDATE operator_key SET evidence_key_id = NULL")
    with db.write_session(engine) as session:
        evidence_keys.init_key(session, operators.find(session, "root"), code=plain.code("root"))
    sql(engine, "UPDATE operator_key SET evidence_key_id = NULL")
    sql(engine, "DELETE FROM evidence_key")
    with db.read_session(engine) as session:
        assert act_signatures.enforced(session)
        assert not act_signatures.verify_all(session).not_enforced

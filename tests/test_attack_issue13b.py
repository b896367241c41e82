"""Red-team reproductions (attack13b) against the evidence-key trust and fail-closed sync of
commit 0f83329 and after (which evidence keys a login trusts, adds matched with their
grants, keyed-since from the chain). The attacker of DESIGN.md: writes the database by SQL,
does not hold the admin's or the victim operators' keyrings. Each open finding is a strict
xfail: it fails the suite the day its attack stops working, and the mark must come off.
All seven are fixed now and stay as regression tests.
Plain tests are controls that held and stay as regression tests."""

from __future__ import annotations

import base64
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli.main import main
from govtui.models import ActSignature, Approval, EvidenceKey, Grant, OperatorKey, OutboxOp
from govtui.security import secrets, signing
from govtui.services import act_signatures, evidence_keys, grant_lifecycle, grants, operators, sync

from .directory_support import Directory, norm
from .factories import ADMIN, World
from .memory_keyring import MemoryKeyring
from .signed_support import signed_ldap, signed_world  # noqa: F401 (fixtures)
from .test_act_signatures import member, sql, verify

REDTEAM_READ = "acme-rlhf-redteam-read"


def in_group(ldap: Directory, group: str, uid: str) -> bool:
    return norm(ldap.user(uid)) in (ldap.members(ldap.group(group)) or set())


def cli(world: World) -> list[str]:
    return ["--db", world.engine.url.render_as_string(hide_password=False)]


def audit_verify_passes(world: World) -> bool:
    return main([*cli(world), "audit", "verify"]) == 0


def signing_private(world: World, name: str) -> tuple[int, str]:
    """An operator's own key id and private half: what an insider holds in THEIR keyring."""
    with db.read_session(world.engine) as session:
        key = act_signatures.current_key(session, operators.find(session, name))
        assert key is not None
        private = secrets.load(act_signatures._entry(session, key.keyring_ref))
        assert private is not None
        return key.id or 0, private


# --- the group an approved add goes to ------------------------------------------------------


def test_a_group_mapping_inserted_by_sql_carries_an_approval_into_a_restricted_group(
    world: World, ldap: Directory
) -> None:
    """Attack: insert a group_mapping row mapping (target, acme/rlhf/pairs, read) to the DN
    of acme/rlhf/redteam's read group (restricted: two approvers needed), then let ann
    approve a request of ada on pairs (confidential, one approver), or update the queued op's
    group_dn after the approval. The approval statement binds the scope's *path*, not the
    group it maps to, and `_grants_behind` computes the group from the same rows the attacker
    wrote (group_mapping), so the op "matches its grant" and sync adds ada to redteam-read,
    which nobody approved.
    Safe: the group an add goes to is part of what is verified: a group_mapping is a signed
    privileged act (or part of the approval statement: the group DN per target), so a mapping
    written by SQL is not trusted and the add is refused (or goes to the template's group)."""
    redteam = ldap.group(REDTEAM_READ)
    with db.read_session(world.engine) as session:
        target = session.execute(sa.text("SELECT id FROM directory_target")).scalar_one()
        scope = session.execute(
            sa.text("SELECT id FROM dataset_scope WHERE name = 'pairs'")
        ).scalar_one()
    sql(
        world.engine,
        "INSERT INTO group_mapping (target_id, scope_id, access, group_dn) "
        "VALUES (:t, :s, 'read', :g)",
        t=target,
        s=scope,
        g=redteam,
    )
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    assert not in_group(ldap, REDTEAM_READ, "ada"), (
        "sync added ada to the restricted redteam group on a one-approver pairs approval"
    )


# --- the person an approved add goes to ------------------------------------------------------


def test_a_contractors_directory_uid_rewritten_by_sql_carries_the_approval_to_someone_else(
    world: World, ldap: Directory
) -> None:
    """Attack: ann legitimately approves ada's (E1) request; before sync runs, `UPDATE
    contractor SET directory_uid = 'mallory'` and the queued op's directory_uid likewise.
    The approval statement names the contractor by external_id (E1), not by the directory
    uid that sync adds, and `_grants_behind` matches the op with grants by the contractor's
    *current* directory_uid: the op matches, the approval verifies, mallory is added.
    Safe: the statement binds what the directory will see (the contractor's directory_uid,
    and the group DN), so a rewrite of either after signing fails verification and the add
    is refused."""
    gid = world.request()
    world.approve(gid)
    sql(world.engine, "UPDATE contractor SET directory_uid = 'mallory' WHERE external_id = 'E1'")
    sql(
        world.engine,
        "UPDATE outbox_op SET directory_uid = 'mallory', user_dn = NULL WHERE grant_id = :g",
        g=gid,
    )
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "mallory"), "sync added mallory on ada's signed approval"


# --- a grant that ended ----------------------------------------------------------------------


def test_a_revoked_grant_revived_by_sql_is_added_again_on_its_old_approval(
    world: World, ldap: Directory
) -> None:
    """Attack: ada's grant was approved, synced, then revoked (and ada removed). By SQL:
    `UPDATE access_grant SET state = 'active', ended_at = NULL, expires_at = <far future>`
    and an add_member op queued again. The approval statement binds grant id, scope,
    access, contractor and days, never the grant's state or end: the old signature still
    verifies and sync re-adds ada, undoing a revocation (for as long as the attacker likes:
    expires_at is not bound to the approved days either).
    Safe: an add stands on a grant whose lifetime is signed (e.g. sync refuses an add whose
    grant's expires_at is later than its verified approvals' decided_at + days, and one
    whose grant the chain records as ended: `grant.revoke` / `grant.expire` events)."""
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada")
    with db.write_session(world.engine) as session:
        grants.revoke(session, operators.find(session, ADMIN), grant_id=gid, reason="left team")
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    with db.read_session(world.engine) as session:
        old = session.execute(
            sa.select(OutboxOp)
            .where(OutboxOp.grant_id == gid, OutboxOp.operation == "add_member")
            .limit(1)
        ).scalar_one()
        values = {
            c: getattr(old, c)
            for c in ("target_id", "grant_id", "operation", "group_dn", "directory_uid")
        }
    far = clock.now() + timedelta(days=3650)
    sql(
        world.engine,
        "UPDATE access_grant SET state = 'active', ended_at = NULL, expires_at = :e WHERE id = :g",
        e=far,
        g=gid,
    )
    with db.write_session(world.engine) as session:
        session.add(
            OutboxOp(**values, state="pending", created_at=clock.now(), next_attempt_at=clock.now())
        )
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada"), "sync re-added ada on a revoked grant revived by SQL"


# --- an insider who holds their own key -------------------------------------------------------


def test_a_requester_with_their_own_key_approves_their_own_request_by_sql(
    world: World, ldap: Directory
) -> None:
    """Attack: ann (approver of acme AND requester) requests a grant for ada; govtui refuses
    her approving it herself. With SQL write and HER OWN keyring (no one else's), she
    inserts the approval row as herself, signs the rebuilt statement with her own key,
    inserts the act_signature and activates the grant with its add queued. Verification
    only checks that the signer's key signed the statement: not that the approver is not
    the requester, nor that the approver approves the grant's client (olga, approver of
    `other` only, can do the same for an acme grant). Sync adds ada; `audit verify` passes.
    Safe: verification (and refused_adds) re-checks the four-eyes rules the service
    enforces from the rows and the chain: approver != grant.requested_by, distinct approvers
    for restricted, the approver held the approve link for the client (itself a verified
    privilege act) at decided_at; an approval failing them is BAD and refused."""
    gid = world.request(by="ann")
    key_id, private = signing_private(world, "ann")
    ann = world.op("ann").id or 0
    now = clock.now()
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=gid, round=0, approver_id=ann, decision="approve",
                totp_step=5, decided_at=now,
            )
        )  # fmt: skip
        statement = act_signatures.approval_statement(
            gid,
            0,
            "acme/rlhf/pairs",
            "read",
            "E1",
            10,
            5,
            "ann",
            uid="ada",
            sensitivity="confidential",
        )
        session.add(
            ActSignature(
                kind="approve", subject=f"approval:{gid}:0", operator_id=ann,
                operator_key_id=key_id, statement=statement,
                signature=base64.b64encode(signing.sign(private, statement.encode())).decode(),
                signed_at=now,
            )
        )  # fmt: skip
        grant = session.get(Grant, gid)
        assert grant is not None
        grant_lifecycle.activate(session, grant, now=now, expires_at=now + timedelta(days=10))
    sync.run_once(world.engine, due="now")
    added = member(ldap, "ada")
    assert not added and not verify(world).ok, "ann approved her own request by SQL"


# --- keyed since -----------------------------------------------------------------------------


def test_a_forged_unsigned_approval_backdated_before_the_approvers_key_passes_verify(
    world: World,
) -> None:
    """Attack: insert an approval row by bob (who has had a registered key since the
    setup) with decided_at a year back, before his operator.key_create event. `_precheck`
    compares the act's own time, which the attacker writes, with keyed-since: the act is
    'unsigned (its operator had no registered key)', not fatal, and `audit verify` passes
    over a forged approval (sync still refuses to add on it: that holds).
    Safe: an unsigned act's time is not taken from the row the attacker wrote: it is BAD
    once its operator is keyed, unless the chain records the act (its grant.approve event,
    with signature 'unsigned') before the operator's first key event."""
    gid = world.request()
    bob = world.op("bob").id
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=gid, round=0, approver_id=bob, decision="approve",
                totp_step=3, decided_at=clock.now() - timedelta(days=365),
            )
        )  # fmt: skip
    report = verify(world)
    assert not report.ok and not audit_verify_passes(world), report.lines()


def test_renaming_an_operator_by_sql_detaches_their_key_events(world: World) -> None:
    """Attack: insert an approval by bob dated now, delete bob's act_signature and
    operator_key rows (attack13 finding 3, now closed by reading the chain's key events),
    and also `UPDATE operator SET name = 'bob '`. `_keyed_since` maps the chain's
    `operator:bob` events to operators by their *current* name, so bob's id is no longer
    keyed and the unsigned approval is 'not verified', not fatal: `audit verify` passes.
    Safe: key events name the operator id (or are matched on the id recorded in the chain
    at enrolment), and an operator whose name differs from the chain's is itself a finding.
    (`govtui audit verify` as a whole fails: audit_state names the rename; the act report
    alone passes, so any other caller of verify_all is misled.)"""
    gid = world.request()
    bob = world.op("bob").id
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=gid, round=0, approver_id=bob, decision="approve",
                totp_step=3, decided_at=clock.now(),
            )
        )  # fmt: skip
    sql(world.engine, "DELETE FROM act_signature WHERE operator_id = :b", b=bob)
    sql(world.engine, "DELETE FROM operator_key WHERE operator_id = :b", b=bob)
    sql(world.engine, "UPDATE operator SET name = 'bobby' WHERE id = :b", b=bob)
    report = verify(world)
    assert not report.ok, report.lines()


# --- which evidence key a registration is checked against ------------------------------------


def drop_fingerprint_unique(engine: Engine) -> None:
    """What the owner of the SQLite file (or a PostgreSQL superuser) can do: a constraint is
    the attacker's to drop. SQLite: the table rebuilt without UNIQUE (fingerprint)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            names = conn.execute(
                sa.text(
                    "SELECT conname FROM pg_constraint WHERE conrelid = 'evidence_key'::regclass "
                    "AND contype = 'u'"
                )
            ).scalars()
            for name in list(names):
                conn.execute(sa.text(f'ALTER TABLE evidence_key DROP CONSTRAINT "{name}"'))
        return
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA foreign_keys = OFF")
        cur.execute("PRAGMA legacy_alter_table = ON")
        create = cur.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'evidence_key'"
        ).fetchone()[0]
        indexes = [
            row[0]
            for row in cur.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'evidence_key'"
                " AND sql IS NOT NULL"
            )
        ]
        cur.execute("ALTER TABLE evidence_key RENAME TO evidence_key_old")
        for index in cur.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = "
            "'evidence_key_old' AND sql IS NOT NULL"
        ).fetchall():
            cur.execute(f'DROP INDEX "{index[0]}"')
        stripped = create.replace("UNIQUE (fingerprint)", "CHECK (1)")
        assert stripped != create, create
        cur.execute(stripped)
        cur.execute("INSERT INTO evidence_key SELECT * FROM evidence_key_old")
        cur.execute("DROP TABLE evidence_key_old")
        for index in indexes:
            cur.execute(index)
        raw.commit()
    finally:
        raw.close()


def test_a_second_row_under_the_trusted_fingerprint_registers_a_forged_approver_key(
    world: World, ldap: Directory
) -> None:
    """Attack (attack13 finding 1 again): drop evidence_key's UNIQUE (fingerprint) (the
    file's owner can rebuild the table; a superuser drops the constraint), insert a RETIRED
    row whose fingerprint is the trusted current key's and whose public_key is the
    attacker's, and register a forged bob key by it (evidence_key_id = that row). Trust is
    decided per fingerprint: `_trusted_fingerprints` skips the inconsistent row, but
    `keys()` marks every row whose fingerprint is trusted as trusted, and `_keys` builds
    `{fingerprint: KeyView}` from them, where the rogue row (listed after the current one)
    wins: the registration is checked against the attacker's PEM and verifies. Bob's
    forged approval is verified; sync adds ada.
    Safe: trust is per row: a row is trusted only when it is self-consistent AND its
    fingerprint is trusted (keys() checks `_self_consistent` row by row); a registration is
    checked against its own evidence_key row's PEM, and two rows with one fingerprint are a
    finding that fails verify."""
    drop_fingerprint_unique(world.engine)
    gid = world.request()
    rogue, bob_pair = signing.generate(), signing.generate()
    now = clock.now()
    bob = world.op("bob").id or 0
    with db.read_session(world.engine) as session:
        real = evidence_keys.current_row(session)
        assert real is not None
        fingerprint = real.fingerprint
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=gid, round=0, approver_id=bob, decision="approve",
                totp_step=7, decided_at=now,
            )
        )  # fmt: skip
        grant = session.get(Grant, gid)
        assert grant is not None
        grant_lifecycle.activate(session, grant, now=now, expires_at=now + timedelta(days=10))
        evidence = EvidenceKey(
            fingerprint=fingerprint, public_key=rogue.public_pem, keyring_ref="x",
            created_by=1, created_at=now - timedelta(days=1), retired_at=now - timedelta(hours=1),
        )  # fmt: skip
        session.add(evidence)
        session.flush()
        key = OperatorKey(
            operator_id=bob, fingerprint=bob_pair.fingerprint, public_key=bob_pair.public_pem,
            keyring_ref="y", registered_at=now - timedelta(days=1), evidence_key_id=evidence.id,
            retired_at=now + timedelta(days=1),
        )  # fmt: skip
        session.add(key)
        session.flush()
        text = act_signatures.registration_text(key, "bob")
        key.registration_sig = base64.b64encode(signing.sign(rogue.private_b64, text)).decode()
        statement = act_signatures.approval_statement(
            gid,
            0,
            "acme/rlhf/pairs",
            "read",
            "E1",
            10,
            7,
            "bob",
            uid="ada",
            sensitivity="confidential",
        )
        session.add(
            ActSignature(
                kind="approve", subject=f"approval:{gid}:0", operator_id=bob,
                operator_key_id=key.id or 0, statement=statement,
                signature=base64.b64encode(
                    signing.sign(bob_pair.private_b64, statement.encode())
                ).decode(),
                signed_at=now,
            )
        )  # fmt: skip
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada"), "sync added ada on a registration by a rogue twin row"


# --- controls that held ------------------------------------------------------------------------


def test_an_add_redirected_by_sql_to_another_group_without_a_mapping_is_refused(
    world: World, ldap: Directory
) -> None:
    """Control: the op's group_dn changed to redteam-read (upper-cased, to try the DN
    comparison) with no mapping behind it: refused as not its grant's group."""
    gid = world.request()
    world.approve(gid)
    sql(
        world.engine,
        "UPDATE outbox_op SET group_dn = :g WHERE grant_id = :id",
        g=ldap.group(REDTEAM_READ).upper(),
        id=gid,
    )
    result = sync.run_once(world.engine, due="now")
    assert not in_group(ldap, REDTEAM_READ, "ada")
    assert any("does not match grant" in e for e in result.errors), result.errors


def test_a_legit_signature_cached_for_one_key_is_not_reused_for_another(world: World) -> None:
    """Control: after a verify fills the cache, bob's key row's public key swapped for
    ann's (fingerprint kept) and the act pointed at it: not a cache hit, refused."""
    gid = world.request()
    world.approve(gid)
    assert verify(world).ok
    sql(
        world.engine,
        "UPDATE operator_key SET public_key = (SELECT public_key FROM operator_key k "
        "WHERE k.operator_id = :b AND k.retired_at IS NULL) WHERE operator_id = :a",
        a=world.op("ann").id,
        b=world.op("bob").id,
    )
    assert not verify(world).ok


def test_garbage_and_case_variants_in_the_pins_entry_trust_nothing_extra(
    world: World, memory_keyring: MemoryKeyring
) -> None:
    """Control: the pins entry holding garbage, an upper-cased copy of a rogue key's
    fingerprint and hundreds of lines; a rogue row listed under the upper-cased name: only
    the real key is trusted, and `evidence key trust` of the rogue row is one line, exit 2."""
    rogue = signing.generate()
    upper = "SHA256:" + rogue.fingerprint.removeprefix("SHA256:").upper()
    with db.read_session(world.engine) as session:
        database = secrets.database_id(session)
        real = evidence_keys.current_row(session)
        assert real is not None
        created = real.created_at
    sql(
        world.engine,
        "INSERT INTO evidence_key (fingerprint, public_key, keyring_ref, created_by, "
        "created_at, retired_at) VALUES (:f, :p, 'x', 1, :c, :c)",
        f=upper,
        p=rogue.public_pem,
        c=created,
    )
    junk = "\n".join(["\0\x1b[31m", upper, rogue.fingerprint, *(["SHA256:zz"] * 500)])
    secrets.store(evidence_keys._pins_entry(database), junk + "\n" + real.fingerprint)
    with db.read_session(world.engine) as session:
        assert {k.fingerprint for k in evidence_keys.trusted_keys(session)} == {real.fingerprint}
    assert main([*cli(world), "evidence", "key", "trust", upper]) == 2


def test_an_add_of_a_pending_op_for_a_uid_in_another_case_is_refused(
    world: World, ldap: Directory
) -> None:
    """Control: the op's uid changed to 'ADA' (the directory compares uids case-blind):
    not matched with ada's grant, refused."""
    gid = world.request()
    world.approve(gid)
    sql(world.engine, "UPDATE outbox_op SET directory_uid = 'ADA' WHERE grant_id = :g", g=gid)
    result = sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert result.errors

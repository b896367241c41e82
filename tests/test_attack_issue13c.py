"""Red-team reproductions (attack13c) against the fixes of attack13b's findings (commits
5f55201..fc4620b: the approver rules, lifetime bound and chain-recorded ends re-checked
before an add, signed directory routing). The attacker of DESIGN.md: writes the database by
SQL, holds no other operator's keyring (an insider holds only their own). Each open finding
is a strict xfail: it fails the suite the day its attack stops working, and the mark must
come off. Plain tests are controls (or honest flows) that held and stay as regression tests."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli.main import main
from govtui.models import OutboxOp
from govtui.services import (
    act_signatures,
    grants,
    offboarding,
    operators,
    pause,
    privilege,
    reconcile,
    sync,
)

from .conftest import FakeClock
from .directory_support import Directory, add_target, norm
from .factories import ADMIN, World, small_vendor, with_evidence_key
from .memory_keyring import MemoryKeyring
from .test_act_signatures import PAIRS_READ, member, sql

REDTEAM_READ = "acme-rlhf-redteam-read"


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock) -> World:
    return with_evidence_key(small_vendor(engine), lambda: fake_clock.advance(seconds=31))


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    return directory


def in_group(ldap: Directory, group: str, uid: str) -> bool:
    return norm(ldap.user(uid)) in (ldap.members(ldap.group(group)) or set())


def audit_verify_passes(world: World) -> bool:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "audit", "verify"]) == 0


def requeue_add(world: World, grant_id: int) -> None:
    """Queue again the add_member op sync once sent for the grant (what the attacker
    inserts: one row, copied from the old one)."""
    with db.read_session(world.engine) as session:
        old = session.execute(
            sa.select(OutboxOp)
            .where(OutboxOp.grant_id == grant_id, OutboxOp.operation == "add_member")
            .limit(1)
        ).scalar_one()
        values = {
            c: getattr(old, c)
            for c in ("target_id", "grant_id", "operation", "group_dn", "directory_uid")
        }
    with db.write_session(world.engine) as session:
        session.add(
            OutboxOp(**values, state="pending", created_at=clock.now(), next_attempt_at=clock.now())
        )


def ids(world: World, statement: str) -> int:
    with db.read_session(world.engine) as session:
        return int(session.execute(sa.text(statement)).scalar_one())


# --- finding 1: a grant ended in bulk is revived -------------------------------------------------


def test_an_offboarded_grant_revived_by_sql_is_added_again(
    world: World, ldap: Directory, fake_clock: FakeClock
) -> None:
    """Attack: ada's 10-day grant is approved and synced; an admin offboards E1 on day 1
    (grants ended in bulk, her removal queued and synced). By SQL: `UPDATE access_grant SET
    state='active', ended_at=NULL`, contractor status back to active, and the old add op
    queued again; expires_at is left as it was (within decided_at + days, so the lifetime
    bound holds).
    Why it works: `_ended_by_chain` looks only for `grant.revoke`/`grant.deny` events naming
    `grant:ID`; offboarding (like `grant.expire` and a review close) records its grants in
    one `contractor.offboard` event by id summary/digest, so the revived grant passes every
    check of `refused_adds` and ada is re-added for nine more days. `govtui audit verify`
    then PASSES ("state backed by the chain: ... grants"): audit_state's replay checks an
    active grant's request, approval and expiry, never that no end event came after.
    Safe: sync refuses an add for a grant that any end event covers: the bulk end events
    (`contractor.offboard`, `grant.expire`, `review.close`, ...) are matched too (their id
    lists/ranges from audit.id_summary, or an object per grant), or the ended grant ids are
    recomputed from the chain. For old events (id_summary keeps a digest and the first 20
    ids): the replay recomputes each bulk end event's ids_sha256 over the grants in its end
    state with ended_at = the event's time (audit.summary_of) and fails on a mismatch; sync
    refuses a grant in any end event's first_ids. New bulk events should record their ids
    (ranges) so that sync can match them one by one."""
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada")
    fake_clock.advance(days=1)
    with db.write_session(world.engine) as session:
        offboarding.offboard(session, operators.find(session, ADMIN), external_id="E1", reason="x")
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    sql(
        world.engine,
        "UPDATE access_grant SET state = 'active', ended_at = NULL, ended_by = NULL, "
        "end_reason = NULL WHERE id = :g",
        g=gid,
    )
    sql(world.engine, "UPDATE contractor SET status = 'active' WHERE external_id = 'E1'")
    requeue_add(world, gid)
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada"), "sync re-added ada on her offboarded grant revived by SQL"


def test_an_expired_grant_revived_by_sql_is_added_again(
    world: World, ldap: Directory, fake_clock: FakeClock
) -> None:
    """Attack: ada's grant expired (`grant expire`, a bulk `grant.expire` event) and her
    removal synced. By SQL the grant is set active again, expires_at untouched (in the
    past, so within the lifetime bound); the old add op queued again.
    Why it works: `_ended_by_chain` does not read `grant.expire`, and neither
    `_grants_behind` nor `_unverified_grants` compares expires_at with now; `audit verify`
    passes (the replay reads no end event).
    Safe: an add whose grant's expires_at is not in the future is refused (cheap, and it
    closes the expiry case even before the bulk events are matched)."""
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    fake_clock.advance(days=11)
    with db.write_session(world.engine) as session:
        assert grants.expire_due(session, actor_name=ADMIN) == [gid]
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    sql(
        world.engine,
        "UPDATE access_grant SET state = 'active', ended_at = NULL, end_reason = NULL "
        "WHERE id = :g",
        g=gid,
    )
    requeue_add(world, gid)
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada"), "sync re-added ada on her expired grant revived by SQL"


# --- finding 2: the approver and admin rules read unsigned rows -----------------------------------


def test_an_approves_link_inserted_by_sql_lets_another_clients_approver_approve(
    world: World, ldap: Directory
) -> None:
    """Attack (insider olga, approver of `other` only, with SQL write and her own keyring
    only): `INSERT INTO operator_client (olga, acme, granted_by=root)`, then approve req's
    request of ada on acme/rlhf/pairs through govtui as usual (the service reads the same
    row); her approval is properly signed with her own key.
    `audit verify` fails (the replay: "operator_client ... no event gave"), so this is a
    sync-side bypass of the 13b fix.
    Why it works: `_unverified_grants` builds `may_approve` from the operator_client and
    operator_role rows as they now are; those rows are privilege acts, but an unsigned one is
    never fatal and sync does not look at their signatures at all.
    Safe: sync's approver check only counts a link (and the approver role) whose privilege
    act verifies, signed by an admin who is not the operator (or, for rows from before keys,
    backed by the chain's `operator.approves_add`/`operator.add` event, as audit_state's
    replay already reads them); a link inserted by SQL is refused."""
    olga = world.op("olga").id
    acme = ids(world, "SELECT id FROM client WHERE name = 'acme'")
    root = world.op(ADMIN).id
    sql(
        world.engine,
        "INSERT INTO operator_client (operator_id, client_id, granted_by, granted_at) "
        "VALUES (:o, :c, :r, :t)",
        o=olga,
        c=acme,
        r=root,
        t=clock.now(),
    )
    gid = world.request()
    world.approve(gid, by="olga")
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada"), "sync added ada on an approval by olga, not acme's approver"


def test_an_admin_role_inserted_by_sql_signs_a_routing_into_the_restricted_group(
    world: World, ldap: Directory
) -> None:
    """Attack (insider ann, approver, with SQL write and her own keyring only): insert
    `operator_role (ann, admin)` and a group_mapping sending (ldap, acme/rlhf/pairs, read)
    to the restricted redteam read group, then sign the target's routing as it now is with
    her own key (act_signatures.sign_routing in her own session). bob then approves an
    ordinary pairs request of ada (one approver: confidential).
    Why it works: `_unverified_routing` takes "an admin" from the operator_role rows as they
    now are, not from a verified privilege act, so ann's signature counts; `_grants_behind`
    routes the add through the forged mapping. (verify_all does not check the signer of a
    routing is an admin at all: only the replay's "role no event gave" catches it.)
    Safe: the routing's signer must hold a *verified* admin role (its privilege act signed by
    another admin, or backed by the chain for pre-key rows); verify_all applies the same
    rule to routing acts."""
    target = ids(world, "SELECT id FROM directory_target")
    scope = ids(world, "SELECT id FROM dataset_scope WHERE name = 'pairs'")
    ann = world.op("ann").id
    sql(
        world.engine,
        "INSERT INTO operator_role (operator_id, role, granted_by, granted_at) "
        "VALUES (:o, 'admin', :r, :t)",
        o=ann,
        r=world.op(ADMIN).id,
        t=clock.now(),
    )
    sql(
        world.engine,
        "INSERT INTO group_mapping (target_id, scope_id, access, group_dn) "
        "VALUES (:t, :s, 'read', :g)",
        t=target,
        s=scope,
        g=ldap.group(REDTEAM_READ),
    )
    with db.write_session(world.engine) as session:  # ann's own session, ann's own keyring
        act_signatures.sign_routing(session, operators.find(session, "ann"), target_id=target)
    gid = world.request()
    world.approve(gid, by="bob")
    sync.run_once(world.engine, due="now")
    assert not in_group(ldap, REDTEAM_READ, "ada"), (
        "sync added ada to the restricted group through a routing signed by a SQL-made admin"
    )


# --- finding 3: the restricted rule reads the scope's sensitivity as it now is -------------------


def test_a_restricted_scope_downgraded_by_sql_is_added_on_one_approval(
    world: World, ldap: Directory
) -> None:
    """Attack: `UPDATE dataset_scope SET sensitivity = 'confidential' WHERE name =
    'redteam'`; req asks for ada on acme/rlhf/redteam and ann alone approves (govtui asks
    for one approval of a confidential scope). (The same by renaming: redteam -> x, pairs
    -> redteam; the template then names redteam's group for the pairs scope id.)
    Why it works: the approval statement does not carry the sensitivity or the approvals
    needed, and `_unverified_grants` takes `restricted` from dataset_scope as it now is:
    one verified approver suffices. Only the replay of `audit verify` sees the change (it
    fails: sync-side finding).
    Safe: the approvals needed come from something signed or chained: the approval
    statement carries the sensitivity and the count needed, and sync takes the stricter of
    the row and the chain's newest catalog event for the scope (scope add / sensitivity
    change), refusing when they disagree; likewise the scope path the template is filled
    with is checked against the chain."""
    sql(
        world.engine, "UPDATE dataset_scope SET sensitivity = 'confidential' WHERE name = 'redteam'"
    )
    gid = world.request(scope="acme/rlhf/redteam")
    (outcome,) = world.approve(gid)
    assert outcome.activated
    sync.run_once(world.engine, due="now")
    assert not in_group(ldap, REDTEAM_READ, "ada"), (
        "sync added ada to the restricted redteam group on a single approval"
    )


# --- finding 4 (honest flow refused): an approver who stops approving -----------------------------


def test_a_resume_re_adds_grants_whose_approver_no_longer_approves(
    world: World, ldap: Directory
) -> None:
    """Honest flow: ann approves ada's grant (synced). Later acme is paused (ada removed), an
    admin removes ann's approves link for acme (she moved team: her grants stay active, as
    govtui intends), bob resumes acme with his code.
    Why it is refused: `_unverified_grants` re-checks the approver against the operator_client
    rows as they are NOW, so every add standing on ann's approvals (resume re-adds, a new
    target's backfill, reconcile --fix, a retry after an outage) is refused with "its
    approver is not an approver of that client", while the grant stays active: the directory
    never converges and nothing can fix it short of re-approving every grant.
    Safe: the rule is checked as of the approval: the approver held the link (and the
    approver role) at decided_at, from the chain's privilege events (add/remove with seq)
    or the privilege act's signed granted_at, not whether they hold it now."""
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada")
    with db.write_session(world.engine) as session:
        pause.pause(session, operators.find(session, ADMIN), client="acme", reason="a breach")
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    with db.write_session(world.engine) as session:
        privilege.remove_approves(
            session, operators.find(session, ADMIN), name="ann", client="acme"
        )
    with db.write_session(world.engine) as session:
        pause.resume(session, operators.find(session, "bob"), client="acme", code=world.code("bob"))
    report = sync.run_once(world.engine, due="now")
    assert member(ldap, "ada"), f"resume did not re-add ada: {report.errors}"


# --- controls and honest flows that held -----------------------------------------------------------


def test_a_target_added_after_grants_exist_gets_their_members(
    world: World, ldap: Directory, directory: Directory, fake_clock: FakeClock
) -> None:
    """Honest flow: an extended grant and a restricted grant exist; a second target (same
    server, its own groups OU) is added afterwards by the admin and reconciled with --fix:
    the grant-less adds go through (routing signed at add, grants' approvals verify)."""
    plain = world.request()
    world.approve(plain)
    fake_clock.advance(seconds=31)
    with db.write_session(world.engine) as session:
        grants.extend(
            session, operators.find(session, "req"), grant_id=plain, days=5, reason="more"
        )
    world.approve(plain)
    fake_clock.advance(seconds=31)
    restricted = world.request(contractor="E2", scope="acme/rlhf/redteam")
    world.approve(restricted, by="ann")
    world.approve(restricted, by="bob")
    sync.run_once(world.engine, due="now")
    assert member(ldap, "ada") and in_group(ldap, REDTEAM_READ, "bo")
    second = directory.add_ou(f"ou=second,{directory.base}")
    fake_clock.advance(seconds=31)
    add_target(world.engine, directory, name="second", groups_base=second)
    with db.read_session(world.engine) as session:
        root = operators.find(session, ADMIN)
    # No backfill on add: `directory reconcile --fix` queues the grant-less adds.
    report = reconcile.fix(world.engine, root, "second", reconcile.compare(world.engine, "second"))
    assert not report.errors, report.errors
    for group, uid in (("acme-rlhf-pairs-read", "ada"), (REDTEAM_READ, "bo")):
        assert norm(ldap.user(uid)) in (ldap.members(f"cn={group},{second}") or set())
    assert reconcile.compare(world.engine, "second") == []


def test_a_revoked_grant_revived_by_sql_stays_out_and_audit_verify_names_it(
    world: World, ldap: Directory
) -> None:
    """The single revoke of attack13b finding 3, expires_at left alone. Sync refuses the add
    (held: `_ended_by_chain` reads `grant.revoke`), but `govtui audit verify` passes over a
    grant the chain revoked that is active in the database: the replay tracks no end events.
    Safe: audit_state's replay marks a grant ended by `grant.revoke`/`grant.deny` (and by
    the bulk ends, see above) and names one that is active or suspended again."""
    gid = world.request()
    world.approve(gid)
    sync.run_once(world.engine, due="now")
    with db.write_session(world.engine) as session:
        grants.revoke(session, operators.find(session, ADMIN), grant_id=gid, reason="left")
    sync.run_once(world.engine, due="now")
    sql(
        world.engine,
        "UPDATE access_grant SET state = 'active', ended_at = NULL WHERE id = :g",
        g=gid,
    )
    requeue_add(world, gid)
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada")
    assert not audit_verify_passes(world), "audit verify passed over a revived revoked grant"


def test_audit_verify_catches_the_sql_made_link_role_and_sensitivity(
    world: World, ldap: Directory
) -> None:
    """Control (findings 2 and 3 are sync-side only): the replay names an approves link, a
    role and a scope's sensitivity written by SQL."""
    assert audit_verify_passes(world)
    sql(
        world.engine, "UPDATE dataset_scope SET sensitivity = 'confidential' WHERE name = 'redteam'"
    )
    assert not audit_verify_passes(world)
    sql(world.engine, "UPDATE dataset_scope SET sensitivity = 'restricted' WHERE name = 'redteam'")
    assert audit_verify_passes(world)
    sql(
        world.engine,
        "INSERT INTO operator_client (operator_id, client_id) VALUES (:o, :c)",
        o=world.op("olga").id,
        c=ids(world, "SELECT id FROM client WHERE name = 'acme'"),
    )
    assert not audit_verify_passes(world)


def test_a_routing_signed_by_a_non_admin_fails_sync(world: World, ldap: Directory) -> None:
    """Control: without the SQL-made role, ann's own signature of a forged routing is refused."""
    target = ids(world, "SELECT id FROM directory_target")
    scope = ids(world, "SELECT id FROM dataset_scope WHERE name = 'pairs'")
    sql(
        world.engine,
        "INSERT INTO group_mapping (target_id, scope_id, access, group_dn) "
        "VALUES (:t, :s, 'read', :g)",
        t=target,
        s=scope,
        g=ldap.group(REDTEAM_READ),
    )
    with db.write_session(world.engine) as session:
        act_signatures.sign_routing(session, operators.find(session, "ann"), target_id=target)
    gid = world.request()
    world.approve(gid, by="bob")
    sync.run_once(world.engine, due="now")
    assert not in_group(ldap, REDTEAM_READ, "ada")
    assert ldap.members(ldap.group(PAIRS_READ)) in (None, set()) or not member(ldap, "ada")

"""The demo data is made through the services (issue 14): requests by requesters, approvals by
approvers of the client with their codes (two distinct ones for a restricted scope), directory
operations as the services queue them; so it verifies, has no drift once synced, and the demo
operator can do every task."""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from govtui import db, migrations
from govtui.cli import main
from govtui.models import Approval, DatasetScope, Grant, Operator, OutboxOp
from govtui.security import totp
from govtui.services import (
    act_signatures,
    audit_state,
    catalog,
    convergence,
    demo,
    doctor,
    enrollment,
    grants,
    operators,
    pause,
    reconcile,
)
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .directory_support import Directory
from .factories import small_vendor
from .memory_keyring import MemoryKeyring
from .throwaway_ca import make_ca


@pytest.fixture
def demo_url(sqlite_url: str, memory_keyring: MemoryKeyring) -> str:
    assert main(["--db", sqlite_url, "init"]) == 0
    assert main(["--db", sqlite_url, "demo", "--contractors", "120"]) == 0
    return sqlite_url


def _engine(url: str) -> Engine:
    return db.make_engine(url)


def test_the_demo_verifies_and_obeys_the_invariants(
    demo_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["--db", demo_url, "--as", "alex", "audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit chain intact" in out and "state backed by the chain" in out
    engine = _engine(demo_url)
    with db.read_session(engine) as session:
        assert audit_state.check(session).problems == []
        report = act_signatures.verify_all(session)
        # Only the first admin's own role is unsigned: nobody could sign it.
        assert report.unsigned == 1 and not report.bad
        states = Counter(session.execute(sa.select(col(Grant.state))).scalars())
        assert set(states) == {"active", "requested", "expired", "revoked", "denied"}
        rows = session.execute(
            sa.select(Grant, DatasetScope).join(
                DatasetScope, col(DatasetScope.id) == col(Grant.scope_id)
            )
        ).all()
        for grant, scope in rows:
            approvals = session.execute(
                sa.select(col(Approval.approver_id)).where(
                    col(Approval.grant_id) == grant.id, col(Approval.decision) == "approve"
                )
            ).scalars()
            approvers = list(approvals)
            assert grant.requested_by not in approvers  # four eyes
            assert len(approvers) == len(set(approvers))
            if grant.starts_at is not None:  # it was approved
                needed = 2 if scope.sensitivity == "restricted" else 1
                assert len(approvers) == needed, (grant.id, scope.sensitivity, approvers)
        requesters = {
            operators.name_of(session, by)
            for by in session.execute(sa.select(col(Grant.requested_by))).scalars()
        }
        assert requesters == {"alex", "sam"}
    engine.dispose()


def test_alex_has_someone_elses_requests_to_approve_and_requests_of_their_own(
    demo_url: str,
) -> None:
    engine = _engine(demo_url)
    with db.read_session(engine) as session:
        alex = operators.find(session, "alex")
        waiting = session.execute(
            sa.select(Grant.id, Grant.requested_by, DatasetScope.id)
            .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
            # states only: which client each is for comes from the scope views below
            .where(col(Grant.state) == "requested")
        ).all()
        clients = {v.id: v.client for v in catalog.list_scopes(session)}
        mine = [g for g, by, _ in waiting if by == alex.id]
        others = [g for g, by, s in waiting if by != alex.id and clients[s] in demo.ALEX_APPROVES]
        assert mine and others
        assert alex.totp_enrolled_at is None and enrollment.is_allowed(alex)
    engine.dispose()


def test_the_demo_operator_can_do_every_task(demo_url: str, fake_clock: FakeClock) -> None:
    """Enrol, request, approve someone else's request, revoke, pause, resume: as alex,
    through the one transaction entry point the CLI and the TUI use."""
    engine = _engine(demo_url)
    alex = Workspace(engine, "alex")
    uri = alex.act(lambda s, a: enrollment.start(s, a, name="alex"))
    secret = parse_qs(urlparse(uri).query)["secret"][0]

    def code() -> str:
        fake_clock.advance(seconds=totp.STEP_SECONDS)
        return totp.code_for_step(secret, totp.step_of(fake_clock()))

    alex.act(lambda s, a: enrollment.confirm(s, a, name="alex", code=code()))
    with db.read_session(engine) as session:
        sam = operators.find(session, "sam").id
        scope_client = {v.id: v.client for v in catalog.list_scopes(session)}
        theirs = next(
            g.id
            for g in session.execute(
                sa.select(Grant).where(
                    col(Grant.state) == "requested", col(Grant.requested_by) == sam
                )
            ).scalars()
            if scope_client[g.scope_id] == "orbital-research"
        )
        contractor = session.execute(sa.text("SELECT external_id FROM contractor LIMIT 1")).one()
    (outcome,) = alex.act(grants.approve, grant_ids=[theirs], code=code())
    assert outcome.activated
    mine = alex.act(
        grants.request,
        contractor=contractor[0],
        scope_path="helios-labs/code-tutor/solutions",
        access="read",
        days=5,
        reason="trying the demo",
    )
    alex.act(grants.revoke, grant_id=theirs, reason="done trying")
    alex.act(pause.pause, client="orbital-research", reason="client asked us to stop")
    alex.act(pause.resume, client="orbital-research", code=code())
    with db.read_session(engine) as session:
        assert session.get(Grant, theirs).state == "revoked"  # type: ignore[union-attr]
        assert session.get(Grant, mine.id).state == "requested"  # type: ignore[union-attr]
    engine.dispose()


def test_is_demo_only_for_a_demo_database(
    demo_url: str, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    engine = _engine(demo_url)
    with db.read_session(engine) as session:
        assert demo.is_demo(session)
    engine.dispose()
    other = _engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrations.upgrade(other)
    small_vendor(other)
    with db.read_session(other) as session:
        assert not demo.is_demo(session)
    other.dispose()


def test_the_demo_with_a_directory_queues_every_operation_and_syncs_without_drift(
    engine: Engine, memory_keyring: MemoryKeyring, directory: Directory
) -> None:
    where = demo.DemoDirectory(
        url=directory.url,
        bind_dn=directory.admin_dn,
        users_base=directory.people,
        groups_base=directory.groups,
        password=directory.admin_password,
    )
    with db.write_session(engine) as session:
        demo.load(session, contractors=60, directory=where)
    with db.read_session(engine) as session:
        uids = list(session.execute(sa.text("SELECT directory_uid FROM contractor")).scalars())
        ops = session.execute(sa.select(sa.func.count()).select_from(OutboxOp)).scalar_one()
        active = session.execute(
            sa.select(sa.func.count()).where(col(Grant.state) == "active")
        ).scalar_one()
        assert operators.find(session, "quinn").totp_enrolled_at is not None
        assert session.execute(sa.select(sa.func.count()).select_from(Operator)).scalar_one()
    assert active > 0 and ops >= active  # each activation queued its addition
    for uid in uids:
        directory.add_person(uid)
    report = convergence.sync_until_settled(engine)
    assert not report.failed and not report.errors and report.done > 0
    assert reconcile.compare(engine, where.name) == []


def test_demo_directory_flags_come_together(sqlite_url: str) -> None:
    assert main(["--db", sqlite_url, "init"]) == 0
    assert main(["--db", sqlite_url, "demo", "--bind-dn", "cn=x"]) == 2
    assert main(["--db", sqlite_url, "demo", "--directory-url", "ldap://127.0.0.1:9"]) == 2


def test_the_demo_over_ldaps_with_its_ca_passes_the_doctors_directory_check(
    tmp_path: Path, sqlite_url: str, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    """What scripts/run --demo registers: ldaps:// and the throw-away CA (no network here:
    registering and the doctor's TLS check read settings only), so the doctor finds no fault
    in demo-ldap, where the plain ldap:// of old failed it ("no TLS")."""
    ca = make_ca(tmp_path / "ca")
    assert main(["--db", sqlite_url, "init"]) == 0
    engine = _engine(sqlite_url)
    try:
        with db.write_session(engine) as session:
            demo.load(
                session,
                contractors=20,
                directory=demo.DemoDirectory(
                    url="ldaps://127.0.0.1:636",
                    bind_dn="cn=admin,dc=govtui,dc=test",
                    users_base="ou=people,dc=govtui,dc=test",
                    groups_base="ou=groups,dc=govtui,dc=test",
                    password="demo-pw",
                    ca_file=str(ca.cert),
                ),
            )
    finally:
        engine.dispose()
    report = doctor.run(sqlite_url, install=False)
    (found,) = [f for f in report.findings if f.check == "directory"]
    assert found.status == "ok", found
    assert found.subject == "directory demo-ldap"
    assert found.detail.startswith(f"ldaps://, certificate checked against CA file {ca.cert}")


def test_demo_ca_file_needs_an_ldaps_directory_and_a_refusal_writes_nothing(
    tmp_path: Path,
    sqlite_url: str,
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = make_ca(tmp_path / "ca")
    assert main(["--db", sqlite_url, "init"]) == 0
    capsys.readouterr()
    assert main(["--db", sqlite_url, "demo", "--ca-file", str(ca.cert)]) == 2
    assert "--ca-file needs --directory-url" in capsys.readouterr().err
    flags = [
        "--bind-dn",
        "cn=admin,dc=t",
        "--users-base",
        "ou=p,dc=t",
        "--groups-base",
        "ou=g,dc=t",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("demo-pw\n"))
    plain = ["--directory-url", "ldap://127.0.0.1:9", *flags, "--password-stdin"]
    assert main(["--db", sqlite_url, "demo", *plain, "--ca-file", str(ca.cert)]) == 2
    err = capsys.readouterr().err
    assert "--ca-file needs ldaps:// or --starttls" in err and len(err.splitlines()) == 1
    engine = _engine(sqlite_url)
    try:
        with db.read_session(engine) as session:
            assert (
                session.execute(sa.select(sa.func.count()).select_from(Operator)).scalar_one() == 0
            )
    finally:
        engine.dispose()
    assert not memory_keyring.entries

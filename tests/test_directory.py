"""Directory sync against a real OpenLDAP (DESIGN invariant 5): grants and revocations reach the
groups, outages lose nothing and apply each change once, reconcile reports and fixes drift,
and no name can reach another entry. Each test fails if its behaviour goes."""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta

import ldap3
import pytest
import sqlalchemy as sa
from ldap3.utils.dn import parse_dn
from sqlmodel import col

from govtui import clock, db
from govtui.cli import main
from govtui.directory import groups, naming
from govtui.directory.connection import Endpoint, connect
from govtui.errors import InputError
from govtui.models import OutboxOp
from govtui.services import (
    audit,
    catalog,
    contractors,
    directory_targets,
    directory_views,
    grants,
    operators,
    reconcile,
    sync,
)
from govtui.services.second_factor import CodeRejected

from .conftest import FakeClock, enroll, snapshot
from .directory_support import (
    Directory,
    WriteCounter,
    add_target,
    norm,
    outbox,
)
from .factories import World
from .memory_keyring import MemoryKeyring


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    """The world's contractors (ada, bo) in the directory, and the subtree as target 'ldap'."""
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    return directory


PAIRS_READ = "acme-rlhf-pairs-read"
PAIRS_LABEL = "acme-rlhf-pairs-label"
NOTES_READ = "acme-rlhf-notes-read"


def revoke(world: World, grant_id: int) -> None:
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=grant_id, reason="off the project")


def next_step(fake_clock: FakeClock) -> None:
    """Move past the current TOTP step, so an approver's next code is a fresh one."""
    fake_clock.advance(seconds=31)


# -- 1. grants reach the directory; the outbox is written with the grant change -------------


def test_approval_writes_its_outbox_ops_in_the_same_transaction(
    world: World, ldap: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ldap.add_ou(f"ou=groups2,{ldap.base}")
    add_target(world.engine, ldap, name="second", groups_base=f"ou=groups2,{ldap.base}")
    grant_id = world.request()

    with pytest.raises(CodeRejected, match="wrong code"):
        world.approve(grant_id, totp="000000")
    assert outbox(world.engine) == []

    # A failure after the outbox rows were queued (here: the audit append) takes them back.
    real_append = audit.append

    def failing_append(session: object, **kw: object) -> None:
        if kw.get("action") == "grant.approve":
            raise RuntimeError("disk full")
        real_append(session, **kw)  # type: ignore[arg-type]

    # Only this patch is undone: monkeypatch.undo() would also undo the fixtures' settings
    # (the data folder where PostgreSQL's audit checkpoint lives, so the next write would find
    # no checkpoint and refuse).
    with monkeypatch.context() as patch:
        patch.setattr(audit, "append", failing_append)
        with pytest.raises(RuntimeError, match="disk full"):
            world.approve(grant_id, totp=world.code("ann", 1))
    assert outbox(world.engine) == []
    assert world.grant(grant_id).state == "requested"

    world.approve(grant_id, totp=world.code("ann", 1))
    ops = outbox(world.engine)
    assert sorted((op.operation, op.grant_id, op.directory_uid, op.group_dn) for op in ops) == [
        ("add_member", grant_id, "ada", f"cn={PAIRS_READ},ou=groups,{ldap.base}"),
        ("add_member", grant_id, "ada", f"cn={PAIRS_READ},ou=groups2,{ldap.base}"),
    ]
    assert len({op.target_id for op in ops}) == 2
    assert all(op.state == "pending" and op.attempts == 0 for op in ops)


def test_approved_revoked_and_expired_grants_follow_in_the_directory(
    world: World, ldap: Directory, fake_clock: FakeClock
) -> None:
    pairs, label = ldap.group(PAIRS_READ), ldap.group(PAIRS_LABEL)
    grant_id = world.request()
    world.approve(grant_id)
    assert ldap.members(pairs) is None  # nothing reaches the directory before sync runs

    report = sync.run_once(world.engine)
    assert (report.done, report.retrying, report.failed, report.errors) == (1, 0, 0, [])
    assert ldap.members(pairs) == {norm(ldap.placeholder), norm(ldap.user("ada"))}
    (op,) = outbox(world.engine)
    assert (op.state, op.attempts, op.user_dn) == ("done", 1, ldap.user("ada"))
    assert op.done_at == fake_clock.current

    revoke(world, grant_id)
    assert sync.run_once(world.engine).done == 1
    # The last contractor is gone; the group and its placeholder member stay.
    assert ldap.members(pairs) == {norm(ldap.placeholder)}

    next_step(fake_clock)
    short = world.request(access="label", days=2)
    world.approve(short)
    sync.run_once(world.engine)
    assert norm(ldap.user("ada")) in (ldap.members(label) or set())
    fake_clock.advance(days=2)
    with db.write_session(world.engine) as session:
        assert grants.expire_due(session, actor_name="cron") == [short]
    assert sync.run_once(world.engine).done == 1
    assert ldap.members(label) == {norm(ldap.placeholder)}
    assert sync.run_once(world.engine).done == 0  # nothing left to push
    assert {op.state for op in outbox(world.engine)} == {"done"}


def test_removing_the_last_member_of_a_group_made_by_hand(world: World, ldap: Directory) -> None:
    """A mapped group that govtui did not create has no placeholder: groupOfNames refuses to
    lose its last member, so the removal must bring the placeholder in with it."""
    group = ldap.add_group(ldap.group("pairs-readers"), [ldap.user("ada")])
    with db.write_session(world.engine) as session:
        directory_targets.map_scope(
            session,
            operators.find(session, "root"),
            scope_path="acme/rlhf/pairs",
            access="read",
            group_dn=group,
            target=None,
        )
    grant_id = world.request()
    world.approve(grant_id)
    assert sync.run_once(world.engine).done == 1  # present already: done without a change
    revoke(world, grant_id)
    report = sync.run_once(world.engine)
    assert (report.done, report.errors) == (1, [])
    assert ldap.members(group) == {norm(ldap.placeholder)}


def test_a_target_that_does_not_create_groups_names_the_missing_group(
    world: World, directory: Directory
) -> None:
    directory.add_person("ada")
    add_target(world.engine, directory, create_groups=False)
    world.approve(world.request())
    report = sync.run_once(world.engine)
    assert (report.done, report.retrying) == (0, 1)
    assert len(report.errors) == 1 and "does not create groups" in report.errors[0]
    (op,) = outbox(world.engine)
    assert op.state == "pending" and op.last_error is not None
    assert "does not exist and this target does not create groups" in op.last_error
    assert directory.members(directory.group(PAIRS_READ)) is None


# -- 2. an outage loses nothing, and each change is applied exactly once ---------------------


def test_outage_during_sync_keeps_ops_pending_and_applies_each_change_once(
    world: World, ldap: Directory, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs, notes = ldap.group(PAIRS_READ), ldap.group(NOTES_READ)
    first = world.request(contractor="E1")
    second = world.request(contractor="E2", scope="acme/rlhf/notes")
    world.approve(first, second)

    counter = WriteCounter()

    def stop_after_first_write(dn: str) -> None:
        counter.after_write = None
        ldap.stop_server()  # the first group's write went through; its read-back will not

    counter.after_write = stop_after_first_write
    counter.install(monkeypatch)
    try:
        started = fake_clock.current
        report = sync.run_once(world.engine)
        assert (report.done, report.retrying, report.failed) == (0, 2, 0)
        ops = outbox(world.engine)
        assert [(op.state, op.attempts) for op in ops] == [("pending", 1), ("pending", 1)]
        assert all(op.last_error for op in ops)
        assert all(op.next_attempt_at == started + timedelta(seconds=15) for op in ops)
        assert counter.writes == {norm(pairs): 1}

        # Still down at the next attempt: the connect fails, the wait doubles.
        fake_clock.advance(seconds=15)
        report = sync.run_once(world.engine)
        assert (report.done, report.retrying) == (0, 2)
        assert any("connect failed" in error for error in report.errors)
        ops = outbox(world.engine)
        assert [(op.state, op.attempts) for op in ops] == [("pending", 2), ("pending", 2)]
        assert all(op.next_attempt_at == fake_clock.current + timedelta(seconds=30) for op in ops)
        assert all("connect failed" in (op.last_error or "") for op in ops)
    finally:
        ldap.start_server()

    assert sync.run_once(world.engine).done == 0  # back, but the backoff has not run out
    fake_clock.advance(seconds=30)
    report = sync.run_once(world.engine)
    assert (report.done, report.retrying, report.errors) == (2, 0, [])
    assert [(op.state, op.attempts) for op in outbox(world.engine)] == [("done", 3), ("done", 3)]
    assert ldap.members(pairs) == {norm(ldap.placeholder), norm(ldap.user("ada"))}
    assert ldap.members(notes) == {norm(ldap.placeholder), norm(ldap.user("bo"))}
    # The write that landed before the outage was confirmed, not repeated.
    assert counter.writes == {norm(pairs): 1, norm(notes): 1}


def test_a_stale_retry_never_undoes_a_newer_change(
    world: World, ldap: Directory, fake_clock: FakeClock
) -> None:
    """An add waiting for its retry when the grant is revoked must not bring the member back
    once its retry comes due after the removal was applied."""
    pairs = ldap.group(PAIRS_READ)
    grant_id = world.request()
    world.approve(grant_id)
    try:
        ldap.stop_server()
        assert sync.run_once(world.engine).retrying == 1  # the add waits 15 s
    finally:
        ldap.start_server()
    fake_clock.advance(seconds=5)
    revoke(world, grant_id)
    assert sync.run_once(world.engine).done == 1  # only the removal is due
    fake_clock.advance(seconds=15)
    sync.run_once(world.engine)
    assert norm(ldap.user("ada")) not in (ldap.members(pairs) or set())
    assert [(op.operation, op.state) for op in outbox(world.engine)] == [
        ("add_member", "done"),
        ("remove_member", "done"),
    ]
    assert reconcile.compare(world.engine, "ldap") == []


def test_uids_match_the_directory_whatever_its_case(world: World, directory: Directory) -> None:
    """uid (like AD's sAMAccountName) compares without case: an entry written 'Ada' is ada's."""
    entry = directory.add_person("Ada")
    add_target(world.engine, directory)
    world.approve(world.request())
    report = sync.run_once(world.engine)
    assert (report.done, report.errors) == (1, [])
    assert directory.members(directory.group(PAIRS_READ)) == {
        norm(directory.placeholder),
        norm(entry),
    }
    assert reconcile.compare(world.engine, "ldap") == []


# -- 3. reconciliation ------------------------------------------------------------------------


def test_reconcile_reports_drift_and_fix_repairs_only_what_govtui_owns(
    world: World, ldap: Directory
) -> None:
    pairs, notes = ldap.group(PAIRS_READ), ldap.group(NOTES_READ)
    world.approve(world.request(), world.request(scope="acme/rlhf/notes"))
    sync.run_once(world.engine)
    assert reconcile.compare(world.engine, "ldap") == []

    ldap.add_member(pairs, ldap.user("bo"))  # a known contractor without a grant
    stranger = ldap.add_person("mallory")  # an account govtui never heard of
    ldap.add_member(pairs, stranger)
    service = ldap.add_person("svc", under=ldap.add_ou(f"ou=services,{ldap.base}"))
    ldap.add_member(pairs, service)  # not even under the users base
    ldap.remove_member(notes, ldap.user("ada"))  # a grant the directory lost
    with db.write_session(world.engine) as session:
        session.execute(
            sa.text("UPDATE contractor SET status = 'offboarded' WHERE external_id = 'E2'")
        )

    drift = reconcile.compare(world.engine, "ldap")
    found = {(d.kind, d.group_dn and norm(d.group_dn), d.directory_uid) for d in drift}
    assert found == {
        ("unexpected_member", norm(pairs), "bo"),
        ("unknown_account", norm(pairs), "mallory"),
        ("unknown_account", norm(pairs), None),
        ("missing_member", norm(notes), "ada"),
        ("enabled_offboarded", None, "bo"),
    }
    assert [d.fixable for d in drift if d.kind == "unknown_account"] == [False, False]

    report = reconcile.fix(world.engine, world.op("root"), "ldap", drift)
    assert (report.done, report.retrying, report.failed) == (3, 0, 0)
    assert ldap.members(pairs) == {
        norm(ldap.placeholder),
        norm(ldap.user("ada")),
        norm(stranger),
        norm(service),
    }
    assert ldap.members(notes) == {norm(ldap.placeholder), norm(ldap.user("ada"))}
    assert ldap.attribute(ldap.user("bo"), "pwdAccountLockedTime")  # ppolicy lock
    assert ldap.attribute(ldap.user("ada"), "pwdAccountLockedTime") == []
    left = reconcile.compare(world.engine, "ldap")
    assert {d.kind for d in left} == {"unknown_account"} and len(left) == 2


# -- 4. names cannot reach another entry -----------------------------------------------------

HOSTILE = ["*)(uid=*", "x,ou=admins", "a+cn=b", 'q"<>;\\', "#lead", " lead", "trail ", "=eq"]


@pytest.mark.parametrize("uid", ["*)(uid=*", "x,ou=admins", "ada)(|(uid=*", "uid=ada", "Ada", ""])
def test_directory_uid_refuses_filter_and_dn_syntax(world: World, uid: str) -> None:
    before = snapshot(world.engine)
    with (
        pytest.raises(InputError, match="invalid directory uid"),
        db.write_session(world.engine) as session,
    ):
        contractors.add(
            session,
            world.op("root"),
            external_id="E9",
            name="Eve",
            email="eve@x.example",
            directory_uid=uid,
            contract_end=date(2027, 1, 1),
        )
    assert snapshot(world.engine) == before


@pytest.mark.parametrize("value", HOSTILE)
def test_group_dn_escapes_every_value_into_one_rdn(value: str) -> None:
    base = "ou=groups,dc=govtui,dc=test"
    dn = naming.group_dn(
        "cn={client}-{project}-{scope}-{access}",
        base,
        client=value,
        project="p",
        scope="s",
        access="read",
    )
    (attribute, escaped, separator), *rest = parse_dn(dn)
    assert rest == parse_dn(base)  # directly under the base, whatever the value holds
    assert (attribute, separator) == ("cn", ",")  # one single-valued RDN, no '+'
    assert unescape(escaped) == f"{value}-p-s-read"


def unescape(value: str) -> str:
    """An RFC 4514 attribute value with its escapes undone."""
    return re.sub(
        r"\\([0-9a-fA-F]{2}|.)",
        lambda m: chr(int(m[1], 16)) if len(m[1]) == 2 else m[1],
        value,
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_uid_filter_matches_only_the_literal(value: str) -> None:
    text = naming.uid_filter([value])
    assert text.count("(") == 1 and text.count(")") == 1
    assert "*" not in text
    assert naming.uid_filter(["a", value]).startswith("(|(uid=a)(uid=")


def test_escaped_names_reach_only_their_own_entry_on_the_server(directory: Directory) -> None:
    """Below the service validation, the directory layer alone keeps hostile values literal."""
    ada = directory.add_person("ada")
    directory.add_person("bo")
    directory.add_person("*)(uid=*")  # an entry whose uid really is that text
    conn = connect(
        Endpoint(directory.url, directory.admin_dn, insecure_plaintext=True),
        directory.admin_password,
    )
    try:
        found = groups.find_users(conn, directory.people, ["*)(uid=*"], "openldap")
        assert list(found) == ["*)(uid=*"]
        assert directory.attribute(found["*)(uid=*"], "uid") == ["*)(uid=*"]  # that entry only
        assert groups.find_users(conn, directory.people, ["*", "ada)(uid=bo"], "openldap") == {}
        before = directory.snapshot()
        for value in HOSTILE:
            dn = naming.group_dn(
                "cn={client}-{project}-{scope}-{access}",
                directory.groups,
                client=value,
                project="p",
                scope="s",
                access="read",
            )
            groups.create_group(conn, dn, directory.groups, "openldap", [ada])
            assert groups.read_members(conn, dn) == {norm(directory.placeholder), norm(ada)}
    finally:
        conn.unbind()
    after = directory.snapshot()
    new = {dn: attrs for dn, attrs in after.items() if dn not in before}
    assert {k: v for k, v in after.items() if k in before} == before  # nothing else changed
    assert len(new) == len(HOSTILE)
    # Each new entry is a direct child of the groups OU whose cn is the literal text.
    directory.conn.search(
        directory.groups, "(objectClass=groupOfNames)", ldap3.LEVEL, attributes=["cn"]
    )
    names = {e["attributes"]["cn"][0] for e in directory.conn.response}
    assert names == {f"{value}-p-s-read" for value in HOSTILE}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bind_dn", "administrator", "invalid bind DN"),
        ("bind_dn", "cn=admin,,dc=x", "invalid bind DN"),
        ("users_base", "ou=people;dc=x=y", "invalid users base"),
        ("groups_base", "", "invalid groups base"),
        ("url", "http://127.0.0.1", "invalid directory URL"),
    ],
)
def test_directory_add_refuses_malformed_settings(
    world: World, memory_keyring: MemoryKeyring, field: str, value: str, message: str
) -> None:
    before = snapshot(world.engine)
    settings = dict(
        name="ldap",
        url="ldap://127.0.0.1:1",
        insecure_plaintext=True,
        bind_dn="cn=admin,dc=x",
        users_base="ou=people,dc=x",
        groups_base="ou=groups,dc=x",
        password="pw",
    )
    settings[field] = value
    with pytest.raises(InputError, match=message), db.write_session(world.engine) as session:
        directory_targets.add(session, world.op("root"), **settings)
    assert snapshot(world.engine) == before
    assert not any(k[1].startswith("directory:") for k in memory_keyring.entries)


def test_cli_directory_add_refuses_a_malformed_bind_dn(
    world: World,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(world.engine)
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    code = run(
        world,
        "directory",
        "add",
        "ldap",
        "--url",
        "ldap://127.0.0.1:1",
        "--insecure-plaintext",
        "--bind-dn",
        "admin)(uid=*",
        "--users-base",
        "ou=people,dc=x",
        "--groups-base",
        "ou=groups,dc=x",
        "--password-stdin",
    )
    err = capsys.readouterr().err
    assert code == 2 and "invalid bind DN" in err and len(err.strip().splitlines()) == 1
    assert snapshot(world.engine) == before


def test_names_allowed_by_validation_touch_only_their_group(
    world: World, ldap: Directory, fake_clock: FakeClock
) -> None:
    with db.write_session(world.engine) as session:
        root = operators.find(session, "root")
        catalog.add_client(session, root, name="Acme Labs.v2")
        catalog.add_project(session, root, path="Acme Labs.v2/rl hf")
        catalog.add_scope(
            session, root, path="Acme Labs.v2/rl hf/pairs v1.0_x", sensitivity="internal"
        )
        operators.add(session, root, name="amy", roles=["approver"], approves=["Acme Labs.v2"])
        contractors.add(
            session,
            root,
            external_id="E3",
            name="Cy",
            email="cy@x.example",
            directory_uid="c.d-e_f",
            contract_end=date(2027, 1, 1),
        )
    world.secrets["amy"] = enroll(world.engine, "amy")
    person = ldap.add_person("c.d-e_f")
    group = ldap.group("Acme Labs.v2-rl hf-pairs v1.0_x-read")
    before = ldap.snapshot()
    grant_id = world.request(contractor="E3", scope="Acme Labs.v2/rl hf/pairs v1.0_x")
    world.approve(grant_id, by="amy")
    assert sync.run_once(world.engine).done == 1
    after = ldap.snapshot()
    assert set(after) - set(before) == {norm(group)}
    assert {k: v for k, v in after.items() if k != norm(group)} == before
    assert ldap.members(group) == {norm(ldap.placeholder), norm(person)}
    revoke(world, grant_id)
    assert sync.run_once(world.engine).done == 1
    assert {k: v for k, v in ldap.snapshot().items() if k != norm(group)} == before
    assert ldap.members(group) == {norm(ldap.placeholder)}


# -- 7. status and the command line ----------------------------------------------------------


def run(world: World, *args: str, actor: str = "root") -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", actor, *args])


def test_sync_status_counts_pending_done_and_failed(
    world: World, ldap: Directory, fake_clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with db.write_session(world.engine) as session:
        contractors.add(
            session,
            world.op("root"),
            external_id="E3",
            name="Cy",
            email="cy@x.example",
            directory_uid="cy",  # no entry in the directory
            contract_end=date(2027, 1, 1),
        )
        session.execute(sa.text("UPDATE directory_target SET max_attempts = 2"))
    world.approve(world.request(contractor="E1"), world.request(contractor="E3"))
    with db.read_session(world.engine) as session:
        assert directory_views.status(session) == [
            directory_views.TargetStatus("ldap", 2, 0, 0, 0, fake_clock.current, None, None)
        ]

    assert run(world, "sync") == 1  # one op could not be applied
    out, err = capsys.readouterr()
    assert "1 done, 1 to retry, 0 failed" in out and "no entry for uid 'cy'" in err
    assert run(world, "sync", "status", "--json") == 0
    retry = fake_clock.current + timedelta(seconds=15)
    assert json.loads(capsys.readouterr().out) == [
        {
            "target": "ldap",
            "pending": 1,
            "failed": 0,
            "done": 1,
            "cancelled": 0,
            "next_retry": retry.isoformat().replace("+00:00", "Z"),
            "last_error": f"no entry for uid 'cy' under {ldap.people}",
            "disabled": None,
        }
    ]

    # A person's sync retries at once, whatever the backoff (issue 10, item 7).
    assert run(world, "sync") == 1
    capsys.readouterr()
    with db.read_session(world.engine) as session:
        [row] = directory_views.status(session)
    # An addition that failed max_attempts times is given up: no next retry.
    assert (row.pending, row.failed, row.done, row.next_retry) == (0, 1, 1, None)
    failed = [op for op in outbox(world.engine) if op.state == "failed"]
    assert [(op.directory_uid, op.attempts) for op in failed] == [("cy", 2)]
    assert "no entry for uid 'cy'" in (failed[0].last_error or "")


def test_cli_reconcile_json_exit_codes_and_fix(
    world: World, ldap: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = ldap.group(PAIRS_READ)
    world.approve(world.request())
    assert run(world, "sync") == 0
    capsys.readouterr()
    assert run(world, "reconcile", "ldap", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []

    ldap.add_member(pairs, ldap.user("bo"))
    assert run(world, "reconcile", "ldap", "--json") == 1  # drift, and no --fix
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {
        "kind": "unexpected_member",
        "group_dn": pairs,
        "user_dn": norm(ldap.user("bo")),
        "directory_uid": "bo",
        "via": None,  # set for a member through a nested group
        "fixable": True,
    }
    assert norm(ldap.user("bo")) in (ldap.members(pairs) or set())  # reporting changes nothing

    assert run(world, "reconcile", "ldap", "--json", "--fix") == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 1 and "fix: 1 done, 0 to retry, 0 failed" in err
    assert ldap.members(pairs) == {norm(ldap.placeholder), norm(ldap.user("ada"))}
    assert run(world, "reconcile", "ldap") == 0
    assert "(none)" in capsys.readouterr().out
    with db.read_session(world.engine) as session:
        op = session.execute(
            sa.select(OutboxOp).where(col(OutboxOp.grant_id).is_(None))
        ).scalar_one()
    assert (op.operation, op.directory_uid, op.state) == ("remove_member", "bo", "done")
    assert clock.now() == op.done_at

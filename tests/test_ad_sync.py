"""govtui against a real Active Directory DC (Samba AD, tests/ad_support.py; issue 10, items 2
and 3): grants, revocations, expiry, pause and resume reach AD groups; offboarding disables
the account keeping its other flags (and a bind then fails with `data 533`); the groups
govtui creates have a sAMAccountName and an explicit groupType, with names checked against
AD's limits before anything is written; reconcile names hand-added members, nested groups
with their effective members, and primary-group members, and never loops on what it cannot
fix; names that need escaping work end to end."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta

import ldap3
import pytest
import sqlalchemy as sa
from ldap3.core.exceptions import LDAPBindError, LDAPInvalidCredentialsResult
from sqlmodel import col

from govtui import clock, db
from govtui.cli import main
from govtui.directory import groups
from govtui.models import DirectoryTarget, OutboxOp
from govtui.services import directory_targets, grants, operators, reconcile, sync

from .ad_support import (
    GLOBAL_SECURITY_GROUP,
    UAC_ACCOUNTDISABLE,
    UAC_NORMAL_ACCOUNT,
    UNIVERSAL_SECURITY_GROUP,
    AdDirectory,
    norm,
    private_ou,
    single,
)
from .conftest import FakeClock
from .factories import World

PASSWORD = "Throw-away-1-user"
UAC_DONT_EXPIRE_PASSWORD = 0x10000
PAIRS_READ = "acme-rlhf-pairs-read"
PAIRS_LABEL = "acme-rlhf-pairs-label"


@pytest.fixture
def ad() -> Iterator[AdDirectory]:
    yield from private_ou()


def set_target(world: World, name: str = "ad", **values: object) -> None:
    with db.write_session(world.engine) as session:
        session.execute(
            sa.update(DirectoryTarget).where(col(DirectoryTarget.name) == name).values(**values)
        )


def add_ad_target(world: World, ad: AdDirectory, name: str = "ad", **overrides: object) -> None:
    values: dict[str, object] = dict(
        name=name,
        url=ad.server.url,
        bind_dn=ad.server.admin_dn,
        users_base=ad.people,
        groups_base=ad.groups,
        password=ad.server.admin_password,
        flavour="ad",
        ca_file=ad.server.ca_file,
        # The DC's certificate names dc1.<realm>, the URL an address (what --tls-name is for).
        tls_name=ad.server.tls_name,
    )
    values.update(overrides)
    with db.write_session(world.engine) as session:
        directory_targets.add(session, operators.find(session, "root"), **values)  # type: ignore[arg-type]


@pytest.fixture
def dc(world: World, ad: AdDirectory) -> Iterator[AdDirectory]:
    """The world's contractors as AD users whose names need escaping (ada is `Smith, John`,
    bo is `O'Brien+Jr`), with passwords; the private OU as target 'ad'."""
    ad.add_user("Smith, John", "ada", password=PASSWORD)
    ad.add_user("O'Brien+Jr", "bo", password=PASSWORD)
    add_ad_target(world, ad)
    yield ad
    # AD refuses to delete a group that is still someone's primary group: back to Domain
    # Users before the OU's tree delete.
    ad.conn.search(ad.people, "(&(objectClass=user)(!(primaryGroupID=513)))", attributes=["cn"])
    for entry in [e for e in ad.conn.response if e["type"] == "searchResEntry"]:
        ad.conn.modify(entry["dn"], {"primaryGroupID": [(ldap3.MODIFY_REPLACE, ["513"])]})


def user(ad: AdDirectory, cn: str) -> str:
    return f"CN={ldap3.utils.dn.escape_rdn(cn)},{ad.people}"


def group(ad: AdDirectory, cn: str) -> str:
    return f"CN={cn},{ad.groups}"


def revoke(world: World, grant_id: int) -> None:
    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("req"), grant_id=grant_id, reason="off the project")


def run(world: World, *args: str, actor: str = "root") -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", actor, *args])


def ops(world: World) -> list[OutboxOp]:
    with db.read_session(world.engine) as session:
        return list(session.exec(sa.select(OutboxOp).order_by(col(OutboxOp.id))).scalars())


def rid_of(ad: AdDirectory, group_dn: str) -> int:
    ad.conn.search(group_dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
    sid = ad.conn.response[0]["raw_attributes"]["objectSid"][0]
    return int.from_bytes(sid[-4:], "little")


def make_primary(ad: AdDirectory, user_dn: str, group_dn: str) -> None:
    """Make group_dn the user's primary group (AD wants it a member first; it then leaves
    `member`, as on Windows)."""
    if norm(user_dn) not in (ad.members(group_dn) or set()):
        ad.add_member(group_dn, user_dn)
    ad.conn.modify(
        user_dn, {"primaryGroupID": [(ldap3.MODIFY_REPLACE, [str(rid_of(ad, group_dn))])]}
    )
    assert norm(user_dn) not in (ad.members(group_dn) or set())


# -- grant, revoke, expire; the groups govtui creates -----------------------------------------


def test_grant_revoke_and_expire_reach_ad_groups_created_with_names_and_type(
    world: World, dc: AdDirectory, fake_clock: FakeClock
) -> None:
    ada, bo = user(dc, "Smith, John"), user(dc, "O'Brien+Jr")
    first = world.request("E1", access="read")
    second = world.request("E2", access="label", days=3)
    world.approve(first, second)
    report = sync.run_once(world.engine)
    assert (report.done, report.errors) == (2, [])

    read, label = group(dc, PAIRS_READ), group(dc, PAIRS_LABEL)
    assert dc.members(read) == {norm(ada)}
    assert dc.members(label) == {norm(bo)}
    for dn, cn in ((read, PAIRS_READ), (label, PAIRS_LABEL)):
        # Not the `$47385C93-...` a DC invents without one, and the type said, not assumed.
        assert single(dc.attribute(dn, "sAMAccountName")) == cn
        assert int(single(dc.attribute(dn, "groupType"))) == GLOBAL_SECURITY_GROUP

    revoke(world, first)
    assert sync.run_once(world.engine).done == 1
    assert dc.members(read) == set()

    fake_clock.advance(days=4)
    with db.write_session(world.engine) as session:
        assert grants.expire_due(session, actor_name="system") == [second]
    assert sync.run_once(world.engine).done == 1
    assert dc.members(label) == set()


def test_directory_add_takes_a_sam_template_and_a_group_type(
    world: World, ad: AdDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    ad.add_user("Jörg Ünïcödé", "ada")
    password = ad.server.admin_password
    args = [
        "directory", "add", "ad", "--url", ad.server.url, "--bind-dn", ad.server.admin_dn,
        "--users-base", ad.people, "--groups-base", ad.groups, "--flavour", "ad",
        "--ca-file", ad.server.ca_file, "--tls-name", ad.server.tls_name, "--password-stdin",
    ]  # fmt: skip
    for extra, message in (
        (["--group-type", "7"], "invalid AD groupType 7"),
        (["--sam-template", "{client}-{nope}"], "invalid sAMAccountName template"),
    ):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("sys.stdin", __import__("io").StringIO(password + "\n"))
            assert run(world, *args, *extra) == 2
        assert message in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", __import__("io").StringIO(password + "\n"))
        extra = ["--sam-template", "gt-{scope}-{access}", "--group-type", "-2147483640"]
        assert run(world, *args, *extra) == 0
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).errors == []
    read = group(ad, PAIRS_READ)
    assert single(ad.attribute(read, "sAMAccountName")) == "gt-pairs-read"
    assert int(single(ad.attribute(read, "groupType"))) == UNIVERSAL_SECURITY_GROUP
    assert ad.members(read) == {norm(user(ad, "Jörg Ünïcödé"))}


def test_group_names_ad_would_refuse_are_errors_before_anything_is_written(
    world: World, dc: AdDirectory, capsys: pytest.CaptureFixture[str], fake_clock: FakeClock
) -> None:
    # scope map: a cn over 64 characters (Samba would even accept it; Windows does not).
    long_dn = f"CN={'x' * 65},{dc.groups}"
    code = run(world, "scope", "map", "acme/rlhf/pairs", "--access", "read", "--group", long_dn)
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cn 'xxx" in err and "65 characters, AD allows 64" in err
    set_target(world, sam_template="{client}+{scope}")
    code = run(
        world, "scope", "map", "acme/rlhf/pairs", "--access", "read", "--group", group(dc, "ok")
    )
    assert code == 2 and "contains '+'" in capsys.readouterr().err

    # sync: a template that yields a sAMAccountName AD forbids; then a cn that is too long.
    def made() -> set[str]:
        dc.conn.search(dc.groups, "(objectClass=group)", ldap3.SUBTREE)
        return {norm(e["dn"]) for e in dc.conn.response if e["type"] == "searchResEntry"}

    world.approve(world.request("E1"))
    report = sync.run_once(world.engine)
    assert report.done == 0
    [op] = ops(world)
    assert op.state == "pending" and op.last_error is not None
    assert "sAMAccountName 'acme+pairs' contains '+'" in op.last_error
    assert made() == set()  # nothing written

    fake_clock.advance(seconds=31)  # the refused op is due again, and a fresh TOTP step
    set_target(
        world, sam_template=None, group_template="cn={client}-{project}-{scope}-{access}" + "-" * 50
    )
    world.approve(world.request("E2", access="label"))
    report = sync.run_once(world.engine)
    # The first op's group now has a valid name (the template was fixed) and is created; the
    # new one's cn would be 71 characters: refused with nothing written.
    assert report.done == 1
    assert any("has 71 characters, AD allows 64" in e for e in report.errors), report.errors
    assert made() == {norm(group(dc, PAIRS_READ))}


# -- offboarding ------------------------------------------------------------------------------


def test_offboard_disables_keeping_other_flags_sets_expiry_and_bind_fails_533(
    world: World, dc: AdDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    ada = user(dc, "Smith, John")
    flags = UAC_NORMAL_ACCOUNT | UAC_DONT_EXPIRE_PASSWORD
    dc.conn.modify(ada, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(flags)])]})
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    dc.server.connect(ada, PASSWORD).unbind()  # enabled: it binds

    assert run(world, "contractor", "offboard", "E1", "--reason", "left") == 0
    assert "directory: 2 confirmed, 0 not yet" in capsys.readouterr().out
    assert dc.uac(ada) == flags | UAC_ACCOUNTDISABLE
    expires = int(single(dc.attribute(ada, "accountExpires")))
    now = clock.now()
    assert expires == int((now.timestamp() + 11_644_473_600) * 10_000_000)
    assert dc.members(group(dc, PAIRS_READ)) == set()
    with pytest.raises((LDAPInvalidCredentialsResult, LDAPBindError)) as refused:
        dc.server.connect(ada, PASSWORD)
    assert "data 533" in str(refused.value)
    # reconcile agrees the account is disabled
    assert [
        d for d in reconcile.compare(world.engine, "ad") if d.kind == "enabled_offboarded"
    ] == []


def test_an_unreadable_user_account_control_refuses_that_op_and_the_rest_go_on(
    world: World, dc: AdDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, bo = user(dc, "Smith, John"), user(dc, "O'Brien+Jr")
    world.approve(world.request("E2"))
    with db.write_session(world.engine) as session:
        from govtui.services import offboarding

        offboarding.offboard(session, world.op("root"), external_id="E1", reason="left")
    monkeypatch.setattr(groups, "read_uac", lambda conn, dn: None)
    report = sync.run_once(world.engine)
    [disable] = [op for op in ops(world) if op.operation == "disable_account"]
    assert disable.state == "pending" and disable.attempts == 1
    assert disable.last_error is not None and "refusing to disable" in disable.last_error
    assert dc.uac(ada) == UAC_NORMAL_ACCOUNT  # nothing guessed, nothing written
    assert report.done == 1 and dc.members(group(dc, PAIRS_READ)) == {norm(bo)}
    monkeypatch.undo()
    assert sync.run_once(world.engine).done == 0  # backoff: not due yet


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["512"], 512),
        ("66050", 66050),
        (514, 514),
        ([b"512"], 512),
        ([], None),
        (None, None),
        (["512", "2"], None),
        (["abc"], None),
        (True, None),
    ],
)
def test_single_int_reads_what_ldap3_may_return(value: object, expected: int | None) -> None:
    assert groups.single_int(value) == expected


# -- pause and resume -------------------------------------------------------------------------


def test_pause_removes_every_member_and_resume_restores_exactly_the_restored_ones(
    world: World, dc: AdDirectory, capsys: pytest.CaptureFixture[str], fake_clock: FakeClock
) -> None:
    ada, bo = user(dc, "Smith, John"), user(dc, "O'Brien+Jr")
    keep = world.request("E1")
    gone = world.request("E2")
    world.approve(keep, gone)
    assert sync.run_once(world.engine).done == 2
    read = group(dc, PAIRS_READ)
    assert dc.members(read) == {norm(ada), norm(bo)}

    assert run(world, "client", "pause", "acme", "--reason", "breach") == 0
    assert "complete: 2/2 directory removals confirmed" in capsys.readouterr().out
    assert dc.members(read) == set()
    revoke(world, gone)  # revoked while paused: must not come back

    fake_clock.advance(seconds=31)
    assert run(world, "client", "resume", "acme", "--totp", world.code("bob"), actor="bob") == 0
    assert "complete: 1/1 directory additions confirmed" in capsys.readouterr().out
    assert dc.members(read) == {norm(ada)}


# -- reconcile: hand-added, nested and primary-group members ----------------------------------


def test_reconcile_names_hand_added_nested_and_primary_group_members_and_never_loops(
    world: World, dc: AdDirectory
) -> None:
    bo = user(dc, "O'Brien+Jr")
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    read = group(dc, PAIRS_READ)
    tag = secrets.token_hex(3)
    stranger = dc.add_user("Stranger Ünï", f"str{tag}")
    inner_user = dc.add_user("Inner User", f"inn{tag}")
    deep_user = dc.add_user("Deep User", f"dee{tag}")
    boss = dc.add_user("Primary Boss", f"pri{tag}")
    deep = dc.add_group(f"deep-{tag}", members=[deep_user])
    inner = dc.add_group(f"inner-{tag}", members=[inner_user, deep])
    dc.add_member(deep, inner)  # a cycle: AD allows it; the walk must end
    dc.add_member(read, bo)  # a known contractor without a grant, by hand
    dc.add_member(read, stranger)  # an account govtui does not know
    dc.add_member(read, inner)
    make_primary(dc, boss, read)

    drift = reconcile.compare(world.engine, "ad")
    found = {(d.kind, norm(d.user_dn or ""), norm(d.via or "")) for d in drift}
    assert found == {
        ("unexpected_member", norm(bo), ""),
        ("unknown_account", norm(stranger), ""),
        ("nested_group", norm(inner), ""),
        ("nested_group", norm(deep), ""),
        ("nested_member", norm(inner_user), norm(inner)),
        ("nested_member", norm(deep_user), norm(deep)),
        ("primary_group_member", norm(boss), ""),
    }
    assert [d.fixable for d in drift if d.kind != "unexpected_member"] == [False] * 6
    assert not any(d.kind == "missing_member" for d in drift)  # ada is a member

    outcome = reconcile.fix_confirmed(world.engine, "root", "ad", drift)
    assert (outcome.fixed, outcome.report.done) == (1, 1)
    assert norm(bo) not in (dc.members(read) or set())
    assert not any(d.fixable for d in outcome.drift)
    # A second fix queues nothing: what govtui cannot remove is never retried.
    again = reconcile.fix_confirmed(world.engine, "root", "ad", outcome.drift)
    assert again.fixed == 0
    assert [op.state for op in ops(world)] == ["done", "done"]


def test_an_expected_primary_group_member_is_not_missing_and_its_revoke_says_how(
    world: World, dc: AdDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    ada = user(dc, "Smith, John")
    grant_id = world.request("E1")
    world.approve(grant_id)
    assert sync.run_once(world.engine).done == 1
    read = group(dc, PAIRS_READ)
    make_primary(dc, ada, read)

    drift = reconcile.compare(world.engine, "ad")
    assert [(d.kind, d.directory_uid) for d in drift] == [("primary_group_member", "ada")]
    assert reconcile.fix_confirmed(world.engine, "root", "ad", drift).fixed == 0

    revoke(world, grant_id)
    report = sync.run_once(world.engine)
    assert report.done == 0
    remove = ops(world)[-1]
    assert remove.operation == "remove_member" and remove.state == "pending"
    assert remove.last_error is not None
    assert "primary group" in remove.last_error
    assert "change the user's primary group" in remove.last_error
    # Back to Domain Users: the retried removal is then confirmed.
    dc.conn.modify(ada, {"primaryGroupID": [(ldap3.MODIFY_REPLACE, ["513"])]})
    with db.write_session(world.engine) as session:
        session.execute(sa.update(OutboxOp).values(next_attempt_at=clock.now() - timedelta(1)))
    assert sync.run_once(world.engine).done == 1
    assert norm(ada) not in (dc.members(read) or set())
    assert reconcile.compare(world.engine, "ad") == []
    assert run(world, "reconcile", "ad", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_pause_on_ad_lists_primary_group_and_nested_members_with_the_step_to_take(
    world: World, dc: AdDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    read = group(dc, PAIRS_READ)
    tag = secrets.token_hex(3)
    boss = dc.add_user("Primary Boss", f"pri{tag}")
    make_primary(dc, boss, read)
    team_user = dc.add_user("Team User", f"tea{tag}")
    team = dc.add_group(f"team-{tag}", members=[team_user])
    dc.add_member(read, team)
    dc.add_member(read, user(dc, "O'Brien+Jr"))  # bo, by hand

    assert run(world, "client", "pause", "acme", "--reason", "breach", "--strict") == 0
    out = capsys.readouterr().out
    # Complete for govtui's own members only: the nested group, its member and the
    # primary-group member are still there, outside its reach.
    assert (
        "complete for govtui's members; 3 outside govtui's reach remain (see below);"
        " 2/2 directory removals confirmed" in out
    )
    assert f"primary_group_member: pri{tag} in {norm(read)}" in out.lower()
    assert "change the user's primary group" in out
    assert f"nested_member: tea{tag} in {norm(read)} via {norm(team)}" in out.lower()
    assert dc.members(read) == {norm(team)}
    assert run(world, "client", "status", "acme", "--json") == 0
    state = json.loads(capsys.readouterr().out)
    assert state["complete"] is True
    assert state["outside_govtui"] == {
        "removable": 0,
        "outside_reach": 3,
        "errors": [],
        "items": state["outside_govtui"]["items"],
    }

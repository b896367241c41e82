"""Pause is total also where govtui did not add the access (issue 10, item 8), on a real
OpenLDAP: `client pause --dry-run`, the pause and `client status` report the members of the
client's groups that no grant put there (added by hand, nested groups with the accounts they
bring in and which group gives the access); `--strict` removes the hand-added direct members
(in the pause's own transaction, or later on a paused client), never restores them on resume,
and lists what it cannot remove with the step to take; "complete" only then."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlmodel import col

from govtui import db
from govtui.cli import main
from govtui.models import AuditEvent, OutboxOp
from govtui.services import sync

from .conftest import FakeClock
from .directory_support import Directory, add_target, norm
from .factories import World

PAIRS_READ = "acme-rlhf-pairs-read"


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    """ada's grant synced into acme-rlhf-pairs-read; then, by hand: bo (a contractor with no
    grant), zed (an account govtui does not know), an entry outside the users base, and a
    nested group `team` (cy) which nests `inner` (dee), which nests `team` again."""
    for uid in ("ada", "bo", "zed", "cy", "dee"):
        directory.add_person(uid)
    add_target(world.engine, directory)
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    group = directory.group(PAIRS_READ)
    directory.add_ou(f"ou=services,{directory.base}")
    outsider = directory.add_person("svc", under=f"ou=services,{directory.base}")
    team, inner = directory.group("team"), directory.group("inner")
    directory.add_group(inner, [directory.user("dee")])
    directory.add_group(team, [directory.user("cy"), inner])
    directory.add_member(inner, team)  # a cycle
    for member in (directory.user("bo"), directory.user("zed"), outsider, team):
        directory.add_member(group, member)
    return directory


def run(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    url = world.engine.url.render_as_string(hide_password=False)
    code = main(["--db", url, "--as", "root", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def kinds(items: list[dict[str, object]]) -> set[tuple[object, ...]]:
    return {
        (i["kind"], i["uid"] or norm(str(i["member_dn"])), i["via"] and norm(str(i["via"])), i["removable"])
        for i in items
    }  # fmt: skip


def expected_leftovers(ldap: Directory, *, hand_added: bool) -> set[tuple[object, ...]]:
    found: set[tuple[object, ...]] = {
        ("hand_added", norm(f"uid=svc,ou=services,{ldap.base}"), None, False),
        ("nested_group", norm(ldap.group("team")), None, False),
        ("nested_group", norm(ldap.group("inner")), None, False),
        ("nested_member", "cy", norm(ldap.group("team")), False),
        ("nested_member", "dee", norm(ldap.group("inner")), False),
    }
    if hand_added:
        found |= {("hand_added", "bo", None, True), ("hand_added", "zed", None, True)}
    return found


def test_dry_run_pause_and_status_report_what_govtui_did_not_add_then_strict_removes_it(
    world: World, ldap: Directory, capsys: pytest.CaptureFixture[str], fake_clock: FakeClock
) -> None:
    group = ldap.group(PAIRS_READ)
    code, out, _ = run(world, capsys, "client", "pause", "acme", "--reason", "x", "--dry-run")
    assert code == 0
    assert "a pause would leave: 2 added by hand (`--strict` removes them)" in out
    assert f"nested_member: dee in {group} via {ldap.group('inner')}" in out
    code, out, _ = run(
        world, capsys, "client", "pause", "acme", "--reason", "x", "--dry-run", "--json"
    )
    radius = json.loads(out)
    assert kinds(radius["outside_govtui"]["items"]) == expected_leftovers(ldap, hand_added=True)
    assert "ada" not in {i["uid"] for i in radius["outside_govtui"]["items"]}  # govtui's own

    # A pause without --strict removes ada (govtui's) and says it is NOT complete.
    code, out, _ = run(world, capsys, "client", "pause", "acme", "--reason", "breach")
    assert code == 1
    assert "NOT complete: 1/1 directory removals confirmed" in out
    assert "hand_added: bo in" in out and "`govtui client pause --strict` removes it" in out
    assert norm(ldap.user("ada")) not in (ldap.members(group) or set())
    code, out, _ = run(world, capsys, "client", "status", "acme", "--json")
    state = json.loads(out)
    assert state["complete"] is False and state["removals"]["complete"] is True
    assert (state["outside_govtui"]["removable"], state["outside_govtui"]["outside_reach"]) == (
        2,
        5,
    )

    # --strict on the paused client removes the hand-added members; the rest is listed.
    code, out, _ = run(world, capsys, "client", "pause", "acme", "--reason", "x", "--strict")
    assert code == 0, out
    assert "2 removals of members added by hand queued" in out
    assert (
        "complete for govtui's members; 5 outside govtui's reach remain (see below);"
        " 3/3 directory removals confirmed" in out
    )
    members = ldap.members(group) or set()
    assert not members & {norm(ldap.user("bo")), norm(ldap.user("zed"))}
    assert norm(ldap.group("team")) in members  # never touched: a group govtui did not make
    code, out, _ = run(world, capsys, "client", "status", "acme", "--json")
    state = json.loads(out)
    assert state["complete"] is True
    assert kinds(state["outside_govtui"]["items"]) == expected_leftovers(ldap, hand_added=False)
    with db.read_session(world.engine) as session:
        event = session.execute(
            sa.select(AuditEvent).where(col(AuditEvent.action) == "client.pause_strict")
        ).scalar_one()
    assert "bo from " in json.dumps(event.details)

    # Resume restores ada only: the strict removals had no grant behind them.
    fake_clock.advance(seconds=31)
    url = world.engine.url.render_as_string(hide_password=False)
    assert (
        main(["--db", url, "--as", "bob", "client", "resume", "acme", "--totp", world.code("bob")])
        == 0
    )
    capsys.readouterr()
    members = ldap.members(group) or set()
    assert norm(ldap.user("ada")) in members
    assert not members & {norm(ldap.user("bo")), norm(ldap.user("zed"))}


def test_a_strict_pause_queues_the_hand_added_removals_in_the_pause_itself(
    world: World, ldap: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(world, capsys, "client", "pause", "acme", "--reason", "x", "--strict")
    assert code == 0, out
    assert "3 directory removals queued (2 of members added by hand)" in out
    with db.read_session(world.engine) as session:
        pause_ops = session.execute(
            sa.select(OutboxOp.directory_uid, OutboxOp.grant_id, OutboxOp.state).where(
                col(OutboxOp.pause_id).is_not(None)
            )
        ).all()
        event = session.execute(
            sa.select(AuditEvent).where(col(AuditEvent.action) == "client.pause")
        ).scalar_one()
    assert sorted((uid, grant is None, state) for uid, grant, state in pause_ops) == [
        ("ada", False, "done"),
        ("bo", True, "done"),
        ("zed", True, "done"),
    ]
    details = json.loads(event.details) if isinstance(event.details, str) else event.details
    assert len(details["strict_removals"]) == 2
    assert "complete for govtui's members; 5 outside govtui's reach remain" in out
    assert "3/3 directory removals confirmed" in out

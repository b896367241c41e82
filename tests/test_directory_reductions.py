"""On the test slapd: the reductions of access a `contractor import` makes reach the
directory (issue 10, item 6) — a changed uid takes the old account out of its groups and puts
the new one in, and a contract end brought into the past takes the account out at the next
sync; reconcile then finds no drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from govtui import db
from govtui.cli import main
from govtui.services import grants, reconcile, sync

from .directory_support import Directory, add_target, norm
from .factories import World

HEADER = "external_id,name,email,directory_uid,contract_end\n"
PAIRS_READ = "acme-rlhf-pairs-read"


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    for uid in ("ada", "ada2", "bo"):
        directory.add_person(uid)
    add_target(world.engine, directory)
    return directory


def _import(world: World, tmp_path: Path, line: str) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(HEADER + line)
    url = world.engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "--as", "root", "contractor", "import", str(path)]) == 0


def test_a_changed_uid_moves_the_membership_and_a_revoke_removes_the_new_account(
    world: World, ldap: Directory, tmp_path: Path
) -> None:
    pairs = ldap.group(PAIRS_READ)
    grant_id = world.request("E1")
    world.approve(grant_id)
    sync.run_once(world.engine)
    assert norm(ldap.user("ada")) in (ldap.members(pairs) or set())

    _import(world, tmp_path, "E1,Ada,ada@x.example,ada2,2027-12-31\n")
    report = sync.run_once(world.engine)
    assert (report.done, report.errors) == (2, [])
    assert ldap.members(pairs) == {norm(ldap.placeholder), norm(ldap.user("ada2"))}
    assert reconcile.compare(world.engine, "ldap") == []

    with db.write_session(world.engine) as session:
        grants.revoke(session, world.op("root"), grant_id=grant_id, reason="project over")
    assert sync.run_once(world.engine).done == 1
    assert ldap.members(pairs) == {norm(ldap.placeholder)}
    assert reconcile.compare(world.engine, "ldap") == []


def test_a_contract_ended_by_import_takes_the_account_out(
    world: World, ldap: Directory, tmp_path: Path
) -> None:
    pairs = ldap.group(PAIRS_READ)
    grant_id = world.request("E1")
    world.approve(grant_id)
    sync.run_once(world.engine)

    _import(world, tmp_path, "E1,Ada,ada@x.example,ada,2026-02-28\n")
    assert world.grant(grant_id).state == "expired"
    assert sync.run_once(world.engine).done == 1
    assert ldap.members(pairs) == {norm(ldap.placeholder)}
    assert reconcile.compare(world.engine, "ldap") == []


@pytest.mark.parametrize("paged_from", [1, sync.PAGED_LOOKUP_FROM], ids=["paged", "or-filter"])
def test_both_user_lookups_find_the_same_accounts(
    world: World, directory: Directory, monkeypatch: pytest.MonkeyPatch, paged_from: int
) -> None:
    """Sync looks many uids up with one paged search of the users base, few with OR filters:
    either way an account matches without case, and only under the users base."""
    monkeypatch.setattr(sync, "PAGED_LOOKUP_FROM", paged_from)
    ada = directory.add_person("Ada")
    elsewhere = directory.add_ou(f"ou=elsewhere,{directory.base}")
    directory.add_person("bo", under=elsewhere)  # not under the users base: not bo's
    directory.add_person("ada2")  # a prefix match would be wrong
    add_target(world.engine, directory)
    world.approve(world.request("E1"))
    world.approve(world.request("E2"), by="bob")
    report = sync.run_once(world.engine)
    assert report.done == 1 and report.retrying == 1
    assert any("no entry for uid 'bo'" in error for error in report.errors)
    assert directory.members(directory.group(PAIRS_READ)) == {
        norm(directory.placeholder),
        norm(ada),
    }

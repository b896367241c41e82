"""One directory group per (scope, access level) (issue 10, security review): under the default
template `cn={client}-{project}-{scope}-{access}` the scopes `a-b/c/s` and `a/b-c/s` would
share `cn=a-b-c-s-read`, so one client's grant would put a member in the other's group. A
`scope add`, `directory add` or `scope map` that makes two pairs share a group on some target
is refused (one line, exit 2, nothing written); and a strict pause never removes a member
that a live grant on another client's scope put in a shared group (a row written before the
check, by SQL)."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.directory import group_names
from govtui.services import sync

from .conftest import snapshot
from .directory_support import Directory, add_target, norm
from .factories import Op, Person, Scope, World, build_world
from .memory_keyring import MemoryKeyring

TARGET = dict(
    name="corp", url="ldap://127.0.0.1:1", bind_dn="cn=admin,dc=x", users_base="ou=people,dc=x",
    groups_base="ou=groups,dc=x", password="pw", insecure_plaintext=True,
)  # fmt: skip


def _world(engine: Engine, *paths: str, target: bool = True) -> World:
    return build_world(
        engine,
        scopes=[Scope(p) for p in paths],
        ops=[
            Op("req", ("requester",)),
            Op("ann", ("approver", "requester"), ("a-b", "a"), enrol=True),
        ],
        people=[Person("E1", "Ada", "ada"), Person("E2", "Bo", "bo")],
        target=TARGET if target else None,
    )


def run(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(
        ["--db", world.engine.url.render_as_string(hide_password=False), "--as", "root", *argv]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_dn_key_ignores_case() -> None:
    assert group_names.dn_key("CN=A-B-c-s-Read,OU=Groups,dc=X") == group_names.dn_key(
        "cn=a-b-c-s-read,ou=groups,dc=x"
    )


def test_scope_add_that_shares_a_group_is_refused(
    engine: Engine, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(engine, "a-b/c/s", "a/z/z")
    assert run(world, capsys, "project", "add", "a/b-c")[0] == 0  # no scope yet: no group
    before = snapshot(engine)
    code, out, err = run(world, capsys, "scope", "add", "a/b-c/s", "--sensitivity", "internal")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert (
        "a-b/c/s (label) and a/b-c/s (label) would share the directory group cn=a-b-c-s-label"
        in err
    )
    assert snapshot(engine) == before
    # Another name, or a case-only twin of another one, is judged the same way.
    assert run(world, capsys, "scope", "add", "a/b-c/t", "--sensitivity", "internal")[0] == 0


def test_directory_add_whose_template_makes_two_scopes_share_a_group_is_refused(
    engine: Engine, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # No target yet, so nothing to compare against when the scopes were added.
    world = _world(engine, "a-b/c/s", "a/b-c/s", target=False)
    before = snapshot(engine)
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    code, _out, err = run(
        world, capsys, "directory", "add", "corp", "--url", "ldap://127.0.0.1:1",
        "--bind-dn", "cn=admin,dc=x", "--users-base", "ou=people,dc=x",
        "--groups-base", "ou=groups,dc=x", "--password-stdin", "--insecure-plaintext", "--no-check",
    )  # fmt: skip
    assert code == 2 and len(err.splitlines()) == 1 and "would share the directory group" in err
    assert snapshot(engine) == before
    assert memory_keyring.get_password("govtui", "directory:corp") is None  # type: ignore[attr-defined]


def test_scope_map_onto_another_pairs_group_is_refused(
    engine: Engine, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(engine, "a-b/c/s", "a/x/y")
    before = snapshot(engine)
    code, _, err = run(
        world, capsys, "scope", "map", "a/x/y", "--access", "read",
        "--group", "CN=A-B-C-S-READ,OU=Groups,dc=x",  # another spelling of a-b/c/s's group
    )  # fmt: skip
    assert code == 2 and len(err.splitlines()) == 1 and "would share" in err
    code, _, err = run(
        world, capsys, "scope", "map", "a/x/y", "--access", "write",
        "--group", "cn=a-x-y-read,ou=groups,dc=x",  # its own read group
    )  # fmt: skip
    assert code == 2 and "a/x/y (read) and a/x/y (write)" in err
    assert snapshot(engine) == before
    code, _, _ = run(
        world,
        capsys,
        "scope",
        "map",
        "a/x/y",
        "--access",
        "read",
        "--group",
        "cn=own,ou=groups,dc=x",
    )
    assert code == 0


def test_strict_pause_keeps_a_member_of_another_clients_live_grant_in_a_shared_group(
    engine: Engine, memory_keyring: MemoryKeyring, directory: Directory,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    world = _world(engine, "a-b/c/s", "a/b-c/x", target=False)
    for uid in ("ada", "bo"):
        directory.add_person(uid)
    add_target(engine, directory)
    # Renamed behind govtui's back (or written before the check existed): one shared group.
    with db.write_session(engine) as session:
        session.execute(sa.text("UPDATE dataset_scope SET name = 's' WHERE name = 'x'"))
    world.approve(world.request("E1", scope="a/b-c/s"))  # ada: client "a" only
    assert sync.run_once(engine).done == 1
    shared = directory.group("a-b-c-s-read")
    ada = norm(directory.user("ada"))
    directory.add_member(shared, directory.user("bo"))  # bo: truly added by hand
    code, out, _ = run(world, capsys, "client", "pause", "a-b", "--reason", "x", "--dry-run")
    assert code == 0 and "shared_group: ada" in out and "hand_added: bo" in out
    run(world, capsys, "client", "pause", "a-b", "--reason", "breach", "--strict")
    members = directory.members(shared) or set()
    assert ada in members  # her grant on client "a" is active: kept
    assert norm(directory.user("bo")) not in members  # the hand-added one is removed

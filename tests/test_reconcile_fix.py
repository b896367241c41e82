"""A reconcile fix corrects only the confirmed drift that is still there when it runs, from the
command line as from the TUI (reconcile.fix_confirmed): a member added by hand and granted
access meanwhile keeps it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from govtui.cli import main
from govtui.services import reconcile, sync

from .directory_support import Directory, add_target, norm, private_subtree
from .grant_world import World, build
from .memory_keyring import MemoryKeyring

PAIRS_READ = "acme-rlhf-pairs-read"


@pytest.fixture
def directory() -> Iterator[Directory]:
    yield from private_subtree()


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return build(engine)


@pytest.fixture
def ldap(world: World, directory: Directory) -> Directory:
    directory.add_person("ada")
    directory.add_person("bo")
    add_target(world.engine, directory)
    return directory


def test_cli_fix_leaves_alone_what_stopped_drifting_since_it_was_reported(
    world: World,
    ldap: Directory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pairs = ldap.group(PAIRS_READ)
    world.approve(world.request("E1"))
    sync.run_once(world.engine)
    ldap.add_member(pairs, ldap.user("bo"))  # by hand: bo has no grant (yet)

    real_compare = reconcile.compare
    calls: list[int] = []

    def compare(engine: Engine, target_name: str) -> list[reconcile.Drift]:
        drift = real_compare(engine, target_name)
        calls.append(len(drift))
        if len(calls) == 1:
            # After the drift is reported and before it is fixed, bo's grant is approved.
            world.approve(world.request("E2"), by="bob")
        return drift

    monkeypatch.setattr(reconcile, "compare", compare)
    url = world.engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "--as", "root", "reconcile", "ldap", "--fix"]) == 0
    out = capsys.readouterr().out
    assert "unexpected_member" in out  # what was reported
    assert "fix: 1 no longer drifted, left alone" in out
    assert norm(ldap.user("bo")) in (ldap.members(pairs) or set())
    assert real_compare(world.engine, "ldap") == []

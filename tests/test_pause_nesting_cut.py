"""A nesting chain deeper than the limit govtui follows is never read as complete: the cut is
an item of its own and the pause is NOT complete; what is left outside govtui's reach is
named in the summary, which says complete only for govtui's own members."""

from __future__ import annotations

import json

import pytest

from govtui.cli import main
from govtui.directory.groups import MAX_NESTING
from govtui.services import sync

from .directory_support import Directory, add_target, norm
from .factories import World


def run(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    url = world.engine.url.render_as_string(hide_password=False)
    code = main(["--db", url, "--as", "root", *argv])
    out, err = capsys.readouterr()
    return code, out + err


def chain(world: World, directory: Directory, depth: int) -> str:
    """ada granted (govtui's), and a chain of `depth` nested groups in her group with `deep`
    at its bottom; returns the client's group."""
    for uid in ("ada", "deep"):
        directory.add_person(uid)
    add_target(world.engine, directory)
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    group = directory.group("acme-rlhf-pairs-read")
    prev = directory.add_group(directory.group(f"n{depth - 1}"), [directory.user("deep")])
    for i in range(depth - 2, -1, -1):
        prev = directory.add_group(directory.group(f"n{i}"), [prev])
    directory.add_member(group, prev)
    return group


def test_a_chain_cut_by_the_depth_limit_is_reported_and_never_complete(
    world: World, directory: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    group = chain(world, directory, 50)
    code, out = run(
        world, capsys, "client", "pause", "acme", "--reason", "x", "--dry-run", "--json"
    )
    items = json.loads(out)["outside_govtui"]["items"]
    cut = [i for i in items if i["kind"] == "nesting_not_read"]
    assert [(i["member_dn"], i["via"]) for i in cut] == [
        (norm(directory.group(f"n{MAX_NESTING}")), norm(directory.group(f"n{MAX_NESTING - 1}")))
    ]
    assert cut[0]["step"].startswith(
        f"nesting deeper than {MAX_NESTING} levels below {norm(group)}: not read"
    )
    assert len([i for i in items if i["kind"] == "nested_group"]) == MAX_NESTING

    code, out = run(world, capsys, "client", "pause", "acme", "--reason", "breach")
    assert code == 1, out
    assert "NOT complete: 1/1 directory removals confirmed" in out
    assert f"nesting deeper than {MAX_NESTING} levels below" in out
    code, out = run(world, capsys, "client", "status", "acme", "--json")
    state = json.loads(out)
    assert state["removals"]["complete"] is True  # govtui's own removal is confirmed...
    assert state["complete"] is False  # ...but who the cut chain lets in is not known
    assert state["summary"].startswith("client acme is PAUSED; NOT complete: ")


def test_complete_says_it_is_only_for_govtuis_members_when_others_remain(
    world: World, directory: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    chain(world, directory, 3)  # within the limit: read to the bottom
    code, out = run(world, capsys, "client", "pause", "acme", "--reason", "breach")
    assert code == 0, out
    code, out = run(world, capsys, "client", "status", "acme", "--json")
    state = json.loads(out)
    kinds = sorted(i["kind"] for i in state["outside_govtui"]["items"])
    assert kinds == ["nested_group"] * 3 + ["nested_member"]
    assert state["complete"] is True
    assert state["summary"] == (
        "client acme is PAUSED; complete for govtui's members; 4 outside govtui's reach remain"
        " (see below); 1/1 directory removals confirmed"
    )

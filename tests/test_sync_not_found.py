"""A removal or disable is never marked done while the account may keep its access: an
account that cannot be found under the users base (moved elsewhere, say, while OpenLDAP's
memberof/refint or AD's linked `member` keep it in the group under its new DN) is looked for
under the DN its confirmed add recorded, and otherwise stays in the outbox with an error."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from govtui import db
from govtui.cli import main
from govtui.models import DirectoryTarget
from govtui.services import sync

from .conftest import FakeClock
from .directory_support import Directory, add_target, norm, outbox
from .factories import World

GROUP = "acme-rlhf-pairs-read"


def run(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    url = world.engine.url.render_as_string(hide_password=False)
    code = main(["--db", url, "--as", "root", *argv])
    out, err = capsys.readouterr()
    return code, out + err


def granted(world: World, directory: Directory) -> str:
    """ada, granted and confirmed in the group; returns the DN recorded on the add."""
    directory.add_person("ada")
    add_target(world.engine, directory)
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    (add,) = outbox(world.engine)
    assert add.user_dn is not None and norm(add.user_dn) == norm(directory.user("ada"))
    return add.user_dn


def move_out(directory: Directory) -> str:
    """Move ada out of the users base; refint keeps her in the group under the new DN."""
    elsewhere = directory.add_ou(f"ou=elsewhere,{directory.base}")
    directory.conn.modify_dn(directory.user("ada"), "uid=ada", new_superior=elsewhere)
    moved = norm(f"uid=ada,{elsewhere}")
    assert moved in (directory.members(directory.group(GROUP)) or set())
    return moved


def test_offboarding_an_account_moved_out_of_the_users_base_is_not_marked_done(
    world: World, directory: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    granted(world, directory)
    moved = move_out(directory)
    code, out = run(world, capsys, "contractor", "offboard", "E1", "--reason", "left")
    assert code == 1, out  # not confirmed: the directory has not followed
    ops = {op.operation: op for op in outbox(world.engine)[1:]}
    assert set(ops) == {"remove_member", "disable_account"}
    for op, what in ((ops["remove_member"], "removed"), (ops["disable_account"], "disabled")):
        assert op.state != "done" and op.done_at is None
        assert (
            op.last_error == f"account for uid 'ada' not found under {directory.people}; not {what}"
        )
    code, out = run(world, capsys, "sync", "status", "--json")
    assert '"pending": 0' not in out or '"failed": 0' not in out, out
    # Still there, and no sync pretends otherwise.
    assert moved in (directory.members(directory.group(GROUP)) or set())
    report = sync.run_once(world.engine)
    assert report.done == 0


def test_a_stale_recorded_dn_still_in_the_group_is_removed_by_that_dn(
    world: World, directory: Directory
) -> None:
    recorded = granted(world, directory)
    group = directory.group(GROUP)
    moved = move_out(directory)
    # A server without refint: the group keeps the old DN, not the new one.
    directory.remove_member(group, moved)
    directory.add_member(group, recorded)
    code = main(
        [
            "--db", world.engine.url.render_as_string(hide_password=False), "--as", "root",
            "contractor", "offboard", "E1", "--reason", "left", "--no-sync",
        ]
    )  # fmt: skip
    assert code == 0
    sync.run_once(world.engine)
    ops = {op.operation: op for op in outbox(world.engine)[1:]}
    assert ops["remove_member"].state == "done", ops["remove_member"].last_error
    assert ops["remove_member"].user_dn == recorded
    assert norm(recorded) not in (directory.members(group) or set())
    # The disable has no entry to lock at the old DN: not done.
    assert ops["disable_account"].state != "done"


def test_a_recorded_dn_that_still_exists_is_removed_and_disabled(
    world: World, directory: Directory, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = granted(world, directory)
    # The users base moved away from ada (narrowed to an empty OU): her uid is not found
    # there, but the entry at the recorded DN is hers and still in the group.
    narrower = directory.add_ou(f"ou=staff,{directory.people}")
    with db.write_session(world.engine) as session:
        session.execute(sa.update(DirectoryTarget).values(users_base=narrower))
    code, out = run(world, capsys, "contractor", "offboard", "E1", "--reason", "left")
    assert code == 0, out
    ops = {op.operation: op for op in outbox(world.engine)[1:]}
    assert {o: (op.state, op.user_dn) for o, op in ops.items()} == {
        "remove_member": ("done", recorded),
        "disable_account": ("done", recorded),
    }
    assert norm(recorded) not in (directory.members(directory.group(GROUP)) or set())
    assert directory.attribute(recorded, "pwdAccountLockedTime")


def test_an_add_for_a_missing_account_is_not_helped_by_a_recorded_dn(
    world: World, directory: Directory, fake_clock: FakeClock
) -> None:
    granted(world, directory)
    move_out(directory)
    fake_clock.advance(seconds=31)  # a fresh TOTP step for the second approval
    world.approve(world.request("E1", scope="acme/rlhf/notes"))
    sync.run_once(world.engine)
    last = outbox(world.engine)[-1]
    assert last.operation == "add_member" and last.state == "pending"
    assert last.last_error == f"no entry for uid 'ada' under {directory.people}"
    assert last.user_dn is None

"""On AD too, a removal or disable whose account has moved out of the users base is not done:
AD keeps the moved account in the group (`member` is a linked attribute), so "not found" is
an error on the op, retried, never a confirmation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from govtui.services import sync

from .ad_support import UAC_ACCOUNTDISABLE, AdDirectory, norm, private_ou
from .factories import World
from .test_ad_sync import PAIRS_READ, PASSWORD, add_ad_target, group, ops, run, user


@pytest.fixture
def ad() -> Iterator[AdDirectory]:
    yield from private_ou()


def test_offboarding_an_ad_account_moved_out_of_the_users_base_is_not_marked_done(
    world: World, ad: AdDirectory, capsys: pytest.CaptureFixture[str]
) -> None:
    ad.add_user("Smith, John", "ada", password=PASSWORD)
    add_ad_target(world, ad)
    world.approve(world.request("E1"))
    assert sync.run_once(world.engine).done == 1
    elsewhere = ad.add_ou(f"OU=elsewhere,{ad.base}")
    ad.conn.modify_dn(user(ad, "Smith, John"), "CN=Smith\\, John", new_superior=elsewhere)
    moved = f"CN=Smith\\, John,{elsewhere}"
    assert norm(moved) in (ad.members(group(ad, PAIRS_READ)) or set())

    assert run(world, "contractor", "offboard", "E1", "--reason", "left") == 1
    capsys.readouterr()
    later = {op.operation: op for op in ops(world)[1:]}
    for operation, what in (("remove_member", "removed"), ("disable_account", "disabled")):
        assert later[operation].state != "done"
        assert later[operation].last_error == (
            f"account for uid 'ada' not found under {ad.people}; not {what}"
        )
    assert norm(moved) in (ad.members(group(ad, PAIRS_READ)) or set())
    assert not ad.uac(moved) & UAC_ACCOUNTDISABLE

"""`govtui grant approve|deny --pending`: the CLI's mark-all, as the approvals screen's ctrl+a
(every request waiting for the actor as of now, narrowed by --client and --search); bad input
is one line, exit 2, nothing written, and no code is asked for when nothing waits."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from govtui import db
from govtui.services import grant_views

from .conftest import snapshot
from .factories import World, small_vendor
from .test_grant_cli import run


@pytest.fixture
def world(engine: Engine, memory_keyring: object) -> World:
    return small_vendor(engine)


def test_approve_and_deny_every_pending_request(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = world.request(scope="acme/rlhf/pairs")
    notes = world.request(scope="acme/rlhf/notes", contractor="E2")
    other = world.request(scope="other/p/s")
    code = world.code("ann")
    assert (
        run(world, "grant", "approve", "--pending", "--search", "ada", "--totp", code, actor="ann")
        == 0
    )
    captured = capsys.readouterr()
    assert "1 request waits for you as of" in captured.err
    assert f"grant {pairs} approved" in captured.out
    assert [world.grant(g).state for g in (pairs, notes, other)] == [
        "active",
        "requested",
        "requested",
    ]
    assert run(world, "grant", "deny", "--pending", "--reason", "not now", actor="ann") == 0
    assert "denied 1" in capsys.readouterr().out
    assert [world.grant(g).state for g in (notes, other)] == ["denied", "requested"]
    with db.read_session(world.engine) as session:
        assert [r.id for r in grant_views.pending_for(session, world.op("olga"))] == [other]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pending", "--totp", "000000"), "no request waits for you"),
        (
            ("--pending", "--client", "other", "--totp", "000000"),
            "no request waits for you (client other)",
        ),
        (("--client", "acme", "--totp", "000000"), "--client and --search narrow --pending"),
        (("1", "--pending", "--totp", "000000"), "name grant ids or --pending, not both"),
        (("--totp", "000000"), "name at least one grant id"),
    ],
)
def test_bad_pending_input_is_one_line_and_writes_nothing(
    world: World, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    world.request(scope="other/p/s", by="ann")  # ann's own: not hers to approve
    before = snapshot(world.engine)
    assert run(world, "grant", "approve", *args, actor="ann") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert snapshot(world.engine) == before

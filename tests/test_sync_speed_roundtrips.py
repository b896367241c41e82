"""What a sync costs in round trips to the directory, against the real slapd.

scripts/bench_sync times a large sync against the ldapmodify floor; timings are too noisy for
a test, but the number of operations sync sends is exact, and it is what sets the cost:
one search for the users, then per group one modify and one read-back. A group that is not
as the ops assume (changed by hand) costs a refused modify and a read more, and still ends
exactly as the ops want."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import ldap3
import pytest

from govtui import clock, db
from govtui.models import OutboxOp
from govtui.services import sync

from .directory_support import (
    Directory,
    WriteCounter,
    add_target,
    norm,
    outbox,
)
from .factories import World


def queue(world: World, target_id: int, ops: list[tuple[str, str, str]]) -> None:
    """Pending (operation, group DN, uid) rows, as the grant services would write them."""
    now = clock.now()
    with db.write_session(world.engine) as session:
        session.add_all(
            OutboxOp(
                target_id=target_id,
                operation=operation,
                group_dn=group_dn,
                directory_uid=uid,
                next_attempt_at=now,
                created_at=now,
            )
            for operation, group_dn, uid in ops
        )


def count_requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every search, modify and add sent, accepted or refused."""
    sent: Counter[str] = Counter()
    for method in ("search", "modify", "add"):
        original = getattr(ldap3.Connection, method)

        def counting(
            *args: Any, _name: str = method, _original: Callable[..., Any] = original, **kwargs: Any
        ) -> Any:
            sent[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(ldap3.Connection, method, counting)
    return sent


def test_a_sync_sends_one_modify_and_one_read_back_per_group(
    world: World, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [directory.add_person(f"p{i}") for i in range(6)]
    groups = [
        directory.add_group(directory.group(f"g{g}"), [directory.placeholder, *people[:4]])
        for g in range(3)
    ]
    target = add_target(world.engine, directory)
    ops = [("remove_member", group, f"p{i}") for group in groups for i in range(4)]
    ops += [("add_member", group, f"p{i}") for group in groups for i in (4, 5)]
    queue(world, db.ident(target), ops)

    sent = count_requests(monkeypatch)
    report = sync.run_once(world.engine)
    assert (report.done, report.retrying, report.failed, report.errors) == (18, 0, 0, [])
    # One search finds all six users; each group gets one modify and one read-back.
    assert sent == {"search": 1 + 3, "modify": 3}
    for group in groups:
        assert directory.members(group) == {
            norm(directory.placeholder),
            norm(people[4]),
            norm(people[5]),
        }


def test_a_group_unlike_the_ops_assume_gets_exactly_the_difference(
    world: World, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone removed p0 and added p2 by hand before the sync: the modify as queued is
    refused whole (nothing changes), the group is read, and only the rest is sent."""
    _, p1, p2, p3 = (directory.add_person(f"p{i}") for i in range(4))
    group = directory.add_group(directory.group("g"), [directory.placeholder, p1, p2])
    target = add_target(world.engine, directory)
    queue(
        world,
        db.ident(target),
        [
            ("remove_member", group, "p0"),
            ("remove_member", group, "p1"),
            ("add_member", group, "p2"),
            ("add_member", group, "p3"),
        ],
    )

    sent = count_requests(monkeypatch)
    accepted = WriteCounter()
    accepted.install(monkeypatch)
    report = sync.run_once(world.engine)
    assert (report.done, report.retrying, report.failed, report.errors) == (4, 0, 0, [])
    # find, read after the refusal, read-back; the refused modify and the one that applied.
    assert sent == {"search": 3, "modify": 2}
    assert accepted.writes == {norm(group): 1}
    assert directory.members(group) == {norm(directory.placeholder), norm(p2), norm(p3)}
    assert [(op.state, op.attempts) for op in outbox(world.engine)] == [("done", 1)] * 4

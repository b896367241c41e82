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
from ldap3.strategy.sync import SyncStrategy

from govtui import clock, db
from govtui.directory import groups as groups_module
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


# -- a large push: its modifies pipelined ------------------------------------------------------


def count_sent(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], list[int]]:
    """Counts every request sent at the protocol level (pipelined ones included), and how
    many modifies were unanswered at each modify sent."""
    sent: Counter[str] = Counter()
    in_flight: list[int] = []
    original = SyncStrategy.send

    def send(self: SyncStrategy, message_type: str, request: Any, controls: Any = None) -> int:
        sent[message_type] += 1
        if message_type == "modifyRequest":
            in_flight.append(
                sum(1 for r in self._outstanding.values() if r.get("type") == "modifyRequest")
            )
        return original(self, message_type, request, controls)

    monkeypatch.setattr(SyncStrategy, "send", send)
    return sent, in_flight


def many_groups(
    world: World, directory: Directory, count: int = sync.PIPELINE_FROM + 2
) -> tuple[list[str], list[str]]:
    """`count` groups holding p0-p3, each queued to lose p0-p3 and gain p4-p5."""
    people = [directory.add_person(f"p{i}") for i in range(6)]
    groups = [
        directory.add_group(directory.group(f"g{g}"), [directory.placeholder, *people[:4]])
        for g in range(count)
    ]
    target = add_target(world.engine, directory)
    ops = [("remove_member", group, f"p{i}") for group in groups for i in range(4)]
    ops += [("add_member", group, f"p{i}") for group in groups for i in (4, 5)]
    queue(world, db.ident(target), ops)
    return people, groups


def test_a_large_push_pipelines_its_modifies_each_read_back_after_its_answer(
    world: World, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    people, groups = many_groups(world, directory)
    sent, in_flight = count_sent(monkeypatch)
    one_at_a_time = count_requests(monkeypatch)
    report = sync.run_once(world.engine)
    assert (report.done, report.retrying, report.failed, report.errors) == (
        6 * len(groups), 0, 0, [],
    )  # fmt: skip
    # Still one modify and one read-back per group (and one user search), but the modifies
    # went out several at a time, never more than the window, none one at a time.
    assert sent == {"bindRequest": 1, "searchRequest": 1 + len(groups),
                    "modifyRequest": len(groups), "unbindRequest": 1}  # fmt: skip
    assert max(in_flight) == groups_module.PIPELINE_WINDOW - 1
    assert one_at_a_time == {"search": 1}
    for group in groups:
        assert directory.members(group) == {
            norm(directory.placeholder), norm(people[4]), norm(people[5]),
        }  # fmt: skip


def test_in_a_large_push_a_group_unlike_assumed_still_ends_as_the_ops_want(
    world: World, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone removed p0 from g3 and added p4 to it by hand: its pipelined modify is refused
    (nothing changes), and the one-at-a-time path sends exactly the difference."""
    people, groups = many_groups(world, directory)
    directory.remove_member(groups[3], people[0])
    directory.add_member(groups[3], people[4])
    sent, _ = count_sent(monkeypatch)
    accepted = WriteCounter()
    accepted.install(monkeypatch)
    report = sync.run_once(world.engine)
    assert (report.done, report.retrying, report.failed, report.errors) == (
        6 * len(groups), 0, 0, [],
    )  # fmt: skip
    # g3: the refused pipelined modify, the same refused again, a read, the difference, a
    # read-back; every other group: one modify, one read-back.
    assert sent["modifyRequest"] == len(groups) + 2
    assert sent["searchRequest"] == 1 + len(groups) + 1
    assert accepted.writes == {norm(groups[3]): 1}  # the one-at-a-time path's writes only
    for group in groups:
        assert directory.members(group) == {
            norm(directory.placeholder), norm(people[4]), norm(people[5]),
        }  # fmt: skip


def test_a_connection_lost_mid_pipeline_loses_nothing_and_applies_each_change_once(
    world: World, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops after some pipelined modifies were answered: those groups are done,
    the rest retry (no traceback), and the next sync finishes them exactly."""
    people, groups = many_groups(world, directory)
    original = SyncStrategy.receiving
    calls = 0

    def receiving(self: SyncStrategy) -> list[bytes]:
        nonlocal calls
        calls += 1
        if calls == 6:  # bind, user search, then a few pipelined answers
            directory.stop_server()
        return original(self)  # type: ignore[no-any-return]

    monkeypatch.setattr(SyncStrategy, "receiving", receiving)
    try:
        report = sync.run_once(world.engine)
    finally:
        monkeypatch.setattr(SyncStrategy, "receiving", original)
        directory.start_server()
    assert report.failed == 0 and report.retrying > 0 and report.errors
    assert report.done + report.retrying == 6 * len(groups)
    report = sync.run_once(world.engine, due="now")
    assert (report.done, report.retrying, report.failed, report.errors) == (
        report.done, 0, 0, [],
    )  # fmt: skip
    assert all(op.state == "done" for op in outbox(world.engine))
    for group in groups:
        assert directory.members(group) == {
            norm(directory.placeholder), norm(people[4]), norm(people[5]),
        }  # fmt: skip

"""TOTP: RFC 6238 vectors, the ±1 step window, replay, and lock-out with a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from govtui import db
from govtui.errors import PolicyError
from govtui.models import Operator
from govtui.security import totp
from govtui.services import second_factor
from govtui.services.second_factor import CodeRejected

from .conftest import FakeClock, code
from .factories import World, small_vendor

# RFC 6238 appendix B, SHA-1: the seed "12345678901234567890" and 8-digit codes; pyotp's
# 6-digit codes are the last six digits of the same values.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc6238_vectors(unix_time: int, expected: str) -> None:
    at = datetime.fromtimestamp(unix_time, UTC)
    assert totp.code_for_step(RFC_SECRET, totp.step_of(at)) == expected[-6:]
    assert totp.matching_step(RFC_SECRET, expected[-6:], at) == totp.step_of(at)


def test_window_is_one_step_either_side() -> None:
    at = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
    now = totp.step_of(at)
    for offset in (-1, 0, 1):
        assert (
            totp.matching_step(RFC_SECRET, totp.code_for_step(RFC_SECRET, now + offset), at)
            == now + offset
        )
    for offset in (-2, 2):
        assert (
            totp.matching_step(RFC_SECRET, totp.code_for_step(RFC_SECRET, now + offset), at) is None
        )
    assert totp.matching_step(RFC_SECRET, "12345", at) is None
    assert totp.matching_step(RFC_SECRET, "abcdef", at) is None


def test_only_ascii_digits_make_a_code() -> None:
    """Other scripts' digits pass str.isdigit (and int()); as a code they are a wrong one,
    not a crash in compare_digest, even when they spell the right code."""
    at = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
    right = totp.code_for_step(RFC_SECRET, totp.step_of(at))
    # Arabic-Indic (U+0660) and fullwidth (U+FF10) digits spelling the right code.
    spelled = [right.translate({48 + d: base + d for d in range(10)}) for base in (0x660, 0xFF10)]
    for given in (*spelled, right[:5] + "\u0663", right[:5] + "\u00b2"):
        assert given.isdigit() and totp.matching_step(RFC_SECRET, given, at) is None


def test_new_secrets_have_160_bits() -> None:
    secret = totp.new_secret()
    assert len(secret) * 5 >= 160 and secret != totp.new_secret()


@pytest.fixture
def world(engine: Engine, memory_keyring: object) -> World:
    return small_vendor(engine)


def _verify(world: World, name: str, given: str) -> int:
    with db.write_session(world.engine) as session:
        return second_factor.verify(session, world.op(name), given, purpose="test")


def test_same_code_twice_is_refused(world: World) -> None:
    current = world.code("ann")
    _verify(world, "ann", current)
    with pytest.raises(CodeRejected, match="already used"):
        _verify(world, "ann", current)


def test_earlier_step_after_a_later_one_is_refused(world: World) -> None:
    _verify(world, "ann", world.code("ann", 1))
    with pytest.raises(CodeRejected, match="already used"):
        _verify(world, "ann", world.code("ann", 0))


def test_previous_and_next_step_accepted_two_away_refused(
    world: World, fake_clock: FakeClock
) -> None:
    fake_clock.advance(minutes=5)
    _verify(world, "ann", world.code("ann", -1))
    _verify(world, "bob", world.code("bob", 1))
    with pytest.raises(CodeRejected, match="wrong code"):
        _verify(world, "ann", world.code("ann", 2))
    with pytest.raises(CodeRejected, match="wrong code"):
        _verify(world, "bob", world.code("bob", -2))


def test_codes_are_per_operator(world: World) -> None:
    with pytest.raises(CodeRejected, match="wrong code"):
        _verify(world, "bob", world.code("ann"))


def test_five_failures_lock_for_fifteen_minutes(world: World, fake_clock: FakeClock) -> None:
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(CodeRejected, match=f"{tries_left} tries left"):
            _verify(world, "ann", "000000")
    with pytest.raises(CodeRejected, match="locked for 15 minutes"):
        _verify(world, "ann", "000000")
    with pytest.raises(CodeRejected, match="locked for 15 minutes"):
        _verify(world, "ann", world.code("ann"))  # even the right code
    fake_clock.advance(minutes=14, seconds=30)
    with pytest.raises(CodeRejected, match="locked for 1 minute"):
        _verify(world, "ann", world.code("ann"))
    fake_clock.advance(seconds=31)
    _verify(world, "ann", world.code("ann"))
    assert world.op("ann").totp_locked_until is None


def test_a_correct_code_resets_the_failure_count(world: World, fake_clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(CodeRejected):
            _verify(world, "ann", "000000")
    _verify(world, "ann", world.code("ann"))
    fake_clock.advance(seconds=30)
    with pytest.raises(CodeRejected, match="4 tries left"):
        _verify(world, "ann", "000000")


def test_failures_and_lockouts_are_audited(world: World) -> None:
    from govtui.services import audit

    for _ in range(5):
        with pytest.raises(CodeRejected):
            _verify(world, "ann", "000000")
    with db.read_session(world.engine) as session:
        actions = [line for line in audit.export_lines(session) if '"operator:ann"' in line]
    assert sum('"totp.failure"' in a for a in actions) == 4
    assert sum('"totp.lockout"' in a for a in actions) == 1
    assert sum('"totp.enrolled"' in a for a in actions) == 1


def test_unenrolled_operator_cannot_approve(world: World) -> None:
    with pytest.raises(PolicyError, match="no TOTP enrolment"):
        _verify(world, "req", "123456")


def test_lockout_shows_remaining_time(world: World, fake_clock: FakeClock) -> None:
    for _ in range(5):
        with pytest.raises(CodeRejected):
            _verify(world, "ann", "000000")
    ann: Operator = world.op("ann")
    assert second_factor.remaining_lockout(ann) == timedelta(minutes=15)
    _ = code


def _failures(world: World, name: str) -> int:
    return world.op(name).totp_failures


def test_a_wrong_code_after_a_write_rolls_the_write_back_and_still_counts(world: World) -> None:
    """The order of verifying and writing no longer matters: what the caller wrote before the
    rejected code is rolled back, and the failure is counted in a transaction of its own."""
    from sqlmodel import select

    from govtui.models import Client
    from govtui.services import audit, catalog

    with (
        pytest.raises(CodeRejected, match="4 tries left"),
        db.write_session(world.engine) as session,
    ):
        catalog.add_client(session, world.op("root"), name="written-first")
        second_factor.verify(session, world.op("ann"), "000000", purpose="test")
    assert _failures(world, "ann") == 1
    with db.read_session(world.engine) as session:
        assert session.exec(select(Client).where(Client.name == "written-first")).first() is None
        lines = list(audit.export_lines(session))
        assert not any("written-first" in line for line in lines)
        assert '"totp.failure"' in lines[-1] and '"failures":1' in lines[-1]
        assert audit.verify(session, world.engine).ok


def test_a_caller_that_swallows_the_rejection_still_has_it_counted(world: World) -> None:
    with db.write_session(world.engine) as session, pytest.raises(CodeRejected):
        second_factor.verify(session, world.op("ann"), "000000", purpose="test")
    assert _failures(world, "ann") == 1

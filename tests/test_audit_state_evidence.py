"""`audit verify` replays issue 13's rows too (services/audit_state_evidence.py): an evidence
key, an operator signing key or a review schedule inserted or changed by SQL leaves the chain
intact, and is named; the same rows made through govtui verify clean. On SQLite and
PostgreSQL (the engine fixture)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli import main
from govtui.models import EvidenceKey, OperatorKey, ReviewSchedule, ReviewScheduleReviewer
from govtui.security import signing
from govtui.services import act_signatures, audit_state, evidence_keys, operators
from govtui.services.audit import format_time

from .conftest import FakeClock
from .factories import ADMIN, World, review_vendor, with_evidence_key
from .memory_keyring import MemoryKeyring

SHAPE = ["--client", "acme", "--reviewer", "rita", "--if-no-answer", "revoke", "--due-in", "7"]


def cli(world: World, *args: str) -> int:
    url = world.engine.url.render_as_string(hide_password=False)
    return main(["--db", url, "--as", ADMIN, *args])


def write(engine: Engine, statements: Any) -> None:
    """What someone who can write the database does, outside govtui (one statement or a
    list, in one transaction)."""
    with engine.begin() as conn:
        for statement in statements if isinstance(statements, list) else [statements]:
            conn.execute(statement)


def one(engine: Engine, statement: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(statement).one()


@pytest.fixture
def lived(engine: Engine, memory_keyring: MemoryKeyring, fake_clock: FakeClock) -> World:
    """The review vendor through every issue-13 flow: enrolled operators' keys (pending),
    the evidence key made and their keys registered, the key rotated, ann's key replaced
    (registered at once, the old one retired), a schedule added and moved on by a start with
    nothing to review, another added and removed."""
    advance = lambda: fake_clock.advance(seconds=31)  # noqa: E731  (a fresh TOTP step)
    world = with_evidence_key(review_vendor(engine), advance)
    with db.write_session(engine) as session:
        evidence_keys.rotate(session, operators.find(session, ADMIN), code=world.code(ADMIN))
    advance()
    with db.write_session(engine) as session:
        act_signatures.create_own_key(
            session, operators.find(session, "ann"), code=world.code("ann")
        )
    assert cli(world, "review", "schedule", "add", "monthly", *SHAPE, "--every", "30") == 0
    assert cli(world, "review", "schedule", "add", "gone", *SHAPE, "--every", "30") == 0
    assert cli(world, "review", "schedule", "remove", "gone") == 0
    assert cli(world, "review", "due", "--start-scheduled") == 0  # nothing to review: skipped
    return world


def verify(world: World, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli(world, "audit", "verify")
    return rc, capsys.readouterr().out


def named(
    world: World,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    undo: Any,
    finding: str,
) -> None:
    """`change` (SQL) makes `audit verify` exit 1 naming `finding`; `undo` makes it clean."""
    write(world.engine, change)
    rc, out = verify(world, capsys)
    assert rc == 1, out
    assert f"state not backed by the chain: {finding}" in out.splitlines(), out
    write(world.engine, undo)
    rc, out = verify(world, capsys)
    assert rc == 0, out


def test_the_flows_of_issue_13_verify_clean(
    lived: World, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = verify(lived, capsys)
    assert rc == 0, out
    with db.read_session(lived.engine) as session:
        assert audit_state.check(session).ok
        assert len(session.execute(sa.select(EvidenceKey)).all()) == 2
        retired = session.execute(sa.select(OperatorKey).where(OperatorKey.retired_at.is_not(None)))  # type: ignore[union-attr]
        assert len(retired.all()) == 1
        removed = session.execute(sa.select(ReviewSchedule.name, ReviewSchedule.removed_at))  # type: ignore[call-overload]
        assert sorted((n, r is not None) for n, r in removed) == [
            ("gone", True),
            ("monthly", False),
        ]


EK = EvidenceKey.__table__.c  # type: ignore[attr-defined]
OK = OperatorKey.__table__.c  # type: ignore[attr-defined]
RS = ReviewSchedule.__table__.c  # type: ignore[attr-defined]
RSR = ReviewScheduleReviewer.__table__.c  # type: ignore[attr-defined]


def test_an_evidence_key_inserted_or_changed_by_sql_is_named(
    lived: World, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = lived.engine
    rogue = signing.generate()
    now = clock.now()
    current = one(
        engine, sa.select(EK.id, EK.fingerprint, EK.public_key).where(EK.retired_at.is_(None))
    )
    retired = one(
        engine,
        sa.select(EK.id, EK.fingerprint, EK.public_key, EK.retired_at).where(
            EK.retired_at.is_not(None)
        ),
    )
    # A retired key of one's own (the one-current index does not stop it): attack13 finding 1.
    named(
        lived,
        capsys,
        sa.insert(EvidenceKey).values(
            fingerprint=rogue.fingerprint,
            public_key=rogue.public_pem,
            keyring_ref="x",
            created_by=1,
            created_at=now - timedelta(days=1),
            retired_at=now - timedelta(hours=1),
        ),
        sa.delete(EvidenceKey).where(EK.fingerprint == rogue.fingerprint),
        f"evidence key {rogue.fingerprint!r} has no evidence.key_init/key_rotate event "
        "(inserted by SQL?)",
    )
    # The retired key's public key swapped for one's own, its fingerprint column kept (the
    # current key's would also break the signed checkpoint, which audit verify checks first).
    change = sa.update(EvidenceKey).where(EK.id == retired.id)
    named(
        lived,
        capsys,
        change.values(public_key=rogue.public_pem),
        change.values(public_key=retired.public_key),
        f"evidence key {retired.fingerprint!r}: its public key's fingerprint is "
        f"{rogue.fingerprint!r} (changed by SQL?)",
    )
    # Both columns swapped: the row is no event's, and the event's key is gone.
    named(
        lived,
        capsys,
        change.values(public_key=rogue.public_pem, fingerprint=rogue.fingerprint),
        change.values(public_key=retired.public_key, fingerprint=retired.fingerprint),
        f"evidence key {retired.fingerprint!r} has an evidence.key_init event but no row "
        "(deleted by SQL?)",
    )
    # A retired key made current again (the current one retired by SQL in its place).
    current_row = sa.update(EvidenceKey).where(EK.id == current.id)
    retired_row = sa.update(EvidenceKey).where(EK.id == retired.id)
    named(
        lived,
        capsys,
        [current_row.values(retired_at=now), retired_row.values(retired_at=None)],
        [retired_row.values(retired_at=retired.retired_at), current_row.values(retired_at=None)],
        f"evidence key {retired.fingerprint!r} was retired (evidence.key_rotate) but is "
        "current again",
    )


def test_an_operator_key_inserted_or_changed_by_sql_is_named(
    lived: World, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = lived.engine
    forged = signing.generate()
    now = clock.now()
    ann, bob = lived.op("ann").id, lived.op("bob").id
    old = one(
        engine, sa.select(OK.id, OK.fingerprint, OK.retired_at).where(OK.retired_at.is_not(None))
    )
    new = one(
        engine,
        sa.select(OK.id, OK.fingerprint).where(OK.operator_id == ann, OK.retired_at.is_(None)),
    )
    named(
        lived,
        capsys,
        sa.insert(OperatorKey).values(
            operator_id=bob,
            fingerprint=forged.fingerprint,
            public_key=forged.public_pem,
            keyring_ref="y",
            registered_at=now,
            registration_sig="AAAA",
        ),
        sa.delete(OperatorKey).where(OK.fingerprint == forged.fingerprint),
        f"operator key {forged.fingerprint!r} of operator 'bob' has no operator.key_create "
        "event (inserted by SQL?)",
    )
    # ann's key handed to bob.
    named(
        lived,
        capsys,
        sa.update(OperatorKey).where(OK.id == new.id).values(operator_id=bob),
        sa.update(OperatorKey).where(OK.id == new.id).values(operator_id=ann),
        f"operator key {new.fingerprint!r} of operator 'bob': its operator.key_create event "
        "made it for 'ann' (changed by SQL?)",
    )
    # ann's retired key made current again, or retired later than its successor was made
    # (either lets a leaked old key sign in the meantime).
    named(
        lived,
        capsys,
        sa.update(OperatorKey).where(OK.id == old.id).values(retired_at=None),
        sa.update(OperatorKey).where(OK.id == old.id).values(retired_at=old.retired_at),
        f"operator key {old.fingerprint!r} of operator 'ann' was retired (operator.key_create "
        f"of {new.fingerprint!r}) but is current again",
    )
    later = old.retired_at + timedelta(days=3)
    named(
        lived,
        capsys,
        sa.update(OperatorKey).where(OK.id == old.id).values(retired_at=later),
        sa.update(OperatorKey).where(OK.id == old.id).values(retired_at=old.retired_at),
        f"operator key {old.fingerprint!r} of operator 'ann' was retired at {format_time(later)}, "
        f"not when operator.key_create made {new.fingerprint!r} ({format_time(old.retired_at)})",
    )


@pytest.mark.parametrize(
    ("column", "value", "finding"),
    [
        ("every_days", 3650, "every_days is 3650, its event says 30"),
        ("if_no_answer", "keep", "if_no_answer is 'keep', its event says 'revoke'"),
        ("client", "other", "client is 'other', its event says 'acme'"),
        ("reviewers", "ravi", "reviewers is ['ravi'], its event says ['rita']"),
        ("next_start_at", None, "next_start_at is"),
    ],
)
def test_a_review_schedule_inserted_or_changed_by_sql_is_named(
    lived: World, capsys: pytest.CaptureFixture[str], column: str, value: Any, finding: str
) -> None:
    engine = lived.engine
    row = one(engine, sa.select(RS).where(RS.name == "monthly"))
    ids = {name: lived.op(name).id for name in ("rita", "ravi")}
    clients = dict(one_of(engine, "SELECT name, id FROM client"))

    def change(**values: Any) -> Any:
        return sa.update(ReviewSchedule).where(RS.id == row.id).values(**values)

    if column == "client":
        do, undo = change(client_id=clients[value]), change(client_id=row.client_id)
    elif column == "reviewers":
        reviewer = sa.update(ReviewScheduleReviewer).where(RSR.schedule_id == row.id)
        do, undo = reviewer.values(operator_id=ids[value]), reviewer.values(operator_id=ids["rita"])
    elif column == "next_start_at":
        # Postponed by a year: the review would not start when it is due.
        later = row.next_start_at + timedelta(days=365)
        do, undo = change(next_start_at=later), change(next_start_at=row.next_start_at)
    else:
        do, undo = change(**{column: value}), change(**{column: getattr(row, column)})
    write(engine, do)
    rc, out = verify(lived, capsys)
    assert rc == 1, out
    assert f"state not backed by the chain: review schedule 'monthly': {finding}" in out, out
    write(engine, undo)
    assert verify(lived, capsys)[0] == 0


def test_a_review_schedule_inserted_or_unremoved_by_sql_is_named(
    lived: World, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = lived.engine
    row = one(engine, sa.select(RS).where(RS.name == "monthly"))
    values = {k: v for k, v in row._mapping.items() if k not in ("id", "name")}
    named(
        lived,
        capsys,
        sa.insert(ReviewSchedule).values(name="never", **values),
        sa.delete(ReviewSchedule).where(RS.name == "never"),
        "review schedule 'never' has no review.schedule_add event (inserted by SQL?)",
    )
    gone = sa.update(ReviewSchedule).where(RS.name == "gone")
    was = one(engine, sa.select(RS.removed_at, RS.removed_by).where(RS.name == "gone"))
    named(
        lived,
        capsys,
        gone.values(removed_at=None, removed_by=None),
        gone.values(removed_at=was.removed_at, removed_by=was.removed_by),
        "review schedule 'gone' was removed (review.schedule_remove) but is active again",
    )
    monthly = sa.update(ReviewSchedule).where(RS.name == "monthly")
    named(
        lived,
        capsys,
        monthly.values(removed_at=clock.now(), removed_by=row.created_by),
        monthly.values(removed_at=None, removed_by=None),
        "review schedule 'monthly' was removed by no review.schedule_remove event",
    )


def one_of(engine: Engine, text: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(text))]

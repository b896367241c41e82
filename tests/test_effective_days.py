"""What the request form shows before a request is sent: the days a grant approved now would
last after every cap of DESIGN invariant 1, and which cap bites (services.grants)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from govtui import db
from govtui.errors import GovtuiError
from govtui.services import grants
from tests.factories import World


def _effective(world: World, scope: str, days: int | None, who: str | None = None) -> object:
    with db.read_session(world.engine) as session:
        return grants.effective_days(session, scope_path=scope, days=days, contractor=who)


def test_the_days_after_the_caps_and_the_cap_that_bites(world: World) -> None:
    asked = _effective(world, "acme/rlhf/pairs", 45, "E1")  # confidential: 30 at most
    assert asked == grants.EffectiveDays(
        30, 45, "the confidential tier's cap of 30 days", datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    )
    assert _effective(world, "acme/rlhf/pairs", 10, "E1") == grants.EffectiveDays(
        10, 10, None, datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
    )
    # Nothing asked: the most the scope allows; restricted, the tier's cap of 14 days.
    most = _effective(world, "acme/rlhf/redteam", None)
    assert isinstance(most, grants.EffectiveDays)
    assert (most.days, most.asked, most.because) == (
        14,
        None,
        "the restricted tier's cap of 14 days",
    )
    # The scope's own limit (60 days) below its tier's (internal: 90).
    notes = _effective(world, "acme/rlhf/notes", 75)
    assert isinstance(notes, grants.EffectiveDays)
    assert (notes.days, notes.because) == (60, "the scope's limit of 60 days")
    # E2's contract ends on 2026-03-06: the grant ends with it, whatever was asked.
    bo = _effective(world, "acme/rlhf/notes", 20, "E2")
    assert isinstance(bo, grants.EffectiveDays)
    assert (bo.days, bo.because) == (4, "the contract's end on 2026-03-06")
    assert bo.ends_at == datetime(2026, 3, 7, 0, 0, tzinfo=UTC)


def test_the_same_as_the_expiry_an_approval_gives(world: World) -> None:
    """The form's figure is the service's own computation, not a second copy of it."""
    grant_id = world.request("E1", "acme/rlhf/pairs", days=45)
    shown = _effective(world, "acme/rlhf/pairs", 45, "E1")
    world.approve(grant_id)
    assert isinstance(shown, grants.EffectiveDays)
    assert world.grant(grant_id).expires_at == shown.ends_at


@pytest.mark.parametrize(("scope", "days"), [("acme/nope", 5), ("acme/rlhf/pairs", 0)])
def test_bad_input_is_refused(world: World, scope: str, days: int) -> None:
    with pytest.raises(GovtuiError):
        _effective(world, scope, days)

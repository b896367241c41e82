"""The one source of the current time: aware UTC, replaceable by tests (invariant 7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], datetime] | None = None


def now() -> datetime:
    """Return the current time as an aware UTC datetime, truncated to microseconds."""
    current = _source() if _source is not None else datetime.now(UTC)
    if current.tzinfo is None:
        raise ValueError("the clock returned a naive datetime; govtui keeps time in UTC")
    return current.astimezone(UTC)


def source() -> Callable[[], datetime] | None:
    """The clock set by set_source, None for the system clock (to restore it later)."""
    return _source


def set_source(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests freeze or advance time); None restores the system clock."""
    global _source
    _source = source

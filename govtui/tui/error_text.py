"""Errors as one line for a person (the app's notifications, a target's health)."""

from __future__ import annotations

from govtui.errors import GovtuiError


def describe_error(error: BaseException) -> str:
    """One line for a person: a GovtuiError as it is, anything else with its type."""
    if isinstance(error, GovtuiError):
        return str(error)
    lines = str(error).strip().splitlines()
    name = type(error).__name__
    return f"unexpected {name}: {lines[0]}" if lines else f"unexpected {name}"

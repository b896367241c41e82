"""Errors as one line for a person (the app's notifications, a target's health): escaped by
govtui.text.one_line, since an error may quote a name or a directory server's own words."""

from __future__ import annotations

from govtui.errors import GovtuiError
from govtui.text import one_line


def describe_error(error: BaseException) -> str:
    """One line for a person: a GovtuiError as it is, anything else with its type."""
    if isinstance(error, GovtuiError):
        return one_line(error)
    lines = str(error).strip().splitlines()
    name = type(error).__name__
    return one_line(f"unexpected {name}: {lines[0]}" if lines else f"unexpected {name}")

"""Checks for values that come from people and files, each failing with one clear message."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import TypeVar, overload

from govtui.errors import InputError
from govtui.text import hostile_char, quoted

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_UID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s,;<>\"']{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")

# Dates a person or an HR file may give: far enough either way for any contract, near enough
# that adding a grant's days to one never leaves what datetime (and the databases) can hold.
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
MAX_DAYS = 36_500  # no grant, cap or horizon is a century long
MAX_REASON = 1000
MAX_EMAIL = 254  # RFC 5321's limit on a path


def plain_text(value: str, what: str) -> str:
    """`value` unchanged, unless it holds a character that acts on a terminal or reorders
    text (C0/C1 controls, DEL, ESC, bidi controls, line separators): then one clear refusal.
    Such text is refused at input so that nobody's screen ever receives it (issue 11)."""
    bad = hostile_char(value)
    if bad is not None:
        raise InputError(
            f"invalid {what} {quoted(value)}: it contains the control character "
            f"U+{ord(bad):04X}; use printable text"
        )
    return value


def name(value: str, what: str) -> str:
    """A client, project, scope or operator name: letters, digits, space, '.', '_' and '-'."""
    value = plain_text(value, f"{what} name").strip()
    if not _NAME.fullmatch(value):
        raise InputError(
            f"invalid {what} name {quoted(value)}: use 1-64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


_Word = TypeVar("_Word", bound=StrEnum)


@overload
def choice(value: str, allowed: type[_Word], what: str) -> _Word: ...
@overload
def choice(value: str, allowed: tuple[str, ...], what: str) -> str: ...
def choice(value: str, allowed: type[StrEnum] | tuple[str, ...], what: str) -> StrEnum | str:
    """One of a fixed set of words: a member of the enum given, or a word of the tuple."""
    words = allowed if isinstance(allowed, tuple) else tuple(member.value for member in allowed)
    if value not in words:
        raise InputError(f"invalid {what} {quoted(value)}: choose one of {', '.join(words)}")
    return value if isinstance(allowed, tuple) else allowed(value)


def positive_days(value: int, what: str = "days") -> int:
    """A whole number of days, at least 1 and at most MAX_DAYS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        # Not echoed when huge: str() of a 5000-digit int raises, and nobody needs to see it.
        shown = quoted(value) if isinstance(value, int) and abs(value) < 10**20 else "given"
        raise InputError(
            f"invalid {what} {shown}: must be a whole number of at least 1 and at most {MAX_DAYS}"
        )
    return value


def external_id(value: str) -> str:
    """A contractor's id in the vendor's HR system."""
    if not _EXTERNAL_ID.fullmatch(plain_text(value, "external id")):
        raise InputError(
            f"invalid external id {quoted(value)}: 1-64 letters, digits, '.', '_', ':' or '-'"
        )
    return value


def directory_uid(value: str) -> str:
    """A directory login name: lower-case letters, digits, '.', '_' and '-'."""
    if not _UID.fullmatch(plain_text(value, "directory uid")):
        raise InputError(
            f"invalid directory uid {quoted(value)}: 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    return value


def email(value: str) -> str:
    """A plain mailbox address."""
    if len(plain_text(value, "email")) > MAX_EMAIL or not _EMAIL.fullmatch(value):
        raise InputError(f"invalid email {quoted(value)}")
    return value


def person_name(value: str) -> str:
    """A person's display name: any printable text up to 200 characters."""
    value = plain_text(value, "name").strip()
    if not value or len(value) > 200 or not value.isprintable():
        raise InputError(f"invalid name {quoted(value)}: 1-200 printable characters")
    return value


def iso_date(value: str | date, what: str = "date") -> date:
    """A calendar date written YYYY-MM-DD, from EARLIEST to LATEST: a contract end of
    9999-12-31 would make every later sum of days on it overflow."""
    if isinstance(value, date):
        day = value
    else:
        try:
            if len(value) != 10:
                raise ValueError
            day = date.fromisoformat(value)
        except ValueError:
            raise InputError(f"invalid {what} {quoted(value)}: write it as YYYY-MM-DD") from None
    if not EARLIEST <= day <= LATEST:
        raise InputError(
            f"invalid {what} {day.isoformat()}: must be from {EARLIEST.isoformat()} "
            f"to {LATEST.isoformat()}"
        )
    return day


def reason(value: str, what: str) -> str:
    """The reason a person gives for an action: required, printable, one line, at most
    MAX_REASON characters (it is shown in lists, the TUI and the audit log)."""
    value = plain_text(value, f"reason for the {what}").strip()
    if not value:
        raise InputError(f"give a reason for the {what} (--reason)")
    if len(value) > MAX_REASON:
        raise InputError(
            f"the reason for the {what} is {len(value)} characters long: at most {MAX_REASON}"
        )
    return value

"""Checks for values that come from people and files, each failing with one clear message."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import TypeVar, overload

from govtui.errors import InputError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_UID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s,;<>\"']{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def name(value: str, what: str) -> str:
    """A client, project, scope or operator name: letters, digits, space, '.', '_' and '-'."""
    value = value.strip()
    if not _NAME.fullmatch(value):
        raise InputError(
            f"invalid {what} name {value!r}: use 1-64 letters, digits, spaces, '.', '_' or '-', "
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
        raise InputError(f"invalid {what} {value!r}: choose one of {', '.join(words)}")
    return value if isinstance(allowed, tuple) else allowed(value)


def positive_days(value: int, what: str = "days") -> int:
    """A whole number of days, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"invalid {what} {value!r}: must be a whole number of at least 1")
    return value


def external_id(value: str) -> str:
    """A contractor's id in the vendor's HR system."""
    if not _EXTERNAL_ID.fullmatch(value):
        raise InputError(
            f"invalid external id {value!r}: 1-64 letters, digits, '.', '_', ':' or '-'"
        )
    return value


def directory_uid(value: str) -> str:
    """A directory login name: lower-case letters, digits, '.', '_' and '-'."""
    if not _UID.fullmatch(value):
        raise InputError(
            f"invalid directory uid {value!r}: 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    return value


def email(value: str) -> str:
    """A plain mailbox address."""
    if not _EMAIL.fullmatch(value):
        raise InputError(f"invalid email {value!r}")
    return value


def person_name(value: str) -> str:
    """A person's display name: any printable text up to 200 characters."""
    value = value.strip()
    if not value or len(value) > 200 or not value.isprintable():
        raise InputError(f"invalid name {value!r}: 1-200 printable characters")
    return value


def iso_date(value: str | date, what: str = "date") -> date:
    """A calendar date written YYYY-MM-DD."""
    if isinstance(value, date):
        return value
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"invalid {what} {value!r}: write it as YYYY-MM-DD") from None


def reason(value: str, what: str) -> str:
    """The reason a person gives for an action: required, any text."""
    value = value.strip()
    if not value:
        raise InputError(f"give a reason for the {what} (--reason)")
    return value

"""Argument types and the parser class: a bad value on the command line is refused by argparse
in one line, exit 2, before anything opens a database (issue 11: an overflowing `--days` or id
used to reach SQLite and come back as a traceback)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import NoReturn

from govtui.errors import InputError
from govtui.services.validation import MAX_DAYS
from govtui.text import cut_quoted, one_line, quoted

# The largest id either database holds in an INTEGER column (PostgreSQL's is 32-bit).
MAX_ID = 2**31 - 1
MAX_ROWS = 1_000_000  # --limit: more rows than any screen or pipe wants at once
MAX_ERROR = 500


class BoundedInt:
    """An argparse type: a whole number from `lo` to `hi`, else one clear refusal (the value
    echoed cut, never a 5000-digit number printed back). `lo` and `hi` are public so that
    tests (the CLI fuzz) generate values just outside them."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, text: str) -> int:
        # Checked as text first: int() of a 100,000-digit string is slow, then refused anyway.
        digits = text.strip().removeprefix("-").removeprefix("+")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
            raise argparse.ArgumentTypeError(
                f"{quoted(text)} is not a whole number from {self.lo} to {self.hi}"
            )
        value = int(text)
        if not self.lo <= value <= self.hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {self.lo} to {self.hi}")
        return value

    def __repr__(self) -> str:
        return f"whole number {self.lo}..{self.hi}"


def bounded_int(lo: int, hi: int) -> BoundedInt:
    """The argparse type of a whole number from `lo` to `hi`."""
    return BoundedInt(lo, hi)


IDS = bounded_int(1, MAX_ID)
DAYS = bounded_int(1, MAX_DAYS)
HORIZON_DAYS = bounded_int(0, MAX_DAYS)  # --expiring-within: 0 is "today"
LIMIT = bounded_int(1, MAX_ROWS)


class Parser(argparse.ArgumentParser):
    """argparse with its refusals on one line (no usage block): the message, escaped and cut,
    and where to look for help."""

    def error(self, message: str) -> NoReturn:
        message = cut_quoted(message)  # argparse quotes the value it refuses
        line = one_line(f"{self.prog}: error: {message} (see {self.prog} --help)", MAX_ERROR)
        print(line, file=sys.stderr)
        self.exit(2)


def read_code(given: str | None, prompt: str = "TOTP code: ") -> str:
    """The code from --totp, else asked for without echo (never left in shell history)."""
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise InputError("no TOTP code: pass --totp CODE or run in a terminal to be asked")
    return getpass.getpass(prompt)

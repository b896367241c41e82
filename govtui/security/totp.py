"""TOTP codes (RFC 6238: SHA-1, 6 digits, 30-second steps) via pyotp.

pyotp keeps no replay state; this module says which time step a code belongs to, and the
services accept each step once per operator with a compare-and-set in the database.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

STEP_SECONDS = 30
WINDOW = 1  # steps either side of the current one, for clock drift and typing time
SECRET_LENGTH = 32  # base32 characters: 160 bits


def new_secret() -> str:
    """A fresh random secret of 160 bits, base32."""
    return pyotp.random_base32(length=SECRET_LENGTH)


def step_of(at: datetime) -> int:
    """The RFC 6238 time step (counter) of an aware time."""
    if at.tzinfo is None:
        raise ValueError("TOTP needs an aware datetime")
    return int(at.timestamp()) // STEP_SECONDS


def code_for_step(secret: str, step: int) -> str:
    """The code valid during one time step."""
    return pyotp.TOTP(secret).generate_otp(step)


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The step within the window whose code is `code` (newest first), or None."""
    code = code.strip()
    # ASCII only: str.isdigit accepts other scripts' digits ('٣'), which compare_digest
    # cannot take; such a code is simply a wrong one (and counted as one).
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    current = step_of(at)
    for step in (current + WINDOW, current, current - WINDOW):
        # Compare in constant time: the code is a secret until it has been used.
        if hmac.compare_digest(code_for_step(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str = "govtui") -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)

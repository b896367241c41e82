"""The evidence key: one Ed25519 key per database that signs evidence packs, audit
checkpoints and operator key registrations. Its private half lives only in the OS keyring of
the admin who made it; every public key it ever had stays listed, so what an older key
signed still verifies after rotation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from govtui.models import Operator


@dataclass(frozen=True)
class KeyView:
    fingerprint: str
    public_pem: str
    created_by: str
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class Signed:
    signature: bytes  # 64 bytes, Ed25519
    fingerprint: str  # of the key that signed
    public_pem: str


def init_key(session: Session, actor: Operator, *, code: str) -> KeyView:
    """Make the evidence key (an admin, with their TOTP code); refused if one is current."""
    raise NotImplementedError


def rotate(session: Session, actor: Operator, *, code: str) -> KeyView:
    """Retire the current key (kept listed) and make a new one (an admin, with their code)."""
    raise NotImplementedError


def keys(session: Session) -> list[KeyView]:
    """Every evidence key, current first, then retired ones newest first."""
    raise NotImplementedError


def sign(session: Session, data: bytes) -> Signed:
    """Sign with the current key from this user's keyring; ConfigurationError naming the
    key's fingerprint when there is none or this keyring lacks it."""
    raise NotImplementedError


def available(session: Session) -> bool:
    """Whether this process can sign (a current key whose private half is in this keyring)."""
    raise NotImplementedError


def verify(session: Session, data: bytes, signature: bytes, fingerprint: str) -> bool:
    """Whether a listed key (current or retired) with this fingerprint signed `data`."""
    raise NotImplementedError

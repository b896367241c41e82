"""Ed25519 signatures (the `cryptography` package): the evidence key that signs evidence
packs, audit checkpoints and operator key registrations, and each operator's own key that
signs the access-adding acts they confirm. Private keys exist only in the OS keyring, as the
base64 of their 32 raw bytes; public keys are PEM text, named by their fingerprint."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from govtui.errors import ConfigurationError


@dataclass(frozen=True)
class KeyPair:
    """A new key: the private half for the keyring, the public half for the database."""

    private_b64: str
    public_pem: str
    fingerprint: str


def generate() -> KeyPair:
    """A fresh Ed25519 key pair."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key()
    return KeyPair(base64.b64encode(raw).decode(), public_pem(public), fingerprint(public))


def _private(private_b64: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_b64, validate=True))
    except ValueError as exc:
        raise ConfigurationError("the signing key in the keyring is not an Ed25519 key") from exc


def load_public(pem: str) -> Ed25519PublicKey:
    """The public key of PEM text, refusing anything but Ed25519."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ConfigurationError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError("not an Ed25519 public key")
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey | str) -> str:
    """`SHA256:` and the hex SHA-256 of the raw 32-byte public key (what an auditor compares)."""
    public = load_public(key) if isinstance(key, str) else key
    return "SHA256:" + hashlib.sha256(raw_public(public)).hexdigest()


def public_of(private_b64: str) -> str:
    """The PEM public key of a private key held in the keyring."""
    return public_pem(_private(private_b64).public_key())


def sign(private_b64: str, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of `data`."""
    return _private(private_b64).sign(data)


def verify(public: Ed25519PublicKey | str, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is the key's signature of `data`."""
    key = load_public(public) if isinstance(public, str) else public
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True

"""Ed25519 signatures (the `cryptography` package): the evidence key that signs evidence
packs, audit checkpoints and operator key registrations, and each operator's own key that
signs the access-adding acts they confirm. Private keys exist only in the OS keyring, as the
base64 of their 32 raw bytes; public keys are PEM text, named by their fingerprint."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
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
    except UnsupportedAlgorithm as exc:  # not a ValueError: a row or file with another kind
        raise ConfigurationError("not an Ed25519 public key") from exc
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


# Below this many, worker processes cost more to start (~0.3 s) than they save.
PARALLEL_MIN = 4_000
_MAX_WORKERS = 8


def _verify_raw(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Each (raw 32-byte public key, data, signature): whether it verifies."""
    loaded: dict[bytes, Ed25519PublicKey] = {}
    out = []
    for raw, data, signature in items:
        key = loaded.get(raw)
        if key is None:
            key = loaded[raw] = Ed25519PublicKey.from_public_bytes(raw)
        try:
            key.verify(signature, data)
        except InvalidSignature:
            out.append(False)
        else:
            out.append(True)
    return out


class Verifier:
    """`verify` of many (raw public key, data, signature) at a time, in order: on every core
    when a batch is big enough to pay for worker processes (Ed25519 verification holds the
    GIL, so threads would not help), in this process otherwise or if workers cannot start.
    The workers start once, on the first big batch, and stop when the verifier is closed."""

    def __init__(self) -> None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.workers = min(cores or os.cpu_count() or 1, _MAX_WORKERS)
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def verify_many(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        if len(items) < PARALLEL_MIN or self.workers < 2 or self._broken:
            return _verify_raw(items)
        step = -(-len(items) // (self.workers * 4))
        chunks = [items[start : start + step] for start in range(0, len(items), step)]
        try:
            if self._pool is None:
                # spawn: a clean interpreter, no inherited connections, locks or threads.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return [ok for chunk in self._pool.map(_verify_raw, chunks) for ok in chunk]
        except (OSError, BrokenProcessPool):
            self._broken = True
            self.close()
            return _verify_raw(items)


def verify_many(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """`verify` of many (raw public key, data, signature), in order (see Verifier)."""
    with Verifier() as verifier:
        return verifier.verify_many(items)

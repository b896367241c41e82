"""Signed notes and checkpoints in the C2SP text formats (c2sp.org/signed-note and
c2sp.org/tlog-checkpoint), with Ed25519 signatures: what an auditor's own tooling for
transparency logs can read.

A note is its text (ending in a newline), a blank line, and signature lines
`— <key name> <base64(key id || signature)>`; the key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || the 32-byte public key). A checkpoint's text is the origin
line, the tree size in decimal and the base64 root hash (here: the audit chain's head hash).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from govtui.errors import InputError
from govtui.security import signing

EM_DASH = "\u2014"
ED25519 = b"\x01"
MAX_NOTE = 16_384  # a checkpoint is well under 1 KB; a bigger "note" is not one of ours
MAX_SIGNATURES = 16  # what the spec asks every verifier to accept at least


class NoteError(InputError):
    """Text that is not a well-formed signed note or checkpoint."""


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes  # 4 bytes
    signature: bytes  # 64 bytes for Ed25519


@dataclass(frozen=True)
class Note:
    text: str  # what is signed: the text including its final newline
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def check_name(name: str) -> str:
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise NoteError(f"not a key name (empty, a space or a plus): {name!r}")
    return name


def key_id(name: str, public: Ed25519PublicKey | str) -> bytes:
    """The C2SP key id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || raw key)[:4]."""
    key = signing.load_public(public) if isinstance(public, str) else public
    raw = signing.raw_public(key)
    return hashlib.sha256(check_name(name).encode() + b"\n" + ED25519 + raw).digest()[:4]


def signature_line(name: str, public: Ed25519PublicKey | str, signature: bytes) -> str:
    blob = base64.b64encode(key_id(name, public) + signature).decode()
    return f"{EM_DASH} {check_name(name)} {blob}\n"


def compose(text: str, lines: list[str]) -> str:
    """A signed note of `text` and its signature lines."""
    _check_text(text)
    if not lines:
        raise NoteError("a signed note needs at least one signature")
    return text + "\n" + "".join(lines)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text must end in a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise NoteError("a note must not hold control characters")


def parse(note: str) -> Note:
    """The text and signatures of a signed note; NoteError if it is not one."""
    if len(note) > MAX_NOTE:
        raise NoteError("too long for a signed note")
    if not note.endswith("\n"):
        raise NoteError("a signed note must end in a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise NoteError("a signed note must not hold control characters")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in block.splitlines():
        prefix = EM_DASH + " "
        parts = line[len(prefix) :].split(" ") if line.startswith(prefix) else []
        if len(parts) != 2:
            raise NoteError(f"not a signature line: {line[:80]!r}")
        name, blob = parts
        check_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError(f"the signature of {name!r} is not base64") from None
        if len(raw) < 5:
            raise NoteError(f"the signature of {name!r} is too short")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures:
        raise NoteError("a signed note needs at least one signature")
    if len(signatures) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    return Note(text, tuple(signatures))


def verify(note: Note, name: str, public: Ed25519PublicKey | str) -> bool | None:
    """Whether the key `name` (with this public key) signed the note: None when no signature
    line is from that key (same name AND key id), False when one is and fails to verify."""
    wanted = key_id(name, public)
    mine = [s for s in note.signatures if s.name == name and s.key_id == wanted]
    if not mine:
        return None
    return all(signing.verify(public, note.text.encode(), s.signature) for s in mine)


def sign(text: str, name: str, private_b64: str) -> str:
    """The signed note of `text` with one Ed25519 signature by the key `name`."""
    _check_text(text)
    signature = signing.sign(private_b64, text.encode())
    return compose(text, [signature_line(name, signing.public_of(private_b64), signature)])


def checkpoint_text(origin: str, size: int, root_hash: bytes) -> str:
    """A tlog checkpoint's text: origin, tree size, base64 root hash (no extension lines)."""
    if not origin or "\n" in origin or size < 0:
        raise NoteError("a checkpoint needs a one-line origin and a size of 0 or more")
    return f"{origin}\n{size}\n{base64.b64encode(root_hash).decode()}\n"


def parse_checkpoint(text: str) -> CheckpointBody:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a size and a root hash, each on a line")
    origin, size, root = lines[0], lines[1], lines[2]
    if (
        not origin
        or not (size.isascii() and size.isdigit())
        or (size != "0" and size.startswith("0"))
    ):
        raise NoteError("the checkpoint's origin or tree size is malformed")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("the checkpoint's root hash is not base64") from None
    return CheckpointBody(origin, int(size), root_hash, tuple(lines[3:-1]))

"""The audit chain's head kept outside the database, so that deleting the newest events (and
the head row with them) is still caught by `audit.verify`.

`audit.append` reads it (`prepare`) before a transaction's first event and refuses to write on
a chain shorter than it; the new head is written right after the commit, before the write
returns (govtui.private_files: 0600, O_EXCL|O_NOFOLLOW temporary file, fsync, rename): a crash
leaves the old head or the new one, and a planted symlink is never written through.

When this process holds the evidence key (services.evidence_keys), the file is the head as a
signed checkpoint in the C2SP formats (security.signed_note): origin `govtui audit <database
id>`, the event count, the base64 head hash, a blank line and the signature line. Otherwise
it is JSON `{"hash","seq"}`, carrying on the last signed checkpoint it replaced (`signed`), so
an unsigned write never drops what an earlier signature vouched for.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from govtui import private_files
from govtui.db import default_url, redacted, sqlite_path
from govtui.errors import ConfigurationError, InputError
from govtui.security import signed_note

_PRIVATE = 0o600
_MAX_FILE = 2 * signed_note.MAX_NOTE


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    # The newest signed checkpoint (a C2SP signed note) at or below `seq`, if any was written.
    note: str | None = None


def origin(database_id: str) -> str:
    """The origin line of this database's signed checkpoints."""
    return f"govtui audit {database_id}"


def note_text(database_id: str, seq: int, digest: str) -> str:
    """What is signed for a head: the checkpoint text of (seq, hash)."""
    return signed_note.checkpoint_text(origin(database_id), seq, bytes.fromhex(digest))


def parse_note(text: str) -> tuple[signed_note.Note, signed_note.CheckpointBody]:
    """A signed checkpoint's note and body (NoteError if it is not one)."""
    note = signed_note.parse(text)
    body = signed_note.parse_checkpoint(note.text)
    if len(body.root_hash) != 32:
        raise signed_note.NoteError("the checkpoint's root hash is not 32 bytes")
    return note, body


def parse_text(text: str) -> Checkpoint:
    """A checkpoint file's content: a signed note, or the JSON of an unsigned head."""
    if text.startswith("{"):
        data = json.loads(text)
        note = data.get("signed")
        if note is not None and not isinstance(note, str):
            raise ValueError("its signed checkpoint is not text")
        return Checkpoint(seq=int(data["seq"]), hash=str(data["hash"]), note=note)
    _note, body = parse_note(text)
    return Checkpoint(seq=body.size, hash=body.root_hash.hex(), note=text)


def checkpoint_path(url: str) -> Path | None:
    """Where the chain head for this database is recorded: GOVTUI_AUDIT_HEAD, else beside the
    SQLite file, else in the user's data directory keyed by the (password-less) URL."""
    override = os.environ.get("GOVTUI_AUDIT_HEAD")
    if override:
        return Path(override)
    db_file = sqlite_path(url)
    if db_file is not None:
        return db_file.with_name(db_file.name + ".audit-head")
    if url.startswith("sqlite"):
        return None  # in-memory: nothing outlives the process anyway
    data_dir = sqlite_path(default_url())
    assert data_dir is not None
    key = hashlib.sha256(redacted(url).encode()).hexdigest()[:16]
    return data_dir.parent / "audit-heads" / f"{key}.json"


def _open_regular(path: Path, flags: int, what: str) -> int:
    """Open a file govtui made, refusing what it never makes: a symlink (not followed), and
    a FIFO, device or directory (O_NONBLOCK: opening a planted FIFO must not hang)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, _PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigurationError(f"{what} {path} is a symbolic link: not followed") from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigurationError(f"{what} {path} cannot be opened: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigurationError(f"{what} {path} is not a regular file: someone replaced it")
    os.set_blocking(fd, True)
    return fd


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The recorded head, or None if nothing was recorded yet. Anything but a regular file in
    its place is refused: govtui never makes one, so someone planted it."""
    try:
        fd = _open_regular(path, os.O_RDONLY, "the audit checkpoint")
    except FileNotFoundError:
        return None
    try:
        with os.fdopen(fd, encoding="utf-8") as file:
            return parse_text(file.read(_MAX_FILE))
    except (ValueError, KeyError, TypeError, signed_note.NoteError) as exc:
        raise ConfigurationError(f"the audit checkpoint {path} is unreadable: {exc}") from None


def _open_lock(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigurationError(
            f"the audit checkpoint folder {path.parent} cannot be made: {exc.strerror}"
        ) from None
    lock_fd = _open_regular(
        path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, "the audit checkpoint lock"
    )
    os.fchmod(lock_fd, _PRIVATE)  # O_CREAT's mode is masked by the umask; an old lock was wider
    return lock_fd


def prepare(path: Path) -> Checkpoint | None:
    """Before a write transaction changes anything: the recorded head, once the checkpoint has
    proved readable and its lock (and so its folder) writable. A failure here refuses the
    write before any data exists that the checkpoint could not protect."""
    os.close(_open_lock(path))
    return read_checkpoint(path)


def write_checkpoint(
    path: Path, seq: int, digest: str, sign: Callable[[int, str], str | None] | None = None
) -> None:
    """Record a head, never moving it backwards when several processes commit at once; as a
    signed note when `sign` makes one (it returns None when this process cannot sign)."""
    with os.fdopen(_open_lock(path), "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = read_checkpoint(path)
        if current is not None and current.seq >= seq:
            return
        note = sign(seq, digest) if sign is not None else None
        if note is not None:
            text = note
        else:
            record: dict[str, object] = {"hash": digest, "seq": seq}
            if current is not None and current.note is not None:
                record["signed"] = current.note
            text = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        try:
            private_files.write_private(path, text, "audit checkpoint")
        except InputError as exc:
            raise ConfigurationError(str(exc)) from None

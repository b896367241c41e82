"""Verifying an evidence pack on its own, with no database (an auditor's machine): the
manifest's signature by the key the pack carries (and that key's fingerprint against the one
given out of band), every file's hash and size, no file missing or extra, SHA256SUMS, the
audit slice's links, and a campaign's population digest against its review.start event.

The pack comes from whoever handed it over, so every byte of it is hostile until checked: a
member is read in bounded chunks and never past the size the manifest gives it (a zip bomb
costs nothing), a line longer than MAX_LINE is a finding and not an allocation, an encrypted
member or an unknown compression method is a finding and not a traceback, names that would
unpack outside their folder or appear twice are findings, and the slice and population checks
run only over members whose hash and size already matched. What cannot be opened as a zip at
all (not a file, a directory, a FIFO, a symbolic link, a truncated or empty file) is an
InputError: one line, exit 2."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import UnsupportedAlgorithm

from govtui.errors import ConfigurationError, InputError
from govtui.security import signing
from govtui.services import audit
from govtui.services.evidence_pack import (
    CAMPAIGN_DATA,
    CLIENT_DATA,
    KEY_FILE,
    MANIFEST,
    README,
    SIGNATURE,
    SUMS,
    PackFile,
    key_file,
    sums_text,
)
from govtui.text import one_line, quoted

MAX_META = 1 << 20  # manifest, key and signature are small; a larger one is not ours
MAX_MEMBERS = 64  # a pack holds about a dozen files
MAX_DIRECTORY = 1 << 20  # the zip's central directory: a dozen entries take a few KB
MAX_LINE = 1 << 20  # one audit event or CSV row; govtui writes none near this
CHUNK = 1 << 16
KINDS = {"campaign": CAMPAIGN_DATA, "client-period": CLIENT_DATA}
# What zipfile, zlib and the decoders raise on a damaged or hostile member (RuntimeError: an
# encrypted member; NotImplementedError: a compression method; UnicodeDecodeError is a
# ValueError; RecursionError a RuntimeError).
READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    OverflowError,
    struct.error,
    IndexError,
    KeyError,
)
_ENCRYPTED = 0x1
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_GRANT_ID = re.compile(r"^[1-9][0-9]{0,18}$")


@dataclass
class Verified:
    """What `verify` found: ok only when `problems` is empty."""

    kind: str | None = None
    subject: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    key_expected: bool | None = None  # None: no expected fingerprint was given
    files: int = 0
    events: int = 0
    chain_head: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_FP = re.compile(r"^SHA256:[0-9a-f]{64}$")


class _Unreadable(Exception):
    """A member that cannot be read (its problem, one line)."""


def verify(path: Path, *, expect_key: str | None = None) -> Verified:
    """Check a pack on its own: the manifest's signature by the key in the pack (and that
    key's fingerprint when one is expected), every file's hash and size, no file missing or
    extra, SHA256SUMS, the audit slice's links, and the population digest."""
    if expect_key is not None and not _FP.match(expect_key):
        raise InputError(
            f"invalid --expect-key {quoted(expect_key)}: write it as SHA256: and 64 hex digits"
        )
    with _open_pack(path) as raw:
        try:
            archive = zipfile.ZipFile(raw)
        except READ_ERRORS as exc:
            raise InputError(
                f"{quoted(path)} is not a readable zip file: {one_line(exc, 200)}"
            ) from None
        with archive:
            return _verify(archive, expect_key)


def _open_pack(path: Path) -> IO[bytes]:
    """The pack opened for reading, if it is a regular file (not followed if a symbolic link:
    a link or a FIFO handed over in place of a pack would have verify read something else or
    hang), its central directory small enough to be a pack's."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(f"no such file: {quoted(path)}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(
                f"{quoted(path)} is a symbolic link: give the pack itself (realpath)"
            ) from None
        raise InputError(f"{quoted(path)} cannot be read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{quoted(path)} is a directory, not a pack")
        if not stat.S_ISREG(mode):
            raise InputError(f"{quoted(path)} is not a regular file (a FIFO, a device...)")
        raw = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    try:
        _check_directory(raw, path)
    except BaseException:
        raw.close()
        raise
    return raw


def _check_directory(raw: IO[bytes], path: Path) -> None:
    """Refuse a zip whose end record declares more entries or a larger central directory
    than a pack has, before zipfile reads all of it into memory (the record is found as
    zipfile finds it; what this cannot parse is left to zipfile to refuse)."""
    try:
        size = raw.seek(0, io.SEEK_END)
        tail = min(size, 22 + 0xFFFF)
        raw.seek(size - tail)
        data = raw.read(tail)
        raw.seek(0)
    except OSError as exc:
        raise InputError(f"{quoted(path)} cannot be read: {exc.strerror}") from None
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < 22:
        return
    entries, directory, offset = struct.unpack("<xxxxxxxxxxHIIxx", data[at : at + 22])
    if 0xFFFF in (entries,) or 0xFFFFFFFF in (directory, offset):
        locator = data[at - 20 : at] if at >= 20 else b""
        if locator[:4] != b"PK\x06\x07":
            return
        (where,) = struct.unpack("<Q", locator[8:16])
        try:
            raw.seek(where)
            record = raw.read(56)
            raw.seek(0)
        except (OSError, OverflowError, ValueError):
            return
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return
        entries, directory = struct.unpack("<QQ", record[32:48])
    if entries > MAX_MEMBERS or directory > MAX_DIRECTORY:
        raise InputError(
            f"{quoted(path)} declares {entries} entries in a {directory}-byte directory: "
            f"an evidence pack has at most {MAX_MEMBERS}; not read"
        )


def _name(value: object) -> str:
    """A name from the pack, as it goes in a problem: escaped, cut (and whole when plain)."""
    return one_line(value, 120)


def _unsafe(name: str) -> str | None:
    """Why a member's name would unpack outside its folder, or None."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in parts:
        return "a path with '..'"
    return None


def _verify(archive: zipfile.ZipFile, expect_key: str | None) -> Verified:
    result = Verified()
    problems = result.problems
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        problems.append(f"the zip holds {len(infos)} entries: a pack has at most {MAX_MEMBERS}")
        return result
    counts = Counter(i.filename for i in infos)
    for name, count in sorted(counts.items()):
        if count > 1:
            problems.append(
                f"{_name(name)} is in the zip {count} times: which copy a tool reads is not "
                "certain, so none is trusted"
            )
        why = _unsafe(name)
        if why is not None:
            problems.append(f"{_name(name)} is {why}: unzipped, it lands outside the folder")
    for info in infos:
        problem = _member_problem(info)
        if problem is not None:
            problems.append(problem)
    names = set(counts)
    for required in (MANIFEST, SIGNATURE, KEY_FILE):
        if required not in names:
            problems.append(f"{required} is missing")
    if problems:
        return result
    manifest_raw = _read_small(archive, MANIFEST, problems)
    signature = _read_small(archive, SIGNATURE, problems)
    key_raw = _read_small(archive, KEY_FILE, problems)
    if manifest_raw is None or signature is None or key_raw is None:
        return result
    _check_signature(result, manifest_raw, signature, key_raw, expect_key)
    parsed = _parse_manifest(manifest_raw)
    if isinstance(parsed, str):
        problems.append(f"manifest.json is not a govtui manifest: {parsed}")
        return result
    manifest, files = parsed
    result.kind = manifest.get("kind") if isinstance(manifest.get("kind"), str) else None
    subject, head = manifest.get("subject"), manifest.get("chain_head")
    result.subject = subject if isinstance(subject, dict) else {}
    result.chain_head = head if isinstance(head, dict) else {}
    result.files = len(files)
    if result.kind not in KINDS:
        problems.append(f"manifest.json's kind {quoted(manifest.get('kind'))} is not a pack's")
    else:
        listed_names = {f.name for f in files}
        for required in (*KINDS[result.kind], KEY_FILE, README, SUMS):
            if required not in listed_names:
                problems.append(f"the manifest does not list {required}: every pack holds it")
    signing_key = manifest.get("signing_key")
    stated = signing_key.get("fingerprint") if isinstance(signing_key, dict) else None
    if result.fingerprint is not None and stated != result.fingerprint:
        problems.append(
            f"manifest.json names the key {quoted(stated)}, but {KEY_FILE} is {result.fingerprint}"
        )
    listed = {f.name for f in files} | {MANIFEST, SIGNATURE}
    for name in sorted(names - listed):
        problems.append(f"{_name(name)} is in the zip but not in the manifest")
    for name in sorted(listed - names):
        problems.append(f"{_name(name)} is listed in the manifest but missing from the zip")
    good: set[str] = set()
    for f in files:
        if f.name in names and _check_file(archive, f, problems):
            good.add(f.name)
    if SUMS in good:
        sums = _read_small(archive, SUMS, problems)
        if sums is not None and sums != sums_text(files).encode():
            problems.append(f"{SUMS} does not list the manifest's files and hashes")
    sizes = {f.name: f.size for f in files}
    campaign_id = result.subject.get("campaign_id")
    start: dict[str, Any] | None = None
    if "audit.jsonl" in good:
        result.events, start = _check_audit(
            archive, sizes["audit.jsonl"], result.chain_head, campaign_id, problems
        )
    if result.kind == "campaign" and "population.csv" in good and "audit.jsonl" in good:
        _check_population(archive, sizes["population.csv"], manifest, start, problems)
    return result


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member is not read at all (encrypted, compressed in a way a pack never is)."""
    if info.flag_bits & _ENCRYPTED:
        return f"{_name(info.filename)} is encrypted: a govtui pack never is"
    if info.compress_type not in _METHODS:
        return (
            f"{_name(info.filename)} is compressed with method {info.compress_type}: a govtui "
            "pack uses deflate"
        )
    return None


def _parse_manifest(raw: bytes) -> tuple[dict[str, Any], list[PackFile]] | str:
    """The manifest and its files, or why it is not a govtui manifest."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except RecursionError:
        return "nested too deeply"
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, a number too long
        return one_line(exc, 200)
    if not isinstance(manifest, dict):
        return "not a JSON object"
    entries = manifest.get("files")
    if not isinstance(entries, list):
        return "no list of files"
    if len(entries) > MAX_MEMBERS:
        return f"it lists {len(entries)} files: a pack has at most {MAX_MEMBERS}"
    files: list[PackFile] = []
    for entry in entries:
        if not isinstance(entry, dict):
            return "a file entry that is not an object"
        name, digest, size = entry.get("name"), entry.get("sha256"), entry.get("size")
        if not isinstance(name, str) or not _PLAIN_NAME.match(name):
            return f"the file name {quoted(name)} is not a plain file name"
        if not isinstance(digest, str) or not _HEX64.match(digest):
            return f"the SHA-256 of {name} is not 64 hex digits"
        if type(size) is not int or size < 0:
            return f"the size of {name} is not a whole number of bytes"
        files.append(PackFile(name, digest, size))
    repeated = sorted(n for n, c in Counter(f.name for f in files).items() if c > 1)
    if repeated:
        return f"it lists {repeated[0]} twice"
    if {MANIFEST, SIGNATURE} & {f.name for f in files}:
        return "it lists itself or its signature"
    return manifest, files


def _chunks(archive: zipfile.ZipFile, name: str, limit: int) -> Iterator[bytes]:
    """The member's bytes in chunks of at most CHUNK, never more than `limit` + 1 in all (one
    more than allowed says "bigger"). Raises _Unreadable with the problem."""
    info = archive.getinfo(name)
    problem = _member_problem(info)
    if problem is not None:
        raise _Unreadable(problem)
    size = 0
    try:
        with archive.open(info) as stream:
            while size <= limit:
                chunk = stream.read(min(CHUNK, limit + 1 - size))
                if not chunk:
                    return
                size += len(chunk)
                yield chunk
    except READ_ERRORS as exc:
        raise _Unreadable(
            f"{_name(name)} cannot be read from the zip: {one_line(exc, 200)}"
        ) from None


def _read_small(archive: zipfile.ZipFile, name: str, problems: list[str]) -> bytes | None:
    try:
        data = b"".join(_chunks(archive, name, MAX_META))
    except _Unreadable as exc:
        problems.append(str(exc))
        return None
    if len(data) > MAX_META:
        problems.append(f"{name} is larger than any govtui writes")
        return None
    return data


def _check_signature(
    result: Verified, manifest: bytes, signature: bytes, key_raw: bytes, expect: str | None
) -> None:
    problems = result.problems
    text = key_raw.decode("utf-8", "replace")
    try:
        public = signing.load_public(text)
    except (ConfigurationError, UnsupportedAlgorithm, ValueError) as exc:
        problems.append(f"{KEY_FILE} holds no Ed25519 public key: {one_line(exc, 200)}")
        return
    result.fingerprint = signing.fingerprint(public)
    if text != key_file(signing.public_pem(public), result.fingerprint):
        problems.append(f"{KEY_FILE} is not the key and fingerprint lines govtui writes")
    if len(signature) != 64 or not signing.verify(public, manifest, signature):
        problems.append("the signature of manifest.json does NOT verify with the pack's key")
    if expect is not None:
        result.key_expected = expect == result.fingerprint
        if not result.key_expected:
            problems.append(
                f"the pack was signed by {result.fingerprint}, not by the expected {expect}"
            )


def _check_file(archive: zipfile.ZipFile, f: PackFile, problems: list[str]) -> bool:
    """The member's size and SHA-256 are the manifest's (read no further than its size)."""
    declared = archive.getinfo(f.name).file_size
    if declared != f.size:
        problems.append(f"{f.name} is {declared} bytes, the manifest says {f.size}")
        return False
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in _chunks(archive, f.name, f.size):
            digest.update(chunk)
            size += len(chunk)
    except _Unreadable as exc:
        problems.append(str(exc))
        return False
    if size != f.size:
        shown = f"more than {f.size}" if size > f.size else str(size)
        problems.append(f"{f.name} is {shown} bytes, the manifest says {f.size}")
        return False
    if digest.hexdigest() != f.sha256:
        problems.append(f"{f.name} was changed: its SHA-256 is not the manifest's")
        return False
    return True


class _LineTooLong(Exception):
    pass


def _lines(archive: zipfile.ZipFile, name: str, limit: int) -> Iterator[str]:
    """The member's lines (without their newline), each at most MAX_LINE bytes (a longer one
    raises _LineTooLong: never held whole), in UTF-8 (UnicodeDecodeError after the lines
    before the one that is not). The complete lines of a chunk are decoded and split at once."""
    pending = b""
    for chunk in _chunks(archive, name, limit):
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(pending) + len(chunk) > MAX_LINE:
                raise _LineTooLong
            pending += chunk
            continue
        if len(pending) + chunk.find(b"\n") > MAX_LINE:
            raise _LineTooLong  # only the first line can be long: the others fit in a chunk
        yield from _decoded(pending + chunk[:end])
        pending = chunk[end + 1 :]
    if pending:
        yield from _decoded(pending)


def _decoded(lines: bytes) -> Iterator[str]:
    try:
        text = lines.decode("utf-8")
    except UnicodeDecodeError:
        for line in lines.split(b"\n"):
            yield line.decode("utf-8")  # raises at the first line that is not UTF-8
        return
    yield from text.split("\n")


def _check_audit(
    archive: zipfile.ZipFile,
    size: int,
    head: dict[str, Any],
    campaign_id: Any,
    problems: list[str],
) -> tuple[int, dict[str, Any] | None]:
    """Each event's hash recomputes, seqs rise, consecutive events link, and the last line is
    the manifest's chain head, at or after the last event. Returns the events counted and the
    campaign's review.start event (None if the slice has none)."""
    count, previous = 0, None
    seen_head: dict[str, Any] | None = None
    start: dict[str, Any] | None = None
    n = 0
    try:
        for n, line in enumerate(_lines(archive, "audit.jsonl", size), start=1):
            if seen_head is not None:
                problems.append(f"audit.jsonl line {n}: an event after the chain head line")
                return count, start
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                problems.append(f"audit.jsonl line {n} is not JSON")
                return count, start
            if isinstance(record, dict) and set(record) == {"chain_head"}:
                seen_head = record["chain_head"]
                continue
            problem = _event_problem(record, previous)
            if problem is not None:
                problems.append(f"audit.jsonl line {n}: {problem}")
                return count, start
            previous = record
            count += 1
            details = record.get("details")
            if (
                start is None
                and record.get("action") == "review.start"
                and isinstance(details, dict)
                and details.get("campaign_id") == campaign_id
            ):
                start = record
    except _LineTooLong:
        problems.append(f"audit.jsonl line {n + 1} is longer than {MAX_LINE} bytes")
        return count, start
    except UnicodeDecodeError:
        problems.append(f"audit.jsonl line {n + 1} is not UTF-8")
        return count, start
    except _Unreadable as exc:
        problems.append(str(exc))
        return count, start
    if seen_head is None:
        problems.append("audit.jsonl does not end with the chain head")
    elif seen_head != head:
        problems.append("audit.jsonl's chain head is not the manifest's")
    elif previous is not None:
        if not isinstance(head.get("seq"), int) or head["seq"] < previous["seq"]:
            problems.append("the chain head is older than the last event of the slice")
        elif head["seq"] == previous["seq"] and head.get("hash") != previous["hash"]:
            problems.append("the chain head's hash is not its event's")
    return count, start


def _event_problem(record: Any, previous: dict[str, Any] | None) -> str | None:
    try:
        seq, at_text = record["seq"], record["at"]
        at = datetime.strptime(at_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        digest = audit.event_hash(
            seq=seq,
            at=at,
            actor=record["actor"],
            action=record["action"],
            obj=record["object"],
            details=audit.canonical_json(record["details"]),
            prev_hash=record["prev_hash"],
        )
    except (KeyError, TypeError, ValueError, RecursionError):
        return "not an audit event"
    if type(seq) is not int or audit.format_time(at) != at_text:
        return "not an audit event"
    if digest != record.get("hash"):
        return f"event {seq} was altered (its hash does not recompute)"
    if previous is not None:
        if seq <= previous["seq"]:
            return f"event {seq} comes after event {previous['seq']}"
        if seq == previous["seq"] + 1 and record["prev_hash"] != previous["hash"]:
            return f"event {seq} does not link to event {previous['seq']}"
    return None


def _check_population(
    archive: zipfile.ZipFile,
    size: int,
    manifest: dict[str, Any],
    start: dict[str, Any] | None,
    problems: list[str],
) -> None:
    """The grant ids of population.csv hash to the review.start event's digest (and the
    manifest's), and there are as many as it counted. govtui writes the rows by grant id, so
    the digest (audit.id_summary's: sorted ids, comma-joined) is computed as they stream: an
    id not above the one before is a finding, and no list of ids is held."""
    hasher, count, last = hashlib.sha256(), 0, 0
    batch: list[str] = []  # ids not yet hashed (the digest is fed in batches)
    n = 0  # the last line read
    try:
        lines = _lines(archive, "population.csv", size)
        header = next(lines, "")
        if header.split(",", 1)[0] != "grant_id":
            problems.append("population.csv does not start with its grant_id column")
            return
        n = 1
        for n, line in enumerate(lines, start=2):
            text = line.split(",", 1)[0]
            if not _GRANT_ID.match(text):
                problems.append(f"population.csv line {n}: a grant id that is not a number")
                return
            grant = int(text)
            if grant <= last:
                problems.append(
                    f"population.csv line {n}: grant {grant} is not above the one before "
                    "(govtui writes each grant once, by id)"
                )
                return
            batch.append(text)
            if len(batch) == 10_000:
                hasher.update((b"," if count else b"") + ",".join(batch).encode())
                count, batch = count + len(batch), []
            last = grant
    except _LineTooLong:
        problems.append(f"population.csv line {n + 1} is longer than {MAX_LINE} bytes")
        return
    except UnicodeDecodeError:
        problems.append(f"population.csv line {n + 1} is not UTF-8")
        return
    except _Unreadable as exc:
        problems.append(str(exc))
        return
    if batch:
        hasher.update((b"," if count else b"") + ",".join(batch).encode())
        count += len(batch)
    digest = hasher.hexdigest()
    stated = manifest.get("population")
    stated = stated if isinstance(stated, dict) else {}
    if start is None:
        problems.append("audit.jsonl holds no review.start event of this campaign")
        return
    details = start.get("details") or {}
    if details.get("population_sha256") != digest or details.get("item_count") != count:
        problems.append(
            "the population does NOT match the review.start event: population.csv has "
            f"{count} grants hashing to {digest}, the event says "
            f"{quoted(details.get('item_count'))} hashing to "
            f"{quoted(details.get('population_sha256'))}"
        )
    if stated.get("sha256") != digest or stated.get("item_count") != count:
        problems.append("the population does NOT match the manifest's digest")

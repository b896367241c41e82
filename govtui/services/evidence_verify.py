"""Verifying an evidence pack on its own, with no database (an auditor's machine): the
manifest's signature by the key the pack carries (and that key's fingerprint against the one
given out of band), every file's hash and size, no file missing or extra, SHA256SUMS, the
audit slice's links, and a campaign's population digest against its review.start event."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from govtui.errors import ConfigurationError, InputError
from govtui.security import signing
from govtui.services import audit
from govtui.services.evidence_pack import (
    KEY_FILE,
    MANIFEST,
    SIGNATURE,
    SUMS,
    PackFile,
    key_file,
    sums_text,
)
from govtui.text import quoted

MAX_META = 1 << 20  # manifest, key and signature are small; a larger one is not ours


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


def verify(path: Path, *, expect_key: str | None = None) -> Verified:
    """Check a pack on its own: the manifest's signature by the key in the pack (and that
    key's fingerprint when one is expected), every file's hash and size, no file missing or
    extra, SHA256SUMS, the audit slice's links, and the population digest."""
    if expect_key is not None and not _FP.match(expect_key):
        raise InputError(
            f"invalid --expect-key {quoted(expect_key)}: write it as SHA256: and 64 hex digits"
        )
    result = Verified()
    problems = result.problems
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path} is not a readable zip file: {exc}") from None
    with archive:
        names = [i.filename for i in archive.infolist()]
        if len(names) != len(set(names)):
            problems.append("the zip holds two entries of the same name")
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
        try:
            manifest = json.loads(manifest_raw.decode("utf-8"))
            files = [PackFile(f["name"], f["sha256"], int(f["size"])) for f in manifest["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"manifest.json is not a govtui manifest: {exc}")
            return result
        result.kind = manifest.get("kind")
        result.subject = manifest.get("subject") or {}
        result.chain_head = manifest.get("chain_head") or {}
        result.files = len(files)
        stated = (manifest.get("signing_key") or {}).get("fingerprint")
        if result.fingerprint is not None and stated != result.fingerprint:
            problems.append(
                f"manifest.json names the key {stated}, but {KEY_FILE} is {result.fingerprint}"
            )
        listed = [f.name for f in files] + [MANIFEST, SIGNATURE]
        for name in sorted(set(names) - set(listed)):
            problems.append(f"{name} is in the zip but not in the manifest")
        for name in sorted(set(listed) - set(names)):
            problems.append(f"{name} is listed in the manifest but missing from the zip")
        good: set[str] = set()
        for f in files:
            if f.name in names and _check_file(archive, f, problems):
                good.add(f.name)
        if SUMS in names:
            sums = _read_small(archive, SUMS, problems)
            if sums is not None and sums.decode("utf-8", "replace") != sums_text(files):
                problems.append(f"{SUMS} does not list the manifest's files and hashes")
        if "audit.jsonl" in names:
            result.events = _check_audit(archive, result.chain_head, problems)
        if result.kind == "campaign" and "population.csv" in names:
            _check_population(archive, manifest, problems)
    return result


def _read_small(archive: zipfile.ZipFile, name: str, problems: list[str]) -> bytes | None:
    try:
        with archive.open(name) as f:
            data = f.read(MAX_META + 1)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        problems.append(f"{name} cannot be read from the zip: {exc}")
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
    except ConfigurationError as exc:
        problems.append(f"{KEY_FILE} holds no Ed25519 public key: {exc}")
        return
    result.fingerprint = signing.fingerprint(public)
    if key_raw.decode("utf-8", "replace") != key_file(
        signing.public_pem(public), result.fingerprint
    ):
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
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(f.name) as stream:
            while size <= f.size:
                chunk = stream.read(1 << 16)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        problems.append(f"{f.name} cannot be read from the zip: {exc}")
        return False
    if size != f.size:
        problems.append(f"{f.name} is {size} bytes, the manifest says {f.size}")
        return False
    if digest.hexdigest() != f.sha256:
        problems.append(f"{f.name} was changed: its SHA-256 is not the manifest's")
        return False
    return True


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[str]:
    with archive.open(name) as raw:
        for line in raw:
            yield line.decode("utf-8", "replace")


def _check_audit(archive: zipfile.ZipFile, head: dict[str, Any], problems: list[str]) -> int:
    """Each event's hash recomputes, seqs rise, consecutive events link, and the last line is
    the manifest's chain head, at or after the last event."""
    count, previous = 0, None
    seen_head: dict[str, Any] | None = None
    try:
        for n, line in enumerate(_lines(archive, "audit.jsonl"), start=1):
            if seen_head is not None:
                problems.append(f"audit.jsonl line {n}: an event after the chain head line")
                return count
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(f"audit.jsonl line {n} is not JSON")
                return count
            if isinstance(record, dict) and set(record) == {"chain_head"}:
                seen_head = record["chain_head"]
                continue
            problem = _event_problem(record, previous)
            if problem is not None:
                problems.append(f"audit.jsonl line {n}: {problem}")
                return count
            previous = record
            count += 1
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        problems.append(f"audit.jsonl cannot be read from the zip: {exc}")
        return count
    if seen_head is None:
        problems.append("audit.jsonl does not end with the chain head")
    elif seen_head != head:
        problems.append("audit.jsonl's chain head is not the manifest's")
    elif previous is not None:
        if not isinstance(head.get("seq"), int) or head["seq"] < previous["seq"]:
            problems.append("the chain head is older than the last event of the slice")
        elif head["seq"] == previous["seq"] and head.get("hash") != previous["hash"]:
            problems.append("the chain head's hash is not its event's")
    return count


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
    except (KeyError, TypeError, ValueError):
        return "not an audit event"
    if not isinstance(seq, int) or audit.format_time(at) != at_text:
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
    archive: zipfile.ZipFile, manifest: dict[str, Any], problems: list[str]
) -> None:
    """The grant ids of population.csv hash to the review.start event's digest (and the
    manifest's), and there are as many as it counted."""
    ids: list[int] = []
    try:
        lines = _lines(archive, "population.csv")
        header = next(lines, "")
        if header.split(",", 1)[0] != "grant_id":
            problems.append("population.csv does not start with its grant_id column")
            return
        for line in lines:
            ids.append(int(line.split(",", 1)[0]))
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"population.csv cannot be read from the zip: {exc}")
        return
    except ValueError:
        problems.append("population.csv has a grant id that is not a number")
        return
    summary = audit.id_summary(ids)
    digest = summary["ids_sha256"]
    start = _start_event(archive, (manifest.get("subject") or {}).get("campaign_id"))
    stated = manifest.get("population") or {}
    if start is None:
        problems.append("audit.jsonl holds no review.start event of this campaign")
        return
    details = start.get("details") or {}
    if details.get("population_sha256") != digest or details.get("item_count") != len(ids):
        problems.append(
            "the population does NOT match the review.start event: population.csv has "
            f"{len(ids)} grants hashing to {digest}, the event says {details.get('item_count')}"
            f" hashing to {details.get('population_sha256')}"
        )
    if stated.get("sha256") != digest or stated.get("item_count") != len(ids):
        problems.append("the population does NOT match the manifest's digest")


def _start_event(archive: zipfile.ZipFile, campaign_id: Any) -> dict[str, Any] | None:
    try:
        for line in _lines(archive, "audit.jsonl"):
            record = json.loads(line)
            if (
                isinstance(record, dict)
                and record.get("action") == "review.start"
                and (record.get("details") or {}).get("campaign_id") == campaign_id
            ):
                return record
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return None

"""`govtui evidence verify` against a zip handed over by a tamperer: whatever the zip holds,
verify says NOT VERIFIED with one-line problems (exit 1) or refuses the file in one line (exit
2), never a traceback, never more memory than a few chunks, never a raw escape code.

No database: each pack is built here, self-consistent and signed with a key made for the
test (what a tamperer can do too), so each test changes one thing and only that trips."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from govtui.cli.main import main
from govtui.security import signing
from govtui.services import audit, evidence_pack, evidence_verify
from govtui.services.evidence_pack import PackFile

CAMPAIGN_ID = 7
Edit = Callable[[dict[str, Any]], None]


def _event(seq: int, prev: str, action: str, details: dict[str, Any]) -> dict[str, Any]:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)
    digest = audit.event_hash(
        seq=seq,
        at=at,
        actor="root",
        action=action,
        obj="review:q1",
        details=audit.canonical_json(details),
        prev_hash=prev,
    )
    return {
        "seq": seq,
        "at": audit.format_time(at),
        "actor": "root",
        "action": action,
        "object": "review:q1",
        "details": details,
        "prev_hash": prev,
        "hash": digest,
    }


def _line(value: Any) -> bytes:
    return (audit.canonical_json(value) + "\n").encode()


def population(ids: list[int]) -> bytes:
    return b"grant_id,item_id,reviewer\n" + b"".join(b"%d,%d,ann\n" % (g, g) for g in ids)


def audit_for(ids: list[int]) -> tuple[bytes, dict[str, Any]]:
    digest = audit.id_summary(ids)["ids_sha256"]
    start = _event(
        1,
        "0" * 64,
        "review.start",
        {"campaign_id": CAMPAIGN_ID, "item_count": len(ids), "population_sha256": digest},
    )
    close = _event(2, start["hash"], "review.close", {"campaign_id": CAMPAIGN_ID})
    head = {"seq": 2, "hash": close["hash"], "at": close["at"]}
    return _line(start) + _line(close) + _line({"chain_head": head}), head


class Pack:
    """A campaign pack's members, signed with a key of the test's own."""

    def __init__(self, ids: list[int] | None = None) -> None:
        self.key = signing.generate()
        self.ids = [3, 5, 8] if ids is None else ids
        slice_, self.head = audit_for(self.ids)
        self.data: dict[str, bytes] = {
            "population.csv": population(self.ids),
            "decisions.csv": b"grant_id,decision\n",
            "remediation.csv": b"grant_id,ended_at\n",
            "summary.txt": b"campaign q1\n",
            "audit.jsonl": slice_,
        }

    def members(self, edit: Edit | None = None, sign: bool = True) -> dict[str, bytes]:
        """Every member, SHA256SUMS and the manifest made from `data` and signed (after
        `edit` changed the manifest's body, when given)."""
        data = dict(self.data)
        data[evidence_pack.KEY_FILE] = evidence_pack.key_file(
            self.key.public_pem, self.key.fingerprint
        ).encode()
        data[evidence_pack.README] = b"how to check this pack\n"
        files = [PackFile(n, hashlib.sha256(b).hexdigest(), len(b)) for n, b in data.items()]
        sums = evidence_pack.sums_text(files).encode()
        data[evidence_pack.SUMS] = sums
        files.append(PackFile(evidence_pack.SUMS, hashlib.sha256(sums).hexdigest(), len(sums)))
        raw = evidence_pack.manifest_bytes(
            kind="campaign",
            subject={"campaign": "q1", "campaign_id": CAMPAIGN_ID, "client": "acme"},
            files=files,
            head=self.head,
            database_id="test",
            fingerprint=self.key.fingerprint,
            extra={
                "population": {
                    "item_count": len(self.ids),
                    "sha256": audit.id_summary(self.ids)["ids_sha256"],
                }
            },
        )
        if edit is not None:
            body = json.loads(raw)
            edit(body)
            raw = _line(body)
        data[evidence_pack.MANIFEST] = raw
        data[evidence_pack.SIGNATURE] = signing.sign(self.key.private_b64, raw) if sign else b""
        return data

    def write(self, path: Path, edit: Edit | None = None, **replace: bytes) -> Path:
        members = self.members(edit)
        members.update({k.replace("__", "."): v for k, v in replace.items()})
        write_zip(path, members)
        return path


def write_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, body in members.items():
            z.writestr(name, body)


def problems_of(path: Path, expect: str | None = None) -> list[str]:
    result = evidence_verify.verify(path, expect_key=expect)
    assert not result.ok
    return result.problems


def run(path: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["evidence", "verify", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "\x1b" not in out.out + out.err
    return code, out.out, out.err


def refused(path: Path | str, capsys: pytest.CaptureFixture[str]) -> str:
    """verify refuses the file itself: exit 2, one line on stderr, nothing on stdout."""
    code, out, err = run(path, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("govtui: error: ")
    return err


def not_verified(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _err = run(path, capsys)
    assert code == 1 and "NOT VERIFIED" in out
    assert not [line for line in out.splitlines() if line.startswith("VERIFIED")]
    return out


# --- the control ------------------------------------------------------------------------------


def test_the_test_pack_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = Pack()
    path = pack.write(tmp_path / "ok.zip")
    result = evidence_verify.verify(path, expect_key=pack.key.fingerprint)
    assert result.ok, result.problems
    assert result.events == 2 and result.kind == "campaign"
    code, out, _ = run(path, capsys)
    assert code == 0 and "VERIFIED against the pack's own key only" in out


# --- zip bombs: bounded reads -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["audit.jsonl", "population.csv"])
def test_one_huge_line_hashed_and_signed_is_a_finding_not_an_allocation(
    tmp_path: Path, name: str
) -> None:
    """The manifest gives the 64 MiB member's true size and hash (a tamperer signs with a key
    of their own): the hash passes, and the line check reads at most MAX_LINE of it."""
    pack = Pack()
    prefix = b"grant_id,x\n" if name == "population.csv" else b""
    pack.data[name] = prefix + b"1" * (64 << 20)
    path = pack.write(tmp_path / "line.zip")
    tracemalloc.start()
    try:
        problems = problems_of(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert any(f"{name} line" in p and "is longer than" in p for p in problems), problems
    assert peak < 8 << 20, f"verify peaked at {peak >> 20} MiB"


def test_a_line_of_max_line_bytes_is_read_and_one_more_is_a_finding(tmp_path: Path) -> None:
    """At the boundary: the chunk holding the newline must count the bytes before it."""
    for length, too_long in (
        (evidence_verify.MAX_LINE, False),
        (evidence_verify.MAX_LINE + 1, True),
    ):
        pack = Pack()
        pack.data["audit.jsonl"] = b"1" * length + b"\n" + pack.data["audit.jsonl"]
        problems = problems_of(pack.write(tmp_path / "edge.zip"))
        assert ("audit.jsonl line 1 is longer than 1048576 bytes" in problems) is too_long
        assert ("audit.jsonl line 1 is not JSON" in problems) is not too_long, problems


def test_a_member_bigger_than_its_header_says_is_read_no_further(tmp_path: Path) -> None:
    """The central directory and the manifest both say 10 bytes; the deflate stream holds
    64 MiB: at most 11 bytes come out, and the member fails its size or hash."""
    pack = Pack()
    path = tmp_path / "liar.zip"
    members = pack.members()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            if name == "summary.txt":
                with z.open("summary.txt", "w") as out:
                    for _ in range(64):
                        out.write(b"a" * (1 << 20))
            else:
                z.writestr(name, body)
    raw = bytearray(path.read_bytes())
    # Patch summary.txt's uncompressed size in its central directory entry to the manifest's.
    at = raw.find(b"summary.txt", raw.find(b"PK\x01\x02"))
    entry = raw.rfind(b"PK\x01\x02", 0, at)
    assert entry > 0
    size = len(pack.data["summary.txt"])
    raw[entry + 24 : entry + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        problems = problems_of(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert any(p.startswith("summary.txt") for p in problems), problems
    assert peak < 8 << 20


def test_a_long_population_streams_without_a_list_of_ids(tmp_path: Path) -> None:
    """200,000 grants: the digest is computed as the rows stream (they come by grant id), so
    memory does not grow with the population (a list of their ids would take over 7 MiB)."""
    ids = list(range(1, 200_001))
    pack = Pack(ids)
    path = pack.write(tmp_path / "big.zip")
    del ids
    tracemalloc.start()
    try:
        result = evidence_verify.verify(path, expect_key=pack.key.fingerprint)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, result.problems
    assert peak < 4 << 20, f"verify peaked at {peak / (1 << 20):.1f} MiB on 200,000 grants"


def test_a_population_out_of_grant_order_or_repeated_is_a_finding(tmp_path: Path) -> None:
    for ids in ([3, 8, 5], [3, 5, 5]):
        pack = Pack(ids)
        problems = problems_of(pack.write(tmp_path / "order.zip"))
        assert any("is not above the one before" in p for p in problems), problems


def test_a_member_whose_hash_failed_is_not_read_as_a_slice(tmp_path: Path) -> None:
    pack = Pack()
    members = pack.members()
    members["audit.jsonl"] = b"x" * len(members["audit.jsonl"])  # same size, not JSON
    members["population.csv"] = b"y" * len(members["population.csv"])
    write_zip(tmp_path / "t.zip", members)
    problems = problems_of(tmp_path / "t.zip")
    assert "audit.jsonl was changed: its SHA-256 is not the manifest's" in problems
    assert "population.csv was changed: its SHA-256 is not the manifest's" in problems
    assert not [p for p in problems if "line" in p or "population does NOT" in p], problems


# --- encryption, compression, damaged data ----------------------------------------------------


def _patch_central(path: Path, name: str, patch: Callable[[bytearray, int], None]) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.find(name.encode(), raw.find(b"PK\x01\x02"))
    entry = raw.rfind(b"PK\x01\x02", 0, at)
    patch(raw, entry)
    path.write_bytes(bytes(raw))


def test_an_encrypted_data_member_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Pack().write(tmp_path / "enc.zip")

    def encrypt(raw: bytearray, entry: int) -> None:
        raw[entry + 8] |= 0x01

    _patch_central(path, "decisions.csv", encrypt)
    out = not_verified(path, capsys)
    assert "PROBLEM: decisions.csv is encrypted: a govtui pack never is" in out


@pytest.mark.parametrize("method", [99, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_member_compressed_another_way_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: int
) -> None:
    path = Pack().write(tmp_path / "method.zip")

    def recompress(raw: bytearray, entry: int) -> None:
        raw[entry + 10 : entry + 12] = method.to_bytes(2, "little")

    _patch_central(path, "summary.txt", recompress)
    out = not_verified(path, capsys)
    assert f"summary.txt is compressed with method {method}" in out


def test_damaged_deflate_data_and_a_bad_crc_are_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = Pack()
    # zlib.error: garbage in the middle of a member's deflate stream.
    path = pack.write(tmp_path / "z.zip")
    raw = bytearray(path.read_bytes())
    start = raw.find(b"population.csv") + len("population.csv")
    raw[start + 2 : start + 12] = b"\xff" * 10
    path.write_bytes(bytes(raw))
    out = not_verified(path, capsys)
    assert "population.csv" in out
    # Bad CRC-32 (BadZipFile at the end of a stored member).
    members = pack.members()
    path = tmp_path / "crc.zip"
    write_zip(path, members, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.find(members["summary.txt"])
    raw[at] ^= 0x20
    path.write_bytes(bytes(raw))
    out = not_verified(path, capsys)
    assert "summary.txt" in out


def test_an_unsupported_key_type_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PEM of an algorithm cryptography does not know raises UnsupportedAlgorithm, which is
    not a ValueError."""
    import base64

    der = bytes.fromhex("300c300506032a03040303000102")  # SPKI, OID 1.2.3.4
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der) + b"\n-----END PUBLIC KEY-----\n"
    pack = Pack()
    members = pack.members()
    members[evidence_pack.KEY_FILE] = pem
    write_zip(tmp_path / "k.zip", members)
    out = not_verified(tmp_path / "k.zip", capsys)
    assert "signing-key.pub holds no Ed25519 public key" in out


def test_invalid_utf8_in_a_signed_slice_is_a_finding(tmp_path: Path) -> None:
    pack = Pack()
    pack.data["audit.jsonl"] = b'{"seq": "\xff"}\n' + pack.data["audit.jsonl"]
    problems = problems_of(pack.write(tmp_path / "u.zip"))
    assert "audit.jsonl line 1 is not UTF-8" in problems


def test_a_deeply_nested_audit_line_is_a_finding(tmp_path: Path) -> None:
    pack = Pack()
    pack.data["audit.jsonl"] = b"[" * 200_000 + b"\n" + pack.data["audit.jsonl"]
    problems = problems_of(pack.write(tmp_path / "n.zip"))
    assert "audit.jsonl line 1 is not JSON" in problems


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../.bashrc", "a path with '..'"),
        ("a/../../b", "a path with '..'"),
        ("/etc/cron.d/x", "an absolute path"),
        ("C:\\Windows\\x", "an absolute path"),
    ],
)
def test_a_member_that_unpacks_outside_its_folder_is_a_finding(
    tmp_path: Path, name: str, why: str
) -> None:
    members = Pack().members()
    members[name] = b"planted"
    path = tmp_path / "names.zip"
    write_zip(path, members)
    problems = problems_of(path)
    assert any(why in p and "lands outside" in p for p in problems), problems


def _with_duplicate(path: Path, members: dict[str, bytes], good_last: bool) -> None:
    """A zip holding population.csv twice: a shorter population, then the good one (or the
    good one first)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, body in members.items():
            if name == "population.csv" and good_last:
                z.writestr(name, population([3, 5]))
            z.writestr(name, body)
            if name == "population.csv" and not good_last:
                z.writestr(name, population([3, 5]))


def test_two_members_of_one_name_are_a_finding_whichever_is_good(tmp_path: Path) -> None:
    pack = Pack()
    members = pack.members()
    for good_last in (True, False):
        path = tmp_path / "dup.zip"
        with pytest.warns(UserWarning, match="Duplicate name"):
            _with_duplicate(path, members, good_last)
        problems = problems_of(path, pack.key.fingerprint)
        assert any("population.csv is in the zip 2 times" in p for p in problems), problems


def test_a_member_not_in_the_manifest_is_a_finding(tmp_path: Path) -> None:
    members = Pack().members()
    members["notes.txt"] = b"planted"
    members["folder/"] = b""
    write_zip(tmp_path / "x.zip", members)
    problems = problems_of(tmp_path / "x.zip")
    assert "notes.txt is in the zip but not in the manifest" in problems
    assert "folder/ is in the zip but not in the manifest" in problems


def test_escape_codes_and_newlines_from_the_pack_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = Pack()

    def hostile(body: dict[str, Any]) -> None:
        body["subject"] = {"\x1b[2J": "\x1b]0;pwned\x07", "c\u202e": "x" * 100_000}
        body["chain_head"]["seq"] = "\x1b[32m1\nVERIFIED: all good"
        body["kind"] = "\x1b[1mcampaign"

    members = pack.members(hostile)
    members["\x1b[31mevil\nVERIFIED: fine"] = b"planted"
    write_zip(tmp_path / "esc.zip", members)
    out = not_verified(tmp_path / "esc.zip", capsys)
    assert "\\x1b[2J" in out and "\\x1b[31mevil\\x0aVERIFIED" in out
    assert "x" * 200 not in out  # a megabyte of subject is cut, not repeated
    assert all(len(line) <= 1100 for line in out.splitlines())


# --- manifest.json ----------------------------------------------------------------------------


def _manifest_problem(tmp_path: Path, raw: bytes) -> list[str]:
    pack = Pack()
    members = pack.members()
    members[evidence_pack.MANIFEST] = raw
    members[evidence_pack.SIGNATURE] = signing.sign(pack.key.private_b64, raw)
    write_zip(tmp_path / "m.zip", members)
    return problems_of(tmp_path / "m.zip")


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (b"[]", "not a JSON object"),
        (b"3", "not a JSON object"),
        (b"\xff\xfe", "not a govtui manifest"),
        (b"[" * 500_000, "nested too deeply"),
        (b'{"files": {}}', "no list of files"),
        (b'{"files": [1]}', "a file entry that is not an object"),
        (b'{"files": [{"name": 12}]}', "the file name '12' is not a plain file name"),
        (b'{"files": [{"name": "../x"}]}', "is not a plain file name"),
        (b'{"files": [{"name": "a", "sha256": 5}]}', "the SHA-256 of a is not 64 hex"),
        (b'{"files": [{"name": "a", "sha256": "' + b"0" * 64 + b'", "size": "3"}]}', "size"),
        (b'{"files": [{"name": "a", "sha256": "' + b"0" * 64 + b'", "size": true}]}', "size"),
        (b'{"files": [{"name": "a", "sha256": "' + b"0" * 64 + b'", "size": -1}]}', "size"),
        (b'{"files": [' + b",".join([b"{}"] * 65) + b"]}", "it lists 65 files"),
        (b'{"files": [], "n": 1' + b"0" * 5000 + b"}", "not a govtui manifest"),
    ],
)
def test_a_manifest_that_is_not_ours_is_one_finding(
    tmp_path: Path, raw: bytes, expect: str
) -> None:
    problems = _manifest_problem(tmp_path, raw)
    assert any(expect in p for p in problems), problems


def test_a_huge_manifest_is_not_read_whole(tmp_path: Path) -> None:
    raw = b'{"files": [], "pad": "' + b"a" * (64 << 20) + b'"}'
    tracemalloc.start()
    try:
        problems = _manifest_problem(tmp_path, raw)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "manifest.json is larger than any govtui writes" in problems
    assert peak < 8 << 20


def test_a_manifest_of_another_kind_or_missing_a_file_is_a_finding(tmp_path: Path) -> None:
    pack = Pack()

    def other_kind(body: dict[str, Any]) -> None:
        body["kind"] = "client"

    assert any(
        "is not a pack's" in p for p in problems_of(pack.write(tmp_path / "k.zip", other_kind))
    )
    # No audit slice at all, listed nowhere: a self-signed pack that skips the slice check.
    del pack.data["audit.jsonl"]
    problems = problems_of(pack.write(tmp_path / "a.zip"))
    assert "the manifest does not list audit.jsonl: every pack holds it" in problems


def test_a_manifest_listing_a_name_twice_is_a_finding(tmp_path: Path) -> None:
    def twice(body: dict[str, Any]) -> None:
        body["files"].append(body["files"][0])

    problems = problems_of(Pack().write(tmp_path / "t.zip", twice))
    assert any("it lists population.csv twice" in p for p in problems), problems


# --- not a pack at all: one line, exit 2 -------------------------------------------------------


def test_what_is_not_a_zip_file_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = Pack().write(tmp_path / "good.zip")
    whole = good.read_bytes()
    (tmp_path / "empty.zip").write_bytes(b"")
    (tmp_path / "text.zip").write_text("hello\n")
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "cut_end.zip").write_bytes(whole[:-5])
    for name in ("empty.zip", "text.zip", "cut.zip", "cut_end.zip"):
        assert "is not a readable zip file" in refused(tmp_path / name, capsys), name
    assert "no such file" in refused(tmp_path / "missing.zip", capsys)
    (tmp_path / "dir.zip").mkdir()
    assert "is a directory" in refused(tmp_path / "dir.zip", capsys)
    (tmp_path / "link.zip").symlink_to(good)
    assert "is a symbolic link" in refused(tmp_path / "link.zip", capsys)
    os.mkfifo(tmp_path / "fifo.zip")  # no writer: opening it must not hang
    assert "is not a regular file" in refused(tmp_path / "fifo.zip", capsys)
    assert "is not a regular file" in refused("/dev/zero", capsys)


def test_a_zip_declaring_a_huge_directory_is_refused_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.zip"
    write_zip(path, {f"f{n}": b"" for n in range(200)})
    assert "declares 200 entries" in refused(path, capsys)


def test_a_central_directory_name_unlike_its_local_header_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Pack().write(tmp_path / "h.zip")
    raw = bytearray(path.read_bytes())
    local = raw.find(b"summary.txt")  # the first occurrence: its local header
    raw[local] = ord("S")
    path.write_bytes(bytes(raw))
    out = not_verified(path, capsys)
    assert "summary.txt cannot be read from the zip" in out


# --- whatever zipfile or zlib raises is one line ------------------------------------------------

_RAISED = [
    zipfile.BadZipFile("Bad magic number for file header"),
    zlib.error("Error -3 while decompressing data: invalid block type"),
    EOFError("Compressed file ended before the end-of-stream marker was reached"),
    OSError(5, "Input/output error"),
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    RuntimeError("File is encrypted, password required for extraction"),
    NotImplementedError("That compression method is not supported"),
]


@pytest.mark.parametrize("exc", _RAISED, ids=lambda e: type(e).__name__)
def test_an_error_reading_a_member_is_a_finding(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    exc: Exception,
) -> None:
    path = Pack().write(tmp_path / "ok.zip")
    real = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        if self.name == "audit.jsonl":
            raise exc
        return real(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    out = not_verified(path, capsys)
    assert "PROBLEM: audit.jsonl cannot be read from the zip: " in out


@pytest.mark.parametrize("exc", _RAISED, ids=lambda e: type(e).__name__)
def test_an_error_opening_the_zip_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    exc: Exception,
) -> None:
    path = Pack().write(tmp_path / "ok.zip")

    def broken(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        raise exc

    monkeypatch.setattr(zipfile.ZipFile, "__init__", broken)
    assert "is not a readable zip file" in refused(path, capsys)


def test_a_name_flagged_utf8_that_is_not_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members = Pack().members()
    members["café.txt"] = b"x"
    path = tmp_path / "utf8.zip"
    write_zip(path, members)
    raw = path.read_bytes()
    central = raw.find(b"PK\x01\x02")
    at = raw.find("café".encode(), central)
    path.write_bytes(raw[:at] + b"caf\xff\xff" + raw[at + 5 :])
    assert "is not a readable zip file" in refused(path, capsys)

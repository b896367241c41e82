"""Red-team reproductions against the issue-13 evidence controls (signed acts, fail-closed
sync, `evidence verify`). Each test pins what the issue (or DESIGN.md's threat model: someone
who can write the SQLite file) says must hold. They were strict xfails when attack13 found
them; all six are fixed now and stay as regression tests."""

from __future__ import annotations

import base64
import io
import json
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from govtui import clock, db
from govtui.cli.main import main
from govtui.models import ActSignature, Approval, EvidenceKey, Grant, OperatorKey
from govtui.security import signing
from govtui.services import act_signatures, evidence_verify, grant_lifecycle, sync

from .conftest import FakeClock
from .directory_support import Directory
from .factories import World
from .signed_support import signed_ldap, signed_world  # noqa: F401 (fixtures)
from .test_act_signatures import member, sql, verify

# --- fail-closed sync ----------------------------------------------------------------------


def test_a_rogue_retired_evidence_key_inserted_by_sql_registers_a_forged_approver_key(
    world: World, ldap: Directory, fake_clock: FakeClock
) -> None:
    """Attack: with write access to the SQLite file only (no keyring), insert an evidence_key
    row of one's own as a RETIRED key (the one-current index does not stop it), an
    operator_key for approver bob whose registration that rogue key signs, an approval row
    by bob and its act_signature by the rogue bob key. Every check is against rows in the
    same database, so the approval verifies and sync adds ada to the group.
    Safe: an evidence key is trusted only when the chain/keyring vouches for it (e.g. a key
    must be the keyring's current one, or listed by an evidence.key_init/rotate event whose
    signed checkpoint verifies); a registration by a key listed only by SQL is refused, and
    sync adds nothing."""
    gid = world.request()
    rogue, bob_pair = signing.generate(), signing.generate()
    now = clock.now()
    bob = world.op("bob").id or 0
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=gid, round=0, approver_id=bob, decision="approve",
                totp_step=7, decided_at=now,
            )
        )  # fmt: skip
        grant = session.get(Grant, gid)
        assert grant is not None
        grant_lifecycle.activate(session, grant, now=now, expires_at=now + timedelta(days=10))
        evidence = EvidenceKey(
            fingerprint=rogue.fingerprint, public_key=rogue.public_pem, keyring_ref="x",
            created_by=1, created_at=now - timedelta(days=1), retired_at=now - timedelta(hours=1),
        )  # fmt: skip
        session.add(evidence)
        session.flush()
        key = OperatorKey(
            operator_id=bob, fingerprint=bob_pair.fingerprint, public_key=bob_pair.public_pem,
            keyring_ref="y", registered_at=now - timedelta(days=1), evidence_key_id=evidence.id,
        )  # fmt: skip
        session.add(key)
        session.flush()
        text = act_signatures.registration_text(key, "bob")
        key.registration_sig = base64.b64encode(signing.sign(rogue.private_b64, text)).decode()
        statement = act_signatures.approval_statement(
            gid,
            0,
            "acme/rlhf/pairs",
            "read",
            "E1",
            10,
            7,
            "bob",
            uid="ada",
            sensitivity="confidential",
        )
        session.add(
            ActSignature(
                kind="approve", subject=f"approval:{gid}:0", operator_id=bob,
                operator_key_id=key.id or 0, statement=statement,
                signature=base64.b64encode(
                    signing.sign(bob_pair.private_b64, statement.encode())
                ).decode(),
                signed_at=now,
            )
        )  # fmt: skip
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "ada"), "sync added a member on an approval signed by a rogue key"
    assert not verify(world).ok


def test_a_signed_grants_add_op_cannot_be_redirected_to_another_member(
    world: World, ldap: Directory
) -> None:
    """Attack: a legitimately approved and signed grant for ada queues its add_member op;
    before sync runs, `UPDATE outbox_op SET directory_uid = 'bo'`. refused_adds only checks
    the grant's approvals, not that the op adds the grant's own contractor to the grant's
    own group, so sync adds bo (who has no grant at all).
    Safe: an add is sent only when its member and group are those of the grant (or of a
    live verified grant of that member and group); otherwise refused, saying why."""
    gid = world.request()
    world.approve(gid)
    sql(
        world.engine,
        "UPDATE outbox_op SET directory_uid = 'bo' WHERE grant_id = :g AND operation = 'add_member'",
        g=gid,
    )
    sync.run_once(world.engine, due="now")
    assert not member(ldap, "bo"), "sync added bo, who holds no grant, on ada's signed grant"


def test_deleting_an_operators_keys_and_signatures_makes_their_forged_approval_harmless_to_verify(
    world: World,
) -> None:
    """Attack: approve by SQL as ann, then DELETE ann's operator_key rows and act_signature
    rows. `_keyed_since` looks only at operator_key rows, so ann now 'had no registered key'
    and the unsigned approval is only 'not verified' (not fatal): `audit verify` passes.
    The chain still holds ann's operator.key_create/operator.key_register events.
    Safe: an operator whose key the chain records (key_create / key_register) counts as
    keyed from then on, whatever the operator_key table says: the unsigned approval is BAD
    and verify fails (as `enforced` already does for evidence keys deleted by SQL)."""
    gid = world.request()
    ann = world.op("ann").id
    now = clock.now()
    with db.write_session(world.engine) as session:
        session.execute(
            sa.insert(Approval).values(
                grant_id=gid, round=0, approver_id=ann, decision="approve",
                totp_step=3, decided_at=now,
            )
        )  # fmt: skip
    sql(world.engine, "DELETE FROM act_signature WHERE operator_id = :a", a=ann)
    sql(world.engine, "DELETE FROM operator_key WHERE operator_id = :a", a=ann)
    report = verify(world)
    assert not report.ok, report.lines()


# --- evidence verify ---------------------------------------------------------------------------


def _pack(path: Path, members: dict[str, bytes], declared: dict[str, int] | None = None) -> None:
    """A zip shaped like a pack (signature and key are garbage: what a tamperer hands over)."""
    files = [
        {"name": n, "sha256": "0" * 64, "size": (declared or {}).get(n, len(d))}
        for n, d in members.items()
    ]
    manifest = json.dumps({"files": files, "kind": "client"}).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest)
        z.writestr("manifest.sig", b"\0" * 64)
        z.writestr("signing-key.pub", b"not a key\n")
        for name, data in members.items():
            z.writestr(name, data)


# attack13 finding 4: fixed in issue 13 (services/evidence_verify.py).
def test_verify_reads_a_huge_audit_member_into_memory_a_zip_bomb(tmp_path: Path) -> None:
    """Attack: replace audit.jsonl by a 64 MiB member of one line (it deflates to ~64 KB).
    _check_file stops at the manifest's size, but _check_audit runs anyway (even though the
    file's hash already failed) and iterates `for line in raw`, so one line is read whole:
    memory grows with the member (a 10 GB line exhausts an auditor's machine).
    Safe: verify reads every member in bounded chunks, never more than the manifest's size
    (skips the slice/population checks of a member whose hash failed), peak memory small."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        files = [{"name": "audit.jsonl", "sha256": "0" * 64, "size": 10}]
        z.writestr("manifest.json", json.dumps({"files": files, "kind": "client"}))
        z.writestr("manifest.sig", b"\0" * 64)
        z.writestr("signing-key.pub", b"not a key\n")
        with z.open("audit.jsonl", "w") as out:
            block = b"a" * (1 << 20)
            for _ in range(64):
                out.write(block)
    tracemalloc.start()
    try:
        result = evidence_verify.verify(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.ok
    assert peak < 16 << 20, f"verify peaked at {peak >> 20} MiB on a 64 MiB member"


# attack13 finding 5: fixed in issue 13 (services/evidence_verify.py).
def test_verify_of_an_encrypted_member_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: hand over a pack whose manifest.json entry has the 'encrypted' flag bit set
    in the central directory. zipfile raises RuntimeError ('password required'), which
    _read_small does not catch (nor NotImplementedError for an unknown compression method):
    `govtui evidence verify` dies with a traceback.
    Safe: NOT VERIFIED with a one-line problem (exit 1), or one line on stderr and exit 2."""
    path = tmp_path / "enc.zip"
    _pack(path, {"README.txt": b"hi\n"})
    raw = bytearray(path.read_bytes())
    central = raw.find(b"PK\x01\x02")  # the first entry: manifest.json
    raw[central + 8] |= 0x01  # general purpose flag: encrypted
    path.write_bytes(bytes(raw))
    code = main(["evidence", "verify", str(path)])
    assert code in (1, 2)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out


# attack13 finding 6: fixed in issue 13 (services/evidence_verify.py).
def test_verify_refuses_an_unsupported_compression_method_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: same, with manifest.json's compression method set to 99 (AES) in both
    headers: zipfile raises NotImplementedError, uncaught. Safe: one line, no traceback."""
    path = tmp_path / "method.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", b"{}")
        z.writestr("manifest.sig", b"\0" * 64)
        z.writestr("signing-key.pub", b"x\n")
    raw = bytearray(buffer.getvalue())
    raw[8:10] = (99).to_bytes(2, "little")  # local header of the first entry
    central = raw.find(b"PK\x01\x02")
    raw[central + 10 : central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    code = main(["evidence", "verify", str(path)])
    assert code in (1, 2)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out

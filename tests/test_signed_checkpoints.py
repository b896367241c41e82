"""Issue 13, signed audit checkpoints: the chain head outside the database is a C2SP signed
note (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) when this login holds the evidence key;
`audit verify` checks the signature and says when the head is unsigned or the key is not here;
a checkpoint handed out (`audit checkpoint --out`) proves later that nothing before it changed,
even against someone who rewrote the database and the local checkpoint consistently."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.models import AuditEvent, AuditHead, EvidenceKey
from govtui.security import secrets, signed_note, signing
from govtui.services import audit, audit_checkpoint, catalog, dashboard, evidence_keys, operators
from govtui.services.workspace import Workspace

from .conftest import FakeClock
from .factories import ADMIN, World
from .memory_keyring import MemoryKeyring
from .test_bound_identity import cli


def _path(engine: Engine) -> Path:
    path = audit_checkpoint.checkpoint_path(engine.url.render_as_string(hide_password=False))
    assert path is not None
    return path


def _verify(engine: Engine, handed_out: str | None = None) -> audit.VerifyResult:
    with db.read_session(engine) as session:
        return audit.verify(session, engine, handed_out=handed_out)


def _init(world: World) -> evidence_keys.KeyView:
    return Workspace(world.engine, ADMIN).act(evidence_keys.init_key, code=world.code(ADMIN))


def _changes(world: World, clock: FakeClock, n: int, prefix: str = "c") -> None:
    for i in range(n):
        clock.advance(seconds=1)
        with db.write_session(world.engine) as session:
            catalog.add_client(session, operators.find(session, ADMIN), name=f"{prefix}{i}")


def _head(engine: Engine) -> tuple[int, str]:
    with db.read_session(engine) as session:
        head = session.get(AuditHead, 1)
        assert head is not None
        return head.seq, head.hash


def _database_id(engine: Engine) -> str:
    with db.read_session(engine) as session:
        return secrets.database_id(session)


def _handed_out(world: World) -> str:
    with db.read_session(world.engine) as session:
        return audit.signed_head(session)


def _drop_evidence_keys(keyring: MemoryKeyring) -> None:
    """What another login's keyring looks like: the TOTP secrets, no evidence key."""
    for service, user in list(keyring.entries):
        if user.startswith("evidence:"):
            del keyring.entries[(service, user)]


def _rewrite_from(engine: Engine, seq: int, actor: str = "mallory") -> tuple[int, str]:
    """A consistent rewrite: change event `seq`, re-hash it and every later event, and move
    the head row to match; the new head."""
    with db.write_session(engine) as session:
        rows = (
            session.execute(
                sa.select(AuditEvent).where(AuditEvent.seq >= seq - 1).order_by(AuditEvent.seq)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        prev = rows[0].hash if rows[0].seq < seq else "0" * 64
        for row in rows:
            if row.seq < seq:
                continue
            if row.seq == seq:
                row.actor = actor
            row.prev_hash = prev
            row.hash = audit.event_hash(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                obj=row.object,
                details=row.details,
                prev_hash=row.prev_hash,
            )
            prev = row.hash
            session.add(row)
        head = session.get(AuditHead, 1)
        assert head is not None
        head.seq, head.hash = rows[-1].seq, prev
        session.add(head)
    return rows[-1].seq, prev


def _truncate_to(engine: Engine, seq: int) -> str:
    with db.write_session(engine) as session:
        session.execute(sa.delete(AuditEvent).where(AuditEvent.seq > seq))  # type: ignore[arg-type]
        kept = session.get(AuditEvent, seq)
        assert kept is not None
        session.execute(sa.update(AuditHead).values(seq=seq, hash=kept.hash))
        return kept.hash


def _write_unsigned(path: Path, seq: int, digest: str) -> None:
    path.write_text(json.dumps({"hash": digest, "seq": seq}) + "\n")


# --- the note format ---------------------------------------------------------------------------


def test_the_note_format_parses_what_it_writes_and_follows_the_c2sp_key_id_rule() -> None:
    pair = signing.generate()
    name = "govtui-evidence/abc"
    root = hashlib.sha256(b"head").digest()
    text = signed_note.checkpoint_text("govtui audit 0123", 42, root)
    note = signed_note.sign(text, name, pair.private_b64)
    lines = note.split("\n")
    assert lines[:4] == ["govtui audit 0123", "42", base64.b64encode(root).decode(), ""]
    assert lines[4].startswith("\u2014 govtui-evidence/abc ") and lines[5] == ""
    blob = base64.b64decode(lines[4].split(" ")[2])
    # The key id computed here from the spec, not by the module: SHA-256(name || 0x0A ||
    # 0x01 || the 32-byte raw Ed25519 key)[:4], then the 64-byte signature of the text.
    raw = signing.raw_public(signing.load_public(pair.public_pem))
    assert blob[:4] == hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]
    assert len(blob) == 68 and signing.verify(pair.public_pem, text.encode(), blob[4:])
    parsed = signed_note.parse(note)
    assert parsed.text == text and parsed.signatures[0].name == name
    body = signed_note.parse_checkpoint(parsed.text)
    assert (body.origin, body.size, body.root_hash) == ("govtui audit 0123", 42, root)
    assert signed_note.verify(parsed, name, pair.public_pem) is True
    assert signed_note.verify(parsed, "someone-else", pair.public_pem) is None
    forged = signed_note.parse(note.replace("\n42\n", "\n43\n"))
    assert signed_note.verify(forged, name, pair.public_pem) is False


def test_a_known_c2sp_vector_parses() -> None:
    """The example note of c2sp.org/signed-note (its text has an empty line in it)."""
    example = (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
        "\n\u2014 quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+Eh"
        "fLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
    )
    note = signed_note.parse(example)
    assert note.text.endswith("ed è subito sera.\n") and "\n\n" in note.text
    assert note.signatures[0].name == "quasimodo.example/salvatore"
    assert len(note.signatures[0].signature) == 64


@pytest.mark.parametrize(
    "bad",
    [
        "text\n",  # no signatures
        "text\n\n\u2014 name\n",  # no signature
        "text\n\n\u2014 na+me AAAAAAA=\n",  # a plus in the name
        "text\n\n- name AAAAAAAA\n",  # not an em dash
        "text\n\n\u2014 name !!!!\n",  # not base64
        "te\x1bxt\n\n\u2014 name AAAAAAAA\n",  # a control character
    ],
)
def test_malformed_notes_are_refused(bad: str) -> None:
    with pytest.raises(signed_note.NoteError):
        signed_note.parse(bad)


# --- the local checkpoint --------------------------------------------------------------------


def test_without_a_key_the_head_stays_unsigned(world: World) -> None:
    result = _verify(world.engine)
    assert result.ok and not result.head_signed
    assert result.signature == "head unsigned (older database or no evidence key in this keyring)"
    assert _path(world.engine).read_text().startswith("{")


def test_with_the_key_every_head_is_a_signed_checkpoint(
    world: World, fake_clock: FakeClock
) -> None:
    key = _init(world)
    _changes(world, fake_clock, 2)
    text = _path(world.engine).read_text()
    seq, digest = _head(world.engine)
    note = signed_note.parse(text)
    assert note.text == signed_note.checkpoint_text(
        f"govtui audit {_database_id(world.engine)}", seq, bytes.fromhex(digest)
    )
    assert note.signatures[0].name == evidence_keys.key_name(key.fingerprint)
    assert signing.verify(key.public_pem, note.text.encode(), note.signatures[0].signature)
    result = _verify(world.engine)
    assert result.ok and result.head_signed
    assert result.signature == f"head signed by {key.fingerprint} (verified)"
    # The existing checkpoint contract holds for a signed one too.
    assert audit_checkpoint.read_checkpoint(_path(world.engine)) == audit_checkpoint.Checkpoint(
        seq, digest, text
    )


def test_a_login_without_the_key_keeps_the_last_signed_head(
    world: World, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    key = _init(world)
    signed_seq, _ = _head(world.engine)
    _drop_evidence_keys(memory_keyring)
    _changes(world, fake_clock, 2)
    stored = json.loads(_path(world.engine).read_text())
    assert stored["seq"] == signed_seq + 2 and signed_note.parse(stored["signed"])
    result = _verify(world.engine)
    assert result.ok and not result.head_signed
    assert result.signature is not None
    assert result.signature.startswith(f"head unsigned since event {signed_seq}, signed up to")
    assert key.fingerprint in result.signature
    # Another login's own checkpoint that never was signed: the key is named, not there.
    seq, digest = _head(world.engine)
    _write_unsigned(_path(world.engine), seq, digest)
    result = _verify(world.engine)
    assert result.ok
    assert result.signature == f"head unsigned: evidence key {key.fingerprint} not available here"


def test_a_rewritten_chain_with_a_rewritten_unsigned_head_is_caught(
    world: World, fake_clock: FakeClock
) -> None:
    """The attacker rewrites every event from #3 on and writes a matching unsigned head: the
    key in this keyring signs every head here, so an unsigned one was put there."""
    _init(world)
    _changes(world, fake_clock, 3)
    seq, digest = _rewrite_from(world.engine, 3)
    _write_unsigned(_path(world.engine), seq, digest)
    result = _verify(world.engine)
    assert not result.ok and "checkpoint was replaced" in (result.problem or "")


def test_a_rewritten_chain_keeping_the_signed_head_is_caught(
    world: World, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    _init(world)
    _changes(world, fake_clock, 3)
    signed = _path(world.engine).read_text()
    signed_seq = signed_note.parse_checkpoint(signed_note.parse(signed).text).size
    _drop_evidence_keys(memory_keyring)  # and done from a login without the key
    seq, digest = _rewrite_from(world.engine, 3)
    (_path(world.engine)).write_text(json.dumps({"hash": digest, "seq": seq, "signed": signed}))
    result = _verify(world.engine)
    assert not result.ok and result.first_bad_seq == signed_seq
    assert "differs from the audit checkpoint" in (result.problem or "")


def test_a_forged_signature_line_is_refused(world: World, fake_clock: FakeClock) -> None:
    key = _init(world)
    _changes(world, fake_clock, 2)
    seq, digest = _rewrite_from(world.engine, 2)
    text = audit_checkpoint.note_text(_database_id(world.engine), seq, digest)
    name = evidence_keys.key_name(key.fingerprint)
    forger = signing.generate()
    # The listed key's name and key id, a signature by another key: must not verify.
    line = signed_note.signature_line(
        name, key.public_pem, signing.sign(forger.private_b64, text.encode())
    )
    _path(world.engine).write_text(signed_note.compose(text, [line]))
    result = _verify(world.engine)
    assert not result.ok and "does not verify" in (result.problem or "")
    # Signed by a key of the attacker's own, not listed: no trusted signature at all.
    _path(world.engine).write_text(signed_note.sign(text, "mallory", forger.private_b64))
    result = _verify(world.engine)
    assert not result.ok and "signed by no evidence key this database lists" in (
        result.problem or ""
    )


def test_a_checkpoint_of_another_database_is_refused(world: World, fake_clock: FakeClock) -> None:
    _init(world)
    note = _handed_out(world).replace(
        f"govtui audit {_database_id(world.engine)}", "govtui audit x"
    )
    result = _verify(world.engine, handed_out=note)
    assert not result.ok and "another database" in (result.problem or "")


# --- handed-out checkpoints ------------------------------------------------------------------


def test_a_handed_out_checkpoint_proves_the_chain_extends_it(
    world: World, fake_clock: FakeClock
) -> None:
    key = _init(world)
    _changes(world, fake_clock, 2)
    handed = _handed_out(world)
    size = signed_note.parse_checkpoint(signed_note.parse(handed).text).size
    _changes(world, fake_clock, 3, prefix="later")
    result = _verify(world.engine, handed_out=handed)
    assert result.ok
    assert result.extends == (
        f"the chain extends the checkpoint given: event {size} signed by {key.fingerprint} "
        "(verified)"
    )


def test_a_rewrite_with_the_attackers_own_listed_key_is_caught_by_the_handed_out_one(
    world: World, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    """Someone who can write the database lists a key of their own and signs the rewritten
    head with it: the key is listed but not trusted (not pinned or held by this login, not
    signed by a trusted key at rotation), so the local view is not fooled either; and the
    checkpoint the client lab holds catches it."""
    _init(world)
    _changes(world, fake_clock, 3)
    handed = _handed_out(world)
    seq, digest = _rewrite_from(world.engine, 2)
    mallory = signing.generate()
    with db.write_session(world.engine) as session:
        session.add(
            EvidenceKey(
                fingerprint=mallory.fingerprint,
                public_key=mallory.public_pem,
                keyring_ref="x",
                created_by=1,
                created_at=fake_clock.current,
                retired_at=fake_clock.current,
            )
        )
    text = audit_checkpoint.note_text(_database_id(world.engine), seq, digest)
    _path(world.engine).write_text(
        signed_note.sign(text, evidence_keys.key_name(mallory.fingerprint), mallory.private_b64)
    )
    local = _verify(world.engine)
    assert not local.ok and "which this login does not trust" in (local.problem or "")
    result = _verify(world.engine, handed_out=handed)
    assert not result.ok and "differs from the checkpoint given" in (result.problem or "")


def test_truncation_below_a_handed_out_checkpoint_is_caught(
    world: World, memory_keyring: MemoryKeyring, fake_clock: FakeClock
) -> None:
    _init(world)
    _changes(world, fake_clock, 4)
    handed = _handed_out(world)
    size = signed_note.parse_checkpoint(signed_note.parse(handed).text).size
    # From a login without the key: cut the tail, rewind the head row and the checkpoint.
    _drop_evidence_keys(memory_keyring)
    kept = _truncate_to(world.engine, size - 2)
    _write_unsigned(_path(world.engine), size - 2, kept)
    assert _verify(world.engine).ok  # locally: an unsigned head of another login
    result = _verify(world.engine, handed_out=handed)
    assert not result.ok and result.first_bad_seq == size - 1
    assert f"events {size - 1}..{size} were deleted" in (result.problem or "")


def test_rotation_keeps_old_checkpoints_verifying(world: World, fake_clock: FakeClock) -> None:
    old = _init(world)
    handed = _handed_out(world)
    fake_clock.advance(seconds=30)
    new = Workspace(world.engine, ADMIN).act(evidence_keys.rotate, code=world.code(ADMIN))
    result = _verify(world.engine, handed_out=handed)
    assert result.ok and old.fingerprint in (result.extends or "")
    assert result.signature == f"head signed by {new.fingerprint} (verified)"


# --- the CLI and the dashboard ---------------------------------------------------------------


def test_cli_checkpoint_and_verify(
    world: World, fake_clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "for-the-lab.checkpoint"
    assert cli(world.engine, "audit", "checkpoint", "--out", str(out), actor=ADMIN) == 2
    assert "there is no evidence key" in capsys.readouterr().err and not out.exists()
    assert cli(world.engine, "audit", "verify", actor=ADMIN) == 0
    assert "audit chain head unsigned (older database" in capsys.readouterr().out
    key = _init(world)
    assert cli(world.engine, "audit", "checkpoint", "--out", str(out), actor=ADMIN) == 0
    assert "wrote a signed checkpoint of event" in capsys.readouterr().out
    _changes(world, fake_clock, 2)
    assert cli(world.engine, "audit", "verify", "--checkpoint", str(out), actor=ADMIN) == 0
    printed = capsys.readouterr().out
    assert f"audit chain head signed by {key.fingerprint} (verified)" in printed
    assert "the chain extends the checkpoint given" in printed
    # A forged signature line in the file handed back: exit 1, named.
    note = out.read_text()
    text, sig_line = note.rsplit("\n\n", 1)
    blob = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    blob[10] ^= 1
    forged = f"{text}\n\n\u2014 {sig_line.split(' ')[1]} {base64.b64encode(bytes(blob)).decode()}\n"
    out.write_text(forged)
    assert cli(world.engine, "audit", "verify", "--checkpoint", str(out), actor=ADMIN) == 1
    assert "does not verify" in capsys.readouterr().out
    out.write_text("not a checkpoint\n")
    assert cli(world.engine, "audit", "verify", "--checkpoint", str(out), actor=ADMIN) == 1
    assert "is not a signed checkpoint" in capsys.readouterr().out


def test_cli_checkpoint_without_the_key_here_names_it(
    world: World, memory_keyring: MemoryKeyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _init(world)
    _drop_evidence_keys(memory_keyring)
    out = tmp_path / "c"
    assert cli(world.engine, "audit", "checkpoint", "--out", str(out), actor=ADMIN) == 2
    assert f"the evidence key {key.fingerprint} is not available here" in capsys.readouterr().err


def test_dashboard_chain_line(world: World, fake_clock: FakeClock) -> None:
    with db.read_session(world.engine) as session:
        status = dashboard.chain_status(session, world.engine)
    fake_clock.advance(minutes=2)
    line = dashboard.chain_line(status)
    assert line == f"audit chain: {status.events:,} events, head unsigned, verified 2 min ago"
    _init(world)
    with db.read_session(world.engine) as session:
        status = dashboard.chain_status(session, world.engine)
    assert dashboard.chain_line(status).endswith("head signed, verified just now")

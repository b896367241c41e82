"""The evidence key: one Ed25519 key per database that signs evidence packs, audit
checkpoints and operator key registrations. Its private half lives only in the OS keyring of
the admin who made it; every public key it ever had stays listed, so what an older key
signed still verifies after rotation.

A key is *trusted* only when something outside the database vouches for it, since whoever can
write the database can also insert a key row of their own: this keyring holds its private
half, or this login pinned its fingerprint (a key made or rotated here, or `govtui evidence
key trust FP` after checking the fingerprint with the admin, out of band), or a rotation event
carries the previous trusted key's signature of it. Verification uses trusted keys only.

As with TOTP secrets (enrollment.py), a new private key goes into a new keyring entry, under a
random name, before the commit of the row that lists its public key, and out again if that
commit fails; a rotated-out private key is deleted from this keyring after the commit (it
never signs again; its public key stays listed)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock, db
from govtui.errors import ConfigurationError, PolicyError
from govtui.models import AuditEvent, EvidenceKey, Operator
from govtui.security import secrets, signed_note, signing
from govtui.services import audit, operators, second_factor
from govtui.vocabulary import Role

KIND = "evidence"  # keyring entries `evidence:<ref>@<database id>`
TRUST_KIND = "evidence-trust"  # `evidence-trust:pins@<database id>`: fingerprints this login trusts
_MAX_PINS = 64
NAME_PREFIX = "govtui-evidence/"  # a key's name in signed notes: this and its hex fingerprint


@dataclass(frozen=True)
class KeyView:
    fingerprint: str
    public_pem: str
    created_by: str
    created_at: datetime
    retired_at: datetime | None
    trusted: bool = False  # vouched for outside the database (see the module's docstring)


@dataclass(frozen=True)
class Signed:
    signature: bytes  # 64 bytes, Ed25519
    fingerprint: str  # of the key that signed
    public_pem: str


@dataclass(frozen=True)
class Signer:
    """The current key as found inside a transaction, to sign once it has ended (the audit
    checkpoint is written after the commit, with no session left to look the key up)."""

    fingerprint: str
    public_pem: str
    entry: str  # its keyring entry

    @property
    def name(self) -> str:
        return key_name(self.fingerprint)

    def private(self) -> str | None:
        """The private key, if this keyring holds it (and it is the listed key's)."""
        try:
            private = secrets.load(self.entry)
            if private is None or signing.fingerprint(signing.public_of(private)) != (
                self.fingerprint
            ):
                return None
        except ConfigurationError:
            return None
        return private


def key_name(fingerprint: str) -> str:
    """The key's name in signed notes (c2sp.org/signed-note): no spaces, no plus."""
    return NAME_PREFIX + fingerprint.removeprefix("SHA256:")


def _entry(session: Session, ref: str) -> str:
    return secrets.entry_key(KIND, ref, secrets.database_id(session))


def current_row(session: Session) -> EvidenceKey | None:
    query = sa.select(EvidenceKey).where(col(EvidenceKey.retired_at).is_(None))
    return session.execute(query).scalars().first()


def _require_admin(session: Session, actor: Operator) -> None:
    operators.require_role(session, actor, Role.ADMIN)


def rotation_text(previous: str, fingerprint: str) -> bytes:
    """What the retiring key signs of its successor, so that logins trusting it trust that."""
    return f"govtui evidence key rotation\nprevious {previous}\nnext {fingerprint}\n".encode()


def _make(
    session: Session, actor: Operator, previous: str | None, endorser: str | None = None
) -> KeyView:
    secrets.require_safe_backend()
    pair = signing.generate()
    ref = secrets.new_ref()
    entry = _entry(session, ref)
    # Into the keyring first, under a name nothing points at yet; out again if the commit
    # that would list its public key fails.
    secrets.store(entry, pair.private_b64)
    db.on_rollback(session, lambda: secrets.delete(entry))
    now = clock.now()
    row = EvidenceKey(
        fingerprint=pair.fingerprint,
        public_key=pair.public_pem,
        keyring_ref=ref,
        created_by=db.ident(actor),
        created_at=now,
    )
    session.add(row)
    session.flush()
    action = "evidence.key_init" if previous is None else "evidence.key_rotate"
    details: dict[str, object] = {"fingerprint": pair.fingerprint, "previous": previous}
    if previous is not None and endorser is not None:
        signature = signing.sign(endorser, rotation_text(previous, pair.fingerprint))
        details["endorsement"] = base64.b64encode(signature).decode()
    audit.append(
        session,
        actor=actor.name,
        action=action,
        obj=f"evidence_key:{pair.fingerprint}",
        details=details,
    )
    audit.evidence_key_changed(session)
    database = secrets.database_id(session)
    db.after_commit(session, lambda: pin(database, pair.fingerprint))
    return KeyView(pair.fingerprint, pair.public_pem, actor.name, now, None, trusted=True)


def init_key(session: Session, actor: Operator, *, code: str) -> KeyView:
    """Make the evidence key (an admin, with their TOTP code); refused if one is current."""
    _require_admin(session, actor)
    existing = current_row(session)
    if existing is not None:
        raise PolicyError(
            f"the evidence key {existing.fingerprint} exists already: "
            "`govtui evidence key rotate` replaces it"
        )
    second_factor.verify(session, actor, code, purpose="making the evidence key")
    return _make(session, actor, previous=None)


def rotate(session: Session, actor: Operator, *, code: str) -> KeyView:
    """Retire the current key (kept listed) and make a new one (an admin, with their code)."""
    _require_admin(session, actor)
    old = current_row(session)
    if old is None:
        raise PolicyError("there is no evidence key to rotate: `govtui evidence key init`")
    second_factor.verify(session, actor, code, purpose="rotating the evidence key")
    old_signer = Signer(old.fingerprint, old.public_key, _entry(session, old.keyring_ref))
    endorser = old_signer.private()  # held here: the old key vouches for the new one
    old.retired_at = clock.now()
    old.retired_by = db.ident(actor)
    session.add(old)
    session.flush()  # the one-current index is free before the new key is listed
    old_entry = old_signer.entry
    db.after_commit(session, lambda: secrets.delete(old_entry))
    return _make(session, actor, previous=old.fingerprint, endorser=endorser)


def keys(session: Session) -> list[KeyView]:
    """Every evidence key, current first, then retired ones newest first."""
    query = (
        sa.select(EvidenceKey, col(Operator.name))
        .join(Operator, col(Operator.id) == col(EvidenceKey.created_by))
        .order_by(
            col(EvidenceKey.retired_at).is_not(None),
            col(EvidenceKey.retired_at).desc(),
            col(EvidenceKey.id).desc(),
        )
    )
    listed = [
        KeyView(row.fingerprint, row.public_key, name, row.created_at, row.retired_at)
        for row, name in session.execute(query)
    ]
    trusted = _trusted_fingerprints(session, listed)
    # Per row: a second row under a trusted fingerprint holding another public key (the
    # unique index dropped by whoever can write the database) is not trusted.
    return [
        KeyView(k.fingerprint, k.public_pem, k.created_by, k.created_at, k.retired_at, True)
        if k.fingerprint in trusted and _self_consistent(k)
        else k
        for k in listed
    ]


def trusted_keys(session: Session) -> list[KeyView]:
    """The listed keys this login trusts (the only ones anything is verified against)."""
    return [k for k in keys(session) if k.trusted]


def public_key(session: Session, fingerprint: str) -> KeyView | None:
    """The trusted key (current or retired) with this fingerprint."""
    return next((k for k in trusted_keys(session) if k.fingerprint == fingerprint), None)


def _pins_entry(database: str) -> str:
    return secrets.entry_key(TRUST_KIND, "pins", database)


def pinned(database: str) -> list[str]:
    """The fingerprints this login pinned for this database (its keyring, not the database)."""
    try:
        text = secrets.load(_pins_entry(database))
    except ConfigurationError:
        return []
    return [line for line in (text or "").split() if line.startswith("SHA256:")]


def pin(database: str, fingerprint: str) -> None:
    """Trust this fingerprint in this login from now on."""
    pins = pinned(database)
    if fingerprint not in pins:
        pins = [*pins, fingerprint][-_MAX_PINS:]
        secrets.store(_pins_entry(database), "\n".join(pins) + "\n")


def _self_consistent(key: KeyView) -> bool:
    """Whether the row's public key is the one its fingerprint names."""
    try:
        return signing.fingerprint(signing.load_public(key.public_pem)) == key.fingerprint
    except ConfigurationError:
        return False


def _trusted_fingerprints(session: Session, listed: list[KeyView]) -> set[str]:
    """Pinned here, or held here (the current key), then each successor its trusted
    predecessor signed at rotation; only rows whose public key matches their fingerprint."""
    by_fingerprint = {k.fingerprint: k for k in listed if _self_consistent(k)}
    if not by_fingerprint:
        return set()
    trusted = set(pinned(secrets.database_id(session))) & by_fingerprint.keys()
    held = signer(session)
    if held is not None and held.fingerprint in by_fingerprint and held.private() is not None:
        trusted.add(held.fingerprint)
    rotations = session.execute(
        sa.select(col(AuditEvent.details))
        .where(col(AuditEvent.action) == "evidence.key_rotate")
        .order_by(col(AuditEvent.seq))
    ).scalars()
    for text in rotations:
        try:
            details = json.loads(text)
            previous, new = details["previous"], details["fingerprint"]
            signature = base64.b64decode(details["endorsement"], validate=True)
        except (ValueError, KeyError, TypeError):
            continue
        if previous in trusted and new in by_fingerprint:
            endorser = by_fingerprint[previous].public_pem
            if signing.verify(endorser, rotation_text(previous, new), signature):
                trusted.add(new)
    return trusted


def trust(session: Session, fingerprint: str) -> KeyView:
    """`govtui evidence key trust FP`: pin a listed key in this login (after checking its
    fingerprint with the admin who made it, out of band)."""
    secrets.require_safe_backend()
    key = next((k for k in keys(session) if k.fingerprint == fingerprint), None)
    if key is None:
        raise PolicyError(f"no evidence key {fingerprint} is listed in this database")
    if not _self_consistent(key):
        raise PolicyError(
            f"the evidence key row {fingerprint} holds another public key: someone edited it"
        )
    pin(secrets.database_id(session), fingerprint)
    return KeyView(key.fingerprint, key.public_pem, key.created_by, key.created_at,
                   key.retired_at, True)  # fmt: skip


def signer(session: Session) -> Signer | None:
    """The current key, to sign with later (None when there is no current key)."""
    row = current_row(session)
    if row is None:
        return None
    return Signer(row.fingerprint, row.public_key, _entry(session, row.keyring_ref))


def sign(session: Session, data: bytes) -> Signed:
    """Sign with the current key from this user's keyring; ConfigurationError naming the
    key's fingerprint when there is none or this keyring lacks it."""
    found = signer(session)
    if found is None:
        raise ConfigurationError(
            "there is no evidence key: an admin makes one with `govtui evidence key init`"
        )
    secrets.require_safe_backend()
    private = found.private()
    if private is None:
        raise ConfigurationError(
            f"the evidence key {found.fingerprint} is not available here: sign under the login "
            "of the admin who made it, or `govtui evidence key rotate` to make a new one here"
        )
    return Signed(signing.sign(private, data), found.fingerprint, found.public_pem)


def available(session: Session) -> bool:
    """Whether this process can sign (a current key whose private half is in this keyring)."""
    found = signer(session)
    return found is not None and found.private() is not None


def verify(session: Session, data: bytes, signature: bytes, fingerprint: str) -> bool:
    """Whether a trusted key (current or retired) with this fingerprint signed `data`."""
    key = public_key(session, fingerprint)
    return key is not None and signing.verify(key.public_pem, data, signature)


def sign_note(session: Session, text: str) -> str:
    """`text` as a signed note (c2sp.org/signed-note) by the current key of this keyring."""
    found = signer(session)
    signed = sign(session, text.encode())
    assert found is not None
    line = signed_note.signature_line(found.name, signed.public_pem, signed.signature)
    return signed_note.compose(text, [line])


@dataclass(frozen=True)
class NoteCheck:
    fingerprint: str | None  # the listed key whose signature verified
    retired: bool = False
    problem: str | None = None


def verify_note(session: Session, note: signed_note.Note) -> NoteCheck:
    """Which trusted key signed the note: a signature line from a listed key that fails to
    verify is a problem (forged or altered), and so is a note no trusted key signed."""
    verified: KeyView | None = None
    listed = keys(session)
    for key in (k for k in listed if k.trusted):
        outcome = signed_note.verify(note, key_name(key.fingerprint), key.public_pem)
        if outcome is False:
            return NoteCheck(
                None,
                problem=f"its signature by the evidence key {key.fingerprint} does not verify "
                "(forged, or the text was changed)",
            )
        if outcome and verified is None:
            verified = key
    if verified is None:
        names = {s.name for s in note.signatures}
        untrusted = [k.fingerprint for k in listed if key_name(k.fingerprint) in names]
        if untrusted:
            return NoteCheck(
                None,
                problem=f"it is signed by the evidence key {untrusted[0]}, which this login "
                f"does not trust: `govtui evidence key trust {untrusted[0]}` once its "
                "fingerprint is checked with the admin who made it",
            )
        return NoteCheck(
            None,
            problem=f"it is signed by no evidence key this database lists ({', '.join(sorted(names))})",
        )
    return NoteCheck(verified.fingerprint, retired=verified.retired_at is not None)

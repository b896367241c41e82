"""The evidence key: one Ed25519 key per database that signs evidence packs, audit
checkpoints and operator key registrations. Its private half lives only in the OS keyring of
the admin who made it; every public key it ever had stays listed, so what an older key
signed still verifies after rotation.

As with TOTP secrets (enrollment.py), a new private key goes into a new keyring entry, under a
random name, before the commit of the row that lists its public key, and out again if that
commit fails; a rotated-out private key is deleted from this keyring after the commit (it
never signs again; its public key stays listed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from govtui import clock, db
from govtui.errors import ConfigurationError, PolicyError
from govtui.models import EvidenceKey, Operator
from govtui.security import secrets, signed_note, signing
from govtui.services import audit, operators, second_factor
from govtui.vocabulary import Role

KIND = "evidence"  # keyring entries `evidence:<ref>@<database id>`
NAME_PREFIX = "govtui-evidence/"  # a key's name in signed notes: this and its hex fingerprint


@dataclass(frozen=True)
class KeyView:
    fingerprint: str
    public_pem: str
    created_by: str
    created_at: datetime
    retired_at: datetime | None


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


def _make(session: Session, actor: Operator, previous: str | None) -> KeyView:
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
    audit.append(
        session,
        actor=actor.name,
        action=action,
        obj=f"evidence_key:{pair.fingerprint}",
        details={"fingerprint": pair.fingerprint, "previous": previous},
    )
    return KeyView(pair.fingerprint, pair.public_pem, actor.name, now, None)


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
    old.retired_at = clock.now()
    old.retired_by = db.ident(actor)
    session.add(old)
    session.flush()  # the one-current index is free before the new key is listed
    old_entry = _entry(session, old.keyring_ref)
    db.after_commit(session, lambda: secrets.delete(old_entry))
    return _make(session, actor, previous=old.fingerprint)


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
    return [
        KeyView(row.fingerprint, row.public_key, name, row.created_at, row.retired_at)
        for row, name in session.execute(query)
    ]


def public_key(session: Session, fingerprint: str) -> KeyView | None:
    """The listed key (current or retired) with this fingerprint."""
    return next((k for k in keys(session) if k.fingerprint == fingerprint), None)


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
    """Whether a listed key (current or retired) with this fingerprint signed `data`."""
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
    """Which listed key signed the note: a signature line from a listed key that fails to
    verify is a problem (forged or altered), and so is a note no listed key signed."""
    verified: KeyView | None = None
    for key in keys(session):
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
        names = ", ".join(sorted({s.name for s in note.signatures}))
        return NoteCheck(
            None, problem=f"it is signed by no evidence key this database lists ({names})"
        )
    return NoteCheck(verified.fingerprint, retired=verified.retired_at is not None)

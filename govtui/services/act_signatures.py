"""Signed acts: four eyes that hold against someone who can write the database (issue 13).

Each operator has an Ed25519 key pair: the private half only in their own OS keyring, the
public half in `operator_key`, its registration signed by the evidence key (so a key inserted
by SQL is not trusted). Every access-adding act (an approval round, a resume, a privilege
given, a review's keep or shorten) is signed by the acting operator over a canonical
statement of what they confirmed, built from the rows the act wrote. Verification rebuilds
each statement from the current rows, so a row inserted or changed after signing fails.

Acts by an operator without a key (a setup upgraded to schema version 6 before the operator
re-enrolled) are allowed and recorded unsigned: refusing them would lock an upgraded setup
out. Verification names them; it counts one as a failure when its operator had a registered
key at the time (they would have signed), and sync never adds a member on an unsigned
approval (fail closed).

Verified signatures are cached in this process (a bounded LRU keyed by the signature, the
statement's digest and the key's fingerprint): the TUI and `sync --watch` verify each
signature once; a one-shot `govtui sync` verifies only the grants it is about to add.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, col, select

from govtui import clock, db
from govtui.db import ident
from govtui.directory import group_names
from govtui.errors import ConfigurationError, ConflictError, PolicyError
from govtui.models import (
    ActSignature,
    Approval,
    AuditEvent,
    Client,
    ClientPause,
    Contractor,
    DatasetScope,
    DirectoryTarget,
    EvidenceKey,
    Grant,
    GrantExtension,
    GroupMapping,
    Operator,
    OperatorClient,
    OperatorKey,
    OperatorReviewClient,
    OperatorRole,
    OutboxOp,
    PrivilegeChange,
    Project,
    ReviewItem,
)
from govtui.security import secrets, signing
from govtui.services import audit, evidence_keys, operators, second_factor
from govtui.vocabulary import ActKind, ChangeKind, ChangeState, Decision, Role, Sensitivity

KEYRING_KIND = "signing"  # keyring entries `signing:REF@DATABASE_ID`
MAX_NAMED = 50  # findings named one by one; the rest are counted
CACHE_SIZE = 250_000  # about 60 MB when full
_CHUNK = 5_000
UNSIGNED = "unsigned"  # what an audit event's `signature` says of an act without a key

_SIG: sa.Table = ActSignature.__table__  # type: ignore[attr-defined]


# --- operator keys -----------------------------------------------------------------------------


def _entry(session: Session, ref: str) -> str:
    return secrets.entry_key(KEYRING_KIND, ref, secrets.database_id(session))


def registration_text(key: OperatorKey, operator_name: str) -> bytes:
    """What the evidence key signs of one operator key: who, which key, since when."""
    return audit.canonical_json(
        {
            "registration": "govtui operator signing key",
            "operator": operator_name,
            "operator_id": key.operator_id,
            "fingerprint": key.fingerprint,
            "public_key": key.public_key,
            "registered_at": audit.format_time(key.registered_at),
        }
    ).encode()


def current_key(session: Session, operator: Operator) -> OperatorKey | None:
    """The operator's current (not retired) signing key, registered or pending."""
    return session.exec(
        select(OperatorKey)
        .where(OperatorKey.operator_id == ident(operator))
        .where(col(OperatorKey.retired_at).is_(None))
        .order_by(col(OperatorKey.id).desc())
    ).first()


def create_key(session: Session, operator: Operator) -> OperatorKey:
    """A new key pair for `operator`, in their own session: the private half into this
    keyring before the commit (out again on rollback), the public half into operator_key;
    the registration signed at once when this process holds the evidence key, else pending
    until an admin runs `govtui evidence key register`. A previous key is retired (what it
    signed still verifies)."""
    secrets.require_safe_backend()
    pair = signing.generate()
    ref = secrets.new_ref()
    entry = _entry(session, ref)
    secrets.store(entry, pair.private_b64)
    db.on_rollback(session, lambda: secrets.delete(entry))
    now = clock.now()
    old = current_key(session, operator)
    if old is not None:
        old.retired_at = now
        session.add(old)
        old_entry = _entry(session, old.keyring_ref)
        db.after_commit(session, lambda: secrets.delete(old_entry))
    key = OperatorKey(
        operator_id=ident(operator),
        fingerprint=pair.fingerprint,
        public_key=pair.public_pem,
        keyring_ref=ref,
        registered_at=now,
    )
    session.add(key)
    session.flush()
    registered = evidence_keys.available(session)
    if registered:
        _register(session, key, operator.name)
    audit.append(
        session,
        actor=operator.name,
        action="operator.key_create",
        obj=f"operator:{operator.name}",
        details={
            "fingerprint": key.fingerprint,
            "operator_id": ident(operator),  # a rename by SQL does not detach it
            "registered": registered,
            "retired": old.fingerprint if old is not None else None,
        },
    )
    return key


def create_own_key(session: Session, actor: Operator, *, code: str) -> OperatorKey:
    """`govtui operator key create`: an enrolled operator (e.g. one enrolled before schema
    version 6) makes their own key, with their own code, in their own session."""
    if actor.totp_enrolled_at is None:
        raise PolicyError(f"{actor.name!r} is not enrolled: `govtui operator enroll` makes a key")
    second_factor.verify(session, actor, code, purpose="a new signing key")
    return create_key(session, actor)


def _register(session: Session, key: OperatorKey, operator_name: str) -> None:
    signed = evidence_keys.sign(session, registration_text(key, operator_name))
    evidence = session.exec(
        select(EvidenceKey).where(EvidenceKey.fingerprint == signed.fingerprint)
    ).first()
    if evidence is None:
        raise ConfigurationError(f"the evidence key {signed.fingerprint} is not listed")
    key.evidence_key_id = ident(evidence)
    key.registration_sig = base64.b64encode(signed.signature).decode()
    session.add(key)


@dataclass(frozen=True)
class PendingKey:
    operator: str
    fingerprint: str
    registered_at: datetime


def pending_registrations(session: Session) -> list[PendingKey]:
    """Current operator keys whose registration the evidence key has not signed yet."""
    rows = session.exec(
        select(OperatorKey, Operator.name)
        .join(Operator, col(Operator.id) == col(OperatorKey.operator_id))
        .where(col(OperatorKey.retired_at).is_(None))
        .where(col(OperatorKey.registration_sig).is_(None))
        .order_by(col(OperatorKey.id))
    ).all()
    return [PendingKey(name, key.fingerprint, key.registered_at) for key, name in rows]


def register_pending(
    session: Session, actor: Operator, *, code: str, fingerprints: Sequence[str]
) -> list[PendingKey]:
    """`govtui evidence key register`: an admin whose keyring holds the evidence key signs
    the pending registrations they were shown (`fingerprints`), with their own code."""
    operators.require_role(session, actor, Role.ADMIN)
    if not evidence_keys.available(session):
        raise ConfigurationError(
            "this keyring does not hold the current evidence key: the admin who made it "
            "(`govtui evidence key show`) registers operator keys"
        )
    shown = set(fingerprints)
    pending = [p for p in pending_registrations(session) if p.fingerprint in shown]
    missing = shown - {p.fingerprint for p in pending}
    if missing:
        raise ConflictError(f"no pending registration of key {sorted(missing)[0]}")
    for item in pending:
        key = session.exec(
            select(OperatorKey).where(OperatorKey.fingerprint == item.fingerprint)
        ).one()
        _register(session, key, item.operator)
        audit.append(
            session,
            actor=actor.name,
            action="operator.key_register",
            obj=f"operator:{item.operator}",
            details={"fingerprint": item.fingerprint, "operator_id": key.operator_id},
        )
    second_factor.verify(session, actor, code, purpose="registering operator signing keys")
    return pending


# --- statements --------------------------------------------------------------------------------


def _text(statement: dict[str, Any]) -> str:
    return audit.canonical_json(statement)


def approval_statement(
    grant: int,
    round_: int,
    scope: str,
    access: str,
    contractor: str,
    days: int,
    step: int | None,
    approver: str,
    *,
    uid: str,
    sensitivity: str,
) -> str:
    """What an approver confirms: the contractor by id and by directory uid (who the
    directory will add: a uid rewritten after approval no longer matches), and the scope's
    sensitivity (how many approvers it needs: a scope downgraded by SQL no longer matches)."""
    return _text(
        {
            "act": ActKind.APPROVE.value,
            "grant": grant,
            "round": round_,
            "scope": scope,
            "sensitivity": sensitivity,
            "access": access,
            "contractor": contractor,
            "uid": uid,
            "days": days,
            "step": step,
            "approver": approver,
        }
    )


def routing_statement(
    target: str, users_base: str, groups_base: str, template: str, mappings: list[list[Any]]
) -> str:
    """Where a target's adds go: who a uid is looked up under, each (scope, access) group's
    template and base, and every explicit mapping [scope id, access, group DN], sorted."""
    return _text(
        {
            "act": "routing",
            "target": target,
            "users_base": users_base,
            "groups_base": groups_base,
            "template": template,
            "mappings": sorted(mappings),
        }
    )


def resume_statement(client: str, pause: int, by: str, at: datetime) -> str:
    return _text(
        {
            "act": ActKind.RESUME.value,
            "client": client,
            "pause": pause,
            "by": by,
            "at": audit.format_time(at),
        }
    )


def privilege_statement(
    kind: str,
    operator: str,
    what: str,
    granted_by: str | None,
    confirmed_by: str | None,
    change: int | None,
) -> str:
    return _text(
        {
            "act": ActKind.PRIVILEGE.value,
            "kind": kind,  # role, approves, reviews
            "operator": operator,
            "what": what,  # the role, or the client's name
            "granted_by": granted_by,
            "confirmed_by": confirmed_by,
            "change": change,
        }
    )


def review_statement(
    decision: str, campaign: int, item: int, grant: int, days: int | None, step: int | None, by: str
) -> str:
    return _text(
        {
            "act": f"review_{decision}",
            "campaign": campaign,
            "item": item,
            "grant": grant,
            "days": days,
            "step": step,
            "reviewer": by,
        }
    )


# --- signing -----------------------------------------------------------------------------------


def _signer(session: Session, actor: Operator) -> tuple[OperatorKey, str] | None:
    """The actor's key and its private half, or None: no key, or not in this keyring (another
    machine of the same login). Such an act is not refused (that would lock an operator out),
    it is recorded unsigned: verification names it and sync adds nothing on it."""
    key = current_key(session, actor)
    if key is None:
        return None
    entry = _entry(session, key.keyring_ref)
    # Read from the keyring once per transaction: a batch approval signs one act per grant,
    # and each keyring read is a D-Bus round trip with a key exchange (about 45 ms).
    loaded: dict[str, str | None] | None = session.info.get(_LOADED)
    if loaded is None:
        loaded = session.info[_LOADED] = {}
        db.after_commit(session, lambda: session.info.pop(_LOADED, None))
        db.on_rollback(session, lambda: session.info.pop(_LOADED, None))
    if entry not in loaded:
        loaded[entry] = secrets.load(entry)
    private = loaded[entry]
    if private is None:
        return None
    return key, private


_LOADED = "govtui.act_signatures.loaded"  # session.info: keyring entry -> private half


def _sign_many(
    session: Session, actor: Operator, kind: ActKind, acts: Iterable[tuple[str, str]]
) -> str:
    """Sign each (subject, statement) as `actor`, replacing their earlier signature of the
    same act; the key's fingerprint, or UNSIGNED when the actor has no key."""
    signer = _signer(session, actor)
    if signer is None:
        return UNSIGNED
    key, private = signer
    # Loaded once for the batch (signing.sign loads it per call: a third of the cost).
    try:
        private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private, validate=True))
    except ValueError as exc:
        raise ConfigurationError("the signing key in the keyring is not an Ed25519 key") from exc
    now = clock.now()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        subjects = [row["subject"] for row in batch]
        session.execute(
            sa.delete(_SIG).where(
                _SIG.c.kind == kind.value,
                _SIG.c.operator_id == ident(actor),
                _SIG.c.subject.in_(subjects),
            )
        )
        session.execute(sa.insert(_SIG), batch)
        batch.clear()

    for subject, statement in acts:
        signature = private_key.sign(statement.encode())
        batch.append(
            {
                "kind": kind.value,
                "subject": subject,
                "operator_id": ident(actor),
                "operator_key_id": ident(key),
                "statement": statement,
                "signature": base64.b64encode(signature).decode(),
                "signed_at": now,
            }
        )
        if len(batch) >= _CHUNK:
            flush()
    if batch:
        flush()
    return key.fingerprint


def sign_approval(session: Session, actor: Operator, *, grant_id: int, round_: int) -> str:
    """Sign the actor's approval of one round of one grant (after its row is flushed)."""
    rows = list(_approval_rows(session, Approval.grant_id == grant_id, Approval.round == round_))
    mine = [r for r in rows if r.signer_id == ident(actor)]
    return _sign_many(session, actor, ActKind.APPROVE, [(r.subject, r.statement) for r in mine])


def approval_fingerprint(session: Session, actor: Operator) -> str:
    """What `sign_approvals` will record the actor's approvals as signed with: their key's
    fingerprint, or UNSIGNED (no key, or not in this keyring)."""
    signer = _signer(session, actor)
    return signer[0].fingerprint if signer is not None else UNSIGNED


def sign_approvals(session: Session, actor: Operator, *, step: int, at: datetime) -> str:
    """Sign every approval of one batch in one read of their rows: the actor's approvals with
    TOTP step `step` decided at `at` (a step is accepted once per approver, so that is exactly
    the batch; its rows are flushed first)."""
    session.flush()
    acts = [
        (r.subject, r.statement)
        for r in _approval_rows(
            session,
            Approval.approver_id == ident(actor),
            Approval.totp_step == step,
            Approval.decided_at == at,
        )
    ]
    return _sign_many(session, actor, ActKind.APPROVE, acts)


def sign_resume(session: Session, actor: Operator, *, pause_id: int) -> str:
    session.flush()
    rows = list(_resume_rows(session, ClientPause.id == pause_id))
    return _sign_many(session, actor, ActKind.RESUME, [(r.subject, r.statement) for r in rows])


def sign_privilege(session: Session, actor: Operator, *, operator_id: int) -> str:
    """Sign the roles and links of an operator that the actor gave (or confirmed): called
    right after they were written."""
    session.flush()
    rows = [
        r for r in _privilege_rows(session, operator_id=operator_id) if r.signer_id == ident(actor)
    ]
    return _sign_many(session, actor, ActKind.PRIVILEGE, [(r.subject, r.statement) for r in rows])


def sign_routing(session: Session, actor: Operator, *, target_id: int) -> str:
    """Sign a target's group routing as it now is (an admin adding the target, mapping a
    scope, or confirming it): any earlier signature of it, by anyone, is dropped first, so
    an old routing cannot be brought back with its old signature."""
    session.flush()
    act = next(_routing_rows(session, target_id=target_id))
    session.execute(
        sa.delete(_SIG).where(_SIG.c.kind == ActKind.PRIVILEGE.value, _SIG.c.subject == act.subject)
    )
    return _sign_many(session, actor, ActKind.PRIVILEGE, [(act.subject, act.statement)])


def sign_review(session: Session, actor: Operator, *, item_ids: Sequence[int]) -> str:
    """Sign the actor's keep or shorten of each item (after the items were updated)."""
    found: dict[ActKind, list[tuple[str, str]]] = {}
    for start in range(0, len(item_ids), _CHUNK):
        chunk = list(item_ids[start : start + _CHUNK])
        for r in _review_rows(session, col(ReviewItem.id).in_(chunk)):
            found.setdefault(r.kind, []).append((r.subject, r.statement))
    fingerprint = UNSIGNED
    for kind, acts in found.items():
        fingerprint = _sign_many(session, actor, kind, acts)
    return fingerprint if found else (_signer_fingerprint(session, actor))


def _signer_fingerprint(session: Session, actor: Operator) -> str:
    key = current_key(session, actor)
    return key.fingerprint if key is not None else UNSIGNED


# --- rebuilding acts from the rows -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Act:
    kind: ActKind
    subject: str
    what: str  # the act in words, for a finding
    signer_id: int | None
    at: datetime | None
    statement: str
    # The stored signature, if any: key id, statement, signature, signed_at.
    key_id: int | None
    stored: str | None
    signature: str | None
    signed_at: datetime | None
    grant_id: int | None = None
    restricted: bool = False
    requester_id: int | None = None  # an approval's: of the request, or of its extension
    client_id: int | None = None
    days: int | None = None  # an approval's days (of the request or its extension)
    expires_at: datetime | None = None  # an approval's grant's, now
    target_id: int | None = None  # a routing's
    path: str | None = None  # an approval's scope, client/project/scope


def _sig_join(kind: ActKind, subject: Any, signer: Any) -> Any:
    return sa.and_(
        _SIG.c.kind == kind.value, _SIG.c.subject == subject, _SIG.c.operator_id == signer
    )


_SIG_COLS = (_SIG.c.operator_key_id, _SIG.c.statement, _SIG.c.signature, _SIG.c.signed_at)


def _approval_rows(session: Session, *where: Any) -> Iterator[_Act]:
    subject = (
        sa.literal("approval:")
        + sa.cast(col(Approval.grant_id), sa.String)
        + sa.literal(":")
        + sa.cast(col(Approval.round), sa.String)
    )
    ext = sa.orm.aliased(GrantExtension)
    query = (
        sa.select(
            col(Approval.grant_id),
            col(Approval.round),
            col(Approval.approver_id),
            col(Approval.totp_step),
            col(Approval.decided_at),
            col(Operator.name),
            col(Grant.access),
            col(Grant.requested_days),
            col(ext.days),
            col(Contractor.external_id),
            col(Contractor.directory_uid),
            col(Client.name),
            col(Project.name),
            col(DatasetScope.name),
            col(DatasetScope.sensitivity),
            *_SIG_COLS,
            col(Grant.requested_by),
            col(ext.requested_by),
            col(Client.id),
            col(Grant.expires_at),
        )
        .select_from(Approval)
        .join(Grant, col(Grant.id) == col(Approval.grant_id))
        .join(Operator, col(Operator.id) == col(Approval.approver_id))
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .outerjoin(
            ext,
            sa.and_(
                col(ext.grant_id) == col(Approval.grant_id), col(ext.round) == col(Approval.round)
            ),
        )
        .outerjoin(_SIG, _sig_join(ActKind.APPROVE, subject, col(Approval.approver_id)))
        .where(col(Approval.decision) == Decision.APPROVE.value, *where)
        .order_by(col(Approval.grant_id), col(Approval.round), col(Approval.approver_id))
    )
    for row in session.execute(query.execution_options(yield_per=_CHUNK)):
        (grant, round_, approver, step, at, name, access, requested, ext_days, contractor) = row[
            :10
        ]
        uid, client, project, scope, sensitivity, key_id, stored, signature, signed_at = row[10:19]
        requester, ext_requester, client_id, expires_at = row[19:]
        days = requested if round_ == 0 else ext_days
        path = f"{client}/{project}/{scope}"
        yield _Act(
            ActKind.APPROVE,
            f"approval:{grant}:{round_}",
            f"approval of grant {grant} (round {round_}) by {name}",
            approver,
            at,
            approval_statement(
                grant,
                round_,
                path,
                access,
                contractor,
                days,
                step,
                name,
                uid=uid,
                sensitivity=sensitivity,
            ),
            key_id,
            stored,
            signature,
            signed_at,
            grant_id=grant,
            restricted=sensitivity == Sensitivity.RESTRICTED.value,
            requester_id=requester if round_ == 0 else ext_requester,
            client_id=client_id,
            days=days,
            expires_at=expires_at,
            path=path,
        )


def _resume_rows(session: Session, *where: Any) -> Iterator[_Act]:
    subject = sa.literal("resume:") + sa.cast(col(ClientPause.id), sa.String)
    query = (
        sa.select(
            col(ClientPause.id),
            col(ClientPause.resumed_by),
            col(ClientPause.resumed_at),
            col(Client.name),
            col(Operator.name),
            *_SIG_COLS,
        )
        .select_from(ClientPause)
        .join(Client, col(Client.id) == col(ClientPause.client_id))
        .join(Operator, col(Operator.id) == col(ClientPause.resumed_by))
        .outerjoin(_SIG, _sig_join(ActKind.RESUME, subject, col(ClientPause.resumed_by)))
        .where(col(ClientPause.resumed_at).is_not(None), *where)
        .order_by(col(ClientPause.id))
    )
    for pause, by_id, at, client, by, key_id, stored, signature, signed_at in session.execute(
        query
    ):
        yield _Act(
            ActKind.RESUME,
            f"resume:{pause}",
            f"resume of client {client} (pause {pause}) by {by}",
            by_id,
            at,
            resume_statement(client, pause, by, at),
            key_id,
            stored,
            signature,
            signed_at,
        )


def _privilege_subject(kind: str, operator_id: int, what: str | int | None) -> str:
    return f"privilege:{kind}:{operator_id}:{what}"


_LINKS = (
    ("approves", OperatorClient, ChangeKind.APPROVES_ADD),
    ("reviews", OperatorReviewClient, ChangeKind.REVIEWS_ADD),
)


def _privilege_rows(session: Session, *, operator_id: int | None = None) -> Iterator[_Act]:
    """Every role and approves/reviews link, signed by who confirmed it (else who granted
    it). Few rows: read plainly."""
    names = dict(session.execute(sa.select(col(Operator.id), col(Operator.name))).all())
    clients = dict(session.execute(sa.select(col(Client.id), col(Client.name))).all())
    changes: dict[tuple[int, str, str | None, int | None, int | None], int] = {}
    # The change a confirmed row came from, keyed by who asked for it: while the confirming
    # admin signs, it is still pending (marked confirmed in the same transaction, after).
    confirming = (ChangeState.CONFIRMED.value, ChangeState.PENDING.value)
    for change in session.exec(
        select(PrivilegeChange).where(col(PrivilegeChange.state).in_(confirming))
    ).all():
        key = (change.operator_id, change.kind, change.role, change.client_id, change.requested_by)
        changes[key] = max(changes.get(key, 0), ident(change))
    signatures = {
        (row.subject, row.operator_id): row
        for row in session.exec(
            select(ActSignature).where(ActSignature.kind == ActKind.PRIVILEGE.value)
        )
    }
    found: list[tuple[str, int, str | None, int | None, Any]] = []
    role_query = select(OperatorRole)
    if operator_id is not None:
        role_query = role_query.where(OperatorRole.operator_id == operator_id)
    found += [("role", r.operator_id, r.role, None, r) for r in session.exec(role_query)]
    for name, table, _kind in _LINKS:
        link_query: Any = select(table)
        if operator_id is not None:
            link_query = link_query.where(table.operator_id == operator_id)
        links: Iterable[Any] = session.exec(link_query)
        found += [(name, r.operator_id, None, r.client_id, r) for r in links]
    for kind_name, op_id, role, client_id, row in found:
        signer = row.confirmed_by if row.confirmed_by is not None else row.granted_by
        change_kind = ChangeKind.ROLE_ADD if role else {n: k for n, _t, k in _LINKS}[kind_name]
        change_id = changes.get((op_id, change_kind.value, role, client_id, row.granted_by))
        subject = _privilege_subject(kind_name, op_id, role if role else client_id)
        what = role if role else clients.get(client_id, f"#{client_id}")
        statement = privilege_statement(
            kind_name,
            names.get(op_id, f"#{op_id}"),
            str(what),
            names.get(row.granted_by) if row.granted_by is not None else None,
            names.get(row.confirmed_by) if row.confirmed_by is not None else None,
            change_id if row.confirmed_by is not None else None,
        )
        stored = signatures.get((subject, signer))
        label = f"the {role} role" if role else f"{kind_name} {what}"
        yield _Act(
            ActKind.PRIVILEGE,
            subject,
            f"{label} of {names.get(op_id)} given by {names.get(signer) if signer else '?'}",
            signer,
            row.granted_at,
            statement,
            stored.operator_key_id if stored else None,
            stored.statement if stored else None,
            stored.signature if stored else None,
            stored.signed_at if stored else None,
        )


def _routing_rows(session: Session, *, target_id: int | None = None) -> Iterator[_Act]:
    """Each target's group routing, signed by the admin who last set it. Few rows."""
    query = select(DirectoryTarget).order_by(col(DirectoryTarget.id))
    if target_id is not None:
        query = query.where(DirectoryTarget.id == target_id)
    targets = session.exec(query).all()
    mappings: dict[int, list[list[Any]]] = {}
    for m in session.exec(select(GroupMapping)):
        mappings.setdefault(m.target_id, []).append([m.scope_id, m.access, m.group_dn])
    newest: dict[str, ActSignature] = {}
    for row in session.exec(
        select(ActSignature)
        .where(ActSignature.kind == ActKind.PRIVILEGE.value)
        .where(col(ActSignature.subject).startswith("routing:"))
        .order_by(col(ActSignature.signed_at), col(ActSignature.id))
    ):
        newest[row.subject] = row
    for target in targets:
        subject = f"routing:{ident(target)}"
        stored = newest.get(subject)
        yield _Act(
            ActKind.PRIVILEGE,
            subject,
            f"the group routing of directory {target.name}",
            stored.operator_id if stored else None,
            None,
            routing_statement(
                target.name,
                target.users_base,
                target.groups_base,
                target.group_template,
                mappings.get(ident(target), []),
            ),
            stored.operator_key_id if stored else None,
            stored.statement if stored else None,
            stored.signature if stored else None,
            stored.signed_at if stored else None,
            target_id=ident(target),
        )


def _review_rows(session: Session, *where: Any) -> Iterator[_Act]:
    subject = sa.literal("review:") + sa.cast(col(ReviewItem.id), sa.String)
    kind = sa.literal("review_") + col(ReviewItem.decision)
    query = (
        sa.select(
            col(ReviewItem.id),
            col(ReviewItem.campaign_id),
            col(ReviewItem.grant_id),
            col(ReviewItem.decision),
            col(ReviewItem.shorten_days),
            col(ReviewItem.totp_step),
            col(ReviewItem.decided_by),
            col(ReviewItem.decided_at),
            col(Operator.name),
            *_SIG_COLS,
        )
        .select_from(ReviewItem)
        .join(Operator, col(Operator.id) == col(ReviewItem.decided_by))
        .outerjoin(
            _SIG,
            sa.and_(
                _SIG.c.kind == kind,
                _SIG.c.subject == subject,
                _SIG.c.operator_id == col(ReviewItem.decided_by),
            ),
        )
        .where(col(ReviewItem.decision).in_(("keep", "shorten")), *where)
        .order_by(col(ReviewItem.id))
    )
    for row in session.execute(query.execution_options(yield_per=_CHUNK)):
        item, campaign, grant, decision, days, step, by_id, at, by = row[:9]
        key_id, stored, signature, signed_at = row[9:]
        yield _Act(
            ActKind(f"review_{decision}"),
            f"review:{item}",
            f"review {decision} of grant {grant} (campaign {campaign}, item {item}) by {by}",
            by_id,
            at,
            review_statement(decision, campaign, item, grant, days, step, by),
            key_id,
            stored,
            signature,
            signed_at,
            grant_id=grant,
        )


# --- verification ------------------------------------------------------------------------------


class _Cache:
    """Signatures verified good: a bounded LRU in this process (a table is not available; a
    file would be one more thing to trust), keyed by the signature, holding the key's
    fingerprint and the digest of the statement it was verified over: a hit needs all three
    equal, so a valid signature copied onto another statement or key is checked afresh."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.good: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.hits = 0

    def check_many(
        self, items: Sequence[tuple[str, str, str, bytes]], verifier: signing.Verifier
    ) -> list[bool]:
        """Each (signature, statement, fingerprint, raw public key): whether it verifies.
        Cache hits cost a hash; the misses are verified together (on every core when many)."""
        out: list[bool] = [False] * len(items)
        entries = []
        misses: list[int] = []
        work: list[tuple[bytes, bytes, bytes]] = []
        for number, (signature, statement, fingerprint, public) in enumerate(items):
            entry = (fingerprint, hashlib.sha256(statement.encode()).digest())
            entries.append(entry)
            if self.good.get(signature) == entry:
                self.good.move_to_end(signature)
                self.hits += 1
                out[number] = True
                continue
            try:
                raw = base64.b64decode(signature, validate=True)
            except ValueError:
                continue
            misses.append(number)
            work.append((public, statement.encode(), raw))
        for number, ok in zip(misses, verifier.verify_many(work), strict=True):
            if ok:
                out[number] = True
                self.good[items[number][0]] = entries[number]
                if len(self.good) > self.size:
                    self.good.popitem(last=False)
        return out


CACHE = _Cache(CACHE_SIZE)


@dataclass(frozen=True, slots=True)
class _Key:
    operator_id: int
    fingerprint: str
    public: bytes | None  # raw 32 bytes
    registered_at: datetime
    retired_at: datetime | None
    problem: str | None  # why it is not trusted; None: its registration verifies
    pending: bool = False  # not registered yet (an admin runs `operator key register`)


def _keys(session: Session) -> dict[int, _Key]:
    names = dict(session.execute(sa.select(col(Operator.id), col(Operator.name))).all())
    rows = session.exec(select(EvidenceKey)).all()
    listed = {ident(e): e.fingerprint for e in rows}
    # Only keys vouched for outside the database: a row inserted by SQL is listed, not
    # trusted. Each registration is checked with its own row's public key, and that row
    # must itself be trusted (a twin row under a trusted fingerprint is not).
    trusted_pems = {k.public_pem for k in evidence_keys.trusted_keys(session)}
    own_pem = {ident(e): e.public_key for e in rows if e.public_key in trusted_pems}
    found = {}
    for key in session.exec(select(OperatorKey)).all():
        problem = None
        public = None
        try:
            public = signing.load_public(key.public_key)
            if signing.fingerprint(public) != key.fingerprint:
                problem = "its fingerprint does not match its public key"
        except ConfigurationError as exc:
            problem = str(exc)
        by = listed.get(key.evidence_key_id) if key.evidence_key_id else None
        pem = own_pem.get(key.evidence_key_id) if key.evidence_key_id else None
        if problem is None and (key.registration_sig is None or by is None):
            problem = (
                "its registration is not signed by an evidence key (pending: an admin runs "
                "`govtui evidence key register`)"
            )
        elif problem is None and by is not None and pem is None:
            problem = (
                f"its registration is signed by the evidence key {by}, which this login does "
                f"not trust (`govtui evidence key trust {by}` once checked with its admin)"
            )
        elif problem is None and by is not None and key.registration_sig is not None:
            try:
                sig = base64.b64decode(key.registration_sig, validate=True)
            except ValueError:
                sig = b""
            text = registration_text(key, names.get(key.operator_id, f"#{key.operator_id}"))
            if pem is None or not signing.verify(pem, text, sig):
                problem = "its registration signature does not verify against the evidence key"
        found[ident(key)] = _Key(
            key.operator_id,
            key.fingerprint,
            signing.raw_public(public) if public is not None else None,
            key.registered_at,
            key.retired_at,
            problem,
            pending=problem is not None and key.registration_sig is None,
        )
    return found


_KEY_EVENTS = ("operator.key_create", "operator.key_register")


def _keyed_since(session: Session, keys: dict[int, _Key]) -> dict[int, datetime]:
    """Since when each operator has had a registered key (an unsigned act after that is
    bad): from their trusted keys, and from the chain's key events, so that deleting an
    operator's key rows by SQL does not make their unsigned acts look innocent."""
    since: dict[int, datetime] = {}

    def note(operator_id: int, at: datetime) -> None:
        earlier = since.get(operator_id)
        since[operator_id] = at if earlier is None else min(earlier, at)

    for key in keys.values():
        if key.problem is None:
            note(key.operator_id, key.registered_at)
    for operator_id, at, _seq in _key_events(session):
        note(operator_id, at)
    return since


def _key_events(session: Session) -> Iterator[tuple[int, datetime, int]]:
    """(operator id, time, seq) of each chain event that gave an operator a registered key."""
    ids = {name: op_id for op_id, name in session.execute(
        sa.select(col(Operator.id), col(Operator.name))
    )}  # fmt: skip
    events = session.execute(
        sa.select(col(AuditEvent.at), col(AuditEvent.action), col(AuditEvent.object),
                  col(AuditEvent.details), col(AuditEvent.seq))
        .where(col(AuditEvent.action).in_(_KEY_EVENTS))
    )  # fmt: skip
    for at, action, obj, text, seq in events:
        details = audit.details_of(text)
        operator_id = details.get("operator_id")
        if not isinstance(operator_id, int):  # events from before the id was recorded
            operator_id = ids.get(str(obj).removeprefix("operator:"))
        if operator_id is None:
            continue
        if action == "operator.key_create" and details.get("registered") is not True:
            continue
        yield operator_id, at, seq


_APPROVE_EVENTS = ("grant.approve", "grant.extension_approve")


def _without_early_event(session: Session, acts: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of these unsigned approvals (grant, approver id) by operators who have
    a key now, those whose own approval event does not come before the approver's first key
    event in the chain: a row dated back by SQL has no such event (the seq order, unlike a
    time, cannot be written back)."""
    first: dict[int, int] = {}
    for operator_id, _at, seq in _key_events(session):
        first[operator_id] = min(seq, first.get(operator_id, seq))
    early: set[tuple[int, int]] = set()
    names: dict[str, int] = {
        name: op_id
        for op_id, name in session.execute(sa.select(col(Operator.id), col(Operator.name)))
    }
    objects = sorted({f"grant:{g}" for g, _o in acts})
    for start in range(0, len(objects), _CHUNK):
        rows = session.execute(
            sa.select(col(AuditEvent.object), col(AuditEvent.actor), sa.func.min(AuditEvent.seq))
            .where(
                col(AuditEvent.action).in_(_APPROVE_EVENTS),
                col(AuditEvent.object).in_(objects[start : start + _CHUNK]),
            )
            .group_by(col(AuditEvent.object), col(AuditEvent.actor))
        )
        for obj, actor, seq in rows:
            found = names.get(actor)
            if found is not None and seq < first.get(found, seq + 1):
                early.add((int(str(obj).removeprefix("grant:")), found))
    return set(acts) - early


_Verdict = tuple[str, bool] | None  # None: valid; else (why, fatal)


def _precheck(act: _Act, keys: dict[int, _Key], since: dict[int, datetime]) -> _Verdict | _Key:
    """Everything but the signature arithmetic: a verdict, or the key to verify it with.
    Unsigned acts of operators who had no trusted key yet are not fatal (recorded unsigned by
    design), only named."""
    if act.requester_id is not None and act.signer_id == act.requester_id:
        # Signed or not: the service never lets a requester approve their own request, so
        # such a row was written outside it (with the requester's own key, perhaps).
        return "its approver is its requester (four eyes)", True
    if act.signature is None or act.key_id is None or act.stored is None:
        keyed = since.get(act.signer_id) if act.signer_id is not None else None
        # Privilege rows are also written by seeding and at bootstrap, and every upgraded
        # database has unsigned ones: named, never fatal. An approval, resume or review made
        # after its operator had a key would have been signed: fatal.
        timed = act.kind != ActKind.PRIVILEGE
        if keyed is not None and timed and (act.at is None or act.at >= keyed):
            return (
                f"unsigned, though its operator has had a registered key since {audit.format_time(keyed)}",
                True,
            )
        return "unsigned (its operator had no registered key)", False
    key = keys.get(act.key_id)
    if key is None:
        return "signed with an unknown key", True
    if key.operator_id != act.signer_id:
        return f"signed with another operator's key {key.fingerprint}", True
    if key.problem is not None:
        # A pending registration is named, not a failure: keys made before the evidence key
        # wait for an admin to register them. Sync adds nothing on them either way.
        why = f"signed with key {key.fingerprint}, which is not trusted: {key.problem}"
        return why, not key.pending
    if act.stored != act.statement:
        return "its rows changed after signing (the signed statement differs)", True
    if key.retired_at is not None and act.signed_at is not None and act.signed_at > key.retired_at:
        return f"signed with key {key.fingerprint} after it was retired", True
    return key


_BATCH = 20_000  # acts judged together: their signatures are verified in one go


def _judge_all(
    acts: Iterable[_Act], keys: dict[int, _Key], since: dict[int, datetime]
) -> Iterator[tuple[_Act, _Verdict]]:
    """Each act with its verdict, in order; signatures verified a batch at a time."""
    batch: list[_Act] = []
    verifier = signing.Verifier()

    def judged() -> Iterator[tuple[_Act, _Verdict]]:
        checks = [_precheck(act, keys, since) for act in batch]
        work = [
            (act.signature or "", act.stored or "", check.fingerprint, check.public or b"")
            for act, check in zip(batch, checks, strict=True)
            if isinstance(check, _Key)
        ]
        valid = iter(CACHE.check_many(work, verifier))
        for act, check in zip(batch, checks, strict=True):
            if not isinstance(check, _Key):
                yield act, check
            elif next(valid):
                yield act, None
            else:
                yield act, (f"its signature does not verify against key {check.fingerprint}", True)
        batch.clear()

    with verifier:
        for act in acts:
            batch.append(act)
            if len(batch) >= _BATCH:
                yield from judged()
        if batch:
            yield from judged()


def _judge(act: _Act, keys: dict[int, _Key], since: dict[int, datetime]) -> _Verdict:
    """None when the act's signature is valid; else (why, fatal)."""
    return next(_judge_all([act], keys, since))[1]


@dataclass
class ActReport:
    checked: int = 0
    signed: int = 0
    bad: int = 0  # fatal findings
    unsigned: int = 0  # acts of keyless operators: named, not fatal
    findings: list[str] = field(default_factory=list)  # the first MAX_NAMED, bad first
    more: int = 0
    not_enforced: bool = False  # no evidence key yet: nothing checked
    untrusted: str | None = None  # evidence keys exist, this login trusts none: the current one

    @property
    def ok(self) -> bool:
        return self.bad == 0 and self.untrusted is None

    def lines(self) -> list[str]:
        """What `audit verify` prints."""
        if self.not_enforced:
            return [
                "act signatures: not checked yet: there is no evidence key (`govtui evidence "
                "key init`, then `govtui operator key register`)"
            ]
        if self.untrusted is not None:
            return [
                f"act signatures NOT CHECKED: this login trusts no evidence key of this "
                f"database: `govtui evidence key trust {self.untrusted}` once its fingerprint "
                "is checked with the admin who made it (`govtui evidence key show`)"
            ]
        out = list(self.findings)
        if self.more:
            out.append(f"act signatures: {self.more} more acts without a valid signature")
        summary = f"act signatures: {self.signed} of {self.checked} acts signed and verified"
        if self.unsigned:
            summary += f", {self.unsigned} not verified (unsigned, or a key not registered yet)"
        out.append(
            summary if self.ok else f"act signatures BROKEN: {self.bad} acts fail ({summary})"
        )
        return out


def enforced(session: Session) -> bool:
    """Whether signatures are checked: once the database has (or its chain says it had) an
    evidence key. Before that no operator key can be registered, and an upgraded setup is
    not locked out; deleting the evidence key rows by SQL does not switch it off again."""
    if session.exec(select(EvidenceKey.id).limit(1)).first() is not None:
        return True
    return audit.has_action(session, "evidence.key_init")


def _all_acts(session: Session) -> Iterator[_Act]:
    yield from _approval_rows(session)
    yield from _resume_rows(session)
    yield from _privilege_rows(session)
    yield from _routing_rows(session)
    yield from _review_rows(session)


def verify_all(session: Session) -> ActReport:
    """Check every approval, resume, privilege given and keep/shorten: its statement rebuilt
    from the current rows, signed by its operator's key, whose registration verifies."""
    report = ActReport()
    if not enforced(session):
        report.not_enforced = True
        return report
    listed = evidence_keys.keys(session)
    if listed and not any(k.trusted for k in listed):
        report.untrusted = next((k for k in listed if k.retired_at is None), listed[0]).fingerprint
        return report
    keys = _keys(session)
    since = _keyed_since(session, keys)
    bad: list[str] = []
    unsigned: list[str] = []

    def count(what: str, why: str, fatal: bool) -> None:
        if fatal:
            report.bad += 1
            if len(bad) < MAX_NAMED:
                bad.append(f"act signature BAD: {what}: {why}")
        else:
            report.unsigned += 1
            if len(unsigned) < MAX_NAMED:
                unsigned.append(f"act not verified: {what}: {why}")

    # Unsigned approvals dated before their (now keyed) approver's key: innocent only if the
    # chain holds their event from before that key; judged together once the pass is done.
    early: list[tuple[int, int, str, str]] = []
    for act, verdict in _judge_all(_all_acts(session), keys, since):
        report.checked += 1
        if verdict is None:
            report.signed += 1
            continue
        why, fatal = verdict
        if (
            not fatal
            and act.kind == ActKind.APPROVE
            and act.signature is None
            and act.signer_id in since
            and act.grant_id is not None
        ):
            early.append((act.grant_id, act.signer_id, act.what, why))
            continue
        count(act.what, why, fatal)
    if early:
        late = _without_early_event(session, [(g, o) for g, o, _w, _y in early])
        for grant_id, operator_id, what, why in early:
            if (grant_id, operator_id) in late:
                why = "unsigned, dated before its operator's key, but the chain records no such approval then"
            count(what, why, (grant_id, operator_id) in late)
    named = (bad + unsigned)[:MAX_NAMED]
    report.findings = named
    report.more = report.bad + report.unsigned - len(named)
    return report


# --- what sync may add ---------------------------------------------------------------------------


def refused_adds(session: Session, op_ids: Sequence[int]) -> dict[int, str]:
    """Of these add_member ops, those sync must not send (fail closed), each with why: the
    grant's approvals do not all verify (or are too few), or the resume that queued it does
    not verify. Unsigned counts as not verified here. An add that names no grant (a
    reconcile fix) stands for the live grants of that member and group: one must verify."""
    if not op_ids or not enforced(session):
        return {}
    ops: list[tuple[int, int | None, int | None, int, str | None, str]] = []
    for start in range(0, len(op_ids), _CHUNK):
        chunk = list(op_ids[start : start + _CHUNK])
        ops += [
            tuple(row)
            for row in session.execute(
                sa.select(
                    col(OutboxOp.id),
                    col(OutboxOp.grant_id),
                    col(OutboxOp.pause_id),
                    col(OutboxOp.target_id),
                    col(OutboxOp.group_dn),
                    col(OutboxOp.directory_uid),
                ).where(col(OutboxOp.id).in_(chunk))
            )
        ]
    # Every add is matched with the live grants of its member and group, also one that names
    # its grant: an op redirected by SQL to another member or group must not ride on it.
    behind = _grants_behind(session, ops)
    keys = _keys(session)
    since = _keyed_since(session, keys)
    grant_ids = sorted({g for found in behind.values() for g in found})
    # Who held which role and link when, by the chain: read once for both checks.
    history = _privilege_history(session)
    why_grant = _unverified_grants(session, grant_ids, keys, since, history)
    why_target = _unverified_routing(session, {op[3] for op in ops}, keys, since, history)
    why_pause: dict[int, str] = {}
    for resumed in sorted({op[2] for op in ops if op[2] is not None}):
        for act in _resume_rows(session, ClientPause.id == resumed):
            verdict = _judge(act, keys, since)
            if verdict is not None:
                why_pause[resumed] = f"{act.what} not signed by a registered key: {verdict[0]}"
    refused = {}
    for op_id, grant_id, pause_id, target_id, group_dn, uid in ops:
        if target_id in why_target:
            refused[op_id] = why_target[target_id]
        elif grant_id is None:
            found = behind.get(op_id, [])
            if not found:
                refused[op_id] = f"add of {uid} to {group_dn}: no live grant stands behind it"
            elif all(g in why_grant for g in found):
                refused[op_id] = why_grant[found[0]]
        elif grant_id not in behind.get(op_id, []):
            refused[op_id] = (
                f"add of {uid} to {group_dn} does not match grant {grant_id}: not its "
                "contractor and group, or the grant is not active"
            )
        elif grant_id in why_grant:
            refused[op_id] = why_grant[grant_id]
        elif pause_id is not None and pause_id in why_pause:
            refused[op_id] = why_pause[pause_id]
    return refused


def _grants_behind(
    session: Session, ops: list[tuple[int, int | None, int | None, int, str | None, str]]
) -> dict[int, list[int]]:
    """The active grants each add stands for: same member, same group (on its target)."""
    if not ops:
        return {}
    uids = sorted({op[5] for op in ops})
    live: list[tuple[int, int, str, str]] = []
    for start in range(0, len(uids), _CHUNK):
        live += [
            (grant_id, scope, access, uid)
            for grant_id, scope, access, uid in session.execute(
                sa.select(
                    col(Grant.id), col(Grant.scope_id), col(Grant.access),
                    col(Contractor.directory_uid),
                )
                .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
                .where(
                    col(Contractor.directory_uid).in_(uids[start : start + _CHUNK]),
                    col(Grant.state) == "active",
                )
            )
        ]  # fmt: skip
    refs = group_names.group_refs(session, {(scope, access) for _g, scope, access, _u in live})
    groups: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for (target, ref_scope, ref_access), ref in refs.items():
        groups.setdefault((ref_scope, ref_access), []).append((target, ref.dn.lower()))
    by_member: dict[tuple[int, str, str], list[int]] = {}
    for grant_id, scope, access, uid in live:
        for target, dn in groups.get((scope, access), []):
            by_member.setdefault((target, dn, uid), []).append(grant_id)
    return {op[0]: by_member.get((op[3], (op[4] or "").lower(), op[5]), []) for op in ops}


def _unverified_routing(
    session: Session,
    target_ids: set[int],
    keys: dict[int, _Key],
    since: dict[int, datetime],
    history: _History,
) -> dict[int, str]:
    """Why adds to each of these targets must wait: its group routing (the groups its adds
    go to, and where a uid is looked up) is not signed by an admin as it now is."""
    if not target_ids:
        return {}
    names = dict(session.execute(sa.select(col(Operator.id), col(Operator.name))).all())
    why: dict[int, str] = {}
    for target_id in target_ids:
        for act in _routing_rows(session, target_id=target_id):
            verdict = _judge(act, keys, since)
            signer = names.get(act.signer_id) if act.signer_id is not None else None
            if verdict is None and not (
                signer is not None
                and _held(history, (signer, "role", Role.ADMIN.value), act.signed_at)
            ):
                verdict = ("signed by an operator who is not an admin", True)
            if verdict is not None:
                name = act.what.removeprefix("the group routing of directory ")
                why[target_id] = (
                    f"{act.what} is not signed by an admin as it now is: {verdict[0]} "
                    f"(an admin runs `govtui directory confirm {name}`)"
                )
    return why


_HISTORY = (
    "operator.add",
    "operator.role_add",
    "operator.role_remove",
    "operator.approves_add",
    "operator.approves_remove",
    "operator.remove",
)
_History = dict[tuple[str, str, str], list[tuple[datetime, bool]]]


def _privilege_history(session: Session) -> _History:
    """When each operator held each role and approves link, by the chain (not the rows,
    which whoever writes the database can change): (name, "role"|"approves", what) ->
    [(time, held from then on)], in chain order."""
    history: _History = {}
    query = (
        sa.select(
            col(AuditEvent.at), col(AuditEvent.action), col(AuditEvent.object),
            col(AuditEvent.details),
        )
        .where(col(AuditEvent.action).in_(_HISTORY))
        .order_by(col(AuditEvent.seq))
    )  # fmt: skip
    for at, action, obj, text in session.execute(query):
        name = str(obj).removeprefix("operator:")
        details = audit.details_of(text)
        changes: list[tuple[str, str, bool]] = []
        if action == "operator.add":
            changes += [("role", str(r), True) for r in details.get("roles") or []]
            changes += [("approves", str(c), True) for c in details.get("approves") or []]
        elif action in ("operator.role_add", "operator.role_remove"):
            changes.append(("role", str(details.get("role")), action.endswith("_add")))
        elif action in ("operator.approves_add", "operator.approves_remove"):
            changes.append(("approves", str(details.get("client")), action.endswith("_add")))
        else:  # operator.remove: nothing held from then on
            changes += [(k[1], k[2], False) for k in history if k[0] == name]
        for kind, what, held in changes:
            history.setdefault((name, kind, what), []).append((at, held))
    return history


def _held(history: _History, key: tuple[str, str, str], at: datetime | None) -> bool:
    """Whether it was held at `at`: given at or before then, not taken away before then (a
    removal in the same instant as the act came after it)."""
    held = False
    for when, state in history.get(key, ()):
        if at is None or when > at or (when == at and not state):
            break
        held = state
    return held


def _restricted_by_chain(session: Session) -> set[str]:
    """The scope paths the chain made restricted (`scope.add`): a scope downgraded by SQL
    still needs two approvers."""
    found: set[str] = set()
    rows = session.execute(
        sa.select(col(AuditEvent.object), col(AuditEvent.details)).where(
            col(AuditEvent.action) == "scope.add"
        )
    )
    for obj, text in rows:
        if audit.details_of(text).get("sensitivity") == Sensitivity.RESTRICTED:
            found.add(str(obj).removeprefix("scope:"))
    return found


def _approver_then(
    history: _History, names: dict[int, str], clients: dict[int, str], act: _Act
) -> bool:
    """Whether the chain records the act's approver as an approver of its client then."""
    name = names.get(act.signer_id) if act.signer_id is not None else None
    client = clients.get(act.client_id) if act.client_id is not None else None
    if name is None or client is None:
        return False
    return _held(history, (name, "role", Role.APPROVER.value), act.at) and _held(
        history, (name, "approves", client), act.at
    )


_SLACK = timedelta(minutes=5)  # clock steps between an approval and the grant's activation


def _ended_by_chain(session: Session, grant_ids: Sequence[int]) -> set[int]:
    """Of these grants, those the chain records as ended one by one (revoked, denied, or in
    a bulk end that lists its grants: a grant set back to active by SQL keeps its past).
    A bulk end of more than 20 grants names them by digest only: `audit verify` then."""
    wanted = set(grant_ids)
    ended: set[int] = set()
    rows = session.execute(
        sa.select(col(AuditEvent.action), col(AuditEvent.object), col(AuditEvent.details)).where(
            col(AuditEvent.action).in_(list(audit.END_EVENTS))
        )
    )
    for action, obj, text in rows:
        named = audit.ended_ids(action, str(obj), audit.details_of(text))
        ended.update(g for g in named if g in wanted)
    return ended


def _unverified_grants(
    session: Session,
    grant_ids: Sequence[int],
    keys: dict[int, _Key],
    since: dict[int, datetime],
    history: _History,
) -> dict[int, str]:
    """Why each of these grants may not be added: an approval without a valid signature, or
    fewer verified approvals of its request than it needs."""
    why: dict[int, str] = {}
    approvers: dict[int, set[int]] = {}  # distinct verified approvers of each request
    restricted: dict[int, bool] = {}
    # The service's own rules again, since a row and a signature can be written by an
    # operator with their own key: an approver of that client when they approved, by the
    # chain (whose past a signed checkpoint protects), not by today's rows.
    names = dict(session.execute(sa.select(col(Operator.id), col(Operator.name))).all())
    clients = dict(session.execute(sa.select(col(Client.id), col(Client.name))).all())
    now = clock.now()
    acts: Iterable[_Act]
    if len(grant_ids) > _CHUNK:
        # Many grants (a resume, a first sync): one streamed pass over every approval costs
        # less than IN lists of thousands of ids, each compiled and planned anew.
        wanted = set(grant_ids)
        acts = (act for act in _approval_rows(session) if act.grant_id in wanted)
    else:
        acts = _approval_rows(session, col(Approval.grant_id).in_(list(grant_ids)))
    # How long the verified approvals let each grant last: the grant ends at most `days`
    # after the approval that made or extended it (grants.expiry caps it lower, never higher).
    allowed: dict[int, datetime] = {}
    expires: dict[int, datetime | None] = {}
    chain_restricted = _restricted_by_chain(session)
    for act, verdict in _judge_all(acts, keys, since):
        assert act.grant_id is not None
        restricted[act.grant_id] = act.restricted or act.path in chain_restricted
        expires[act.grant_id] = act.expires_at
        if verdict is None and act.at is not None and act.days is not None:
            until = act.at + timedelta(days=act.days)
            allowed[act.grant_id] = max(until, allowed.get(act.grant_id, until))
        if verdict is not None:
            why.setdefault(
                act.grant_id,
                f"approval of grant {act.grant_id} not signed by a registered key: "
                f"{act.what}: {verdict[0]}",
            )
        elif not _approver_then(history, names, clients, act):
            why.setdefault(
                act.grant_id,
                f"{act.what}: the chain does not record its approver as an approver of that "
                "client when they approved",
            )
        elif act.subject.endswith(":0") and act.signer_id is not None:
            approvers.setdefault(act.grant_id, set()).add(act.signer_id)
    for grant_id, ends in expires.items():
        if grant_id not in why and (ends is None or ends <= now):
            why[grant_id] = f"grant {grant_id} has expired (its expiry was changed outside govtui)"
        bound = allowed.get(grant_id)
        if grant_id not in why and bound is not None and (ends is None or ends > bound + _SLACK):
            why[grant_id] = (
                f"grant {grant_id} lasts longer than its verified approvals allow "
                f"(until {audit.format_time(bound)}): its expiry was changed outside govtui"
            )
    for grant_id in _ended_by_chain(session, [g for g in grant_ids if g not in why]):
        why[grant_id] = (
            f"grant {grant_id} was revoked or denied (the chain records it): not re-added"
        )
    for grant_id in grant_ids:
        needed = 2 if restricted.get(grant_id) else 1
        count = len(approvers.get(grant_id, ()))
        if grant_id not in why and count < needed:
            why[grant_id] = (
                f"approval of grant {grant_id} not signed by a registered key: it has "
                f"{count} verified approval(s) of its request, {needed} needed"
            )
    return why

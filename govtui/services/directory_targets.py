"""Directory targets (LDAP / AD servers govtui keeps in step) and scope → group mappings.
The bind password goes into the OS keyring, never the database, and only once the target's
row is committed (a rolled-back add or remove leaves the keyring as it was)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ldap3
import sqlalchemy as sa
from ldap3.core.exceptions import LDAPException
from sqlmodel import Session, col, select

from govtui import clock, db
from govtui.db import ident
from govtui.directory import group_names, naming
from govtui.directory.connection import (
    CONNECT,
    DirectoryError,
    Endpoint,
    connect,
    is_address,
    parse_url,
)
from govtui.directory.probe import STEPS, ProbeResult, probe
from govtui.errors import (
    ConfigurationError,
    ConflictError,
    GovtuiError,
    InputError,
    NotFoundError,
    PolicyError,
)
from govtui.models import (
    ACCESS_LEVELS,
    DIRECTORY_FLAVOURS,
    Client,
    DirectoryTarget,
    GroupMapping,
    Operator,
    OutboxOp,
    Project,
)
from govtui.security import secrets
from govtui.services import act_signatures, audit, catalog, operators, second_factor, validation
from govtui.vocabulary import OutboxState

_CHUNK = 20_000
# How long an op's last_error may be: one line a person reads, not a dump.
ERROR_LENGTH = 1000

CHECK_STEPS = STEPS  # what `check` goes through, in order (for the front ends' layout)


def password_key(session: Session, name: str) -> str:
    """The keyring entry of a target's bind password for this database (by its id, not URL)."""
    return secrets.entry_key("directory", name, secrets.database_id(session))


def settings_digest(where: Endpoint) -> str:
    """A digest of everything that decides where the bind password is sent and whom it
    trusts there: stored with the password, so a row changed behind govtui's back (SQL) can
    not send it to another host."""
    fields = {
        "url": where.url,
        "bind_dn": where.bind_dn,
        "starttls": where.starttls,
        "ca_file": where.ca_file,
        "tls_name": where.tls_name,
        "insecure_plaintext": where.insecure_plaintext,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _sealed(password: str, where: Endpoint) -> str:
    """The keyring value: the password with the digest of the settings it is for."""
    return json.dumps({"password": password, "settings_sha256": settings_digest(where)})


def store_password(session: Session, name: str, password: str) -> None:
    """Keep `password` in the keyring for target `name` as its row now stands (the keyring
    migration; `add` stores it itself once the row is committed)."""
    secrets.store(password_key(session, name), _sealed(password, endpoint(find(session, name))))


# A target removed while it still had operations stays as a row under a name no person can
# type (validation.name allows no '#'): its cancelled operations keep their foreign key, and
# `client status` can still say which removals were never applied and where. The name is
# free again for a new target.
REMOVED_MARK = "#removed-"


def find(session: Session, name: str) -> DirectoryTarget:
    """The target called `name`."""
    target = session.exec(select(DirectoryTarget).where(DirectoryTarget.name == name)).first()
    if target is None or is_removed(target):
        raise NotFoundError(f"unknown directory target {name!r}")
    return target


def is_removed(target: DirectoryTarget) -> bool:
    return REMOVED_MARK in target.name


def display_name(target: DirectoryTarget | str) -> str:
    """The name a person gave the target; a removed one says so."""
    name = target if isinstance(target, str) else target.name
    if REMOVED_MARK in name:
        return f"{name.split(REMOVED_MARK, 1)[0]} (removed)"
    return name


def all_targets(session: Session, *, include_removed: bool = False) -> list[DirectoryTarget]:
    """Every target, by name: disabled ones too, removed ones only if asked."""
    targets = session.exec(select(DirectoryTarget).order_by(col(DirectoryTarget.name))).all()
    return [t for t in targets if include_removed or not is_removed(t)]


def active_targets(session: Session) -> list[DirectoryTarget]:
    """The targets that get operations and are synced: neither disabled nor removed."""
    return [t for t in all_targets(session) if t.disabled_at is None]


@dataclass(frozen=True)
class TargetSettings:
    """A new target's settings, each checked (`settings`); nothing here needs the network."""

    name: str
    url: str
    bind_dn: str
    users_base: str
    groups_base: str
    flavour: str = "openldap"
    starttls: bool = False
    ca_file: str | None = None  # an absolute path: later runs start in other directories
    tls_name: str | None = None
    insecure_plaintext: bool = False
    create_groups: bool = True
    sam_template: str | None = None  # Active Directory only
    ad_group_type: int | None = None

    def endpoint(self) -> Endpoint:
        return Endpoint(
            url=self.url,
            bind_dn=self.bind_dn,
            starttls=self.starttls,
            ca_file=self.ca_file,
            tls_name=self.tls_name,
            insecure_plaintext=self.insecure_plaintext,
        )


# A DNS name (labels of letters, digits and inner hyphens) or an IP address; never a
# wildcard: ldap3 takes a valid name "*" as "any name".
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")


def valid_tls_name(name: str) -> bool:
    """Whether `name` can be the name a server's certificate must carry: a host name or an
    address, never a wildcard (which would match any server)."""
    return bool(_HOST_NAME.fullmatch(name) or is_address(name)) and len(name) <= 253


def settings(
    *,
    name: str,
    url: str,
    bind_dn: str,
    users_base: str,
    groups_base: str,
    flavour: str = "openldap",
    starttls: bool = False,
    ca_file: str | None = None,
    tls_name: str | None = None,
    insecure_plaintext: bool = False,
    create_groups: bool = True,
    sam_template: str | None = None,
    ad_group_type: int | None = None,
) -> TargetSettings:
    """A new target's settings checked one by one (an InputError names the first bad one):
    the URL (ldap/ldaps, a host, a port in range), TLS required unless `insecure_plaintext`
    says a clear-text bind is accepted, the TLS name, the CA file (there, readable, PEM
    certificates) and the DNs."""
    name = validation.name(name, "directory target")
    flavour = validation.choice(flavour, DIRECTORY_FLAVOURS, "flavour")
    address = parse_url(url)
    if address.tls and starttls:
        raise InputError("use either ldaps:// or --starttls, not both")
    encrypted = address.tls or starttls
    if not encrypted and not insecure_plaintext:
        raise InputError(
            f"{url} without --starttls would send the bind password in clear text: use "
            f"ldaps://, or add --starttls, or accept it with --insecure-plaintext"
        )
    if encrypted and insecure_plaintext:
        raise InputError("--insecure-plaintext is only for a plain ldap:// URL without --starttls")
    if tls_name is not None:
        if not encrypted:
            raise InputError("--tls-name needs ldaps:// or --starttls")
        if not valid_tls_name(tls_name):
            raise InputError(
                f"invalid TLS name {tls_name!r}: a host name or an address, no wildcard"
            )
    if ca_file is not None:
        if not encrypted:
            raise InputError("--ca-file needs ldaps:// or --starttls")
        ca_file = checked_ca_file(ca_file)
    for value, what in (
        (bind_dn, "bind DN"),
        (users_base, "users base"),
        (groups_base, "groups base"),
    ):
        naming.checked_dn(value, what)
    if (sam_template is not None or ad_group_type is not None) and flavour != "ad":
        raise InputError("--sam-template and --group-type apply to --flavour ad only")
    if sam_template is not None:
        naming.check_sam_template(sam_template)
    if ad_group_type is not None and ad_group_type not in naming.AD_GROUP_TYPES:
        kinds = ", ".join(f"{v} ({k})" for v, k in naming.AD_GROUP_TYPES.items())
        raise InputError(f"invalid AD groupType {ad_group_type}: use one of {kinds}")
    return TargetSettings(
        name=name,
        url=url,
        bind_dn=bind_dn,
        users_base=users_base,
        groups_base=groups_base,
        flavour=flavour,
        starttls=starttls,
        ca_file=ca_file,
        tls_name=tls_name,
        insecure_plaintext=insecure_plaintext,
        create_groups=create_groups,
        sam_template=sam_template,
        ad_group_type=ad_group_type,
    )


def checked_ca_file(path: str) -> str:
    """The CA file's absolute path once it is there, readable and holds PEM certificates
    (parsed by ssl itself, as the connection will), else an InputError."""
    absolute = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(absolute):
        raise InputError(f"CA file {path} does not exist")
    if not os.path.isfile(absolute):
        raise InputError(f"CA file {path} is not a file")
    try:
        with open(absolute, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"CA file {path} cannot be read ({exc.strerror or exc})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=absolute)
    except (ssl.SSLError, ValueError, UnicodeError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise InputError(f"CA file {path} holds no PEM certificate ({reason})") from None
    if not context.cert_store_stats().get("x509", 0):
        raise InputError(f"CA file {path} holds no certificate")
    return absolute


def require_can_add(session: Session, actor: Operator, name: str) -> None:
    """What `add` would refuse before any network check: the role, an unsafe keyring, a
    name in use. Checked first so a refused add does not wait for the directory."""
    operators.require_role(session, actor, "admin")
    secrets.require_safe_backend()
    if (
        session.exec(select(DirectoryTarget.id).where(DirectoryTarget.name == name)).first()
        is not None
    ):
        raise ConflictError(f"directory target {name!r} exists already")


def check_settings(checked: TargetSettings, password: str) -> ProbeResult:
    """Connect → TLS → bind → users base → groups base for a target not yet stored. Network
    only: call it with no database session open."""
    return probe(
        checked.endpoint(),
        password,
        users_base=checked.users_base,
        groups_base=checked.groups_base,
    )


def check(target: DirectoryTarget, password: str) -> ProbeResult:
    """The same steps for a stored target (`directory test`, the TUI's health check)."""
    return probe(
        endpoint(target), password, users_base=target.users_base, groups_base=target.groups_base
    )


def add(
    session: Session,
    actor: Operator,
    *,
    name: str,
    url: str,
    bind_dn: str,
    users_base: str,
    groups_base: str,
    password: str,
    flavour: str = "openldap",
    starttls: bool = False,
    ca_file: str | None = None,
    tls_name: str | None = None,
    insecure_plaintext: bool = False,
    create_groups: bool = True,
    sam_template: str | None = None,
    ad_group_type: int | None = None,
    checked: bool = False,
) -> DirectoryTarget:
    """Register a target (admin only); the password is stored in the keyring after the commit.
    `checked` tells the audit whether the directory was probed (check_settings) first."""
    require_can_add(session, actor, validation.name(name, "directory target"))
    spec = settings(
        name=name,
        url=url,
        bind_dn=bind_dn,
        users_base=users_base,
        groups_base=groups_base,
        flavour=flavour,
        starttls=starttls,
        ca_file=ca_file,
        tls_name=tls_name,
        insecure_plaintext=insecure_plaintext,
        create_groups=create_groups,
        sam_template=sam_template,
        ad_group_type=ad_group_type,
    )
    if not password:
        raise InputError("the bind password is empty")
    key = password_key(session, spec.name)
    sealed = _sealed(password, spec.endpoint())
    # Only the committed add writes: a racing add of the same name that loses on the unique
    # name never overwrites the winner's password.
    db.after_commit(session, lambda: secrets.store(key, sealed))
    target = DirectoryTarget(
        name=spec.name,
        url=spec.url,
        bind_dn=spec.bind_dn,
        users_base=spec.users_base,
        groups_base=spec.groups_base,
        flavour=spec.flavour,
        starttls=spec.starttls,
        ca_file=spec.ca_file,
        tls_name=spec.tls_name,
        insecure_plaintext=spec.insecure_plaintext,
        create_groups=spec.create_groups,
        sam_template=spec.sam_template,
        ad_group_type=spec.ad_group_type,
        created_at=clock.now(),
    )
    session.add(target)
    session.flush()
    # Under this target's template two scopes may join to one group name: refused (rolls back).
    group_names.check_distinct(session, target_id=ident(target))
    routing = act_signatures.sign_routing(session, actor, target_id=ident(target))
    audit.append(
        session,
        actor=actor.name,
        action="directory.add",
        obj=f"directory:{spec.name}",
        details={
            "routing_signature": routing,
            "url": spec.url,
            "bind_dn": spec.bind_dn,
            "flavour": spec.flavour,
            "starttls": spec.starttls,
            "tls_name": spec.tls_name,
            "ca_file": spec.ca_file,
            "insecure_plaintext": spec.insecure_plaintext,
            "checked": checked,
        },
    )
    return target


OPEN_STATES = (OutboxState.PENDING, OutboxState.FAILED)


def _cancel_open_ops(session: Session, target: DirectoryTarget, why: str, reason: str) -> list[int]:
    """Cancel the target's pending and failed operations; their ids. They were never applied,
    and `client status` counts them as such (pause_views), so a person sees what did not
    reach the directory."""
    ids = sorted(
        op_id
        for op_id in session.exec(
            select(OutboxOp.id).where(
                OutboxOp.target_id == ident(target), col(OutboxOp.state).in_(OPEN_STATES)
            )
        )
        if op_id is not None
    )
    message = f"cancelled: target {why}: {reason}"[:ERROR_LENGTH]
    for start in range(0, len(ids), _CHUNK):
        session.execute(
            sa.update(OutboxOp)
            .where(
                col(OutboxOp.id).in_(ids[start : start + _CHUNK]),
                col(OutboxOp.state).in_(OPEN_STATES),
            )
            .values(state=OutboxState.CANCELLED, last_error=message)
        )
    return ids


def disable(session: Session, actor: Operator, *, name: str, reason: str) -> int:
    """Stop syncing a target (admin only): its open operations are cancelled with the reason
    and it gets no new ones until enabled. Removing a target's work adds no access, so no
    code is asked. Returns how many operations were cancelled."""
    operators.require_role(session, actor, "admin")
    reason = validation.reason(reason, "disable")
    target = find(session, name)
    if target.disabled_at is not None:
        raise ConflictError(
            f"directory target {name!r} is disabled already ({target.disabled_reason})"
        )
    cancelled = _cancel_open_ops(session, target, "disabled", reason)
    target.disabled_at = clock.now()
    target.disabled_reason = reason
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="directory.disable",
        obj=f"directory:{name}",
        details={"reason": reason, "cancelled": audit.id_summary(cancelled)},
    )
    return len(cancelled)


def enable(session: Session, actor: Operator, *, name: str) -> None:
    """Sync a disabled target again (admin only). Enabling queues nothing: what it missed
    while disabled is drift, and `govtui reconcile NAME` shows it (and --fix queues it)."""
    operators.require_role(session, actor, "admin")
    target = find(session, name)
    if target.disabled_at is None:
        raise ConflictError(f"directory target {name!r} is not disabled")
    reason = target.disabled_reason
    target.disabled_at = None
    target.disabled_reason = None
    session.add(target)
    audit.append(
        session,
        actor=actor.name,
        action="directory.enable",
        obj=f"directory:{name}",
        details={"was_disabled_for": reason},
    )


def remove(session: Session, actor: Operator, *, name: str, reason: str | None = None) -> int:
    """Forget a target (admin only); its password leaves the keyring after the commit.
    Returns how many open operations were cancelled.

    A target whose outbox holds only done work goes entirely, history and all, as it always
    did. One with open operations needs a reason: they are cancelled with it, and the target
    stays as a removed row (REMOVED_MARK) so those cancelled operations, and the ones
    cancelled when it was disabled, still say what never reached the directory."""
    operators.require_role(session, actor, "admin")
    secrets.require_safe_backend()
    target = find(session, name)
    open_ops = session.exec(
        select(sa.func.count())
        .select_from(OutboxOp)
        .where(OutboxOp.target_id == ident(target), col(OutboxOp.state).in_(OPEN_STATES))
    ).one()
    cancelled_before = session.exec(
        select(OutboxOp.id).where(
            OutboxOp.target_id == ident(target), OutboxOp.state == OutboxState.CANCELLED
        )
    ).first()
    if open_ops and reason is None:
        raise InputError(
            f"directory target {name!r} has {open_ops} open operations: give --reason to "
            "cancel them with the target (or run `govtui sync` first)"
        )
    for mapping in session.exec(
        select(GroupMapping).where(GroupMapping.target_id == ident(target))
    ):
        session.delete(mapping)
    key = password_key(session, name)
    details: dict[str, object] = {}
    if open_ops or cancelled_before is not None:
        why = validation.reason(reason or target.disabled_reason or "", "removal")
        cancelled = _cancel_open_ops(session, target, "removed", why)
        details = {"reason": why, "cancelled": audit.id_summary(cancelled)}
        target.name = f"{name}{REMOVED_MARK}{ident(target)}"
        target.disabled_at = target.disabled_at or clock.now()
        target.disabled_reason = f"removed: {why}"
        session.add(target)
    else:
        # The done history of a target that no longer exists. Core, before the target's
        # delete: the ORM knows no relationship to order the two deletes by.
        session.execute(sa.delete(OutboxOp).where(col(OutboxOp.target_id) == ident(target)))
        session.delete(target)
        cancelled = []
        if reason:
            details = {"reason": reason}
    db.after_commit(session, lambda: secrets.delete(key))
    audit.append(
        session,
        actor=actor.name,
        action="directory.remove",
        obj=f"directory:{name}",
        details=details or None,
    )
    return len(cancelled)


def endpoint(target: DirectoryTarget) -> Endpoint:
    """How to reach a target (without its password)."""
    return Endpoint(
        url=target.url,
        bind_dn=target.bind_dn,
        starttls=target.starttls,
        ca_file=target.ca_file,
        tls_name=target.tls_name,
        insecure_plaintext=target.insecure_plaintext,
    )


def bind_password(session: Session, target: DirectoryTarget) -> str:
    """The target's bind password from this machine's keyring (else a clear error). Read it
    in the short session that reads the target, and connect after that session is closed."""
    stored = secrets.load(password_key(session, target.name))
    if stored is None:
        raise ConfigurationError(
            f"no bind password for directory {target.name!r} in this machine's keyring: "
            f"remove and add the target again here"
        )
    try:
        sealed = json.loads(stored)
        password, digest = sealed["password"], sealed["settings_sha256"]
    except (ValueError, TypeError, KeyError):
        sealed = None
    if sealed is None or not isinstance(password, str):
        raise ConfigurationError(
            f"the bind password of directory {target.name!r} is stored without the settings "
            "it is for: run `govtui init`, or remove and add the target again"
        )
    if digest != settings_digest(endpoint(target)):
        raise ConfigurationError(
            f"directory {target.name!r}: its connection settings changed since the bind "
            "password was stored, so it is not sent; remove and add the target again"
        )
    return password


@contextmanager
def bound(target: DirectoryTarget, password: str) -> Iterator[ldap3.Connection]:
    """A bound connection to the target, closed afterwards; it needs no database session.
    A stored setting no socket can use (a port out of range, say) is a DirectoryError like
    any connect failure: callers handle one target's failure, never a ValueError traceback."""
    try:
        conn = connect(endpoint(target), password)
    except (GovtuiError, LDAPException):
        raise
    except Exception as exc:
        raise DirectoryError(target.url, CONNECT, f"{type(exc).__name__}: {exc}") from None
    try:
        yield conn
    finally:
        conn.unbind()


def map_scope(
    session: Session,
    actor: Operator,
    *,
    scope_path: str,
    access: str,
    group_dn: str,
    target: str | None,
) -> GroupMapping:
    """Point one (scope, access level) at an explicit group on a target (admin only)."""
    operators.require_role(session, actor, "admin")
    access = validation.choice(access, ACCESS_LEVELS, "access level")
    naming.checked_dn(group_dn, "group DN")
    scope = catalog.find_scope(session, scope_path)
    targets = [find(session, target)] if target else all_targets(session)
    if len(targets) != 1:
        raise InputError(
            "name the directory target with --target"
            if targets
            else "no directory target: add one first"
        )
    project = session.get(Project, scope.project_id)
    client = session.get(Client, project.client_id) if project else None
    assert project is not None
    assert client is not None
    # A name AD would refuse (or Samba would accept and Windows not) is refused here, before
    # the mapping exists and long before a sync tries to create the group.
    group_names.check_ad_mapping(
        targets[0],
        group_dn,
        client=client.name,
        project=project.name,
        scope=scope.name,
        access=access,
    )
    key = (ident(targets[0]), ident(scope), access)
    mapping = session.get(GroupMapping, key) or GroupMapping(
        target_id=key[0], scope_id=key[1], access=access, group_dn=group_dn
    )
    mapping.group_dn = group_dn
    session.add(mapping)
    session.flush()
    group_names.check_distinct(session, mapping=key)
    routing = act_signatures.sign_routing(session, actor, target_id=key[0])
    audit.append(
        session,
        actor=actor.name,
        action="scope.map",
        obj=f"scope:{scope_path}",
        details={
            "access": access,
            "group_dn": group_dn,
            "target": targets[0].name,
            "routing_signature": routing,
        },
    )
    return mapping


def confirm_routing(session: Session, actor: Operator, *, name: str, code: str) -> str:
    """`govtui directory confirm NAME`: an admin signs the target's group routing as it now
    is (after an upgrade, or once its admin has a key), with their code; the fingerprint."""
    operators.require_role(session, actor, "admin")
    target = find(session, name)
    if act_signatures.current_key(session, actor) is None:
        raise PolicyError(f"{actor.name!r} has no signing key: `govtui operator key create` first")
    second_factor.verify(session, actor, code, purpose="confirming a directory's group routing")
    signature = act_signatures.sign_routing(session, actor, target_id=ident(target))
    if signature == act_signatures.UNSIGNED:
        raise PolicyError(f"{actor.name!r}'s signing key is not in this keyring: sign where it is")
    audit.append(
        session,
        actor=actor.name,
        action="directory.routing_confirm",
        obj=f"directory:{target.name}",
        details={"routing_signature": signature},
    )
    return signature

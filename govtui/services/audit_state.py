"""Is the state backed by the chain? Replays the audit events and names every row of the
state that matters for access which no event made: an operator, a role, an approves or a
reviews link, an active or suspended grant (its request and activating approval), a pause, a
scope's sensitivity, a directory target, a review's frozen population and its keeps and
shortens (each needs its reviewer's TOTP step); and issue 13's evidence keys, operator signing
keys and review schedules (audit_state_evidence). A row inserted or changed by SQL leaves the
chain intact; this is what catches it.

Memory stays bounded for 100k+ grants: events and rows are read in batches of columns, and
what is kept per grant is an id with a small digest of what its request named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from govtui.models import (
    AuditEvent,
    Client,
    ClientPause,
    Contractor,
    DatasetScope,
    DirectoryTarget,
    Grant,
    Operator,
    OperatorClient,
    OperatorReviewClient,
    OperatorRole,
    Project,
    ReviewCampaign,
    ReviewItem,
)
from govtui.services import audit_state_evidence
from govtui.services.audit import (
    BATCH,
    END_EVENTS,
    details_of,
    ended_ids,
    format_time,
    summary_of,
)
from govtui.vocabulary import GrantState, ReviewDecision

MAX_NAMED = 50  # problems named one by one; the rest are counted
# What of a directory target's row its `directory.add` event records, field for field.
_TARGET_FIELDS = (
    "url",
    "bind_dn",
    "flavour",
    "starttls",
    "tls_name",
    "ca_file",
    "insecure_plaintext",
)


_Provenance = tuple[str | None, str | None]


@dataclass
class _OperatorSeen:
    roles: set[str] = field(default_factory=set)
    approves: set[str] = field(default_factory=set)
    reviews: set[str] = field(default_factory=set)  # schema version 5: reviewer links
    removed: bool = False
    # (login, db_role, shared_login) as the newest operator.add / operator.bind recorded it;
    # None when no event recorded one (made before schema version 4: bound by name).
    binding: tuple[str | None, str | None, bool] | None = None
    # role / client name -> (granted_by, confirmed_by) operator names, as the event that gave
    # it recorded them: the restricted-grant rule (privilege.provenance) trusts these columns.
    # (None, None) for events from before schema version 4, whose rows recorded none.
    role_by: dict[str, _Provenance] = field(default_factory=dict)
    client_by: dict[str, _Provenance] = field(default_factory=dict)
    review_by: dict[str, _Provenance] = field(default_factory=dict)


def _binding(details: dict[str, Any]) -> tuple[str | None, str | None, bool] | None:
    if "login" not in details:
        return None
    login, role = details.get("login"), details.get("db_role")
    return (
        str(login) if login is not None else None,
        str(role) if role is not None else None,
        bool(details.get("shared_login")),
    )


@dataclass
class _Replay:
    """What the events say the state should be."""

    operators: dict[str, _OperatorSeen] = field(default_factory=dict)
    # grant id -> hash of (contractor, scope, access) its request named
    requested: dict[int, int] = field(default_factory=dict)
    # grant id -> the latest expiry an approval recorded (ISO text compares in time order)
    expires: dict[int, str] = field(default_factory=dict)
    pauses: dict[int, str] = field(default_factory=dict)  # pause id -> client name
    resumed: set[int] = field(default_factory=set)
    scopes: dict[str, tuple[str, int]] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled_targets: set[str] = field(default_factory=set)
    ended: set[int] = field(default_factory=set)  # grants an end event named one by one
    # Issue 13's rows: evidence keys, operator signing keys, review schedules.
    evidence: audit_state_evidence.EvidenceReplay = field(
        default_factory=audit_state_evidence.EvidenceReplay
    )


@dataclass
class StateResult:
    problems: list[str]
    more: int = 0  # problems found beyond the ones named

    @property
    def ok(self) -> bool:
        return not self.problems


class _Findings:
    def __init__(self) -> None:
        self.named: list[str] = []
        self.more = 0

    def add(self, problem: str) -> None:
        if len(self.named) < MAX_NAMED:
            self.named.append(problem)
        else:
            self.more += 1


def _request_key(contractor: object, scope: object, access: object) -> int:
    return hash((str(contractor), str(scope), str(access)))


def _events(session: Session) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    last = 0
    while True:
        rows = session.execute(
            sa.select(table.c.seq, table.c.action, table.c.actor, table.c.object, table.c.details)
            .where(table.c.seq > last)
            .order_by(table.c.seq)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for _seq, action, actor, obj, details in rows:
            yield action, actor, obj, details_of(details)
        last = rows[-1][0]


def _after(obj: str, kind: str) -> str | None:
    prefix = f"{kind}:"
    return obj[len(prefix) :] if obj.startswith(prefix) else None


def _grant_id(obj: str) -> int | None:
    text = _after(obj, "grant")
    return int(text) if text is not None and text.isdigit() else None


def replay(session: Session) -> _Replay:
    """Fold every event, oldest first, into the state it says exists."""
    seen = _Replay()
    evidence_actions = audit_state_evidence.ACTIONS
    for action, actor, obj, details in _events(session):
        if action in END_EVENTS:
            seen.ended.update(ended_ids(action, obj, details))
        if action in evidence_actions:
            seen.evidence.fold(action, actor, obj, details)
            continue
        family = action.split(".", 1)[0]
        if family == "operator":
            _replay_operator(seen, action, actor, obj, details)
        elif family == "grant":
            _replay_grant(seen, action, obj, details)
        elif action in ("client.pause", "client.pause_strict"):
            client = _after(obj, "client")
            if isinstance(details.get("pause_id"), int) and client is not None:
                seen.pauses[details["pause_id"]] = client
        elif action == "client.resume" and isinstance(details.get("pause_id"), int):
            seen.resumed.add(details["pause_id"])
        elif action == "scope.add" and (path := _after(obj, "scope")) is not None:
            seen.scopes[path] = (
                str(details.get("sensitivity")),
                int(details.get("max_grant_days", 0)),
            )
        elif family == "directory" and (name := _after(obj, "directory")) is not None:
            _replay_directory(seen, action, name, details)
    return seen


def _provenance(details: dict[str, Any], granter: object) -> _Provenance:
    """Who granted and who confirmed, as an event records them; (None, None) for an event
    from before schema version 4 (no confirmed_by key), whose rows recorded neither."""
    if "confirmed_by" not in details:
        return (None, None)
    confirmed = details.get("confirmed_by")
    return (
        str(granter) if granter is not None else None,
        str(confirmed) if confirmed is not None else None,
    )


def _granter(details: dict[str, Any], actor: str) -> str:
    """Who granted a role or link: the event's granted_by when it names one (a pending change
    is applied by the confirming admin's event, on the requester's say-so), else its actor."""
    return str(details.get("granted_by") or actor)


def _replay_operator(
    seen: _Replay, action: str, actor: str, obj: str, details: dict[str, Any]
) -> None:
    name = _after(obj, "operator")
    if name is None:
        return
    if action == "operator.add":
        added = _OperatorSeen(
            roles={str(r) for r in details.get("roles", [])},
            approves={str(c) for c in details.get("approves", [])},
            # An operator.add from before schema version 5 has no reviews key: none.
            reviews={str(c) for c in details.get("reviews", [])},
            binding=_binding(details),
        )
        by = _provenance(details, details.get("granted_by"))
        if by[0] is not None and by[0] not in seen.operators:
            # The first operator: nobody existed to grant it, so its rows record itself
            # (the event's granted_by names whoever ran the bootstrap).
            by = (name, by[1])
        added.role_by = dict.fromkeys(added.roles, by)
        added.client_by = dict.fromkeys(added.approves, by)
        added.review_by = dict.fromkeys(added.reviews, by)
        seen.operators[name] = added
        return
    op = seen.operators.get(name)
    if op is None:
        return  # a change to an operator no event made: the row check names it
    if action == "operator.role_add":
        op.roles.add(str(details.get("role")))
        op.role_by[str(details.get("role"))] = _provenance(details, _granter(details, actor))
    elif action == "operator.role_remove":
        op.roles.discard(str(details.get("role")))
    elif action == "operator.approves_add":
        op.approves.add(str(details.get("client")))
        op.client_by[str(details.get("client"))] = _provenance(details, _granter(details, actor))
    elif action == "operator.approves_remove":
        op.approves.discard(str(details.get("client")))
    elif action == "operator.reviews_add":
        op.reviews.add(str(details.get("client")))
        op.review_by[str(details.get("client"))] = _provenance(details, _granter(details, actor))
    elif action == "operator.reviews_remove":
        op.reviews.discard(str(details.get("client")))
    elif action == "operator.remove":
        op.removed = True
    elif action == "operator.bind":
        op.binding = _binding(details) or op.binding


def _replay_grant(seen: _Replay, action: str, obj: str, details: dict[str, Any]) -> None:
    grant_id = _grant_id(obj)
    if grant_id is None:
        return
    if action == "grant.request":
        seen.requested[grant_id] = _request_key(
            details.get("contractor"), details.get("scope"), details.get("access")
        )
    elif action in ("grant.approve", "grant.extension_approve"):
        expires = details.get("expires_at")
        approvals, needed = details.get("approvals"), details.get("needed")
        enough = isinstance(approvals, int) and isinstance(needed, int) and approvals >= needed
        if isinstance(expires, str) and enough and grant_id in seen.requested:
            seen.expires[grant_id] = expires


def _replay_directory(seen: _Replay, action: str, name: str, details: dict[str, Any]) -> None:
    if action == "directory.add":
        seen.targets[name] = {key: details.get(key) for key in _TARGET_FIELDS}
        seen.disabled_targets.discard(name)
    elif action == "directory.remove":
        seen.targets.pop(name, None)
        seen.disabled_targets.discard(name)
    elif action == "directory.disable":
        seen.disabled_targets.add(name)
    elif action == "directory.enable":
        seen.disabled_targets.discard(name)


def check(session: Session) -> StateResult:
    """Every row that gives access, compared with what the events made."""
    seen = replay(session)
    found = _Findings()
    _check_operators(session, seen, found)
    _check_grants(session, seen, found)
    _check_pauses(session, seen, found)
    _check_scopes(session, seen, found)
    _check_targets(session, seen, found)
    _check_reviews(session, found)
    audit_state_evidence.check(session, seen.evidence, found.add)
    return StateResult(found.named, found.more)


def _check_operators(session: Session, seen: _Replay, found: _Findings) -> None:
    query = sa.select(Client.id, Client.name)  # type: ignore[call-overload]
    clients: dict[int, str] = {int(row[0]): str(row[1]) for row in session.execute(query)}
    names: dict[int, str] = {
        int(op_id): str(name)
        for op_id, name in session.execute(sa.select(Operator.id, Operator.name))  # type: ignore[call-overload]
    }

    def who(op_id: int | None) -> str | None:
        return None if op_id is None else names.get(op_id, f"#{op_id}")

    roles: dict[int, dict[str, _Provenance]] = {}
    role_rows = sa.select(
        OperatorRole.operator_id,
        OperatorRole.role,
        OperatorRole.granted_by,
        OperatorRole.confirmed_by,
    )  # type: ignore[call-overload]
    for op_id, role, granted, confirmed in session.execute(role_rows):
        roles.setdefault(op_id, {})[role] = (who(granted), who(confirmed))
    approves = _links(session, OperatorClient, clients, who)
    reviews = _links(session, OperatorReviewClient, clients, who)
    columns = (Operator.login, Operator.db_role, Operator.shared_login)
    rows = session.execute(sa.select(Operator.id, Operator.name, Operator.disabled_at, *columns))  # type: ignore[call-overload]
    for op_id, name, disabled_at, login, db_role, shared in rows:
        op = seen.operators.get(name)
        if op is None:
            found.add(f"operator {name!r} has no operator.add event (inserted by SQL?)")
            continue
        bound = (login, db_role, bool(shared))
        # Without a recorded binding an operator is bound by name (the v4 upgrade's default).
        defaults = {(None, None, False), (name, None, False)}
        if bound not in ({op.binding} if op.binding is not None else defaults):
            found.add(
                f"operator {name!r} is bound to login {login!r}, db role {db_role!r}"
                f"{' (shared)' if shared else ''} by no operator.add/bind event"
            )
        has_roles = roles.get(op_id, {})
        for role in sorted(set(has_roles) - op.roles):
            found.add(f"operator_role: operator {name!r} has role {role!r} that no event gave")
        _check_provenance(
            found, f"operator_role: role {{}} of operator {name!r}", has_roles, op.role_by
        )
        if op.removed and disabled_at is None:
            found.add(f"operator {name!r} was removed (operator.remove) but is enabled again")
        if not op.removed:
            for role in sorted(op.roles - set(has_roles)):
                found.add(f"operator_role: role {role!r} of operator {name!r} removed by no event")
        # The approves and the reviews links, checked alike (the reviews one since v5).
        for table, does, doing, rows_of, made, by in (
            ("operator_client", "approves", "approving", approves, op.approves, op.client_by),
            ("operator_review_client", "reviews", "reviewing", reviews, op.reviews, op.review_by),
        ):
            has = rows_of.get(op_id, {})
            for client in sorted(set(has) - made):
                found.add(f"{table}: operator {name!r} {does} {client!r} by no event")
            _check_provenance(found, f"{table}: {name!r} {doing} {{}}", has, by)
            if not op.removed:
                for client in sorted(made - set(has)):
                    found.add(f"{table}: {name!r} {doing} {client!r} removed by no event")
    # Rows are never deleted by govtui (operator.remove disables): a missing one was deleted
    # by SQL, with its roles, so that nothing shows it ever existed but the chain.
    for name in sorted(set(seen.operators) - set(names.values())):
        found.add(f"operator {name!r} has an operator.add event but no row (deleted by SQL?)")


def _links(
    session: Session,
    table: type[OperatorClient] | type[OperatorReviewClient],
    clients: dict[int, str],
    who: Callable[[int | None], str | None],
) -> dict[int, dict[str, _Provenance]]:
    """Operator id -> client name -> (granted_by, confirmed_by) names, for a link table."""
    found: dict[int, dict[str, _Provenance]] = {}
    query = sa.select(table.operator_id, table.client_id, table.granted_by, table.confirmed_by)  # type: ignore[call-overload]
    for op_id, client_id, granted, confirmed in session.execute(query):
        client = str(clients.get(client_id, f"#{client_id}"))
        found.setdefault(op_id, {})[client] = (who(granted), who(confirmed))
    return found


def _check_provenance(
    found: _Findings,
    what: str,
    rows: dict[str, _Provenance],
    events: dict[str, _Provenance],
) -> None:
    """Name a role or client link whose granted_by/confirmed_by differ from its event."""
    for key, (granted, confirmed) in sorted(rows.items()):
        made = events.get(key)
        if made is None or made == (granted, confirmed):
            continue  # a row no event gave is named by the caller
        found.add(
            f"{what.format(repr(key))} was granted by {granted!r}, confirmed by {confirmed!r}; "
            f"its event says {made[0]!r}, {made[1]!r} (changed by SQL?)"
        )


def _check_grants(session: Session, seen: _Replay, found: _Findings) -> None:
    query = (
        sa.select(
            Grant.id,
            Grant.state,
            Grant.access,
            Grant.expires_at,
            Contractor.external_id,
            Client.name,
            Project.name,
            DatasetScope.name,
        )  # type: ignore[call-overload]
        .join(Contractor, Contractor.id == Grant.contractor_id)
        .join(DatasetScope, DatasetScope.id == Grant.scope_id)
        .join(Project, Project.id == DatasetScope.project_id)
        .join(Client, Client.id == Project.client_id)
        .where(Grant.state.in_([GrantState.ACTIVE.value, GrantState.SUSPENDED.value]))  # type: ignore[attr-defined]
        .order_by(Grant.id)
    )
    last = 0
    while True:
        rows = session.execute(query.where(Grant.id > last).limit(BATCH)).all()  # type: ignore[operator]
        if not rows:
            return
        for grant_id, state, access, expires_at, contractor, client, project, scope in rows:
            _check_grant(
                seen,
                found,
                grant_id,
                state,
                access,
                expires_at,
                contractor,
                f"{client}/{project}/{scope}",
            )
        last = rows[-1][0]


def _check_grant(
    seen: _Replay,
    found: _Findings,
    grant_id: int,
    state: str,
    access: str,
    expires_at: Any,
    contractor: str,
    scope: str,
) -> None:
    key = seen.requested.get(grant_id)
    if key is None:
        found.add(f"grant {grant_id} is {state} but has no grant.request event (inserted by SQL?)")
        return
    if key != _request_key(contractor, scope, access):
        found.add(f"grant {grant_id} ({contractor}, {scope}, {access}) differs from its request")
    if grant_id in seen.ended:
        found.add(f"grant {grant_id} is {state} again after an event ended it (changed by SQL?)")
    expiry = seen.expires.get(grant_id)
    if expiry is None:
        if state == GrantState.ACTIVE.value:
            found.add(f"grant {grant_id} is active but no approval event activated it")
        return
    if expires_at is not None and format_time(expires_at) > expiry:
        found.add(
            f"grant {grant_id} expires {format_time(expires_at)}, after its approved {expiry}"
        )


def _check_pauses(session: Session, seen: _Replay, found: _Findings) -> None:
    query = sa.select(ClientPause.id, Client.name, ClientPause.resumed_at).join(  # type: ignore[call-overload]
        Client, Client.id == ClientPause.client_id
    )
    for pause_id, client, resumed_at in session.execute(query):
        made = seen.pauses.get(pause_id)
        if made is None:
            found.add(f"pause {pause_id} of client {client!r} has no client.pause event")
        elif made != client:
            found.add(f"pause {pause_id} is of client {client!r}, its event says {made!r}")
        if resumed_at is not None and pause_id not in seen.resumed:
            found.add(f"pause {pause_id} of client {client!r} was ended by no client.resume event")
        if resumed_at is None and pause_id in seen.resumed:
            found.add(f"pause {pause_id} of client {client!r} was resumed but is open again")


def _check_scopes(session: Session, seen: _Replay, found: _Findings) -> None:
    query = (
        sa.select(
            Client.name,
            Project.name,
            DatasetScope.name,
            DatasetScope.sensitivity,
            DatasetScope.max_grant_days,
        )  # type: ignore[call-overload]
        .join(Project, Project.id == DatasetScope.project_id)
        .join(Client, Client.id == Project.client_id)
    )
    for client, project, name, sensitivity, days in session.execute(query):
        path = f"{client}/{project}/{name}"
        made = seen.scopes.get(path)
        if made is None:
            found.add(f"scope {path!r} has no scope.add event")
        elif made != (sensitivity, days):
            found.add(
                f"scope {path!r} is {sensitivity}/{days} days, its event says {made[0]}/{made[1]}"
            )


def _check_targets(session: Session, seen: _Replay, found: _Findings) -> None:
    for target in session.execute(sa.select(DirectoryTarget)).scalars():
        made = seen.targets.get(target.name)
        if made is None:
            found.add(f"directory target {target.name!r} has no directory.add event")
            continue
        for key in _TARGET_FIELDS:
            if getattr(target, key) != made[key]:
                found.add(f"directory target {target.name!r}: {key} differs from its event")
        if (target.disabled_at is not None) != (target.name in seen.disabled_targets):
            found.add(f"directory target {target.name!r} was disabled or enabled by no event")


def _check_reviews(session: Session, found: _Findings) -> None:
    """A campaign whose items no longer hash to the population frozen at start, and a keep
    or shorten decide could never have written: without the assigned reviewer's TOTP step
    (a forged row WITH a plausible step needs signed evidence: issue 13)."""
    campaigns = session.execute(
        sa.select(
            ReviewCampaign.id,  # type: ignore[call-overload]
            ReviewCampaign.name,
            ReviewCampaign.item_count,
            ReviewCampaign.population_sha256,
        ).order_by(ReviewCampaign.id)
    ).all()
    names = {int(row[0]): str(row[1]) for row in campaigns}
    items = ReviewItem.__table__.c  # type: ignore[attr-defined]
    for campaign_id, name, count, sha in campaigns:
        if summary_of(session, items.grant_id, items.campaign_id == campaign_id) != (count, sha):
            found.add(f"review {name!r}: its items do not match the population frozen at start")
    unconfirmed = sa.and_(
        items.decision.in_([ReviewDecision.KEEP, ReviewDecision.SHORTEN]),
        sa.or_(
            items.totp_step.is_(None),
            items.decided_by.is_(None),
            items.decided_by != items.reviewer_id,
        ),
    )
    for campaign_id, grant_id, decision in session.execute(
        sa.select(items.campaign_id, items.grant_id, items.decision)
        .where(unconfirmed)
        .order_by(items.campaign_id, items.grant_id)
    ):
        found.add(
            f"review {names.get(campaign_id, campaign_id)!r}: grant {grant_id}'s {decision} "
            "carries no TOTP step of its reviewer (no review.decide writes that)"
        )

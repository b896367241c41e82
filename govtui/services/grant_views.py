"""Reading grants: filtered windows for lists (keyset-paged in any of the sort orders, from
the start or from the end), counts over the whole filter, every row streamed, one grant's
whole history, and the queue of requests an approver may decide."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict, Unpack, get_args

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from govtui import clock
from govtui.db import ident
from govtui.errors import NotFoundError
from govtui.models import (
    Approval,
    Client,
    Contractor,
    DatasetScope,
    Grant,
    GrantExtension,
    Operator,
    OperatorClient,
    Project,
)
from govtui.services import catalog, contractors, operator_views, operators
from govtui.vocabulary import Role

PAGE = 200
STREAM_WINDOW = 1_000  # rows per query while streaming every row
SOON = timedelta(days=7)  # "N expire within 7 days": live grants ending this soon
_SEP = "\x1f"  # between approvers' names (names never hold control characters)

GrantSort = Literal["expires", "newest", "contractor", "state", "scope"]
GRANT_SORTS: tuple[GrantSort, ...] = get_args(GrantSort)
DEFAULT_SORT: GrantSort = "expires"
SORT_WORDS: dict[GrantSort, str] = {
    "expires": "expiry, soonest first",
    "newest": "newest first",
    "contractor": "contractor",
    "state": "state",
    "scope": "scope",
}


@dataclass(frozen=True)
class GrantRow:
    id: int
    contractor: str  # external id
    contractor_name: str
    scope: str  # client/project/scope
    client: str
    client_status: str
    sensitivity: str
    access: str
    state: str
    reason: str
    requested_by: str
    requested_days: int
    requested_at: datetime
    starts_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    approvals: list[str] = field(default_factory=list)
    pending_extension_days: int | None = None


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    event: str
    by: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class GrantDetail:
    grant: GrantRow
    history: list[HistoryEntry]


@dataclass(frozen=True)
class GrantQuery:
    """Which grants a list holds; each field set narrows it, in SQL."""

    state: str | None = None
    client: str | None = None
    contractor: str | None = None  # one contractor, by exact external id
    # Contractors found by the contractors screen's search (name, email, external id, uid).
    contractor_search: str | None = None
    expiring_within: int | None = None  # days: active grants ending within them

    def describe(self) -> str:
        parts = []
        if self.state:
            parts.append(self.state)
        if self.client:
            parts.append(f"client {self.client}")
        if self.contractor:
            parts.append(f"contractor {self.contractor}")
        if self.contractor_search:
            parts.append(f"contractors matching “{self.contractor_search}”")
        if self.expiring_within is not None:
            parts.append(f"expiring within {self.expiring_within}d")
        return ", ".join(parts)


@dataclass(frozen=True)
class GrantCounts:
    """Counted over the whole filter, not a window: how many grants, and how many of them
    are live (active or suspended) and end within SOON."""

    total: int
    expiring_soon: int


def _scope_path() -> Any:
    return col(Client.name) + "/" + col(Project.name) + "/" + col(DatasetScope.name)


def _approvers() -> Any:
    """The names of the grant's approvers in the order they approved, as one string (a
    correlated subquery: read with the row, never an IN list of the window's ids)."""
    ordered = (
        sa.select(col(Operator.name).label("name"))
        .select_from(Approval)
        .join(Operator, col(Operator.id) == col(Approval.approver_id))
        .where(col(Approval.grant_id) == col(Grant.id), col(Approval.decision) == "approve")
        .order_by(col(Approval.decided_at), col(Approval.id))
        .correlate(Grant)
        .subquery()
    )
    return sa.select(sa.func.aggregate_strings(ordered.c.name, _SEP)).scalar_subquery()


def _pending_extension() -> Any:
    return (
        sa.select(col(GrantExtension.days))
        .where(
            col(GrantExtension.grant_id) == col(Grant.id), col(GrantExtension.state) == "requested"
        )
        .order_by(col(GrantExtension.round).desc())
        .limit(1)
        .correlate(Grant)
        .scalar_subquery()
    )


def _base() -> sa.Select[Any]:
    requester = aliased(Operator)
    columns: list[Any] = [
        col(Grant.id),
        col(Contractor.external_id),
        col(Contractor.name),
        _scope_path(),
        col(Client.name),
        col(Client.status),
        col(DatasetScope.sensitivity),
        col(Grant.access),
        col(Grant.state),
        col(Grant.reason),
        requester.name,
        col(Grant.requested_days),
        col(Grant.requested_at),
        col(Grant.starts_at),
        col(Grant.expires_at),
        col(Grant.ended_at),
        col(Grant.end_reason),
        _approvers(),
        _pending_extension(),
    ]
    return (
        sa.select(*columns)
        .select_from(Grant)
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .join(requester, col(requester.id) == col(Grant.requested_by))
    )


def _rows(session: Session, query: sa.Select[Any]) -> list[GrantRow]:
    make: Any = GrantRow  # the row's first 17 columns are GrantRow's fields, in order
    return [
        make(
            *r[:17],
            approvals=r[17].split(_SEP) if r[17] else [],
            pending_extension_days=r[18],
        )
        for r in session.execute(query)
    ]


def _where(session: Session, query: GrantQuery) -> list[Any]:
    """The filter as conditions on the grant table alone (so a count needs no join)."""
    where: list[Any] = []
    if query.state is not None:
        where.append(col(Grant.state) == query.state)
    if query.client is not None:
        client_id = ident(catalog.find_client(session, query.client))
        scopes = (
            sa.select(col(DatasetScope.id))
            .join(Project, col(Project.id) == col(DatasetScope.project_id))
            .where(col(Project.client_id) == client_id)
        )
        where.append(col(Grant.scope_id).in_(scopes))
    if query.contractor is not None:
        where.append(col(Grant.contractor_id) == ident(contractors.find(session, query.contractor)))
    if query.contractor_search:
        where.append(col(Grant.contractor_id).in_(contractors.search_ids(query.contractor_search)))
    if query.expiring_within is not None:
        horizon = clock.now() + timedelta(days=query.expiring_within)
        where += [col(Grant.state) == "active", col(Grant.expires_at) <= horizon]
    return where


# -- sort orders and keyset paging ---------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """One column of a sort order: NULLs (no expiry yet) come last."""

    expr: Any
    descending: bool = False
    nullable: bool = False


_ID = _Key(col(Grant.id))
_SORT_KEYS: dict[GrantSort, tuple[_Key, ...]] = {
    "expires": (_Key(col(Grant.expires_at), nullable=True), _ID),
    "newest": (_Key(col(Grant.id), descending=True),),
    "contractor": (_Key(col(Contractor.external_id)), _ID),
    "state": (_Key(col(Grant.state)), _ID),
    "scope": (_Key(_scope_path()), _ID),
}

SortKey = tuple[Any, ...]


def sort_key(sort: GrantSort, row: GrantRow) -> SortKey:
    """Where `row` stands in `sort`: the keyset cursor to page on from it."""
    if sort == "newest":
        return (row.id,)
    value = {
        "expires": row.expires_at,
        "contractor": row.contractor,
        "state": row.state,
        "scope": row.scope,
    }[sort]
    return (value, row.id)


def _beyond(keys: Sequence[_Key], values: SortKey, *, reverse: bool) -> Any:
    """Rows strictly after `values` in the order of `keys` (or, reversed, strictly before)."""
    clauses: list[Any] = []
    same: list[Any] = []
    for key, value in zip(keys, values, strict=True):
        descending = key.descending != reverse
        nulls_last = not reverse
        if value is None:
            past = key.expr.is_not(None) if not nulls_last else sa.false()
            equal = key.expr.is_(None)
        else:
            past = key.expr < value if descending else key.expr > value
            if key.nullable and nulls_last:
                past = sa.or_(past, key.expr.is_(None))
            equal = key.expr == value
        clauses.append(sa.and_(*same, past))
        same.append(equal)
    return sa.or_(*clauses)


def _order(keys: Sequence[_Key], *, reverse: bool) -> list[Any]:
    order = []
    for key in keys:
        term = key.expr.desc() if key.descending != reverse else key.expr.asc()
        if key.nullable:
            term = term.nulls_first() if reverse else term.nulls_last()
        order.append(term)
    return order


class WindowSpec(TypedDict, total=False):
    """Which window `window` and `queue_window` read: in `sort` order (DEFAULT_SORT), the
    first (or, `from_end`, the last) `limit` (PAGE) rows, or those just after `after` or just
    before `before` (keyset cursors from `sort_key`)."""

    sort: GrantSort
    after: SortKey | None
    before: SortKey | None
    from_end: bool
    limit: int


def _window(
    session: Session,
    where: list[Any],
    *,
    two_step: bool = False,
    **spec: Unpack[WindowSpec],
) -> list[GrantRow]:
    sort = spec.get("sort", DEFAULT_SORT)
    after = spec.get("after")
    before = spec.get("before")
    limit = spec.get("limit", PAGE)
    keys = _SORT_KEYS[sort]
    reverse = before is not None or spec.get("from_end", False)
    conditions = list(where)
    if after is not None:
        conditions.append(_beyond(keys, after, reverse=False))
    if before is not None:
        conditions.append(_beyond(keys, before, reverse=True))
    order = _order(keys, reverse=reverse)
    if two_step:
        # The window's ids first, sorted on the grant table (and only the joins the sort
        # needs), then the full rows of just those: the approvers' and extensions' subqueries
        # run for the window, not for every row the filter holds before the sort.
        ids = _sort_joins(sa.select(col(Grant.id)).select_from(Grant), sort)
        chosen = ids.where(*conditions).order_by(*order).limit(limit)
        query = _base().where(col(Grant.id).in_(chosen))
    else:
        query = _base().where(*conditions).limit(limit)
    rows = _rows(session, query.order_by(*order))
    return rows[::-1] if reverse else rows


def _sort_joins(query: sa.Select[Any], sort: GrantSort) -> sa.Select[Any]:
    """`query` over the grant table joined to what `sort` orders by."""
    if sort == "contractor":
        return query.join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
    if sort == "scope":
        return (
            query.join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
            .join(Project, col(Project.id) == col(DatasetScope.project_id))
            .join(Client, col(Client.id) == col(Project.client_id))
        )
    return query


def window(
    session: Session, query: GrantQuery | None = None, **spec: Unpack[WindowSpec]
) -> list[GrantRow]:
    """One window of the grants `query` holds (which one: WindowSpec). Rows always come in
    `sort` order."""
    return _window(session, _where(session, query or GrantQuery()), **spec)


def counts(session: Session, query: GrantQuery | None = None) -> GrantCounts:
    """How many grants the filter holds, and how many of those end within SOON (two counts
    on the grant table's indexes, whatever the window shown)."""
    where = _where(session, query or GrantQuery())
    total = session.execute(sa.select(sa.func.count()).select_from(Grant).where(*where))
    soon = session.execute(
        sa.select(sa.func.count())
        .select_from(Grant)
        .where(
            *where,
            col(Grant.state).in_(("active", "suspended")),
            col(Grant.expires_at) <= clock.now() + SOON,
        )
    )
    return GrantCounts(total=int(total.scalar_one()), expiring_soon=int(soon.scalar_one()))


def stream(
    session: Session,
    query: GrantQuery | None = None,
    *,
    sort: GrantSort = "newest",
    limit: int | None = None,
    window_size: int = STREAM_WINDOW,
) -> Iterator[GrantRow]:
    """Every grant the filter holds (or the first `limit`), a keyset window at a time:
    memory stays bounded by one window however many there are."""
    where = _where(session, query or GrantQuery())
    after: SortKey | None = None
    left = limit
    while left is None or left > 0:
        size = window_size if left is None else min(window_size, left)
        rows = _window(session, where, sort=sort, after=after, limit=size)
        yield from rows
        if len(rows) < size:
            return
        after = sort_key(sort, rows[-1])
        if left is not None:
            left -= len(rows)


def list_grants(
    session: Session,
    *,
    state: str | None = None,
    client: str | None = None,
    contractor: str | None = None,
    expiring_within: int | None = None,
    after_id: int | None = None,
    limit: int = PAGE,
) -> list[GrantRow]:
    """A window of grants, newest first, filtered in SQL; `after_id` continues a window."""
    query = GrantQuery(
        state=state, client=client, contractor=contractor, expiring_within=expiring_within
    )
    after = None if after_id is None else (after_id,)
    return window(session, query, sort="newest", after=after, limit=limit)


def show(session: Session, grant_id: int) -> GrantDetail:
    """One grant with its whole history: request, approvals, extensions, end."""
    rows = _rows(session, _base().where(col(Grant.id) == grant_id))
    if not rows:
        raise NotFoundError(f"unknown grant {grant_id}")
    row = rows[0]
    history = [
        HistoryEntry(
            row.requested_at,
            "requested",
            row.requested_by,
            {"days": row.requested_days, "reason": row.reason},
        )
    ]
    names = {ident(op): op.name for op in session.execute(sa.select(Operator)).scalars()}
    for approval in session.execute(
        sa.select(Approval).where(col(Approval.grant_id) == grant_id)
    ).scalars():
        event = "approved" if approval.decision == "approve" else "denied"
        history.append(
            HistoryEntry(
                approval.decided_at,
                event,
                names.get(approval.approver_id),
                {"round": approval.round},
            )
        )
    for ext in session.execute(
        sa.select(GrantExtension).where(col(GrantExtension.grant_id) == grant_id)
    ).scalars():
        history.append(
            HistoryEntry(
                ext.requested_at,
                "extension requested",
                names.get(ext.requested_by),
                {"round": ext.round, "days": ext.days, "reason": ext.reason},
            )
        )
        if ext.decided_at is not None:
            details: dict[str, Any] = {"round": ext.round}
            if ext.new_expires_at is not None:
                details["expires_at"] = ext.new_expires_at
            history.append(HistoryEntry(ext.decided_at, f"extension {ext.state}", None, details))
    if row.starts_at is not None:
        history.append(HistoryEntry(row.starts_at, "active", None, {"expires_at": row.expires_at}))
    grant = session.get(Grant, grant_id)
    if row.ended_at is not None and grant is not None:
        history.append(
            HistoryEntry(
                row.ended_at, row.state, names.get(grant.ended_by or -1), {"reason": row.end_reason}
            )
        )
    order = {"requested": 0, "extension requested": 1}
    history.sort(key=lambda h: (h.at, order.get(h.event, 2)))
    return GrantDetail(grant=row, history=history)


# -- the approval queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueQuery:
    """Which of the requests an approver may decide a list holds; each field narrows it."""

    client: str | None = None
    # Contractors found by the contractors screen's search (name, email, external id, uid).
    contractor_search: str | None = None

    def describe(self) -> str:
        parts = []
        if self.client:
            parts.append(f"client {self.client}")
        if self.contractor_search:
            parts.append(f"contractors matching “{self.contractor_search}”")
        return ", ".join(parts)


@dataclass(frozen=True)
class QueueMark:
    """“Every request matching this filter, as of now”, in SQL terms: the requests (grant ids
    up to `last_grant`) and extensions (extension ids up to `last_extension`) that existed
    when it was marked and still wait for the approver, but the `excluded` grants. Rows
    requested after the mark are never in it; `count` is how many it held then, and a batch
    that finds more refuses (a request still being written at the mark, on PostgreSQL).

    `ids` are the grants it held when marked (ints in memory, never rows in widgets nor an
    IN list in SQL): the batch refuses any grant outside them, so an older request that
    joined the filter after the mark (its contractor renamed, the approver made one for its
    client, its client resumed) never takes the place of one decided meanwhile."""

    query: QueueQuery
    last_grant: int
    last_extension: int
    count: int
    marked_at: datetime
    ids: frozenset[int]
    excluded: frozenset[int] = frozenset()

    @property
    def marked(self) -> int:
        """How many the mark holds now that some are excluded (those shown excluded; an id
        the mark never held, a row requested after it, changes nothing)."""
        return max(self.count - len(self.excluded & self.ids), 0)

    def holds(self, grant_id: int) -> bool:
        """Whether the grant was marked and is not excluded."""
        return grant_id in self.ids and grant_id not in self.excluded


@dataclass(frozen=True)
class WaitingElsewhere:
    """Requests waiting on a client the operator may not approve for: who would need to be."""

    client: str
    requests: int


@dataclass(frozen=True)
class QueueCounts:
    """Counted over the whole filter: how many wait for the approver, and the requests
    (not theirs) waiting on clients they are not an approver for."""

    total: int
    approver: bool  # holds the approver role
    approves_for: tuple[str, ...]  # the clients they approve for
    elsewhere: tuple[WaitingElsewhere, ...]


def _approver_clients(session: Session, approver: Operator) -> Any:
    """The ids of the clients the operator may approve for (none without the role)."""
    if Role.APPROVER not in operators.roles_of(session, approver):
        return None
    return sa.select(col(OperatorClient.client_id)).where(
        col(OperatorClient.operator_id) == ident(approver)
    )


def _queue_where(
    session: Session,
    approver: Operator,
    query: QueueQuery,
    *,
    last_grant: int | None = None,
    last_extension: int | None = None,
) -> list[Any]:
    """The requests and extensions `approver` may decide now, as conditions on the grant
    table alone: on active clients they approve for, not asked by them, not yet approved by
    them; with `last_grant`/`last_extension`, only those that existed at a mark."""
    clients = _approver_clients(session, approver)
    if clients is None:
        return [sa.false()]
    approver_id = ident(approver)
    scopes = (
        sa.select(col(DatasetScope.id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .where(col(Client.id).in_(clients), col(Client.status) == "active")
    )
    if query.client is not None:
        scopes = scopes.where(col(Client.id) == ident(catalog.find_client(session, query.client)))
    # Two id lists, each read from its own index (requests by scope and state; extensions by
    # their state), rather than one condition over every live grant of the scopes.
    asked = aliased(Grant)
    approved_request = sa.exists().where(
        col(Approval.grant_id) == col(asked.id),
        col(Approval.round) == 0,
        col(Approval.approver_id) == approver_id,
    )
    requests = sa.select(col(asked.id)).where(
        col(asked.scope_id).in_(scopes),
        col(asked.state) == "requested",
        col(asked.requested_by) != approver_id,
        ~approved_request,
    )
    if last_grant is not None:
        requests = requests.where(col(asked.id) <= last_grant)
    extension = aliased(GrantExtension)
    extended = aliased(Grant)
    # The grant checked by an EXISTS on each waiting extension (few), never a join that
    # would start from the scopes' live grants (most of the table).
    live_here = sa.exists().where(
        col(extended.id) == col(extension.grant_id),
        col(extended.state) == "active",
        col(extended.scope_id).in_(scopes),
    )
    extensions = sa.select(col(extension.grant_id)).where(
        col(extension.state) == "requested",
        col(extension.requested_by) != approver_id,
        live_here,
        ~sa.exists().where(
            col(Approval.grant_id) == col(extension.grant_id),
            col(Approval.round) == col(extension.round),
            col(Approval.approver_id) == approver_id,
        ),
    )
    if last_extension is not None:
        extensions = extensions.where(col(extension.id) <= last_extension)
    where: list[Any] = [col(Grant.id).in_(sa.union_all(requests, extensions))]
    if query.contractor_search:
        where.append(col(Grant.contractor_id).in_(contractors.search_ids(query.contractor_search)))
    return where


def _mark_where(session: Session, approver: Operator, mark: QueueMark) -> list[Any]:
    where = _queue_where(
        session,
        approver,
        mark.query,
        last_grant=mark.last_grant,
        last_extension=mark.last_extension,
    )
    if mark.excluded:
        where.append(col(Grant.id).not_in(sorted(mark.excluded)))
    return where


def queue_window(
    session: Session,
    approver: Operator,
    query: QueueQuery | None = None,
    **spec: Unpack[WindowSpec],
) -> list[GrantRow]:
    """One window of the approver's queue, like `window` (soonest expiry first by default:
    extensions of grants about to end, then requests, oldest first)."""
    where = _queue_where(session, approver, query or QueueQuery())
    return _window(session, where, two_step=True, **spec)


def _count(session: Session, where: list[Any]) -> int:
    return int(
        session.execute(sa.select(sa.func.count()).select_from(Grant).where(*where)).scalar_one()
    )


def waiting_elsewhere(session: Session, approver: Operator) -> tuple[WaitingElsewhere, ...]:
    """The active clients with requests or extensions waiting (not asked by the operator)
    that the operator may not approve for, with how many: the clients an admin would make
    them an approver for (`operator approves add`)."""
    approver_id = ident(approver)
    mine = _approver_clients(session, approver)

    # From the clients down to their scopes' requests (the scope and state index), so the
    # clients one approves for cost nothing.
    requests = (
        sa.select(col(Client.name), sa.func.count())
        .select_from(Client)
        .join(Project, col(Project.client_id) == col(Client.id))
        .join(DatasetScope, col(DatasetScope.project_id) == col(Project.id))
        .join(
            Grant,
            sa.and_(col(Grant.scope_id) == col(DatasetScope.id), col(Grant.state) == "requested"),
        )
        .where(col(Grant.requested_by) != approver_id, col(Client.status) == "active")
        .group_by(col(Client.name))
    )
    # Extensions (few) from their own table, each grant's client read by a correlated
    # subquery: never a scan of the live grants.
    client_of = (
        sa.select(col(Client.name))
        .select_from(Grant)
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(Client, col(Client.id) == col(Project.client_id))
        .where(
            col(Grant.id) == col(GrantExtension.grant_id),
            col(Grant.state) == "active",
            col(Client.status) == "active",
        )
        .correlate(GrantExtension)
    )
    if mine is not None:
        requests = requests.where(col(Client.id).not_in(mine))
        client_of = client_of.where(col(Client.id).not_in(mine))
    name = client_of.scalar_subquery().label("client")
    extensions = (
        sa.select(name, sa.func.count())
        .select_from(GrantExtension)
        .where(
            col(GrantExtension.state) == "requested",
            col(GrantExtension.requested_by) != approver_id,
        )
        .group_by(name)
    )
    waiting: dict[str, int] = {}
    for query in (requests, extensions):
        for client, n in session.execute(query):
            if client is not None:  # (an extension on a client they approve for)
                waiting[client] = waiting.get(client, 0) + int(n)
    return tuple(WaitingElsewhere(client, waiting[client]) for client in sorted(waiting))


def queue_counts(
    session: Session, approver: Operator, query: QueueQuery | None = None
) -> QueueCounts:
    """How many requests the filter holds for the approver (over the whole filter), and
    what waits on clients they may not approve for."""
    total = _count(session, _queue_where(session, approver, query or QueueQuery()))
    approver_role = _approver_clients(session, approver) is not None
    names = session.execute(
        sa.select(col(Client.name))
        .join(OperatorClient, col(OperatorClient.client_id) == col(Client.id))
        .where(col(OperatorClient.operator_id) == ident(approver))
        .order_by(col(Client.name))
    ).scalars()
    return QueueCounts(
        total=total,
        approver=approver_role,
        approves_for=tuple(names) if approver_role else (),
        elsewhere=waiting_elsewhere(session, approver),
    )


def mark_all(session: Session, approver: Operator, query: QueueQuery | None = None) -> QueueMark:
    """Mark every request the filter holds for the approver, as of now: the newest grant and
    extension ids, and the ids of the grants it holds then (no row is loaded)."""
    query = query or QueueQuery()
    last_grant = session.execute(sa.select(sa.func.max(col(Grant.id)))).scalar_one() or 0
    last_extension = (
        session.execute(sa.select(sa.func.max(col(GrantExtension.id)))).scalar_one() or 0
    )
    where = _queue_where(
        session, approver, query, last_grant=last_grant, last_extension=last_extension
    )
    ids = frozenset(
        int(grant_id)
        for grant_id in session.execute(sa.select(col(Grant.id)).where(*where)).scalars()
    )
    return QueueMark(
        query=query,
        last_grant=int(last_grant),
        last_extension=int(last_extension),
        count=len(ids),
        marked_at=clock.now(),
        ids=ids,
    )


def marked_ids(session: Session, approver: Operator, mark: QueueMark) -> Any:
    """The ids of the grants a mark holds now, as a subquery (for the batch to lock)."""
    return sa.select(col(Grant.id)).where(*_mark_where(session, approver, mark))


def stream_queue(
    session: Session,
    approver: Operator,
    query: QueueQuery | None = None,
    *,
    window_size: int = STREAM_WINDOW,
) -> Iterator[GrantRow]:
    """Every request the approver may decide, oldest first, a keyset window at a time."""
    where = _queue_where(session, approver, query or QueueQuery())
    newer: SortKey | None = None  # "newest" (id descending) read backwards: oldest first
    while True:
        rows = _window(
            session,
            where,
            two_step=True,
            sort="newest",
            before=newer,
            from_end=True,
            limit=window_size,
        )
        yield from reversed(rows)
        if len(rows) < window_size:
            return
        newer = sort_key("newest", rows[0])


def pending_for(session: Session, approver: Operator) -> list[GrantRow]:
    """Requests and extensions the approver may decide now, oldest first: on clients they
    approve for, not asked by them, not yet approved by them, on clients that are not paused."""
    return list(stream_queue(session, approver))


@dataclass(frozen=True)
class ApprovalQueue:
    """The approver's own state, read for the approvals screen."""

    operator: operator_views.OperatorState


def approval_queue(session: Session, approver: Operator) -> ApprovalQueue:
    """The approver's enrolment and lock-out (the rows come from `queue_window`)."""
    return ApprovalQueue(operator_views.state(session, approver))

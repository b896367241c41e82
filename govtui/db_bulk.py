"""Dialect-specific ways to join a few thousand rows from Python to a bulk statement.

SQLite gets a temporary table (private to the connection) with a primary key, so the join is
an index lookup whichever way the planner turns it: a VALUES list has no index, and SQLite may
scan it once per joined row (50,000 x 450 rows). PostgreSQL hash-joins a VALUES list well, and
needs no TEMP privilege for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable
from sqlmodel import Session

_PARAMETERS = 8_000  # bound parameters per VALUES list, well inside every driver's limit


def keyed_rows_table(name: str, *columns: sa.Column[object]) -> sa.Table:
    """A table for `joinable`: not part of the schema (its own MetaData), created on demand per
    connection as a TEMPORARY table on SQLite; mark its key columns primary_key."""
    return sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])


def joinable(
    session: Session, table: sa.Table, rows: Sequence[tuple[object, ...]]
) -> list[sa.FromClause]:
    """`rows` (in `table`'s column order) as FROM clauses to join to: on SQLite the filled
    temporary table itself, on PostgreSQL one VALUES CTE per chunk. Call `release` after."""
    names = [c.name for c in table.columns]
    if session.get_bind().dialect.name == "sqlite":
        session.execute(CreateTable(table, if_not_exists=True))
        session.execute(table.delete())
        if rows:
            session.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
        return [table]
    chunk = max(1, _PARAMETERS // len(names))
    return [
        sa.values(*(sa.column(c.name, c.type) for c in table.columns), name=table.name)
        .data(list(rows[start : start + chunk]))
        .cte(table.name)
        for start in range(0, len(rows), chunk)
    ]


def release(session: Session, table: sa.Table) -> None:
    """Empty what `joinable` filled (SQLite's temporary table lives as long as the connection)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(table.delete())

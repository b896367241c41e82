"""What the TUI reads of the catalog: the client → project → scope tree, and each client's
status (the browser, the grant filters and the command palette)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from govtui.services import catalog
from govtui.services.catalog import ScopeView


@dataclass(frozen=True)
class CatalogTree:
    clients: list[tuple[str, str]]  # name, status; by name
    projects: list[tuple[str, str]]  # client name, project name
    scopes: list[ScopeView]


def client_statuses(session: Session) -> list[tuple[str, str]]:
    """Every client's name and status, by name."""
    return [(c.name, c.status) for c in catalog.list_clients(session)]


def tree(session: Session) -> CatalogTree:
    """Every client, project and scope, in one read."""
    return CatalogTree(
        client_statuses(session),
        [(client, p.name) for client, p in catalog.list_projects(session)],
        catalog.list_scopes(session),
    )

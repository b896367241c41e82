"""Starting an access review: the population of one client's grants frozen in one
transaction, each item assigned to an independent reviewer, one audit event with a digest
an auditor can recompute. Decisions are in review_decisions, close in review_close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from govtui.models import Operator
from govtui.vocabulary import NoAnswer


@dataclass(frozen=True)
class CampaignSpec:
    """What `review start` was given."""

    name: str
    client: str
    reviewers: tuple[str, ...]
    due_at: datetime
    if_no_answer: NoAnswer
    project: str | None = None
    scope: str | None = None  # a scope path, as the rest of the CLI names scopes
    sensitivity: str | None = None
    fallback_reviewer: str | None = None


@dataclass(frozen=True)
class PlanRow:
    """How many items of one project, scope and access level go to one reviewer."""

    project: str
    scope: str
    access: str
    reviewer: str
    items: int


@dataclass(frozen=True)
class StartPlan:
    """What a campaign would contain (the dry run), and what would stop it starting."""

    spec: CampaignSpec
    item_count: int
    population_sha256: str  # sha256 of the sorted grant ids, comma-joined (audit.id_summary)
    rows: list[PlanRow]  # sorted by project, scope, access, reviewer
    by_reviewer: dict[str, int]
    unassignable: list[int]  # grant ids no listed reviewer nor the fallback may review
    drift: list[str]  # one line per reason the directory may not match the grants


@dataclass(frozen=True)
class Started:
    campaign_id: int
    name: str
    item_count: int
    population_sha256: str
    by_reviewer: dict[str, int]


def plan_start(session: Session, actor: Operator, *, spec: CampaignSpec) -> StartPlan:
    """What `start` would freeze, without writing anything (an admin)."""
    raise NotImplementedError


def start(
    session: Session, actor: Operator, *, spec: CampaignSpec, despite_drift: str | None = None
) -> Started:
    """Freeze the population and assign every item, in this one transaction (an admin)."""
    raise NotImplementedError

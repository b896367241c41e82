"""What the screens of one app share: the workspace (the database and who is acting), counters of grant and
directory changes so that a screen shown again knows whether it is out of date, and what this
session learnt about the directories (the last sync, each target's health, the drift found)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from govtui.services.dashboard import ChainStatus
from govtui.services.doctor import Report
from govtui.services.reconcile import Drift
from govtui.services.sync import SyncReport
from govtui.services.workspace import Workspace


@dataclass(frozen=True)
class TargetHealth:
    """The outcome of the last attempt to connect and bind to one target."""

    error: str | None  # None: connected and bound
    at: datetime


@dataclass(frozen=True)
class SyncSummary:
    """The last sync run of this session (background or asked for)."""

    report: SyncReport
    at: datetime
    manual: bool


@dataclass(frozen=True)
class DriftCheck:
    """The drift the most recent reconcile of one target found."""

    target: str
    items: list[Drift]
    at: datetime

    @property
    def fixable(self) -> list[Drift]:
        return [d for d in self.items if d.fixable]


@dataclass
class TuiContext:
    workspace: Workspace
    grants_version: int = 0  # bumped (on the UI thread) whenever the app changed grants
    directory_version: int = 0  # bumped (on the UI thread) after a sync, reconcile or fix
    # Written on the UI thread only; the workers hand their results over in messages.
    health: dict[str, TargetHealth] = field(default_factory=dict)
    last_sync: SyncSummary | None = None
    syncing: bool = False  # a sync run (background or asked for) is going
    sync_progress: tuple[int, int] | None = None  # (handled, total) of the run going
    drift: dict[str, DriftCheck] = field(default_factory=dict)  # target name -> last check
    chain: ChainStatus | None = None  # the last verify of the audit chain in this session
    doctor_on: bool = False  # whether this session runs `govtui doctor`'s checks at start
    doctor: Report | None = None  # what they found, once they have run

    @property
    def actor_name(self) -> str:
        return self.workspace.actor_name

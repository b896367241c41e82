"""Following the directory after a change: sync until it has nothing more to do now, and check
that each target can be reached. The CLI and the TUI both use these, so "when to stop syncing"
is decided in one place.

The stop rule: a run that confirmed nothing, or that left work for later (a retry after
backoff, a failure), ends the loop; looping then would only spin. Following a client also
stops as soon as its pause or resume has converged (or never starts, if it has)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from govtui.db import read_session
from govtui.models import DirectoryTarget
from govtui.services import directory_targets, pause_views, sync
from govtui.services.pause_views import ClientStatus


@dataclass(frozen=True)
class SyncRun:
    """One sync run, and then whether each target could be reached."""

    report: sync.SyncReport
    health: dict[str, BaseException | None]  # target name -> why it failed, None when bound


def settled(report: sync.SyncReport) -> bool:
    """The stop rule: the run confirmed nothing, or left work for later."""
    return report.done == 0 or bool(report.retrying or report.failed)


def sync_until_settled(
    engine: Engine, progress: sync.Progress | None = None, *, due: sync.Due = "now"
) -> sync.SyncReport:
    """Run sync until the stop rule holds; the runs added up (done and failed summed,
    retrying as the last run left it). A person is waiting: by default every open op is
    tried at once (sync.run_once)."""
    total = sync.SyncReport()
    while True:
        report = sync.run_once(engine, due=due, progress=progress)
        total.done += report.done
        total.retrying, total.failed = report.retrying, total.failed + report.failed
        total.errors.extend(report.errors)
        if settled(report):
            return total


def converged(state: ClientStatus) -> bool:
    """Whether the directory has confirmed every change of the client's pause or resume."""
    following = state.additions if state.status == "active" else state.removals
    return following is None or following.complete


def client_status(engine: Engine, client: str) -> ClientStatus:
    """The client's state, its pause and the directory's convergence."""
    with read_session(engine) as session:
        return pause_views.status(session, client)


def follow_directory(
    engine: Engine, client: str, progress: sync.Progress | None = None, *, due: sync.Due = "now"
) -> ClientStatus:
    """Sync until the client's pause or resume has converged or the stop rule holds; the
    client's status then. Convergence counts a superseded op as confirmed and a cancelled
    one (its target disabled or removed) as never applied (pause_views.Convergence)."""
    state = client_status(engine, client)
    while not converged(state):
        report = sync.run_once(engine, due=due, progress=progress)
        state = client_status(engine, client)
        if settled(report):
            break
    return state


def _targets(engine: Engine) -> list[DirectoryTarget]:
    with read_session(engine) as session:
        return directory_targets.active_targets(session)


def check_targets(engine: Engine) -> dict[str, BaseException | None]:
    """Connect, bind and find both bases of every target; for each, why it failed, or None."""
    passwords: dict[str, str | BaseException] = {}
    with read_session(engine) as session:
        targets = directory_targets.active_targets(session)  # a disabled one is not synced
        for target in targets:
            try:
                passwords[target.name] = directory_targets.bind_password(session, target)
            except Exception as exc:  # no password here is this target's health, not a crash
                passwords[target.name] = exc
    # The session is closed: no transaction spans the network calls.
    health: dict[str, BaseException | None] = {}
    for target in targets:
        password = passwords[target.name]
        if isinstance(password, BaseException):
            health[target.name] = password
            continue
        try:
            # The same steps as `directory test`: connect, TLS, bind and both bases.
            health[target.name] = directory_targets.check(target, password).error()
        except Exception as exc:  # whatever went wrong is this target's health, not a crash
            health[target.name] = exc
    return health


def sync_now(
    engine: Engine, progress: sync.Progress | None = None, *, due: sync.Due = "now"
) -> SyncRun | None:
    """Push the outbox operations once, then check every target; None without targets.
    due="now" when a person asked (every open op at once), "backoff" for the background
    worker (only those whose wait has run out)."""
    if not _targets(engine):
        return None
    report = sync.run_once(engine, due=due, progress=progress)
    return SyncRun(report, check_targets(engine))

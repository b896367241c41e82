"""`govtui client pause|resume|status` and `govtui contractor offboard`: removing access in one
action, then following the directory until it confirms."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import Engine

from govtui.cli.context import Context, print_json, print_progress, print_table
from govtui.cli.grant_commands import read_code
from govtui.services import offboarding, pause, pause_views, sync

# Exit status when the database change is done but the directory has not confirmed it all.
NOT_CONVERGED = 1


def register_client(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add pause, resume and status to the `client` command group."""
    p = csub.add_parser(
        "pause",
        help="suspend every grant and request of a client at once, then sync the directory",
        description="Suspend every active grant and every request of the client in one "
        "transaction (no TOTP code needed) and remove its contractors from the directory. "
        f"Exit status {NOT_CONVERGED} means paused in govtui but the directory has not "
        "confirmed every removal yet: see `govtui client status`.",
    )
    p.add_argument("name", metavar="CLIENT")
    p.add_argument("--reason", required=True, help="why (kept in the pause and the audit log)")
    p.add_argument("--dry-run", action="store_true", help="print the blast radius, change nothing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-sync", action="store_true", help="queue the removals, do not sync now")
    p.set_defaults(handler=run_pause)
    p = csub.add_parser(
        "resume",
        help="restore exactly what the pause suspended (an approver's TOTP code)",
    )
    p.add_argument("name", metavar="CLIENT")
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.add_argument("--no-sync", action="store_true", help="queue the additions, do not sync now")
    p.set_defaults(handler=run_resume)
    p = csub.add_parser(
        "status", help="a client's state, its pause, and whether the directory has converged"
    )
    p.add_argument("name", metavar="CLIENT")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_status)


def register_contractor(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add offboard to the `contractor` command group."""
    p = csub.add_parser(
        "offboard",
        help="end every grant of a contractor and disable the directory account",
    )
    p.add_argument("external_id", metavar="EXTERNAL_ID")
    p.add_argument("--reason", required=True, help="why (kept in the audit log)")
    p.add_argument("--no-sync", action="store_true", help="queue the changes, do not sync now")
    p.set_defaults(handler=run_offboard)


def run_pause(ctx: Context, args: argparse.Namespace) -> int:
    if args.dry_run:
        with ctx.read() as session:
            radius = pause_views.blast_radius(session, args.name)
        _print_radius(radius, as_json=args.json)
        return 0
    with ctx.write() as (session, actor):
        result = pause.pause(session, actor, client=args.name, reason=args.reason)
    out = sys.stderr if args.json else sys.stdout
    print(
        f"client {result.client} paused (pause {result.pause_id}): "
        f"{result.suspended_active} active grants and {result.suspended_requests} requests "
        f"suspended; {result.directory_ops} directory removals queued",
        file=out,
    )
    return _follow(ctx, args, result.client, result.directory_ops)


def run_resume(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp)
    with ctx.write() as (session, actor):
        result = pause.resume(session, actor, client=args.name, code=code)
    print(
        f"client {result.client} resumed: {result.restored_active} grants restored with their "
        f"original expiry, {result.restored_requests} requests awaiting approval again, "
        f"{result.not_restored} not restored (revoked or expired meanwhile); "
        f"{result.directory_ops} directory additions queued"
    )
    return _follow(ctx, args, result.client, result.directory_ops)


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.read() as session:
        state = pause_views.status(session, args.name)
    if args.json:
        print_json(
            {
                "client": state.client,
                "status": state.status,
                "pause": state.pause,
                "removals": _convergence_json(state.removals),
                "additions": _convergence_json(state.additions),
                "errors": state.errors,
                "summary": state.summary,
            }
        )
        return 0
    print(state.summary)
    if state.pause is not None:
        p = state.pause
        print(f"  pause {p.id} by {p.paused_by} at {p.paused_at:%Y-%m-%d %H:%M:%S} UTC: {p.reason}")
        print(f"  grants suspended by it: {p.suspended} ({p.still_suspended} still suspended)")
        if p.resumed_at is not None:
            print(f"  resumed by {p.resumed_by} at {p.resumed_at:%Y-%m-%d %H:%M:%S} UTC")
    for error in state.errors:
        print(f"  failed: {error}")
    return 0


def run_offboard(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.write() as (session, actor):
        result = offboarding.offboard(
            session, actor, external_id=args.external_id, reason=args.reason
        )
    print(
        f"contractor {result.external_id} offboarded: {result.ended} grants ended; "
        f"{result.directory_ops} directory operations queued"
    )
    if args.no_sync or result.directory_ops == 0:
        return 0
    report = _sync_all(ctx.ready_engine())
    print(f"directory: {report.done} confirmed, {report.retrying + report.failed} not yet")
    return 0 if report.retrying + report.failed == 0 else NOT_CONVERGED


def _follow(ctx: Context, args: argparse.Namespace, client: str, queued: int) -> int:
    """Sync the directory now (unless told not to) and say in words whether it converged."""
    if queued and not getattr(args, "no_sync", False):
        _sync_all(ctx.ready_engine())
    with ctx.read() as session:
        state = pause_views.status(session, client)
    print(state.summary, file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    for error in state.errors:
        print(f"govtui: warning: {error}", file=sys.stderr)
    converged = state.additions if state.status == "active" else state.removals
    return 0 if converged is None or converged.complete else NOT_CONVERGED


def _sync_all(engine: Engine) -> sync.SyncReport:
    """Run sync until nothing is due now, showing progress on a terminal."""
    total = sync.SyncReport()
    while True:
        report = sync.run_once(engine, progress=print_progress if sys.stderr.isatty() else None)
        total.done += report.done
        total.retrying, total.failed = report.retrying, total.failed + report.failed
        total.errors.extend(report.errors)
        if report.done == 0 or report.retrying or report.failed:
            return total


def _convergence_json(c: pause_views.Convergence | None) -> dict[str, object] | None:
    if c is None:
        return None
    return {
        "queued": c.queued,
        "confirmed": c.confirmed,
        "pending": c.pending + c.later_pending,
        "failed": c.failed,
        "superseded": c.superseded,
        "complete": c.complete,
        "in_words": c.in_words(),
    }


def _print_radius(radius: pause_views.BlastRadius, *, as_json: bool) -> None:
    if as_json:
        print_json(radius)
        return
    print(
        f"pausing {radius.client} ({radius.status}) would suspend {radius.active} active grants "
        f"and {radius.requested} requests of {radius.contractors} contractors"
    )
    print()
    print_table(
        ["PROJECT", "SCOPE", "ACCESS", "ACTIVE", "REQUESTED"],
        [[s.project, s.scope, s.access, s.active, s.requested] for s in radius.scopes],
    )
    print()
    print("directory groups losing members:")
    print_table(
        ["TARGET", "GROUP", "MEMBERS"], [[g.target, g.group_dn, g.members] for g in radius.groups]
    )

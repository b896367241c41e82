"""`govtui client pause|resume|status` and `govtui contractor offboard`: removing access in one
action, then following the directory until it confirms."""

from __future__ import annotations

import argparse
import sys

from govtui.cli.arguments import read_code
from govtui.cli.context import Context, print_json, print_progress, print_table, to_jsonable
from govtui.errors import ConflictError
from govtui.services import convergence, offboarding, pause, pause_reach, pause_views
from govtui.services.sync import Progress
from govtui.text import escaped, one_line

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
    p.add_argument(
        "--strict",
        action="store_true",
        help="also remove members of the client's groups added by hand (on a paused client:"
        " just that); nested groups and primary-group members are listed with the step to take",
    )
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
    ws = ctx.workspace()
    if args.dry_run:
        radius = ws.read(pause_views.blast_radius, args.name)
        # Read after the session above is closed: the directory is never asked inside one.
        reach = pause_reach.outside_members(ws.engine, radius.client)
        _print_radius(radius, reach, as_json=args.json)
        return 0
    hand_added: list[pause.HandAdded] = []
    if args.strict:
        # Read just before the pause's transaction, outside it; queued inside it.
        before = pause_reach.outside_members(ws.engine, args.name)
        hand_added = [
            pause.HandAdded(i.target_id, i.group_dn, i.uid)
            for i in before.removable
            if i.uid is not None
        ]
    out = sys.stderr if args.json else sys.stdout
    try:
        result = ws.act(pause.pause, client=args.name, reason=args.reason, hand_added=hand_added)
    except ConflictError:
        if not args.strict or ws.read(pause_views.status, args.name).status != "paused":
            raise
        result = ws.act(pause.remove_hand_added, client=args.name, hand_added=hand_added)
        print(
            f"client {result.client} is paused already (pause {result.pause_id}): "
            f"{result.strict_removals} removals of members added by hand queued",
            file=out,
        )
        return _follow(ctx, args, result.client, result.directory_ops)
    print(
        f"client {result.client} paused (pause {result.pause_id}): "
        f"{result.suspended_active} active grants and {result.suspended_requests} requests "
        f"suspended; {result.directory_ops} directory removals queued"
        + (f" ({result.strict_removals} of members added by hand)" if args.strict else ""),
        file=out,
    )
    return _follow(ctx, args, result.client, result.directory_ops)


def run_resume(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp)
    result = ctx.workspace().act(pause.resume, client=args.name, code=code)
    print(
        f"client {result.client} resumed: {result.restored_active} grants restored with their "
        f"original expiry, {result.restored_requests} requests awaiting approval again, "
        f"{result.not_restored} not restored (revoked or expired meanwhile); "
        f"{result.directory_ops} directory additions queued"
    )
    return _follow(ctx, args, result.client, result.directory_ops)


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    state = ws.read(pause_views.status, args.name)
    # While paused, what govtui did not add counts too (read with no session open).
    reach = (
        pause_reach.outside_members(ws.engine, state.client) if state.status == "paused" else None
    )
    summary = _summary(state, reach)
    if args.json:
        print_json(
            {
                "client": state.client,
                "status": state.status,
                "pause": state.pause,
                "removals": _convergence_json(state.removals),
                "additions": _convergence_json(state.additions),
                "errors": state.errors,
                "outside_govtui": _reach_json(reach),
                "complete": _complete(state, reach),
                "summary": summary,
            }
        )
        return 0
    # Stored text (a reason, a name) is shown escaped: a row written before input refused
    # ESC[1A ESC[2K could otherwise rewrite the status line above it (issue 11).
    print(escaped(summary))
    if reach is not None:
        _print_reach(reach)
    if state.pause is not None:
        p = state.pause
        print(
            f"  pause {p.id} by {escaped(p.paused_by)} at {p.paused_at:%Y-%m-%d %H:%M:%S} UTC: "
            f"{escaped(p.reason)}"
        )
        print(f"  grants suspended by it: {p.suspended} ({p.still_suspended} still suspended)")
        if p.resumed_at is not None:
            print(f"  resumed by {escaped(p.resumed_by)} at {p.resumed_at:%Y-%m-%d %H:%M:%S} UTC")
    for error in state.errors:
        print(f"  failed: {one_line(error, 1000)}")
    return 0


def run_offboard(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.workspace().act(
        offboarding.offboard, external_id=args.external_id, reason=args.reason
    )
    print(
        f"contractor {result.external_id} offboarded: {result.ended} grants ended; "
        f"{result.directory_ops} directory operations queued"
    )
    if args.no_sync or result.directory_ops == 0:
        return 0
    report = convergence.sync_until_settled(ctx.ready_engine(), _progress())
    print(f"directory: {report.done} confirmed, {report.retrying + report.failed} not yet")
    return 0 if report.retrying + report.failed == 0 else NOT_CONVERGED


def _follow(ctx: Context, args: argparse.Namespace, client: str, queued: int) -> int:
    """Sync the directory now (unless told not to) and say in words whether it converged."""
    ws = ctx.workspace()
    if queued and not getattr(args, "no_sync", False):
        state = convergence.follow_directory(ws.engine, client, _progress())
    else:
        state = ws.read(pause_views.status, client)
    reach = None
    if state.status == "paused" and not getattr(args, "no_sync", False):
        # After the sync: whatever is still in the client's groups that govtui did not add.
        reach = pause_reach.outside_members(ws.engine, client)
    out = sys.stderr if getattr(args, "json", False) else sys.stdout
    print(_summary(state, reach), file=out)
    if reach is not None:
        _print_reach(reach, out)
    for error in state.errors:
        print(f"govtui: warning: {one_line(error, 1000)}", file=sys.stderr)
    return 0 if _complete(state, reach) else NOT_CONVERGED


def _complete(state: pause_views.ClientStatus, reach: pause_reach.Reach | None) -> bool:
    """Converged, and nothing left in the groups that govtui could still remove: what is
    left is all listed as outside its reach (reach None: not asked, e.g. --no-sync)."""
    if not convergence.converged(state):
        return False
    # A nesting chain cut by the depth limit hides who it lets in: never complete.
    return reach is None or (not reach.errors and not reach.removable and not reach.unread)


def _summary(state: pause_views.ClientStatus, reach: pause_reach.Reach | None) -> str:
    """The status line, with what govtui did not add; "complete" only when nothing it could
    remove is left (what remains is listed as outside its reach)."""
    if reach is None or not (reach.items or reach.errors):
        return state.summary
    text = state.summary
    if convergence.converged(state) and not _complete(state, reach):
        text = text.replace("; complete: ", "; NOT complete: ", 1)
    elif _complete(state, reach) and reach.outside:
        # Complete only as far as govtui reaches: what it cannot remove is still there.
        return text.replace(
            "; complete: ",
            f"; complete for govtui's members; {len(reach.outside)} outside govtui's reach"
            " remain (see below); ",
            1,
        )
    return f"{text}; {reach.in_words()}"


def _print_reach(reach: pause_reach.Reach, out: object = None) -> None:
    stream = out if out is not None else sys.stdout
    for error in reach.errors:
        print(f"  could not read {one_line(error)}", file=stream)  # type: ignore[arg-type]
    for item in reach.items:
        # Member DNs and uids are what the directory returned: escaped, one line each.
        who = one_line(item.uid or item.member_dn)
        via = f" via {one_line(item.via)}" if item.via else ""
        print(
            f"  {item.kind}: {who} in {one_line(item.group_dn)}{via} ({item.target}): {item.step}",
            file=stream,  # type: ignore[arg-type]
        )


def _reach_json(reach: pause_reach.Reach | None) -> dict[str, object] | None:
    if reach is None:
        return None
    return {
        "removable": len(reach.removable),
        "outside_reach": len(reach.outside),
        "errors": reach.errors,
        "items": reach.items,
    }


def _progress() -> Progress | None:
    """Progress on stderr when it is a terminal."""
    return print_progress if sys.stderr.isatty() else None


def _convergence_json(c: pause_views.Convergence | None) -> dict[str, object] | None:
    if c is None:
        return None
    return {
        "queued": c.queued,
        "confirmed": c.confirmed,
        "pending": c.pending + c.later_pending,
        "failed": c.failed,
        "superseded": c.superseded,
        "cancelled": dict(c.cancelled),  # target -> ops never applied (target disabled/removed)
        "complete": c.complete,
        "in_words": c.in_words(),
    }


def _print_radius(
    radius: pause_views.BlastRadius, reach: pause_reach.Reach, *, as_json: bool
) -> None:
    if as_json:
        print_json({**to_jsonable(radius), "outside_govtui": _reach_json(reach)})
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
    print()
    print(f"a pause would leave: {reach.in_words().removeprefix('members govtui did not add: ')}")
    _print_reach(reach)

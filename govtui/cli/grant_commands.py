"""`govtui grant ...` and `govtui expire`."""

from __future__ import annotations

import argparse
import sys

from sqlmodel import Session

from govtui.cli import arguments, listing
from govtui.cli.arguments import read_code
from govtui.cli.context import Context, print_json, print_table
from govtui.errors import InputError
from govtui.models import ACCESS_LEVELS, GRANT_STATES
from govtui.services import grant_views, grants
from govtui.text import escaped


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grant = sub.add_parser("grant", help="request, approve, deny, extend, revoke and list grants")
    gsub = grant.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = gsub.add_parser("request", help="ask for a contractor's access to one scope")
    p.add_argument("contractor", metavar="CONTRACTOR", help="external id")
    p.add_argument("scope", metavar="CLIENT/PROJECT/SCOPE")
    p.add_argument("--access", required=True, choices=ACCESS_LEVELS)
    p.add_argument("--days", required=True, type=arguments.DAYS)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=run_request)
    p = gsub.add_parser(
        "approve", help="approve requests with your TOTP code (one code, one batch)"
    )
    p.add_argument("ids", nargs="*", type=arguments.IDS, metavar="ID")
    _pending_arguments(p)
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.set_defaults(handler=run_approve)
    p = gsub.add_parser("deny", help="turn down requests or pending extensions")
    p.add_argument("ids", nargs="*", type=arguments.IDS, metavar="ID")
    _pending_arguments(p)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=run_deny)
    p = gsub.add_parser("revoke", help="end a grant now (no code needed)")
    p.add_argument("id", type=arguments.IDS, metavar="ID")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=run_revoke)
    p = gsub.add_parser("extend", help="ask for more days on an active grant (needs approval)")
    p.add_argument("id", type=arguments.IDS, metavar="ID")
    p.add_argument("--days", required=True, type=arguments.DAYS)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=run_extend)
    p = gsub.add_parser("list", help="list every grant (streamed), newest first")
    p.add_argument("--state", choices=GRANT_STATES)
    p.add_argument("--client")
    p.add_argument("--contractor", metavar="EXTERNAL_ID")
    p.add_argument(
        "--search", metavar="TEXT", help="contractors whose name, email, external id or uid hold it"
    )
    p.add_argument("--expiring-within", type=arguments.HORIZON_DAYS, metavar="DAYS")
    p.add_argument("--sort", choices=grant_views.GRANT_SORTS, default="newest")
    p.add_argument("--pending", action="store_true", help="only what you (--as) may approve now")
    listing.add_output_arguments(p)
    p.set_defaults(handler=run_list)
    p = gsub.add_parser("show", help="one grant with its whole history")
    p.add_argument("id", type=arguments.IDS, metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_show)
    p = sub.add_parser("expire", help="end every grant past its expiry (safe to run from cron)")
    p.set_defaults(handler=run_expire)


def run_request(ctx: Context, args: argparse.Namespace) -> int:
    grant = ctx.workspace().act(
        grants.request,
        contractor=args.contractor,
        scope_path=args.scope,
        access=args.access,
        days=args.days,
        reason=args.reason,
    )
    print(grant.id)
    return 0


def _pending_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pending",
        action="store_true",
        help="instead of ids: every request waiting for you now (as the approvals screen's "
        "ctrl+a: what is requested later is not in it)",
    )
    p.add_argument("--client", help="with --pending: only this client's")
    p.add_argument("--search", help="with --pending: only contractors matching (name, email, id)")


def _pending_mark(ctx: Context, args: argparse.Namespace) -> grant_views.QueueMark | None:
    """With --pending, the mark of every request waiting for the actor as of now."""
    if not args.pending:
        if args.client or args.search:
            raise InputError("--client and --search narrow --pending; name ids or add --pending")
        return None
    if args.ids:
        raise InputError("name grant ids or --pending, not both")
    query = grant_views.QueueQuery(client=args.client, contractor_search=args.search)
    mark = ctx.workspace().read_as(grant_views.mark_all, query)
    if not mark.count:
        described = query.describe()
        raise InputError("no request waits for you" + (f" ({described})" if described else ""))
    noun = "request waits" if mark.count == 1 else "requests wait"
    print(f"{mark.count:,} {noun} for you as of {mark.marked_at:%H:%M:%S} UTC", file=sys.stderr)
    return mark


def run_approve(ctx: Context, args: argparse.Namespace) -> int:
    mark = _pending_mark(ctx, args)
    code = read_code(args.totp)
    outcomes = ctx.workspace().act(grants.approve, grant_ids=args.ids, mark=mark, code=code)
    for outcome in outcomes:
        what = "extension" if outcome.round else "grant"
        if outcome.activated and outcome.expires_at is not None:
            print(
                f"{what} {outcome.grant_id} approved: active until {outcome.expires_at:%Y-%m-%d %H:%M} UTC"
            )
        else:
            print(
                f"{what} {outcome.grant_id}: approval recorded; a second approver is needed (restricted scope)"
            )
    return 0


def run_deny(ctx: Context, args: argparse.Namespace) -> int:
    mark = _pending_mark(ctx, args)
    count = ctx.workspace().act(grants.deny, grant_ids=args.ids, mark=mark, reason=args.reason)
    print(f"denied {', '.join(map(str, args.ids))}" if mark is None else f"denied {count:,}")
    return 0


def run_revoke(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(grants.revoke, grant_id=args.id, reason=args.reason)
    print(f"grant {args.id} revoked")
    return 0


def run_extend(ctx: Context, args: argparse.Namespace) -> int:
    extension = ctx.workspace().act(
        grants.extend, grant_id=args.id, days=args.days, reason=args.reason
    )
    print(
        f"extension {extension.round} of grant {args.id} requested ({args.days} days); it needs approval"
    )
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    if args.pending:
        rows = ws.read_as(grant_views.pending_for)
        shown = listing.emit(args, rows[: args.limit], headers=_HEADERS, cells=_cells)
        listing.note_limit(args, shown, lambda: len(rows), "requests")
        return 0
    query = grant_views.GrantQuery(
        state=args.state,
        client=args.client,
        contractor=args.contractor,
        contractor_search=args.search,
        expiring_within=args.expiring_within,
    )
    ws.read(_stream, args=args, query=query)
    return 0


def _stream(session: Session, *, args: argparse.Namespace, query: grant_views.GrantQuery) -> None:
    """Every grant of the filter (or the first --limit), written as it is read, in one read
    transaction: what is written is one snapshot, and the count said beside it is its own."""
    rows = grant_views.stream(session, query, sort=args.sort, limit=args.limit)
    shown = listing.emit(args, rows, headers=_HEADERS, cells=_cells)
    listing.note_limit(args, shown, lambda: grant_views.counts(session, query).total, "grants")


_HEADERS = ["ID", "CONTRACTOR", "SCOPE", "ACCESS", "STATE", "EXPIRES", "APPROVED BY"]


def _cells(r: grant_views.GrantRow) -> list[object]:
    return [
        r.id,
        r.contractor,
        r.scope,
        r.access,
        r.state + (f" (+{r.pending_extension_days}d asked)" if r.pending_extension_days else ""),
        f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "-",
        ",".join(r.approvals) or "-",
    ]


def run_show(ctx: Context, args: argparse.Namespace) -> int:
    detail = ctx.workspace().read(grant_views.show, args.id)
    if args.json:
        print_json(detail)
        return 0
    g = detail.grant
    print(
        escaped(
            f"grant {g.id}: {g.contractor} ({g.contractor_name}) {g.access} on {g.scope}"
            f" [{g.sensitivity}]"
        )
    )
    print(
        f"state {g.state}; expires {g.expires_at:%Y-%m-%d %H:%M} UTC"
        if g.expires_at
        else f"state {g.state}"
    )
    print_table(
        ["WHEN (UTC)", "EVENT", "BY", "DETAILS"],
        [
            [
                f"{h.at:%Y-%m-%d %H:%M:%S}",
                h.event,
                h.by or "-",
                ", ".join(f"{k}={v}" for k, v in h.details.items() if v is not None),
            ]
            for h in detail.history
        ],
    )
    return 0


def run_expire(ctx: Context, args: argparse.Namespace) -> int:
    # Expiry removes access and needs nobody's authority; the actor is recorded for the audit.
    ended = ctx.workspace().act_system(grants.expire_due, actor_name=f"system ({ctx.actor_name})")
    print(f"expired {len(ended)} grant(s)")
    return 0

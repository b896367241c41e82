"""`govtui review start|decide|reassign|close|due|list|show|items`: access review campaigns,
from the frozen population to the directory confirming every removal."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import IO, Any

from sqlmodel import Session

from govtui import clock
from govtui.cli import arguments, listing, review_schedule_commands
from govtui.cli.arguments import read_code
from govtui.cli.context import Context, json_text, print_json, print_progress, print_table
from govtui.errors import InputError
from govtui.models import Operator
from govtui.services import (
    review_close,
    review_decisions,
    review_reassign,
    review_views,
    reviews,
    validation,
)
from govtui.services.pause_views import Convergence
from govtui.services.sync import Progress
from govtui.services.workspace import Workspace
from govtui.text import escaped, one_line
from govtui.vocabulary import CampaignState, ReviewDecision

# Exit status of close when the database change is done but the directory has not confirmed
# every removal, and of `due` when anything is overdue (cron mails on non-zero).
NOT_CONVERGED = 1
OVERDUE = 1
DECISIONS = tuple(d.value for d in ReviewDecision)
URGENCY = {"overdue": "OVERDUE", "1d": "within 1 day", "7d": "within 7 days"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    review = sub.add_parser(
        "review", help="access review campaigns: start, decide, close, and what is due"
    )
    rsub = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rsub.add_parser(
        "start",
        help="freeze a client's grants into a campaign for independent reviewers (an admin)",
        description="Every grant of the client (narrowed by --project, --scope, --sensitivity) "
        "that is active or suspended now becomes one item, in one transaction; each item goes "
        "to the first --reviewer who neither requested nor approved it, else the fallback.",
    )
    p.add_argument("name", metavar="NAME")
    review_schedule_commands.add_campaign_shape(p, scope=True)
    due = p.add_mutually_exclusive_group(required=True)
    due.add_argument("--due", metavar="YYYY-MM-DD", help="due at the end of this day (UTC)")
    due.add_argument("--due-in", type=arguments.DAYS, metavar="DAYS", help="due in DAYS days")
    p.add_argument(
        "--dry-run", action="store_true", help="print what it would contain, write nothing"
    )
    p.add_argument(
        "--despite-drift",
        metavar="REASON",
        help="start although the client's directory has unconfirmed or failed operations (audited)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_start)

    p = rsub.add_parser(
        "decide",
        usage="govtui review decide CAMPAIGN (ITEM... | --all-mine | --grant ID...) "
        "(keep | revoke | shorten DAYS) --reason TEXT [--totp CODE]",
        help="keep, revoke or shorten items you review (keep and shorten need your TOTP code)",
        description="review decide CAMPAIGN ITEM... keep|revoke|shorten DAYS --reason TEXT; "
        "or --all-mine instead of the items, or --grant followed by grant ids. keep and "
        "shorten keep access alive and need your TOTP code (one per batch); revoke never does.",
    )
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument(
        "words",
        nargs="+",
        metavar="WORD",
        help="item ids (grant ids with --grant; none with --all-mine), then keep, revoke or "
        "shorten DAYS",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all-mine", action="store_true", help="every item assigned to you")
    which.add_argument("--grant", action="store_true", help="the ids given are grant ids")
    p.add_argument("--reason", required=True, help="why (at least 3 words on a restricted scope)")
    p.add_argument(
        "--totp", metavar="CODE", help="your current code for keep/shorten (prompted when omitted)"
    )
    p.set_defaults(handler=run_decide)

    p = rsub.add_parser(
        "reassign",
        usage="govtui review reassign CAMPAIGN --from OPERATOR --to OPERATOR [--item ID ...] "
        "--reason TEXT [--totp CODE] [--dry-run]",
        help="move a reviewer's undecided items to another reviewer (an admin, with your code)",
        description="Moves the undecided items of an open campaign (or only those given with "
        "--item) from one reviewer to another, also when --from lost the reviewer role or the "
        "client link. The target must review the client and be independent of every item "
        "moved, else nothing moves. Decided items stay. Your TOTP code confirms it.",
    )
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("--from", dest="from_reviewer", required=True, metavar="OPERATOR")
    p.add_argument("--to", dest="to_reviewer", required=True, metavar="OPERATOR")
    p.add_argument(
        "--item",
        dest="items",
        type=arguments.IDS,
        nargs="+",
        action="extend",
        default=[],
        metavar="ID",
        help="only these item ids (each must be --from's)",
    )
    p.add_argument("--reason", required=True, help="why the items move (audited)")
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted when omitted)")
    p.add_argument(
        "--dry-run", action="store_true", help="check and print what would move, write nothing"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_reassign)

    p = rsub.add_parser(
        "close",
        help="apply a campaign's revocations and shortenings, then follow the directory",
        description="Ends every revoke (and, with --if-no-answer revoke, every undecided item) "
        "and shortens every shorten, in one transaction; then syncs until the directory "
        f"confirms each removal. Exit status {NOT_CONVERGED}: closing, not yet confirmed "
        "(see `govtui review show`).",
    )
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument(
        "--dry-run", action="store_true", help="list what close would end, change nothing"
    )
    p.add_argument(
        "--confirm-count",
        type=arguments.bounded_int(0, arguments.MAX_ID),
        metavar="N",
        help="the exact number of grants close ends (needed above 25%% or 1,000 grants)",
    )
    p.add_argument("--no-sync", action="store_true", help="queue the removals, do not sync now")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_close)

    p = rsub.add_parser(
        "due",
        help="reviewers with undecided items due within 7 days, 1 day, or overdue (for cron)",
        description=f"Exit status {OVERDUE} when anything is overdue (after --close-overdue: "
        "when an overdue campaign is left open or its close is not confirmed), or when a "
        "scheduled start was refused (--start-scheduled).",
    )
    p.add_argument("--json", action="store_true", help="print JSON (urgency: overdue|1d|7d)")
    p.add_argument(
        "--start-scheduled",
        action="store_true",
        help="first start every scheduled campaign whose time has come (an admin, from cron)",
    )
    p.add_argument(
        "--close-overdue",
        action="store_true",
        help="close overdue campaigns with their no-answer action (not those needing "
        "--confirm-count: their exact command is printed)",
    )
    p.set_defaults(handler=run_due)
    review_schedule_commands.register(rsub)

    p = rsub.add_parser("list", help="every campaign with its progress, newest first")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_list)

    p = rsub.add_parser("show", help="one campaign: progress per reviewer, what close waits for")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_show)

    p = rsub.add_parser("items", help="a campaign's items with the decision helpers")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("--mine", action="store_true", help="only items assigned to you")
    p.add_argument("--undecided", action="store_true", help="only items still needing a decision")
    p.add_argument("--sort", choices=review_views.ITEM_SORTS, default="id")
    p.add_argument(
        "--limit",
        type=arguments.bounded_int(1, review_views.MAX_WINDOW),
        help=f"rows (default {review_views.PAGE} in the table, every row with --json/--jsonl)",
    )
    p.add_argument("--offset", type=arguments.bounded_int(0, arguments.MAX_ID), default=0)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON array, written as it is read")
    out.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=run_items)


# --- start ---------------------------------------------------------------------------------


def _due_at(args: argparse.Namespace) -> datetime:
    now = clock.now()
    if args.due_in is not None:
        return now + timedelta(days=args.due_in)
    day = validation.iso_date(args.due, "--due")
    at = datetime.combine(day, time(23, 59, 59), UTC)
    if at <= now:
        raise InputError(f"--due {day.isoformat()} is past: give a day from today on")
    return at


def run_start(ctx: Context, args: argparse.Namespace) -> int:
    spec = reviews.CampaignSpec(
        name=args.name,
        client=args.client,
        reviewers=tuple(args.reviewers),
        due_at=_due_at(args),
        if_no_answer=args.if_no_answer,
        project=args.project,
        scope=args.scope,
        sensitivity=args.sensitivity,
        fallback_reviewer=args.fallback_reviewer,
    )
    ws = ctx.workspace()
    if args.dry_run:
        plan = ws.read_as(reviews.plan_start, spec=spec)
        if args.json:
            print_json(plan)
        else:
            _print_start_plan(plan, despite_drift=args.despite_drift)
        return 0
    started = ws.act(reviews.start, spec=spec, despite_drift=args.despite_drift)
    if args.json:
        print_json(started)
        return 0
    print(
        escaped(
            f"campaign {started.name} started: {started.item_count} items, due "
            f"{spec.due_at:%Y-%m-%d %H:%M} UTC, no answer means {spec.if_no_answer}"
        )
    )
    print(f"  population sha256 {started.population_sha256}")
    print(escaped(f"  by reviewer: {_counts(started.by_reviewer)}"))
    return 0


def _counts(by: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(by.items())) or "none"


def _print_start_plan(plan: reviews.StartPlan, *, despite_drift: str | None) -> None:
    print(
        escaped(
            f"campaign {plan.spec.name} would hold {plan.item_count} items of client "
            f"{plan.spec.client} (population sha256 {plan.population_sha256})"
        )
    )
    print()
    print_table(
        ["PROJECT", "SCOPE", "ACCESS", "REVIEWER", "ITEMS"],
        [[r.project, r.scope, r.access, r.reviewer, r.items] for r in plan.rows],
    )
    print()
    print(escaped(f"by reviewer: {_counts(plan.by_reviewer)}"))
    if plan.unassignable:
        print(
            f"start would be REFUSED: no listed reviewer nor the fallback may review grants "
            f"{_ids(plan.unassignable)}"
        )
    for line in plan.drift:
        # Lines quote directory errors: one line each, escaped.
        print(f"directory drift: {one_line(line, 1000)}")
    if plan.drift and despite_drift is None:
        print("start would be REFUSED for the drift above unless --despite-drift REASON is given")


def _ids(ids: Sequence[int], width: int = 100) -> str:
    return "\n  ".join(textwrap.wrap(", ".join(map(str, ids)), width)) if ids else "none"


# --- decide --------------------------------------------------------------------------------


def _selection(args: argparse.Namespace) -> tuple[ReviewDecision, int | None, list[int]]:
    """The decision, its days and the ids, from `ID... DECISION [DAYS]` (one refusal line
    naming the word at fault, before any database is opened)."""
    words: list[str] = args.words
    found = [i for i, w in enumerate(words) if w in DECISIONS]
    if not found:
        raise InputError(f"no decision given: end the ids with one of {', '.join(DECISIONS)}")
    at = found[0]
    decision = ReviewDecision(words[at])
    rest = words[at + 1 :]
    days = None
    if decision == ReviewDecision.SHORTEN:
        if len(rest) != 1:
            raise InputError("shorten takes one DAYS after it: shorten DAYS")
        days = _int(arguments.DAYS, rest[0], "DAYS")
    elif rest:
        raise InputError(f"nothing may follow {decision.value}: got {escaped(rest[0])!r}")
    ids = [_int(arguments.IDS, w, "an id") for w in words[:at]]
    if args.all_mine and ids:
        raise InputError("--all-mine takes no ids")
    if not args.all_mine and not ids:
        what = "grant ids" if args.grant else "item ids"
        raise InputError(f"no {what} given (or use --all-mine)")
    return decision, days, ids


def _int(kind: arguments.BoundedInt, word: str, what: str) -> int:
    try:
        return kind(word)
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"{what}: {exc}") from None


def run_decide(ctx: Context, args: argparse.Namespace) -> int:
    decision, days, ids = _selection(args)
    selection = review_decisions.ItemSelection(
        item_ids=() if args.grant else ids,
        grant_ids=ids if args.grant else (),
        all_mine=args.all_mine,
    )
    # Direction of friction: revoke removes access and never waits for a code.
    code = None if decision == ReviewDecision.REVOKE else read_code(args.totp)
    decided = ctx.workspace().act(
        review_decisions.decide,
        campaign=args.campaign,
        selection=selection,
        decision=decision,
        reason=args.reason,
        days=days,
        code=code,
    )
    what = f"{decision.value} {days} days" if days else decision.value
    print(
        escaped(
            f"campaign {decided.campaign}: {len(decided.item_ids)} items decided {what}"
            + (f" ({decided.changed} changed from another decision)" if decided.changed else "")
        )
    )
    if decided.ended:
        print(
            f"  {len(decided.ended)} skipped, their grant ended before decision (no decision "
            f"needed): items {_ids(decided.ended)}"
        )
    return 0


# --- reassign ------------------------------------------------------------------------------


def run_reassign(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    given = {
        "campaign": args.campaign,
        "from_reviewer": args.from_reviewer,
        "to_reviewer": args.to_reviewer,
        "reason": args.reason,
        "item_ids": args.items,
    }
    if args.dry_run:
        # The same function, in a read-only transaction: checks everything, writes nothing.
        done = ws.read_as(review_reassign.reassign, dry_run=True, **given)
    else:
        code = read_code(args.totp, "Your own TOTP code: ")
        done = ws.act(review_reassign.reassign, code=code, **given)
    if args.json:
        print_json(done)
        return 0
    verb = "would move" if done.dry_run else "moved"
    print(
        escaped(
            f"campaign {done.campaign}: {verb} {done.count} undecided items from "
            f"{done.from_reviewer} to {done.to_reviewer}"
        )
    )
    print(f"  item ids sha256 {done.ids_sha256}")
    if done.decided:
        print(
            escaped(
                f"  {len(done.decided)} decided items stay with {done.from_reviewer} (not "
                f"moved): items {_ids(done.decided)}"
            )
        )
    if done.added_reviewer:
        added = "would become" if done.dry_run else "is now"
        print(escaped(f"  {done.to_reviewer} {added} one of the campaign's reviewers"))
    if done.from_cannot_decide:
        print(escaped(f"  {done.from_cannot_decide}: they can no longer decide this campaign"))
    return 0


# --- close ---------------------------------------------------------------------------------


def run_close(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    state = ws.read(review_views.campaign, args.campaign).summary.state
    out = sys.stderr if args.json else sys.stdout
    if state == CampaignState.CLOSED:
        print(escaped(f"campaign {args.campaign} is closed already"), file=out)
        return _final(ws, args)
    if state == CampaignState.OPEN:
        plan = ws.read_as(review_close.close_plan, campaign=args.campaign)
        if args.json and args.dry_run:
            print_json(plan)
            return 0
        _print_close_plan(plan, out, dry_run=args.dry_run)
        if args.dry_run:
            return 0
        if plan.needs_confirm_count and args.confirm_count is None:
            raise InputError(
                f"closing {plan.campaign} ends {plan.ends} of {plan.population} grants: "
                f"confirm with `govtui review close {plan.campaign} --confirm-count {plan.ends}`"
            )
        closed = ws.act(
            review_close.close, campaign=args.campaign, confirm_count=args.confirm_count
        )
        if closed.followed_only:  # another close got there first: follow it
            print(escaped(f"campaign {closed.campaign} is closing already"), file=out)
        else:
            _print_closed(closed, out)
    elif args.dry_run:
        print(escaped(f"campaign {args.campaign} is closing already: close only follows it"))
        return 0
    if not args.no_sync:
        review_close.follow(ws, args.campaign, _progress())
    return _final(ws, args)


def _print_closed(closed: review_close.Closed, out: IO[str]) -> None:
    print(
        escaped(
            f"campaign {closed.campaign} closing: {len(closed.revoked)} grants revoked, "
            f"{len(closed.shortened)} shortened, {len(closed.expired)} ended now (shortened "
            f"into the past: expired); {closed.directory_ops} directory removals queued"
        ),
        file=out,
    )


def _final(ws: Workspace, args: argparse.Namespace) -> int:
    """The campaign's state in words (and as JSON when asked); 0 only when closed."""
    detail = ws.read(review_views.campaign, args.campaign)
    if args.json:
        print_json(_detail_json(detail))
    else:
        _print_state(detail, sys.stdout)
    return 0 if detail.summary.state == CampaignState.CLOSED else NOT_CONVERGED


def _print_state(detail: review_views.CampaignDetail, out: IO[str]) -> None:
    s = detail.summary
    words = _state_words(detail)
    print(escaped(f"campaign {s.name} is {words}"), file=out)
    if not detail.population_intact:
        print(f"  {_POPULATION_CHANGED}", file=out)
    for line in detail.unconfirmed:
        print(f"  unconfirmed: {one_line(line, 1000)}", file=out)


_POPULATION_CHANGED = (
    "POPULATION CHANGED: the items no longer match the count and sha256 frozen at start "
    "(edited outside govtui; run `govtui audit verify`)"
)


def _state_words(detail: review_views.CampaignDetail) -> str:
    s = detail.summary
    directory = detail.directory.in_words() if detail.directory else None
    if s.state == CampaignState.CLOSED:
        return f"closed: {directory}" if directory else "closed"
    if s.state == CampaignState.CLOSING:
        return f"CLOSING, not closed yet: {directory or 'directory state unknown'}"
    return f"open: {review_views.progress_in_words(s)}, due {s.due_at:%Y-%m-%d %H:%M} UTC"


def _print_close_plan(plan: review_close.ClosePlan, out: IO[str], *, dry_run: bool) -> None:
    verb = "would" if dry_run else "will"
    print(
        escaped(
            f"closing {plan.campaign} {verb} revoke {len(plan.revoke)} of {plan.population} "
            f"grants ({plan.no_answer_revoke} of them unanswered) and shorten "
            f"{len(plan.shorten)} ({len(plan.expire)} ending now); {plan.kept} kept, "
            f"{plan.no_answer} with no answer, {plan.ended_before_decision} ended before decision"
        ),
        file=out,
    )
    if plan.needs_confirm_count:
        print(
            f"  that is more than a quarter of the population or over 1,000 grants: it needs "
            f"--confirm-count {plan.ends}",
            file=out,
        )
    print(f"  revoke: {_ids(plan.revoke)}", file=out)
    if plan.shorten:
        print("  shorten:", file=out)
        for grant_id, until in plan.shorten:
            print(f"    grant {grant_id} until {until:%Y-%m-%d %H:%M} UTC", file=out)
    print("directory groups losing members:", file=out)
    _table(
        out,
        ["TARGET", "GROUP", "MEMBERS"],
        [[g.target, g.group_dn, g.members] for g in plan.groups],
    )


def _table(out: IO[str], headers: list[str], rows: list[list[Any]]) -> None:
    if out is sys.stdout:
        print_table(headers, rows)
        return
    saved, sys.stdout = sys.stdout, out  # print_table writes to stdout; here stderr (--json)
    try:
        print_table(headers, rows)
    finally:
        sys.stdout = saved


def _progress() -> Progress | None:
    """Progress on stderr when it is a terminal."""
    return print_progress if sys.stderr.isatty() else None


# --- due -----------------------------------------------------------------------------------


def run_due(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    refused = args.start_scheduled and review_schedule_commands.start_scheduled(
        ws, json_out=args.json
    )
    lines = ws.read(review_close.due)
    if args.json:
        print_json(lines)
    else:
        print_table(
            ["CAMPAIGN", "REVIEWER", "UNDECIDED", "DUE (UTC)", ""],
            [
                [
                    d.campaign,
                    d.reviewer,
                    d.undecided,
                    f"{d.due_at:%Y-%m-%d %H:%M}",
                    URGENCY[d.urgency]
                    + ("; REVIEWER CANNOT DECIDE: reassign" if d.cannot_decide else ""),
                ]
                for d in lines
            ],
        )
    overdue = list(dict.fromkeys(d.campaign for d in lines if d.overdue))
    if not args.close_overdue:
        return OVERDUE if overdue or refused else 0
    out = sys.stderr if args.json else sys.stdout
    left = False
    for name in overdue:
        plan = ws.read_as(review_close.close_plan, campaign=name)
        if plan.needs_confirm_count:
            print(
                escaped(
                    f"campaign {name} not closed: it would end {plan.ends} of "
                    f"{plan.population} grants; run `govtui review close {name} "
                    f"--confirm-count {plan.ends}`"
                ),
                file=out,
            )
            left = True
            continue
        closed = ws.act(review_close.close, campaign=name, confirm_count=None)
        print(
            escaped(
                f"campaign {name} closing (overdue): {len(closed.revoked)} grants revoked, "
                f"{len(closed.shortened)} shortened; {closed.directory_ops} removals queued"
            ),
            file=out,
        )
        review_close.follow(ws, name, _progress())
        detail = ws.read(review_views.campaign, name)
        _print_state(detail, out)
        left = left or detail.summary.state != CampaignState.CLOSED
    return OVERDUE if left or refused else 0


# --- list, show, items ---------------------------------------------------------------------


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.workspace().read(review_views.campaigns)
    if listing.json_rows(args, rows):
        return 0
    print_table(
        ["NAME", "CLIENT", "STATE", "DUE (UTC)", "PROGRESS", "NO ANSWER"],
        [
            [
                s.name,
                s.client,
                s.state,
                f"{s.due_at:%Y-%m-%d %H:%M}",
                review_views.progress_in_words(s),
                s.if_no_answer,
            ]
            for s in rows
        ],
    )
    return 0


def _detail_json(detail: review_views.CampaignDetail) -> dict[str, Any]:
    return {
        "summary": detail.summary,
        "population_sha256": detail.population_sha256,
        "despite_drift": detail.despite_drift,
        "directory": _convergence_json(detail.directory),
        "unconfirmed": detail.unconfirmed,
        "population_intact": detail.population_intact,
        "cannot_decide": {
            name: {"undecided": n, "why": why} for name, (n, why) in detail.cannot_decide.items()
        },
        "in_words": _state_words(detail),
    }


def _convergence_json(c: Convergence | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "queued": c.queued,
        "confirmed": c.confirmed,
        "pending": c.pending + c.later_pending,
        "failed": c.failed,
        "superseded": c.superseded,
        "cancelled": dict(c.cancelled),
        "complete": c.complete,
        "in_words": c.in_words(),
    }


def run_show(ctx: Context, args: argparse.Namespace) -> int:
    detail = ctx.workspace().read(review_views.campaign, args.campaign)
    if args.json:
        print_json(_detail_json(detail))
        return 0
    s = detail.summary
    print(escaped(f"campaign {s.name} of client {s.client} is {_state_words(detail)}"))
    print(
        escaped(
            f"  started by {s.created_by} at {s.created_at:%Y-%m-%d %H:%M} UTC; due "
            f"{s.due_at:%Y-%m-%d %H:%M} UTC; no answer means {s.if_no_answer}"
        )
    )
    print(f"  {review_views.progress_in_words(s)}")
    print(f"  population sha256 {detail.population_sha256}")
    if not detail.population_intact:
        print(f"  {_POPULATION_CHANGED}")
    if detail.despite_drift:
        print(escaped(f"  started despite directory drift: {detail.despite_drift}"))
    for line in detail.unconfirmed:
        print(f"  unconfirmed: {one_line(line, 1000)}")
    for name, (n, why) in detail.cannot_decide.items():
        print(
            escaped(
                f"  CANNOT DECIDE: {n} undecided items of {name} ({why}); move them with "
                f"`govtui review reassign {s.name} --from {name} --to OPERATOR`"
            )
        )
    print()
    print_table(
        ["REVIEWER", "DECIDED", "ENDED", "UNDECIDED", "TOTAL"],
        [
            [r.reviewer, r.decided, r.ended, r.total - r.decided - r.ended, r.total]
            for r in s.reviewers
        ],
    )
    return 0


def run_items(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    filters = {"campaign": args.campaign, "mine": args.mine, "undecided": args.undecided}
    if args.json or args.jsonl:
        ws.read_as(_stream, args=args, filters=filters)
        return 0
    window = ws.read_as(
        review_views.items,
        sort=args.sort,
        offset=args.offset,
        limit=args.limit or review_views.PAGE,
        **filters,
    )
    print_table(
        [
            "ITEM",
            "GRANT",
            "CONTRACTOR",
            "PROJECT/SCOPE",
            "ACCESS",
            "REVIEWER",
            "DECISION",
            "GRANTED",
            "LEFT",
            "CONTRACT END",
            "REQUESTER",
            "APPROVERS",
            "PEERS",
            "PREVIOUS",
            "FLAGS",
        ],
        [
            [
                r.item_id,
                r.grant_id,
                r.contractor,
                f"{r.project}/{r.scope}",
                r.access,
                r.reviewer,
                _decision(r),
                _days(r.days_since_granted, "ago"),
                _days(r.days_left, ""),
                r.contract_end.isoformat(),
                r.requester,
                ",".join(r.approvers) or "-",
                r.peers,
                r.previous_decision or "-",
                _flags(r),
            ]
            for r in window.rows
        ],
    )
    shown = len(window.rows)
    if shown < window.total:
        where = (
            f"{window.offset + 1}-{window.offset + shown}"
            if shown
            else f"none at offset {window.offset}"
        )
        print(
            f"{where} of {window.total} items (--offset/--limit for more, --json for all)",
            file=sys.stderr,
        )
    return 0


def _stream(
    session: Session, actor: Operator, *, args: argparse.Namespace, filters: dict[str, Any]
) -> None:
    """Every matching item (or the window asked for), written as it is read: memory stays
    bounded by one window whatever the campaign's size."""
    rows: Iterable[review_views.ItemRow]
    if args.limit is not None or args.offset:
        rows = review_views.items(
            session,
            actor,
            sort=args.sort,
            offset=args.offset,
            limit=args.limit or review_views.PAGE,
            **filters,
        ).rows
    else:
        rows = review_views.iter_items(session, actor, sort=args.sort, **filters)
    write = sys.stdout.write
    if args.jsonl:
        for row in rows:
            write(json_text(row, indent=None) + "\n")
        return
    first = True
    write("[")
    for row in rows:
        write(("\n  " if first else ",\n  ") + json_text(row, indent=None))
        first = False
    write("\n]\n" if not first else "]\n")


def _decision(r: review_views.ItemRow) -> str:
    if r.ended_before_decision:
        return "ended"
    if r.decision is None:
        return r.outcome or "-"
    if r.decision == ReviewDecision.SHORTEN:
        return f"shorten {r.shorten_days}d"
    return r.decision


def _days(n: int | None, suffix: str) -> str:
    return "-" if n is None else f"{n}d {suffix}".rstrip()


def _flags(r: review_views.ItemRow) -> str:
    flags = []
    if r.client_paused:
        flags.append("client paused")
    if r.contractor_offboarded:
        flags.append("offboarded")
    if r.grant_state not in ("active",):
        flags.append(r.grant_state)
    return ", ".join(dict.fromkeys(flags))

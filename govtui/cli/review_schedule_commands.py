"""`govtui review schedule add|list|remove` and what `review due --start-scheduled` prints:
recurring access reviews, started from cron exactly once per period."""

from __future__ import annotations

import argparse
import sys

from govtui.cli import arguments, listing
from govtui.cli.context import Context, print_json, print_table
from govtui.models import NO_ANSWERS, SENSITIVITIES
from govtui.services import review_schedules, validation
from govtui.services.workspace import Workspace
from govtui.text import escaped, one_line


def register(rsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`review schedule ...`, under `review`'s subcommands."""
    tiers = ", ".join(f"{t} {d}" for t, d in review_schedules.TIER_EVERY_DAYS.items())
    schedule = rsub.add_parser(
        "schedule", help="recurring reviews: a campaign started every N days (from cron)"
    )
    ssub = schedule.add_subparsers(dest="schedule_action", required=True, metavar="ACTION")
    p = ssub.add_parser(
        "add",
        help="add a recurring review (an admin); `review due --start-scheduled` starts it",
        description="Checked as `review start` checks a campaign. Its campaigns are named "
        "NAME-YYYY-MM-DD and are due --due-in days after they start. Without --every, the "
        f"tier decides (days: {tiers}): the tier of --sensitivity, else of the most "
        "sensitive scope of the client (or the project).",
    )
    p.add_argument("name", metavar="NAME")
    add_campaign_shape(p)
    p.add_argument("--every", type=arguments.DAYS, metavar="DAYS", help="days between starts")
    p.add_argument(
        "--due-in", required=True, type=arguments.DAYS, metavar="DAYS", help="days to answer"
    )
    p.add_argument(
        "--first",
        metavar="YYYY-MM-DD",
        help="the day of the first start (default: the next `review due --start-scheduled`)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_add)

    p = ssub.add_parser("list", help="the schedules, soonest start first")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_list)

    p = ssub.add_parser("remove", help="stop a schedule (an admin); its campaigns and history stay")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=run_remove)


def add_campaign_shape(p: argparse.ArgumentParser, *, scope: bool = False) -> None:
    """What a campaign reviews, by whom, and what close does with no answer: the options
    `review start` and `review schedule add` share (--scope only where `scope`)."""
    p.add_argument("--client", required=True)
    p.add_argument("--project", help="only this project of the client")
    if scope:
        p.add_argument("--scope", metavar="CLIENT/PROJECT/SCOPE", help="only this scope")
    p.add_argument("--sensitivity", choices=SENSITIVITIES, help="only scopes of this level")
    p.add_argument(
        "--reviewer",
        dest="reviewers",
        action="append",
        required=True,
        metavar="OP",
        help="a reviewer (repeat: items go to the first eligible one, in the order given)",
    )
    p.add_argument(
        "--fallback-reviewer", metavar="OP", help="for items no listed reviewer may take"
    )
    p.add_argument(
        "--if-no-answer",
        required=True,
        choices=NO_ANSWERS,
        help="what close does with items nobody decided",
    )


def run_add(ctx: Context, args: argparse.Namespace) -> int:
    spec = review_schedules.ScheduleSpec(
        name=args.name,
        client=args.client,
        reviewers=tuple(args.reviewers),
        if_no_answer=args.if_no_answer,
        due_in_days=args.due_in,
        project=args.project,
        sensitivity=args.sensitivity,
        fallback_reviewer=args.fallback_reviewer,
        every_days=args.every,
        first=validation.iso_date(args.first, "--first") if args.first else None,
    )
    added = ctx.workspace().act(review_schedules.add, spec=spec)
    if args.json:
        print_json(added)
        return 0
    print(
        escaped(
            f"review schedule {added.name} added: every {added.every_days} days "
            f"({added.every_from}), campaigns due {spec.due_in_days} days after they start; "
            f"first start {added.next_start_at:%Y-%m-%d %H:%M} UTC (at the next "
            "`govtui review due --start-scheduled` from then on)"
        )
    )
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.workspace().read(review_schedules.schedules)
    if listing.json_rows(args, rows):
        return 0
    print_table(
        [
            "NAME",
            "CLIENT",
            "PROJECT",
            "SENSITIVITY",
            "EVERY",
            "DUE IN",
            "NO ANSWER",
            "REVIEWERS",
            "NEXT START (UTC)",
            "LAST CAMPAIGN",
        ],
        [
            [
                r.name,
                r.client,
                r.project or "-",
                r.sensitivity or "-",
                f"{r.every_days}d",
                f"{r.due_in_days}d",
                r.if_no_answer,
                ",".join(r.reviewers) + (f" (fallback {r.fallback})" if r.fallback else ""),
                f"{r.next_start_at:%Y-%m-%d %H:%M}",
                r.last_campaign or "-",
            ]
            for r in rows
        ],
    )
    return 0


def run_remove(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(review_schedules.remove, name=args.name)
    print(escaped(f"review schedule {args.name} removed: no campaign starts from it again"))
    return 0


def start_scheduled(ws: Workspace, *, json_out: bool) -> bool:
    """Start what is due, one line each (on stderr under --json, which is the reminders');
    True when a start was refused (the schedule stays due: cron should mail)."""
    out = sys.stderr if json_out else sys.stdout
    refused = False
    for r in review_schedules.start_due(ws):
        if r.outcome == review_schedules.STARTED:
            assert r.next_start_at is not None
            print(
                escaped(
                    f"schedule {r.schedule}: started campaign {r.campaign} ({r.item_count} "
                    f"items); next start {r.next_start_at:%Y-%m-%d %H:%M} UTC"
                ),
                file=out,
            )
        elif r.outcome == review_schedules.SKIPPED:
            assert r.next_start_at is not None
            print(
                escaped(
                    f"schedule {r.schedule}: nothing to review (no active or suspended grant "
                    f"in scope); next start {r.next_start_at:%Y-%m-%d %H:%M} UTC"
                ),
                file=out,
            )
        elif r.outcome == review_schedules.REFUSED:
            refused = True
            print(
                escaped(
                    f"schedule {r.schedule}: campaign {r.campaign} due since "
                    f"{r.scheduled_for:%Y-%m-%d %H:%M} UTC NOT started, retried next run: "
                )
                + one_line(r.reason or "", 1000),
                file=sys.stderr,
            )
        # TAKEN: another run started it at the same time; nothing to say.
    return refused

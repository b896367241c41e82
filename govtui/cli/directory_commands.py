"""`govtui directory ...`, `govtui scope map` and `govtui sync`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from datetime import datetime

from sqlmodel import Session

from govtui import clock
from govtui.cli import arguments, listing
from govtui.cli.context import (
    Context,
    Styled,
    print_json,
    print_progress,
    print_table,
    to_jsonable,
)
from govtui.errors import GovtuiError, InputError
from govtui.models import ACCESS_LEVELS, DIRECTORY_FLAVOURS, DirectoryTarget
from govtui.services import directory_targets, directory_views, reconcile, sync
from govtui.text import one_line

WATCH_SECONDS = 10


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    directory = sub.add_parser("directory", help="LDAP / Active Directory targets kept in step")
    dsub = directory.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = dsub.add_parser("add", help="add a target; the bind password goes to the OS keyring")
    p.add_argument("name")
    p.add_argument("--url", required=True, help="ldap://host[:port] or ldaps://host[:port]")
    p.add_argument("--bind-dn", required=True)
    p.add_argument("--users-base", required=True)
    p.add_argument("--groups-base", required=True)
    p.add_argument("--flavour", choices=DIRECTORY_FLAVOURS, default="openldap")
    p.add_argument("--starttls", action="store_true", help="upgrade ldap:// with StartTLS")
    p.add_argument("--ca-file", help="CA certificate(s) (PEM) to validate the server against")
    p.add_argument(
        "--tls-name",
        metavar="NAME",
        help="the name the server's certificate carries, when the URL names an address",
    )
    p.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="accept ldap:// without StartTLS: the bind password crosses the network in clear",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="store the target without connecting first (e.g. while the server is down)",
    )
    p.add_argument("--no-create-groups", action="store_true", help="a missing group is an error")
    p.add_argument(
        "--sam-template",
        help="AD: sAMAccountName of groups govtui creates, from {client} {project} {scope}"
        " {access} (default: the group's cn)",
    )
    p.add_argument(
        "--group-type",
        type=arguments.bounded_int(-(2**31), 2**31 - 1),  # a signed 32-bit attribute
        help="AD: groupType of groups govtui creates (default -2147483646, global security)",
    )
    p.add_argument(
        "--password-stdin", action="store_true", help="read the bind password from stdin"
    )
    p.set_defaults(handler=run_add)
    p = dsub.add_parser("list", help="list targets")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_list)
    p = dsub.add_parser(
        "test", help="connect, TLS, bind, users base, groups base: each step ok or why not"
    )
    p.add_argument("name")
    p.set_defaults(handler=run_test)
    p = dsub.add_parser(
        "remove", help="remove a target; its open operations are cancelled with --reason"
    )
    p.add_argument("name")
    p.add_argument("--reason", help="why (needed when it still has open operations)")
    p.set_defaults(handler=run_remove)
    p = dsub.add_parser(
        "disable", help="stop syncing a target: its open operations are cancelled, none queued"
    )
    p.add_argument("name")
    p.add_argument("--reason", required=True, help="why (kept on the cancelled operations)")
    p.set_defaults(handler=run_disable)
    p = dsub.add_parser(
        "enable", help="sync a disabled target again (queues nothing: see `govtui reconcile`)"
    )
    p.add_argument("name")
    p.set_defaults(handler=run_enable)
    p = dsub.add_parser(
        "confirm",
        help="sign a target's group routing as it now is (an admin, with a code)",
        description="Sync adds members only through a target whose group routing (users "
        "base, groups base, group template, scope mappings) an admin signed as it now is; "
        "adding a target and mapping a scope sign it. Confirm it after an upgrade, or when "
        "sync says the routing is not signed.",
    )
    p.add_argument("name")
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.set_defaults(handler=run_confirm)

    p = sub.add_parser("sync", help="push pending directory operations (or: sync status)")
    p.add_argument("what", nargs="?", choices=["status"], help="status: counts per target")
    p.add_argument(
        "--watch",
        action="store_true",
        help=f"keep syncing every {WATCH_SECONDS} s, each op after its backoff",
    )
    p.add_argument("--retry-failed", action="store_true", help="retry failed additions too (now)")
    p.add_argument("--json", action="store_true", help="print JSON (with status)")
    p.set_defaults(handler=run_sync)
    register_reconcile(sub)


def register_reconcile(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reconcile", help="compare a directory with the grants; report drift")
    p.add_argument("name", help="the directory target")
    p.add_argument("--fix", action="store_true", help="queue the corrections and sync them")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_reconcile)


def register_scope_map(ssub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ssub.add_parser("map", help="use an explicit directory group for a scope's access level")
    p.add_argument("path", metavar="CLIENT/PROJECT/SCOPE")
    p.add_argument("--access", required=True, choices=ACCESS_LEVELS)
    p.add_argument("--group", required=True, metavar="DN")
    p.add_argument("--target", help="the directory target (needed when there are several)")
    p.set_defaults(handler=run_scope_map)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise InputError("no bind password: use --password-stdin or run in a terminal to be asked")
    return getpass.getpass(f"bind password for {args.bind_dn}: ")


def run_add(ctx: Context, args: argparse.Namespace) -> int:
    # Everything that needs neither the network nor the password is checked first, so a typo
    # costs no password prompt and no wait for a directory.
    checked = directory_targets.settings(
        name=args.name,
        url=args.url,
        bind_dn=args.bind_dn,
        users_base=args.users_base,
        groups_base=args.groups_base,
        flavour=args.flavour,
        starttls=args.starttls,
        ca_file=args.ca_file,
        tls_name=args.tls_name,
        insecure_plaintext=args.insecure_plaintext,
        create_groups=not args.no_create_groups,
        sam_template=args.sam_template,
        ad_group_type=args.group_type,
    )
    ws = ctx.workspace()
    ws.read_as(directory_targets.require_can_add, checked.name)
    password = _password(args)
    if not password:
        raise InputError("the bind password is empty")
    if not args.no_check:
        # No session is open while the directory answers; nothing is written if it fails.
        result = directory_targets.check_settings(checked, password)
        failed = result.failure
        if failed is not None:
            hint = " (--no-check adds it without connecting)" if failed.name == "connect" else ""
            raise DirectoryCheckFailed(
                f"directory target {checked.name} not added: {failed.name} failed: "
                f"{failed.detail}{hint}"
            )
    ws.act(
        directory_targets.add,
        name=checked.name,
        url=checked.url,
        bind_dn=checked.bind_dn,
        users_base=checked.users_base,
        groups_base=checked.groups_base,
        password=password,
        flavour=checked.flavour,
        starttls=checked.starttls,
        ca_file=checked.ca_file,
        tls_name=checked.tls_name,
        insecure_plaintext=checked.insecure_plaintext,
        create_groups=checked.create_groups,
        sam_template=checked.sam_template,
        ad_group_type=checked.ad_group_type,
        checked=not args.no_check,
    )
    how = "not checked (--no-check)" if args.no_check else "checked"
    print(f"directory target {checked.name} added, {how} (password kept in the OS keyring)")
    if checked.insecure_plaintext:
        print(_red(INSECURE) + ": the bind password crosses the network in clear text")
    return 0


class DirectoryCheckFailed(GovtuiError):
    """`directory add`'s check of the directory failed: nothing was stored."""


INSECURE = "INSECURE: plaintext bind"


def _red(text: str) -> str:
    """Red on a terminal that takes colour; the words alone elsewhere (a pipe, NO_COLOR)."""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return Styled(f"\033[31m{text}\033[0m")  # print_table leaves our own colour alone
    return text


def _tls_text(target: DirectoryTarget) -> str:
    if target.url.startswith("ldaps"):
        how = "ldaps"
    elif target.starttls:
        how = "starttls"
    else:
        return _red(INSECURE) if target.insecure_plaintext else _red("none (refused)")
    return f"{how} as {target.tls_name}" if target.tls_name else how


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    targets = ctx.workspace().read(directory_targets.all_targets)
    if not listing.json_rows(
        args,
        [
            {
                "name": t.name,
                "url": t.url,
                "bind_dn": t.bind_dn,
                "users_base": t.users_base,
                "groups_base": t.groups_base,
                "flavour": t.flavour,
                "starttls": t.starttls,
                "ca_file": t.ca_file,
                "tls_name": t.tls_name,
                "insecure_plaintext": t.insecure_plaintext,
                "create_groups": t.create_groups,
            }
            for t in targets
        ],
    ):
        # TLS last: a red cell's colour codes must not upset the column widths.
        print_table(
            ["NAME", "URL", "FLAVOUR", "TLS"],
            [[t.name, t.url, t.flavour, _tls_text(t)] for t in targets],
        )
    return 0


def run_test(ctx: Context, args: argparse.Namespace) -> int:
    target, password = ctx.workspace().read(_target_and_password, args.name)
    # The session is closed: no transaction stays open while the directory answers.
    result = directory_targets.check(target, password)
    print(f"directory {target.name} ({target.url}):")
    width = max(len(step) for step in directory_targets.CHECK_STEPS)
    for step in result.steps:
        if step.ok:
            insecure = step.name == "TLS" and target.insecure_plaintext
            label = _red("INSECURE") if insecure else "ok"
            print(f"  {step.name:<{width}}  {label}  {step.detail}")
    failed = result.failure
    if failed is not None:
        raise DirectoryCheckFailed(
            f"directory {target.name}: {failed.name} failed: {failed.detail}"
        )
    print(f"directory {target.name}: every check passed")
    return 0


def _target_and_password(session: Session, name: str) -> tuple[DirectoryTarget, str]:
    target = directory_targets.find(session, name)
    return target, directory_targets.bind_password(session, target)


def run_remove(ctx: Context, args: argparse.Namespace) -> int:
    cancelled = ctx.workspace().act(directory_targets.remove, name=args.name, reason=args.reason)
    print(f"directory target {args.name} removed{_cancelled_words(cancelled)}")
    return 0


def run_disable(ctx: Context, args: argparse.Namespace) -> int:
    cancelled = ctx.workspace().act(directory_targets.disable, name=args.name, reason=args.reason)
    print(f"directory target {args.name} disabled{_cancelled_words(cancelled)}")
    return 0


def run_confirm(ctx: Context, args: argparse.Namespace) -> int:
    code = arguments.read_code(args.totp)
    signature = ctx.workspace().act(directory_targets.confirm_routing, name=args.name, code=code)
    print(f"the group routing of directory {args.name} is signed ({signature})")
    return 0


def run_enable(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(directory_targets.enable, name=args.name)
    print(
        f"directory target {args.name} enabled; nothing was queued: "
        f"`govtui reconcile {args.name}` shows what it missed"
    )
    return 0


def _cancelled_words(cancelled: int) -> str:
    if not cancelled:
        return ""
    return f"; {cancelled} open operation{'s' if cancelled != 1 else ''} cancelled (never applied)"


def run_scope_map(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(
        directory_targets.map_scope,
        scope_path=args.path,
        access=args.access,
        group_dn=args.group,
        target=args.target,
    )
    print(f"{args.path} ({args.access}) maps to {args.group}")
    return 0


def run_sync(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    if args.what == "status":
        rows = ws.read(directory_views.status)
        if args.json:
            print_json(rows)
        else:
            print_table(
                ["TARGET", "PENDING", "FAILED", "DONE", "CANCELLED", "NEXT RETRY", "LAST ERROR"],
                [
                    [
                        _target_label(r),
                        r.pending,
                        r.failed,
                        r.done,
                        r.cancelled,
                        _when(r.next_retry),
                        r.last_error or "-",
                    ]
                    for r in rows
                ],
            )
        return 0
    # A person running `govtui sync` wants it to happen now; --watch is the background loop
    # and keeps each op's backoff (sync.run_once).
    due: sync.Due = "backoff" if args.watch else "now"
    while True:
        report = sync.run_once(
            ws.engine,
            due=due,
            include_failed=args.retry_failed,
            progress=print_progress if sys.stderr.isatty() else None,
        )
        print(f"sync: {report.done} done, {report.retrying} to retry, {report.failed} failed")
        for error in report.errors:
            print(f"govtui: warning: {one_line(error, 1000)}", file=sys.stderr)
        if not args.watch:
            return 0 if report.failed == 0 and not report.errors else 1
        time.sleep(WATCH_SECONDS)


def _target_label(row: directory_views.TargetStatus) -> str:
    if row.disabled is None or row.target.endswith("(removed)"):
        return row.target
    return f"{row.target} (disabled)"


def _when(at: datetime | None) -> str:
    if at is None:
        return "-"
    if at <= clock.now():
        return "now"
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def run_reconcile(ctx: Context, args: argparse.Namespace) -> int:
    engine = ctx.ready_engine()
    drift = reconcile.compare(engine, args.name)
    if args.json:
        print_json([{**to_jsonable(d), "fixable": d.fixable} for d in drift])
    else:
        print_table(
            ["DRIFT", "GROUP", "ACCOUNT", "UID", "VIA", "FIX"],
            [
                [
                    d.kind,
                    # DNs the directory returned: a hostile server's escape codes stay visible.
                    one_line(d.group_dn or "-"),
                    one_line(d.user_dn or "-"),
                    one_line(d.directory_uid or "-"),
                    one_line(d.via or "-"),
                    "yes" if d.fixable else reconcile.OUTSIDE_REACH.get(d.kind, "reported only"),
                ]
                for d in drift
            ],
        )
    if args.fix and any(d.fixable for d in drift):
        # Only what still drifts when the fix runs is fixed (reconcile.fix_confirmed).
        outcome = reconcile.fix_confirmed(engine, ctx.actor_name, args.name, drift)
        report = outcome.report
        out = sys.stderr if args.json else sys.stdout
        print(
            f"fix: {report.done} done, {report.retrying} to retry, {report.failed} failed",
            file=out,
        )
        if outcome.gone:
            print(f"fix: {outcome.gone} no longer drifted, left alone", file=out)
    return 1 if drift and not args.fix else 0

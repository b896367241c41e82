"""`govtui contractor ...` and `govtui operator ...`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sqlmodel import Session

from govtui.cli import arguments, pause_commands
from govtui.cli.context import Context, print_json, print_table
from govtui.cli.grant_commands import read_code
from govtui.errors import InputError
from govtui.models import ROLES
from govtui.security import qr
from govtui.services import (
    contractor_import,
    contractors,
    enrollment,
    lockout,
    operators,
    second_factor,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contractor = sub.add_parser("contractor", help="contractors who work on client data")
    csub = contractor.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = csub.add_parser("add", help="add one contractor")
    p.add_argument("external_id", metavar="EXTERNAL_ID")
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--uid", required=True, help="directory uid (login name)")
    p.add_argument("--contract-end", required=True, metavar="YYYY-MM-DD")
    p.set_defaults(handler=run_contractor_add)
    p = csub.add_parser("list", help="list contractors, by name")
    p.add_argument("--search", help="part of a name, email, external id or uid")
    p.add_argument(
        "--limit", type=arguments.LIMIT, default=contractors.PAGE, help="rows (default %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_contractor_list)
    p = csub.add_parser("show", help="show one contractor")
    p.add_argument("external_id", metavar="EXTERNAL_ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_contractor_show)
    p = csub.add_parser(
        "import", help="import or update contractors from CSV or JSON (all rows or none)"
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(handler=run_contractor_import)
    pause_commands.register_contractor(csub)

    operator = sub.add_parser("operator", help="operators (people using govtui) and their roles")
    osub = operator.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = osub.add_parser("add", help="add an operator (the first one must be an admin)")
    p.add_argument("name")
    p.add_argument("--role", action="append", required=True, choices=ROLES, help="repeatable")
    p.add_argument("--approves", action="append", default=[], metavar="CLIENT", help="repeatable")
    p.set_defaults(handler=run_operator_add)
    p = osub.add_parser("list", help="list operators")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_operator_list)
    register_enroll(osub)


def run_contractor_add(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(
        contractors.add,
        external_id=args.external_id,
        name=args.name,
        email=args.email,
        directory_uid=args.uid,
        contract_end=args.contract_end,
    )
    print(f"contractor {args.external_id} added")
    return 0


def run_contractor_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.workspace().read(contractors.window, search=args.search, limit=max(1, args.limit))
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["EXTERNAL ID", "NAME", "EMAIL", "UID", "CONTRACT END", "STATUS"],
            [
                [r.external_id, r.name, r.email, r.directory_uid, r.contract_end, r.status]
                for r in rows
            ],
        )
    return 0


def run_contractor_show(ctx: Context, args: argparse.Namespace) -> int:
    c = ctx.workspace().read(contractors.find, args.external_id)
    record = {
        "external_id": c.external_id,
        "name": c.name,
        "email": c.email,
        "directory_uid": c.directory_uid,
        "contract_end": c.contract_end,
        "status": c.status,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }
    if args.json:
        print_json(record)
    else:
        print_table(["FIELD", "VALUE"], [[k, v] for k, v in record.items()])
    return 0


def run_contractor_import(ctx: Context, args: argparse.Namespace) -> int:
    rows, digest = contractor_import.parse(args.file)
    result = ctx.workspace().act(
        contractor_import.apply, rows, source=str(args.file), sha256=digest
    )
    print(f"imported {args.file}: {result.created} created, {result.updated} updated")
    return 0


def run_operator_add(ctx: Context, args: argparse.Namespace) -> int:

    def add(session: Session) -> bool:
        # The first operator is added by nobody yet: the login that ran this is recorded.
        bootstrap = operators.count(session) == 0
        actor = None if bootstrap else operators.find(session, ctx.actor_name)
        operators.add(
            session,
            actor,
            name=args.name,
            roles=args.role,
            approves=args.approves,
            bootstrap_actor=ctx.actor_name,
        )
        return bootstrap

    bootstrap = ctx.workspace().act_system(add)
    print(f"operator {args.name} added" + (" (the first operator)" if bootstrap else ""))
    return 0


def run_operator_list(ctx: Context, args: argparse.Namespace) -> int:
    views = ctx.workspace().read(operators.list_all)
    if args.json:
        print_json(views)
    else:
        print_table(
            ["NAME", "ROLES", "APPROVES FOR", "TOTP"],
            [
                [
                    v.name,
                    ",".join(v.roles),
                    ",".join(v.approves) or "-",
                    (
                        f"LOCKED until {v.totp_locked_until:%Y-%m-%d %H:%M} UTC"
                        if v.totp_locked_until is not None
                        else "enrolled"
                        if v.totp_enrolled
                        else "-"
                    ),
                ]
                for v in views
            ],
        )
    return 0


def register_enroll(osub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = osub.add_parser(
        "enroll", help="enrol an operator's TOTP authenticator (secret kept in the OS keyring)"
    )
    p.add_argument("name")
    p.add_argument(
        "--print-uri",
        action="store_true",
        help="print the otpauth URI and leave the enrolment pending (for scripted provisioning)",
    )
    p.add_argument("--confirm", metavar="CODE", help="finish a pending enrolment with a code")
    p.add_argument("--current-code", metavar="CODE", help="re-enrol: the operator's current code")
    p.add_argument(
        "--totp",
        "--admin-code",
        dest="admin_code",
        metavar="CODE",
        help="enrol someone else (first enrolment or re-enrolment): the acting admin's own code "
        "(asked for when omitted)",
    )
    p.set_defaults(handler=run_operator_enroll)
    p = osub.add_parser(
        "unlock",
        help="lift an operator's TOTP lock-out (an admin, or a fellow approver, with own code)",
    )
    p.add_argument("name")
    p.add_argument("--totp", metavar="CODE", help="your own code (asked for when omitted)")
    p.set_defaults(handler=run_operator_unlock)
    p = osub.add_parser(
        "reset-enrolment",
        help="break-glass: clear an operator's TOTP enrolment on two admins' codes",
    )
    p.add_argument("name")
    p.add_argument("--totp", metavar="CODE", help="your own code (asked for when omitted)")
    p.add_argument("--second-admin", required=True, metavar="NAME", help="the confirming admin")
    p.add_argument(
        "--second-totp", metavar="CODE", help="the second admin's code (asked for when omitted)"
    )
    p.set_defaults(handler=run_operator_reset_enrolment)


def _needs_admin_code(ctx: Context, name: str) -> bool:
    """Whether starting `name`'s enrolment asks the acting operator for their own code: when
    they enrol someone else (the bootstrap admin enrolling themself needs none)."""
    return ctx.actor_name != name


# Takes the QR code (the secret) off the screen and out of the scrollback.
CLEAR_SCREEN = "\033[3J\033[2J\033[H"


def run_operator_enroll(ctx: Context, args: argparse.Namespace) -> int:
    if args.confirm is not None:
        ctx.workspace().act(enrollment.confirm, name=args.name, code=args.confirm)
        print(f"operator {args.name} enrolled")
        return 0
    if not args.print_uri and not sys.stdin.isatty():
        raise InputError(
            "enrolment needs a terminal to show the QR code; use --print-uri and --confirm CODE"
        )
    admin_code = args.admin_code
    if admin_code is None and args.current_code is None and _needs_admin_code(ctx, args.name):
        admin_code = read_code(None, "Your own TOTP code (as the acting admin): ")
    uri = ctx.workspace().act(
        enrollment.start,
        name=args.name,
        current_code=args.current_code,
        admin_code=admin_code,
    )
    if args.print_uri:
        print(uri)
        return 0
    confirmed = False
    try:
        print(f"Scan this with {args.name}'s authenticator app:\n")
        print(qr.qr_text(uri), flush=True)
        for _attempt in range(3):
            try:
                code = getpass.getpass("\nThe 6-digit code it shows now: ")
            except EOFError:
                raise InputError(
                    f"no code typed: the enrolment of {args.name!r} stays pending"
                ) from None
            try:
                ctx.workspace().act(enrollment.confirm, name=args.name, code=code)
            except (InputError, second_factor.CodeRejected) as exc:
                print(f"govtui: {exc}", file=sys.stderr)
                continue
            confirmed = True
            break
    finally:
        # Confirmed, refused, three wrong codes, Ctrl-C or end of input: the secret goes.
        _clear_screen()
    if confirmed:
        print(f"operator {args.name} enrolled")
        return 0
    raise InputError(
        f"three wrong codes: the enrolment of {args.name!r} stays pending; run enroll again"
    )


def _clear_screen() -> None:
    sys.stdout.write(CLEAR_SCREEN)
    sys.stdout.flush()


def run_operator_unlock(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp, "Your own TOTP code: ")
    ctx.workspace().act(lockout.unlock, name=args.name, code=code)
    print(f"operator {args.name} unlocked")
    return 0


def run_operator_reset_enrolment(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp, "Your own TOTP code: ")
    second = read_code(args.second_totp, f"{args.second_admin}'s TOTP code: ")
    ctx.workspace().act(
        lockout.reset_enrolment,
        name=args.name,
        code=code,
        second_admin=args.second_admin,
        second_code=second,
    )
    print(f"the enrolment of {args.name} is reset: enrol them again with `govtui operator enroll`")
    return 0

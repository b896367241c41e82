"""`govtui contractor ...` and `govtui operator ...`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sqlmodel import Session

from govtui.cli import arguments, key_commands, listing, pause_commands
from govtui.cli.arguments import read_code
from govtui.cli.context import Context, print_json, print_table
from govtui.errors import InputError
from govtui.models import ROLES
from govtui.security import qr
from govtui.services import (
    contractor_import,
    contractors,
    enrollment,
    lockout,
    operators,
    privilege,
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
    listing.add_output_arguments(p)
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
    p.add_argument(
        "--reviews",
        action="append",
        default=[],
        metavar="CLIENT",
        help="a client whose access they review (needs the reviewer role; repeatable)",
    )
    _binding_arguments(p)
    _code_arguments(p)
    p.set_defaults(handler=run_operator_add)
    p = osub.add_parser("list", help="list operators")
    listing.add_output_arguments(p, limit=False)
    p.set_defaults(handler=run_operator_list)
    p = osub.add_parser("remove", help="remove (disable) an operator; their history stays")
    p.add_argument("name")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=run_operator_remove)
    p = osub.add_parser(
        "bind", help="bind an operator to the login (or database role) of its person"
    )
    p.add_argument("name")
    _binding_arguments(p)
    _code_arguments(p)
    p.set_defaults(handler=run_operator_bind)
    p = osub.add_parser(
        "pending", help="privilege changes waiting for a second admin's confirmation"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_operator_pending)
    p = osub.add_parser(
        "confirm", help="confirm another admin's pending privilege change with your own code"
    )
    p.add_argument("change_id", type=arguments.IDS, metavar="CHANGE_ID")
    _code_arguments(p)
    p.set_defaults(handler=run_operator_confirm)
    p = osub.add_parser("cancel", help="cancel a pending privilege change (either admin)")
    p.add_argument("change_id", type=arguments.IDS, metavar="CHANGE_ID")
    p.set_defaults(handler=run_operator_cancel)
    role = osub.add_parser("role", help="give or take away an operator's role")
    rsub = role.add_subparsers(dest="role_action", required=True, metavar="ACTION")
    p = rsub.add_parser(
        "add", help="give a role (your code; approver/admin: then a second admin confirms)"
    )
    p.add_argument("name")
    p.add_argument("role", choices=ROLES)
    _code_arguments(p)
    p.set_defaults(handler=run_role_add)
    p = rsub.add_parser("remove", help="take a role away (no code)")
    p.add_argument("name")
    p.add_argument("role", choices=ROLES)
    p.set_defaults(handler=run_role_remove)
    approves = osub.add_parser("approves", help="the clients an approver approves for")
    asub = approves.add_subparsers(dest="approves_action", required=True, metavar="ACTION")
    p = asub.add_parser(
        "add", help="approve for one more client (a second admin confirms once two exist)"
    )
    p.add_argument("name")
    p.add_argument("client")
    _code_arguments(p)
    p.set_defaults(handler=run_approves_add)
    p = asub.add_parser("remove", help="stop approving for a client (no code)")
    p.add_argument("name")
    p.add_argument("client")
    p.set_defaults(handler=run_approves_remove)
    reviews = osub.add_parser("reviews", help="the clients a reviewer reviews access for")
    vsub = reviews.add_subparsers(dest="reviews_action", required=True, metavar="ACTION")
    p = vsub.add_parser(
        "add", help="review one more client (your code; a second admin confirms once two exist)"
    )
    p.add_argument("name")
    p.add_argument("client")
    _code_arguments(p)
    p.set_defaults(handler=run_reviews_add)
    p = vsub.add_parser("remove", help="stop reviewing a client (no code)")
    p.add_argument("name")
    p.add_argument("client")
    p.set_defaults(handler=run_reviews_remove)
    register_enroll(osub)
    key_commands.register_operator_key(osub)


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
    ctx.workspace().read(_stream_contractors, args=args)
    return 0


def _stream_contractors(session: Session, *, args: argparse.Namespace) -> None:
    """Every contractor the search finds (or the first --limit), by name, written a keyset
    window at a time as it is read."""
    search = args.search or None
    rows = contractors.stream(session, search=search, limit=args.limit)
    shown = listing.emit(
        args,
        rows,
        headers=["EXTERNAL ID", "NAME", "EMAIL", "UID", "CONTRACT END", "STATUS"],
        cells=lambda r: [r.external_id, r.name, r.email, r.directory_uid, r.contract_end, r.status],
    )
    listing.note_limit(
        args, shown, lambda: contractors.count(session, search=search), "contractors"
    )


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


def _binding_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--login", help="the OS login that may act as them (default: the name)")
    p.add_argument(
        "--db-role", help="PostgreSQL only: the database role (session_user) that must connect"
    )
    p.add_argument(
        "--shared-login",
        action="store_true",
        help="allow a login bound to several operators (defeats separation: shown in red)",
    )


def _code_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--totp", metavar="CODE", help="your own code (asked when omitted)")


def _codes(args: argparse.Namespace) -> privilege.Codes:
    return privilege.Codes(read_code(args.totp))


def _waits(change_id: int | None, who: str = "a second admin") -> str:
    """The note that a change waits for `who` to confirm it, in their own session."""
    if change_id is None:
        return ""
    hours = int(privilege.PENDING_FOR.total_seconds() // 3600)
    return (
        f"; pending change #{change_id} waits for {who}: "
        f"`govtui --as ADMIN operator confirm {change_id}` (expires in {hours} h)"
    )


def _outcome(change_id: int | None, *, pending: str, done: str, who: str = "a second admin") -> int:
    """Say whether a privilege change is done, or pending and for whom."""
    print(pending + _waits(change_id, who) if change_id is not None else done)
    return 0


def run_operator_add(ctx: Context, args: argparse.Namespace) -> int:
    workspace = ctx.workspace()
    if workspace.read(operators.count) == 0:

        def bootstrap(session: Session) -> None:
            # The first operator is added by nobody yet: bound to whoever runs this (their
            # OS login unless --login says otherwise), granted on their own say-so.
            operators.add(
                session,
                None,
                name=args.name,
                roles=args.role,
                approves=args.approves,
                reviews=args.reviews,
                bootstrap_actor=ctx.actor_name,
                login=args.login,
                db_role=args.db_role,
                shared_login=args.shared_login,
            )

        workspace.act_system(bootstrap)
        print(f"operator {args.name} added (the first operator)")
        return 0
    changes = workspace.act(
        privilege.add_operator,
        name=args.name,
        roles=args.role,
        approves=args.approves,
        reviews=args.reviews,
        login=args.login,
        db_role=args.db_role,
        shared_login=args.shared_login,
        codes=_codes(args),
    )
    print(f"operator {args.name} added" + "".join(_waits(c) for c in changes))
    return 0


def run_operator_remove(ctx: Context, args: argparse.Namespace) -> int:
    change = ctx.workspace().act(privilege.remove_operator, name=args.name, reason=args.reason)
    return _outcome(
        change,
        pending=f"removing operator {args.name} would leave fewer than two admins",
        done=f"operator {args.name} removed",
        who=f"{args.name} (or another admin)",
    )


def run_operator_bind(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(
        privilege.bind,
        name=args.name,
        login=args.login,
        db_role=args.db_role,
        shared_login=args.shared_login,
        codes=_codes(args),
    )
    print(f"operator {args.name} bound")
    return 0


def run_role_add(ctx: Context, args: argparse.Namespace) -> int:
    change = ctx.workspace().act(
        privilege.add_role, name=args.name, role=args.role, codes=_codes(args)
    )
    return _outcome(
        change,
        pending=f"the {args.role} role for {args.name} is requested",
        done=f"operator {args.name} has the {args.role} role",
    )


def run_role_remove(ctx: Context, args: argparse.Namespace) -> int:
    change = ctx.workspace().act(privilege.remove_role, name=args.name, role=args.role)
    return _outcome(
        change,
        pending=f"removing {args.name}'s admin role would leave fewer than two admins",
        done=f"operator {args.name} no longer has the {args.role} role",
        who=f"{args.name} (or another admin)",
    )


def run_approves_add(ctx: Context, args: argparse.Namespace) -> int:
    change = ctx.workspace().act(
        privilege.add_approves, name=args.name, client=args.client, codes=_codes(args)
    )
    return _outcome(
        change,
        pending=f"approving for {args.client} by {args.name} is requested",
        done=f"operator {args.name} approves for {args.client}",
    )


def run_approves_remove(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(privilege.remove_approves, name=args.name, client=args.client)
    print(f"operator {args.name} no longer approves for {args.client}")
    return 0


def run_reviews_add(ctx: Context, args: argparse.Namespace) -> int:
    change = ctx.workspace().act(
        privilege.add_reviews, name=args.name, client=args.client, codes=_codes(args)
    )
    return _outcome(
        change,
        pending=f"reviewing {args.client} by {args.name} is requested",
        done=f"operator {args.name} reviews {args.client}",
    )


def run_reviews_remove(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(privilege.remove_reviews, name=args.name, client=args.client)
    print(f"operator {args.name} no longer reviews {args.client}")
    return 0


def run_operator_pending(ctx: Context, args: argparse.Namespace) -> int:
    views = ctx.workspace().read(privilege.pending)
    if args.json:
        print_json(views)
        return 0
    print_table(
        ["ID", "CHANGE", "OPERATOR", "WHAT", "REQUESTED BY", "EXPIRES (UTC)"],
        [
            [
                v.id,
                v.kind,
                v.operator,
                v.role or v.client or v.reason or "-",
                v.requested_by,
                f"{v.expires_at:%Y-%m-%d %H:%M}",
            ]
            for v in views
        ],
    )
    return 0


def run_operator_confirm(ctx: Context, args: argparse.Namespace) -> int:
    done = ctx.workspace().act(privilege.confirm, change_id=args.change_id, codes=_codes(args))
    print(f"change #{args.change_id} confirmed: {done}")
    return 0


def run_operator_cancel(ctx: Context, args: argparse.Namespace) -> int:
    ctx.workspace().act(privilege.cancel, change_id=args.change_id)
    print(f"change #{args.change_id} cancelled")
    return 0


RED, RESET = "\033[31m", "\033[0m"


def run_operator_list(ctx: Context, args: argparse.Namespace) -> int:
    views = ctx.workspace().read(operators.list_all)
    if listing.json_rows(args, views):
        return 0
    print_table(
        ["NAME", "ROLES", "APPROVES FOR", "REVIEWS", "TOTP", "STATUS", "LOGIN"],
        [
            [
                v.name,
                ",".join(v.roles) or "-",
                ",".join(v.approves) or "-",
                ",".join(v.reviews) or "-",
                (
                    f"LOCKED until {v.totp_locked_until:%Y-%m-%d %H:%M} UTC"
                    if v.totp_locked_until is not None
                    else "enrolled"
                    if v.totp_enrolled
                    else "-"
                ),
                "removed" if v.disabled else "active",
                v.login
                + (f" db:{v.db_role}" if v.db_role else "")
                + (" SHARED" if v.shared_login else ""),
            ]
            for v in views
        ],
    )
    shared: dict[str, list[str]] = {}
    for v in views:
        if v.shared_login and not v.disabled:
            shared.setdefault(v.login, []).append(v.name)
    # A shared login means no separation of duties between its operators: say so, in red.
    color = sys.stdout.isatty()
    for login, names in sorted(shared.items()):
        line = f"warning: login {login} is shared by {', '.join(names)}: no four eyes between them"
        print(f"{RED}{line}{RESET}" if color else line)
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
        "--allow",
        action="store_true",
        help="as an admin: allow NAME to enrol (or re-enrol) themself, under their own login",
    )
    p.add_argument(
        "--totp", metavar="CODE", help="with --allow: your own code (asked for when omitted)"
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
        help="break-glass: ask to clear an operator's TOTP enrolment (a second admin confirms)",
    )
    p.add_argument("name")
    p.add_argument("--totp", metavar="CODE", help="your own code (asked for when omitted)")
    p.set_defaults(handler=run_operator_reset_enrolment)


# Takes the QR code (the secret) off the screen and out of the scrollback.
CLEAR_SCREEN = "\033[3J\033[2J\033[H"


def run_operator_enroll(ctx: Context, args: argparse.Namespace) -> int:
    if args.allow:
        code = read_code(args.totp, "Your own TOTP code (as the allowing admin): ")
        ctx.workspace().act(enrollment.allow, name=args.name, code=code)
        print(
            f"{args.name} may enrol now (for 24 h): they run `govtui operator enroll "
            f"{args.name}` under their own login"
        )
        return 0
    if args.totp is not None:
        raise InputError("--totp goes with --allow (an admin allowing someone else's enrolment)")
    if args.confirm is not None:
        ctx.workspace().act(enrollment.confirm, name=args.name, code=args.confirm)
        print(f"operator {args.name} enrolled")
        return 0
    if not args.print_uri and not sys.stdin.isatty():
        raise InputError(
            "enrolment needs a terminal to show the QR code; use --print-uri and --confirm CODE"
        )
    uri = ctx.workspace().act(enrollment.start, name=args.name, current_code=args.current_code)
    if args.print_uri:
        print(uri)
        return 0
    confirmed = False
    try:
        print("Scan this with your authenticator app:\n")
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
    change = ctx.workspace().act(
        privilege.request_reset, name=args.name, codes=privilege.Codes(code)
    )
    print(f"the reset of {args.name}'s enrolment is requested" + _waits(change))
    return 0

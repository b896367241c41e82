"""`govtui operator key create|pending|register`: operators' signing keys (issue 13).

`register_key_register(ksub)` mounts the admin's `register` under any subcommand group (the
`evidence key` group calls it too), so the step has one implementation."""

from __future__ import annotations

import argparse

from govtui.cli.arguments import read_code
from govtui.cli.context import Context
from govtui.services import act_signatures
from govtui.text import one_line


def register_operator_key(osub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = osub.add_parser("key", help="your signing key (signs the access you add)")
    ksub = key.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    p = ksub.add_parser(
        "create",
        help="make your own signing key, in your own keyring (e.g. enrolled before version 6)",
    )
    p.add_argument("--totp", metavar="CODE", help="your own code (asked for when omitted)")
    p.set_defaults(handler=run_key_create)
    p = ksub.add_parser("pending", help="list keys whose registration waits for the evidence key")
    p.set_defaults(handler=run_key_pending)
    register_key_register(ksub)


def register_key_register(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ksub.add_parser(
        "register",
        help="as the admin holding the evidence key: sign the pending key registrations shown",
    )
    p.add_argument("--totp", metavar="CODE", help="your own code (asked for when omitted)")
    p.set_defaults(handler=run_key_register)


def run_key_create(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp, "Your own TOTP code: ")
    key = ctx.workspace().act(act_signatures.create_own_key, code=code)
    print(f"signing key {key.fingerprint} made; its private half is in your keyring only")
    if key.registration_sig is None:
        print(
            "its registration waits for the evidence key: the admin holding it runs "
            "`govtui operator key register` (until then your acts do not verify)"
        )
    return 0


def _show_pending(ctx: Context) -> list[act_signatures.PendingKey]:
    pending = ctx.workspace().read(act_signatures.pending_registrations)
    for item in pending:
        at = item.registered_at.isoformat(timespec="seconds")
        print(one_line(f"pending: {item.operator} {item.fingerprint} made {at}"))
    if not pending:
        print("no key registration is pending")
    return pending


def run_key_pending(ctx: Context, args: argparse.Namespace) -> int:
    _show_pending(ctx)
    return 0


def run_key_register(ctx: Context, args: argparse.Namespace) -> int:
    pending = _show_pending(ctx)
    if not pending:
        return 0
    code = read_code(args.totp, "Your own TOTP code, to register the keys above: ")
    done = ctx.workspace().act(
        act_signatures.register_pending,
        code=code,
        fingerprints=[item.fingerprint for item in pending],
    )
    print(f"registered {len(done)} signing key(s) with the evidence key")
    return 0

"""`govtui evidence key init|show|rotate` (the evidence key, services/evidence_keys.py).

The key commands are registered by `register_key_commands`; the evidence pack commands
(export, verify) come in a function of their own beside it."""

from __future__ import annotations

import argparse

from govtui.cli.context import Context, print_json
from govtui.cli.grant_commands import read_code
from govtui.services import evidence_keys
from govtui.services.audit import format_time


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("evidence", help="evidence an auditor can verify: the signing key")
    esub = parser.add_subparsers(dest="evidence_action", required=True, metavar="ACTION")
    register_key_commands(esub)


def register_key_commands(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = esub.add_parser("key", help="the evidence key that signs packs and checkpoints")
    ksub = parser.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    p = ksub.add_parser(
        "init", help="make the evidence key (an admin; its private half only in your keyring)"
    )
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.set_defaults(handler=run_key_init)
    p = ksub.add_parser(
        "show", help="every evidence key's public key and fingerprint (give them to the auditor)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_key_show)
    p = ksub.add_parser(
        "rotate",
        help="retire the current key (still listed: what it signed verifies) for a new one",
    )
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.set_defaults(handler=run_key_rotate)


def run_key_init(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp)
    key = ctx.workspace().act(evidence_keys.init_key, code=code)
    print(f"evidence key {key.fingerprint} made; its private half is only in your keyring")
    print("give the public key (`govtui evidence key show`) to your auditor, out of band")
    return 0


def run_key_rotate(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp)
    key = ctx.workspace().act(evidence_keys.rotate, code=code)
    print(f"evidence key {key.fingerprint} made; the previous key is retired and stays listed")
    print("give the new public key (`govtui evidence key show`) to your auditor, out of band")
    return 0


def run_key_show(ctx: Context, args: argparse.Namespace) -> int:
    keys = ctx.workspace().read(evidence_keys.keys)
    if args.json:
        print_json(
            [
                {
                    "fingerprint": k.fingerprint,
                    "current": k.retired_at is None,
                    "created_by": k.created_by,
                    "created_at": format_time(k.created_at),
                    "retired_at": format_time(k.retired_at) if k.retired_at else None,
                    "public_key": k.public_pem,
                }
                for k in keys
            ]
        )
        return 0
    if not keys:
        print("no evidence key yet: an admin makes one with `govtui evidence key init`")
        return 0
    for number, k in enumerate(keys):
        if number:
            print()
        state = "current" if k.retired_at is None else f"retired {format_time(k.retired_at)}"
        print(f"{k.fingerprint} ({state}; made by {k.created_by} {format_time(k.created_at)})")
        print(k.public_pem.rstrip("\n"))
    return 0
